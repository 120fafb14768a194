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
use rotor_core::retry::Backoff;
use rotor_core::settings::{EnvSettings, RevokePrevious, UnknownRevoke};
use rotor_core::{
    Cause, Error, IssuedValues, Rotator, SecretStore, SecretString, StepContext, TargetError,
    TargetKind,
};
use tracing::warn;

mod issued;
pub mod providers;
pub mod secret;
pub mod token;
mod wire;

use issued::RegistrationTokens;
use secret::{ClientSecret, Provider};
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
        let management_secrets = rotor_core::settings::list(&lookup, MANAGEMENT_SECRETS_VAR);
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

    fn config<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<&Config, Error> {
        self.config.get(ctx.secret_arn())
    }
}

/// 32 random bytes from the OS CSPRNG, base64url: what rotor chooses where
/// the provider lets it.
fn new_client_secret<S: SecretStore>(ctx: &StepContext<'_, S>) -> Result<SecretString, Error> {
    ctx.random_text(32, |bytes| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    })
}

impl Rotator for OAuthRotator {
    type Secret = ClientSecret;

    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let config = self.config(ctx)?;
        let current: ClientSecret = ctx.current_as().await?;
        let management = &config.management_secrets;
        match current.provider {
            Provider::Rfc7592 => self.rfc7592(ctx, &current).await,
            Provider::Entra => {
                let auth = providers::management(ctx, &current, management).await?;
                let (arn, version) = (ctx.secret_arn(), &ctx.event.version_id);
                let issued = providers::entra::issue(&current, &auth, arn, version).await?;
                Ok(current.with_secret(&issued.secret, &issued.fields, None))
            }
            Provider::Keycloak | Provider::Okta | Provider::Auth0 => {
                // A management secret that does not serve this client, or a base
                // URL it is not bound to, is refused before anything is staged.
                providers::bind(ctx, &current, management).await?;
                Ok(current.with_secret(&new_client_secret(ctx)?, &[], None))
            }
        }
    }

    fn issued_values(&self) -> Option<&impl IssuedValues> {
        Some(self)
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let config = self.config(ctx)?;
        let current: ClientSecret = ctx.current_as().await?;
        if matches!(current.provider, Provider::Rfc7592 | Provider::Entra) {
            return Ok(()); // createSecret already made the provider hold it
        }
        let pending: ClientSecret = ctx.pending_as().await?;
        let auth = providers::management(ctx, &current, &config.management_secrets).await?;
        providers::install(ctx, &current, &pending, &auth).await
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let config = self.config(ctx)?;
        let pending: ClientSecret = ctx.pending_as().await?;
        let grant = Grant::for_client(&pending);
        let retryable =
            |error: &TargetError| error.cause == Cause::Auth || error.cause.is_retryable();
        let on_retry = |attempt, _: &TargetError, _| {
            let secret = ctx.secret_arn();
            warn!(%secret, attempt, "the pending client secret got no token yet; retrying");
        };
        // Providers can take seconds to accept a new secret everywhere.
        let tried = Backoff::new(config.first_delay, Duration::from_secs(8))
            .attempts(config.test_attempts)
            .run(|_| client_credentials(&grant), retryable, on_retry)
            .await;
        let Err(gave_up) = tried else {
            return Ok(());
        };
        let (client, attempts) = (&pending.client_id, gave_up.attempts);
        let problem = format!(
            "the pending client secret of {client} got no token after {attempts} attempts: {}",
            gave_up.error.problem
        );
        let endpoint = rotor_core::http::display_url(&pending.token_endpoint);
        let target = format!("token endpoint {endpoint}");
        Err(Error::target(
            TargetKind::Provider,
            gave_up.error.cause,
            target,
            problem,
        ))
    }

    async fn after_finish<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let config = self.config(ctx)?;
        // The labels have moved: AWSCURRENT is the new value, AWSPREVIOUS the old one.
        let Some(current) = ctx.read_label_as::<ClientSecret>(AWSCURRENT).await? else {
            return Ok(());
        };
        if !matches!(current.provider, Provider::Okta | Provider::Entra) {
            return Ok(()); // the provider held one secret: the old one is gone
        }
        let stopped = "it retired no client secret (the new one is AWSCURRENT and works)";
        let previous = ctx
            .read_label_as::<ClientSecret>(AWSPREVIOUS)
            .await
            .map_err(|error| providers::previous_unreadable(error, stopped))?;
        let auth = providers::management(ctx, &current, &config.management_secrets).await?;
        let keep_previous = config.keep_previous;
        let arn = ctx.secret_arn();
        providers::retire(arn, &current, previous.as_ref(), &auth, keep_previous).await
    }
}
