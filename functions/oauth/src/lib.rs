//! `oauth-rotation`: rotates the client secret of a confidential OAuth 2.0
//! client at its authorization server.
//!
//! Where rotor may choose the secret (Keycloak, Okta, Auth0), it is generated
//! here and stored as AWSPENDING before the provider is changed. Where only the
//! provider can make one (RFC 7592, Entra ID), createSecret asks for it and the
//! driver stores it at once. testSecret proves the pending secret gets a token
//! with a `client_credentials` grant; finishSecret promotes it and, where the
//! provider keeps several secrets, retires the old one.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::retry::Backoff;
use rotor_core::settings::{EnvSettings, RevokePrevious, UnknownRevoke};
use rotor_core::store::VersionSelector;
use rotor_core::{
    Cause, Error, ExposeSecret, IssuedValues, Rotator, SecretStore, SecretString, StepContext,
    TargetError, TargetKind,
};
use tracing::warn;

pub mod client;
pub mod providers;
pub mod token;
mod wire;

use client::{Client, Provider};
use providers::rfc7592::IssueError;
use token::{Grant, client_credentials};

/// When the previous client secret stops working (`REVOKE_PREVIOUS`), where
/// the provider keeps two (Okta, Entra ID): by default once the new one is
/// current, so a client secret rotated away from stops working at once.
pub const DEFAULT_REVOKE: RevokePrevious = RevokePrevious::AtFinish;

/// The deployer's comma-separated management secrets (ARNs or names) that any
/// client secret this function rotates may name in `management_secret_arn`.
/// Any other management secret must list the client's secret in its own
/// `rotor:serves` tag.
pub const MANAGEMENT_SECRETS_VAR: &str = "MANAGEMENT_SECRET_ARNS";

/// Why the environment cannot be read into a [`Config`].
#[derive(Clone, Debug, thiserror::Error)]
pub enum ConfigError {
    /// `REVOKE_PREVIOUS` has a value that is not a policy.
    #[error(transparent)]
    Revoke(#[from] UnknownRevoke),
}

/// Settings read once per process.
#[derive(Clone, Debug)]
pub struct Config {
    keep_previous: bool,
    management_secrets: Vec<String>,
    test_attempts: u32,
    first_delay: Duration,
}

impl Config {
    /// From any lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let keep_previous =
            RevokePrevious::from_lookup(&lookup, DEFAULT_REVOKE)? == RevokePrevious::NextRotation;
        let management_secrets = lookup(MANAGEMENT_SECRETS_VAR)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Config {
            keep_previous,
            management_secrets,
            test_attempts: 6,
            first_delay: Duration::from_millis(500),
        })
    }
}

/// Rotates OAuth client secrets.
pub struct OAuthRotator {
    config: EnvSettings<Config>,
    tokens: RegistrationTokens,
}

/// RFC 7592 registration access tokens a server handed out in this process and
/// that are not stored yet, by secret ARN and registration URI. A server may
/// replace the token on a read (RFC 7592 §2.1); if the update that follows
/// fails, the new token is the only one that manages the client, so a retry in
/// this process must use it.
#[derive(Default)]
struct RegistrationTokens(Mutex<Vec<(String, String, SecretString)>>);

impl RegistrationTokens {
    fn get(&self, secret: &str, uri: &str) -> Option<SecretString> {
        let tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .iter()
            .find(|(s, u, _)| s == secret && u == uri)
            .map(|(_, _, t)| SecretString::from(t.expose_secret()))
    }

    fn put(&self, secret: &str, uri: &str, token: &SecretString) {
        self.forget(secret, uri);
        let mut tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= 32 {
            tokens.remove(0);
        }
        tokens.push((
            secret.to_owned(),
            uri.to_owned(),
            SecretString::from(token.expose_secret()),
        ));
    }

    fn forget(&self, secret: &str, uri: &str) {
        let mut tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|(s, u, _)| !(s == secret && u == uri));
    }
}

impl OAuthRotator {
    /// Reads the environment once.
    pub fn from_env() -> Self {
        OAuthRotator {
            config: EnvSettings::new(Config::from_lookup(|v| std::env::var(v).ok())),
            tokens: RegistrationTokens::default(),
        }
    }

