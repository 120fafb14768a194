//! `redis-rotation`: rotates the password of a Redis ACL user with
//! no moment when a client's password is refused. Redis users hold several
//! passwords at once, so the old and the new one both work from setSecret on.
//!
//! Two kinds of secret:
//! * a self-managed server's user (`host`, `username`, `password`, …): the
//!   function speaks RESP to the server ([`self_managed`]);
//! * an Amazon ElastiCache RBAC user or an Amazon MemoryDB user (`user_arn`,
//!   as AWS's own rotation function reads it): the function calls the
//!   service's API, and only for users the deployer lists ([`managed`]).
//!
//! [`secret::UserSecret`] is either, parsed once per version by the core's
//! typed reads; every rule about admin secrets, TLS, retries and labels is
//! rotor-core's.

use rotor_core::labels::AWSCURRENT;
use rotor_core::password::{PasswordPolicy, PolicyError};
use rotor_core::settings::{EnvSettings, RevokePrevious, UnknownRevoke};
use rotor_core::{Error, Rotator, SecretStore, SecretString, StepContext};

pub mod acl;
pub mod managed;
pub mod resp;
pub mod secret;
pub mod self_managed;

use managed::{ManagedSettings, SettingsError};
use secret::UserSecret;

/// When the previous password stops working (`REVOKE_PREVIOUS`): by default
/// at the next rotation, so clients that still hold it keep logging in.
pub const DEFAULT_REVOKE: RevokePrevious = RevokePrevious::NextRotation;

/// A variable the function cannot use; names it and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `REVOKE_PREVIOUS` is neither word.
    #[error(transparent)]
    Revoke(#[from] UnknownRevoke),
    /// The password policy variables.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The managed users' variables.
    #[error(transparent)]
    Managed(#[from] SettingsError),
}

/// The deployment's settings.
#[derive(Clone, Debug)]
pub struct Config {
    master_secret: Option<String>,
    revoke_at_finish: bool,
    policy: PasswordPolicy,
    managed: ManagedSettings,
}

impl Config {
    /// Reads the settings from any lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let revoke_at_finish =
            RevokePrevious::from_lookup(&lookup, DEFAULT_REVOKE)? == RevokePrevious::AtFinish;
        Ok(Config {
            master_secret: lookup(rotor_core::admin::ADMIN_VAR),
            revoke_at_finish,
            policy: PasswordPolicy::from_lookup(PasswordPolicy::default(), &lookup)?,
            managed: ManagedSettings::from_lookup(&lookup)?,
        })
    }
}

/// Rotates Redis ACL users' passwords.
pub struct RedisRotator {
    config: EnvSettings<Config>,
    clients: managed::Clients,
}

impl RedisRotator {
    /// Reads the environment once; a bad variable fails every step, naming it.
    /// The ElastiCache and MemoryDB clients are made on first use.
    pub fn from_env() -> Self {
        RedisRotator {
            config: EnvSettings::new(Config::from_lookup(|v| std::env::var(v).ok())),
            clients: managed::Clients::default(),
        }
    }
}

impl Rotator for RedisRotator {
    type Secret = UserSecret;

    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let config = self.config.get(ctx.secret_arn())?;
        match ctx.current_as().await? {
            UserSecret::SelfManaged(current) => {
                Ok(current.with_password(&ctx.generate_password(&config.policy)?))
            }
            UserSecret::Managed(current) => {
                managed::create(ctx, config, &self.clients, current).await
            }
        }
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let config = self.config.get(ctx.secret_arn())?;
        match ctx.current_as().await? {
            UserSecret::SelfManaged(current) => self_managed::set(ctx, config, current).await,
            UserSecret::Managed(current) => managed::set(ctx, config, &self.clients, current).await,
        }
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let config = self.config.get(ctx.secret_arn())?;
        match ctx.pending_as().await? {
            UserSecret::SelfManaged(pending) => self_managed::test(pending).await,
            UserSecret::Managed(pending) => {
                managed::test(ctx, config, &self.clients, pending).await
            }
        }
    }

    async fn after_finish<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let config = self.config.get(ctx.secret_arn())?;
        // The labels have moved: AWSCURRENT, read afresh, is the new value.
        match ctx.read_label_as(AWSCURRENT).await? {
            None => Ok(()),
            Some(UserSecret::SelfManaged(current)) => {
                self_managed::finish(ctx, config, current).await
            }
            Some(UserSecret::Managed(current)) => {
                managed::finish(ctx, config, &self.clients, current).await
            }
        }
    }
}
