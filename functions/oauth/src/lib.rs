//! `oauth-rotation`: rotates the client secret of a confidential OAuth 2.0
//! client at its authorization server.
//!
//! Where rotor may choose the secret (Keycloak, Okta, Auth0), it is generated
//! here and stored as AWSPENDING before the provider is changed. Where only the
//! provider can make one (RFC 7592, Entra ID), createSecret asks for it and the
//! driver stores it at once. testSecret proves the pending secret gets a token
//! with a `client_credentials` grant; finishSecret promotes it and, where the
//! provider keeps several secrets, retires the old one.

use std::time::Duration;

use base64::Engine;
use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::settings::EnvSettings;
use rotor_core::store::VersionSelector;
use rotor_core::{Error, Rotator, SecretStore, SecretString, StepContext};
use tracing::warn;

pub mod client;
pub mod providers;
pub mod token;

use client::{Client, Provider};
use token::{Grant, GrantError, client_credentials};

/// `at-finish` (default): retire the old secret once the new one is current;
/// `next-rotation`: keep it working until the next rotation.
pub const REVOKE_VAR: &str = "REVOKE_PREVIOUS";

/// The deployer's comma-separated management secrets (ARNs or names) that any
/// client secret this function rotates may name in `management_secret_arn`.
/// Any other management secret must list the client's secret in its own
/// `rotor:serves` tag.
pub const MANAGEMENT_SECRETS_VAR: &str = "MANAGEMENT_SECRET_ARNS";

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
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let keep_previous = match lookup(REVOKE_VAR).as_deref().map(str::trim) {
            None | Some("") | Some("at-finish") => false,
            Some("next-rotation") => true,
            Some(other) => {
                return Err(format!(
                    "{REVOKE_VAR}={other:?}; use at-finish or next-rotation"
                ));
            }
        };
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
}

impl OAuthRotator {
    /// Reads the environment once.
    pub fn from_env() -> Self {
        OAuthRotator {
            config: EnvSettings::new(Config::from_lookup(|v| std::env::var(v).ok())),
        }
    }

    /// With settings given by the caller.
    pub fn new(config: Config) -> Self {
        OAuthRotator {
            config: EnvSettings::new(Ok(config)),
        }
    }

    fn config(&self, secret: &str) -> Result<&Config, Error> {
        self.config.get(secret)
    }
}

fn parse(secret: &str, label: &str, value: &SecretString) -> Result<Client, Error> {
    Client::parse(value).map_err(|problem| Error::InvalidSecretValue {
        secret: secret.to_owned(),
        label: label.to_owned(),
        problem,
    })
}

/// 32 random bytes from the OS CSPRNG, base64url: what rotor chooses where
/// the provider lets it.
fn new_client_secret(secret: &str) -> Result<SecretString, Error> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Error::PasswordPolicy {
            secret: secret.to_owned(),
            source: rotor_core::password::PolicyError::RandomSource {
                reason: e.to_string(),
            },
        })?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    bytes.fill(0);
    Ok(SecretString::from(text))
}

impl Rotator for OAuthRotator {
    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let current = parse(arn, AWSCURRENT, &ctx.current().await?.value)?;
        match current.provider {
            Provider::Rfc7592 => {
                let issued = providers::rfc7592_issue(&current).await?;
                Ok(current.with_secret(
                    &issued.secret,
                    &issued.fields,
                    issued.registration_access_token.as_ref(),
                ))
            }
            Provider::Entra => {
                let auth = providers::management(ctx, &current, &config.management_secrets).await?;
                let issued = providers::entra_issue(&current, &auth, &ctx.event.token).await?;
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

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let current = parse(arn, AWSCURRENT, &ctx.current().await?.value)?;
        if matches!(current.provider, Provider::Rfc7592 | Provider::Entra) {
            return Ok(()); // createSecret already made the provider hold it
        }
        let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
        if pending.client_id != current.client_id || pending.provider != current.provider {
            return Err(Error::InvalidSecretValue {
                secret: arn.to_owned(),
                label: ctx.pending_label.to_owned(),
                problem: "names another client or provider than AWSCURRENT; rotation changes secrets, not clients".into(),
            });
        }
        let auth = providers::management(ctx, &current, &config.management_secrets).await?;
        providers::install(&current, &pending, &auth).await
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
        let mut delay = config.first_delay;
        let mut attempt = 1;
        loop {
            match client_credentials(&grant).await {
                Ok(_token) => return Ok(()),
                // Providers can take seconds to accept a new secret everywhere.
                Err(GrantError::Refused(_) | GrantError::Unavailable(_))
                    if attempt < config.test_attempts =>
                {
                    warn!(secret = %arn, attempt, "the pending client secret did not get a token yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(8));
                    attempt += 1;
                }
                Err(error) => {
                    return Err(Error::Target {
                        target: format!(
                            "token endpoint {}",
                            rotor_core::http::display_url(&pending.token_endpoint)
                        ),
                        problem: format!(
                            "the pending client secret of {} got no token after {attempt} attempts: {}",
                            pending.client_id,
                            error.text()
                        ),
                        retryable: matches!(error, GrantError::Unavailable(_)),
                    });
                }
            }
        }
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
        providers::retire(&current, previous.as_ref(), &auth, config.keep_previous).await
    }
}