    /// With settings given by the caller.
    pub fn new(config: Config) -> Self {
        OAuthRotator {
            config: EnvSettings::ready(config),
            tokens: RegistrationTokens::default(),
        }
    }

    fn config(&self, secret: &str) -> Result<&Config, Error> {
        self.config.get(secret)
    }

    /// RFC 7592: a new secret from the server, with the freshest registration
    /// access token this process knows for the client.
    async fn rfc7592<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        current: &Client,
    ) -> Result<SecretString, Error> {
        let arn = ctx.secret_arn();
        let uri = current.field("registration_client_uri").unwrap_or_default();
        let Some(stored) = current.registration_access_token.as_ref() else {
            return Err(parse(arn, AWSCURRENT, &ctx.current().await?.value)
                .err()
                .unwrap_or_else(|| Error::InvalidSecretValue {
                    secret: arn.to_owned(),
                    label: AWSCURRENT.to_owned(),
                    problem: "has no registration_access_token".into(),
                }));
        };
        let remember = |token: &SecretString| self.tokens.put(arn, uri, token);
        let result = match self.tokens.get(arn, uri) {
            Some(known) => match providers::rfc7592::issue(current, &known, remember).await {
                // Another process stored a newer token since: use the stored one.
                Err(IssueError::TokenRefused { .. }) => {
                    self.tokens.forget(arn, uri);
                    providers::rfc7592::issue(current, stored, remember).await
                }
                other => other,
            },
            None => providers::rfc7592::issue(current, stored, remember).await,
        };
        match result {
            Ok(issued) => {
                // The issued value carries the newest token from here on.
                self.tokens.forget(arn, uri);
                Ok(current.with_secret(
                    &issued.secret,
                    &issued.fields,
                    issued.registration_access_token.as_ref(),
                ))
            }
            Err(IssueError::Other(error)) if self.tokens.get(arn, uri).is_some() => {
                Err(error.map_target_problem(|problem| {
                    format!(
                        "{problem}. The server replaced the registration access token when it was read; this process keeps the new one, so retry this step soon (a restarted function has only the stored token, which the server no longer takes)"
                    )
                }))
            }
            Err(IssueError::Other(error)) => Err(error),
            Err(IssueError::TokenRefused { problem }) => {
                let version = &ctx.current().await?.version_id;
                Err(TargetError::new(Cause::Auth, format!(
                        "{problem}: the server refused the registration access token in field registration_access_token of AWSCURRENT (version {version}). If an earlier attempt at a rotation failed after the server answered, the server may have replaced the token then (RFC 7592 allows it) and the new one was never stored. If another createSecret for this version ran at the same time (an overlapping retry), its update replaced the token, and it stores the new one with its secret: then AWSPENDING (version {pending}) appears and the rotation goes on, so look first. Otherwise, to recover: have the authorization server's administrator issue a new registration access token (and client secret) for client {client}, store them in a new AWSCURRENT value (aws secretsmanager put-secret-value --secret-id {arn} --secret-string file://client.json), then rotate again",
                        client = current.client_id,
                        pending = ctx.event.version_id,
                    )).at(TargetKind::Provider, format!("rfc7592 at {}", rotor_core::http::display_url(uri))))
            }
        }
    }
}

/// Which secret an RFC 7592 server holds for a client, as a read with the
/// token that came with an issued secret tells. The values carry the token
/// the read handed out, if it replaced the old one.
enum Held {
    /// The issued one: the value to store.
    Issued(SecretString),
    /// Another one: the issued secret is retired.
    Another,
    /// The read was refused (or the value is not an RFC 7592 client's).
    Refused,
    /// The read does not show the secret.
    NotShown(SecretString),
}

impl OAuthRotator {
    /// Reads the client of an issued value (RFC 7592) with the value's own
    /// registration access token. A token the read hands out is kept in
    /// this process at once, as it is the only one that works from then on.
    async fn server_holds<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        issued: &SecretString,
    ) -> Result<Held, Error> {
        let Ok(client) = Client::parse(issued) else {
            return Ok(Held::Refused);
        };
        let Some(token) = client.registration_access_token.as_ref() else {
            return Ok(Held::Refused);
        };
        if client.provider != Provider::Rfc7592 {
            return Ok(Held::Refused);
        }
        let uri = client.field("registration_client_uri").unwrap_or_default();
        let Some(read) = providers::rfc7592::read(&client, token).await? else {
            return Ok(Held::Refused);
        };
        if let Some(token) = &read.token {
            self.tokens.put(ctx.secret_arn(), uri, token);
        }
        let value = match &read.token {
            Some(token) => client.with_secret(&client.client_secret, &[], Some(token)),
            None => SecretString::from(issued.expose_secret()),
        };
        Ok(match read.secret {
            None => Held::NotShown(value),
            Some(held) if held.expose_secret() != client.client_secret.expose_secret() => {
                Held::Another
            }
            Some(_) => Held::Issued(value),
        })
    }
}

fn parse(secret: &str, label: &str, value: &SecretString) -> Result<Client, Error> {
    Client::parse(value).map_err(|problem| Error::InvalidSecretValue {
        secret: secret.to_owned(),
        label: label.to_owned(),
        problem: problem.to_string(),
    })
}

/// 32 random bytes from the OS CSPRNG, base64url: what rotor chooses where
/// the provider lets it.
fn new_client_secret(secret: &str) -> Result<SecretString, Error> {
    rotor_core::password::random_text(32, |bytes| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    })
    .map_err(|source| Error::PasswordPolicy {
        secret: secret.to_owned(),
        source,
    })
}

impl Rotator for OAuthRotator {
    type Secret = Client;

    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let current = parse(arn, AWSCURRENT, &ctx.current().await?.value)?;
        match current.provider {
            Provider::Rfc7592 => self.rfc7592(ctx, &current).await,
            Provider::Entra => {
                let auth = providers::management(ctx, &current, &config.management_secrets).await?;
                let issued =
                    providers::entra::issue(&current, &auth, arn, &ctx.event.version_id).await?;
                Ok(current.with_secret(&issued.secret, &issued.fields, None))
            }
            Provider::Keycloak | Provider::Okta | Provider::Auth0 => {
                // A management secret that does not serve this client, or a base
                // URL it is not bound to, is refused before anything is staged.
                providers::bind(ctx, &current, &config.management_secrets).await?;
                let secret = new_client_secret(arn)?;
                Ok(current.with_secret(&secret, &[], None))
            }
        }
    }

    fn issued_values(&self) -> Option<&impl IssuedValues> {
        Some(self)
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let current = parse(arn, AWSCURRENT, &ctx.current().await?.value)?;
        if matches!(current.provider, Provider::Rfc7592 | Provider::Entra) {
            return Ok(()); // createSecret already made the provider hold it
        }
        let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
        // Okta makes room for the new secret only by deleting this secret's own.
        let previous = ctx.previous().await?;
        let previous = previous.and_then(|p| Client::parse(&p.value).ok());
        let auth = providers::management(ctx, &current, &config.management_secrets).await?;
        providers::install(&current, &pending, previous.as_ref(), &auth).await
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
        let grant = Grant {
            endpoint: &pending.token_endpoint,
            client_id: &pending.client_id,
            secret: &pending.client_secret,
            method: pending.auth_method,
            scope: pending.scope.as_deref(),
            audience: pending.audience.as_deref(),
        };
        // Providers can take seconds to accept a new secret everywhere.
        Backoff::new(config.first_delay, Duration::from_secs(8))
            .attempts(config.test_attempts)
            .run(
                |_| client_credentials(&grant),
                |error| error.cause == Cause::Auth || error.cause.is_retryable(),
                |attempt, _, _| {
                    warn!(secret = %arn, attempt, "the pending client secret did not get a token yet; retrying");
                },
            )
            .await
            .map(|_token| ())
            .map_err(|gave_up| {
                TargetError::new(
                    gave_up.error.cause,
                    format!(
                        "the pending client secret of {} got no token after {} attempts: {}",
                        pending.client_id, gave_up.attempts, gave_up.error.problem
                    ),
                )
                .at(
                    TargetKind::Provider,
                    format!(
                        "token endpoint {}",
                        rotor_core::http::display_url(&pending.token_endpoint)
                    ),
                )
            })
    }

    async fn after_finish<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        // The labels have moved: read the new current and the old (now previous) value afresh.
        let read = |label| ctx.store().get_value(arn, VersionSelector::Label(label));
        let store_error = |source| Error::Store {
            secret: arn.to_owned(),
            operation: "GetSecretValue",
            source,
        };
        let Some(new) = read(AWSCURRENT).await.map_err(store_error)? else {
            return Ok(());
        };
        let current = parse(arn, AWSCURRENT, &new.value)?;
        if !matches!(current.provider, Provider::Okta | Provider::Entra) {
            return Ok(());
        }
        let old = read(AWSPREVIOUS).await.map_err(store_error)?;
        let previous = old.and_then(|old| Client::parse(&old.value).ok());
        let auth = providers::management(ctx, &current, &config.management_secrets).await?;
        providers::retire(
            arn,
            &current,
            previous.as_ref(),
            &auth,
            config.keep_previous,
        )
        .await
    }
}

/// RFC 7592's update retires the old secret: the issued one must be stored.
impl IssuedValues for OAuthRotator {
    fn issued_at_target(&self, value: &SecretString) -> bool {
        Client::parse(value).is_ok_and(|client| client.provider == Provider::Rfc7592)
    }

    /// RFC 7592: before storing a secret kept from an earlier attempt, read
    /// the client with the kept token. Another process may have asked for a
    /// newer secret since (then the kept one is retired: ask for another), and
    /// a server may replace the token on the read (store the new one).
    async fn refresh_issued<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        kept: &SecretString,
    ) -> Result<Option<SecretString>, Error> {
        Ok(match self.server_holds(ctx, kept).await? {
            Held::Issued(value) | Held::NotShown(value) => Some(value),
            Held::Another => None,
            // Nothing better is known than the kept value.
            Held::Refused => Some(SecretString::from(kept.expose_secret())),
        })
    }

    /// RFC 7592: another createSecret run stored its secret for this version
    /// first. Read the client with this run's token: if the server holds this
    /// run's secret, the stored one was retired when this one was issued.
    async fn held_at_target<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        ours: &SecretString,
    ) -> Result<Option<SecretString>, Error> {
        Ok(match self.server_holds(ctx, ours).await? {
            Held::Issued(value) => Some(value),
            // Refused (a later update replaced the token) or not shown: a
            // later run holds the secret, or nothing tells; the stored stands.
            Held::Another | Held::Refused | Held::NotShown(_) => None,
        })
    }

    async fn recovery<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        value: &SecretString,
    ) -> String {
        let arn = ctx.secret_arn();
        let token = &ctx.event.version_id;
        let retry = format!(
            "aws secretsmanager rotate-secret --secret-id {arn}: while version {token} is pending, Secrets Manager reattempts it"
        );
        let (Ok(issued), Ok(stored)) = (Client::parse(value), ctx.current().await) else {
            return format!(
                "Fix the cause above, then retry the rotation with the same version ({retry}) while this function's process is warm: it stores the value it keeps"
            );
        };
        let version = &stored.version_id;
        let client = &issued.client_id;
        let token_replaced = match (
            Client::parse(&stored.value)
                .ok()
                .and_then(|c| c.registration_access_token),
            &issued.registration_access_token,
        ) {
            (Some(old), Some(new)) => old.expose_secret() != new.expose_secret(),
            _ => false,
        };
        if token_replaced {
            format!(
                "The authorization server has retired client {client}'s old secret, so AWSCURRENT's secret is refused, and it also replaced the registration access token: the only token that manages the client now is the new one, kept with the new secret in this function's memory for version {token}, not in Secrets Manager; the one in AWSCURRENT (version {version}) no longer works. Fix the cause above, then retry the rotation with the same version ({retry}) while this function's process is warm: it stores the kept value without asking the server again. If the process has restarted, have the server's administrator issue a new registration access token and secret for client {client}, store them in a new AWSCURRENT value (aws secretsmanager put-secret-value --secret-id {arn} --secret-string file://client.json), then rotate again"
            )
        } else {
            format!(
                "The authorization server has retired client {client}'s old secret, so AWSCURRENT's secret is refused until a new one is stored. The registration access token in field registration_access_token of AWSCURRENT (version {version}) still manages the client. Fix the cause above, then retry the rotation with the same version ({retry}): while this function's process is warm it stores the value it keeps; a restarted one asks the server for another secret with that token"
            )
        }
    }
}
