//! `rds-rotation`: rotates database credentials kept in the RDS secret format,
//! for MySQL, MariaDB and PostgreSQL (Aurora included), with AWS's two
//! strategies: a single user whose password changes, or two users that take
//! turns (`u` and `u_clone`) so the previous credentials keep working while the
//! new ones spread.
//!
//! One deployment replaces AWS's six SecretsManagerRDS* functions: the engine
//! comes from the secret, the strategy from the secret's `rotor:strategy` tag
//! or `ROTATION_STRATEGY`.
//!
//! This file holds the steps; where the rest lives:
//! - [`config`]: the deployment's settings (environment variables).
//! - [`secret`]: the RDS secret format.
//! - [`strategy`]: single user and alternating users, each's setSecret.
//! - [`master`]: which master secret a secret may use, where it logs in and
//!   whom it may act on;
//!   [`rds_api`]: the RDS API, for masters RDS keeps, reader hosts and proxies.
//! - [`session`]: a logged-in session with either engine, and its errors;
//!   [`connect`]: why a connection failed (the trusted certificates are
//!   `rotor_core::tls`'s).
//! - [`mysql`], [`postgres`]: each engine's statements.

use std::time::Duration;

use rotor_core::labels::AWSCURRENT;
use rotor_core::retry::Backoff;
use rotor_core::settings::EnvSettings;
use rotor_core::{Error, Rotator, SecretStore, SecretString, StepContext};
use tracing::warn;

pub mod config;
pub mod connect;
mod master;
pub mod mysql;
pub mod postgres;
pub mod rds_api;
pub mod secret;
mod session;
pub mod strategy;

pub use config::{Config, ConfigError, STRATEGY_VAR, USERNAME_LIMIT_VAR};
pub use strategy::{STRATEGY_TAG, Strategy};

use connect::Cause;
use secret::{DbSecret, base_username};
use session::{Session, failed, login_failed, same_password_everywhere, waiting};
use strategy::{alternating, single};

/// Rotates database credentials.
pub struct RdsRotator {
    config: EnvSettings<Config>,
}

impl RdsRotator {
    /// Reads the environment once; a bad variable fails every step with a
    /// message naming it rather than crashing the process.
    pub fn from_env() -> Self {
        RdsRotator {
            config: EnvSettings::new(Config::from_lookup(|var| std::env::var(var).ok())),
        }
    }

    /// With settings given by the caller.
    pub fn new(config: Config) -> Self {
        RdsRotator {
            config: EnvSettings::ready(config),
        }
    }

    fn config(&self, secret: &str) -> Result<&Config, Error> {
        self.config.get(secret)
    }
}

impl Rotator for RdsRotator {
    type Secret = DbSecret;

    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let current = DbSecret::parse_version(arn, AWSCURRENT, &ctx.current().await?.value)?;
        let username = match Strategy::of(ctx, config)? {
            Strategy::Single => current.username.clone(),
            Strategy::Alternating => alternating::next_username(arn, config, &current)?,
        };
        let password =
            config
                .policy(current.engine)
                .generate()
                .map_err(|source| Error::PasswordPolicy {
                    secret: arn.to_owned(),
                    source,
                })?;
        Ok(current.with_credentials(&username, &password))
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let pending = DbSecret::parse_version(arn, ctx.pending_label, &ctx.pending().await?.value)?;
        let current = DbSecret::parse_version(arn, AWSCURRENT, &ctx.current().await?.value)?;
        let strategy = Strategy::of(ctx, config)?;
        match strategy {
            Strategy::Single => single::set_secret(ctx, config, &current, &pending).await,
            Strategy::Alternating => alternating::set_secret(ctx, config, &current, &pending).await,
        }
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let arn = ctx.secret_arn();
        let config = self.config(arn)?;
        let attempts = config.test_attempts;
        let pending = DbSecret::parse_version(arn, ctx.pending_label, &ctx.pending().await?.value)?;
        // The clone of an alternating pair must also act with exactly the
        // original's privileges; the original is the reference itself.
        let original = match Strategy::of(ctx, config)? {
            Strategy::Alternating if base_username(&pending.username) != pending.username => Some(
                DbSecret::parse_version(arn, AWSCURRENT, &ctx.current().await?.value)?,
            ),
            _ => None,
        };
        // A new password can take a moment to reach every node (Aurora
        // readers, proxies): the login is retried briefly with backoff.
        let mut session = Backoff::new(Duration::from_millis(250), Duration::from_secs(4))
            .attempts(attempts)
            .run(
                |_| {
                    waiting(&pending, "testing the login of", &pending.username);
                    Session::open(&pending, &pending.username, &pending.password)
                },
                |e| {
                    matches!(
                        e.cause,
                        Cause::Credentials | Cause::Timeout | Cause::Refused | Cause::Busy
                    )
                },
                |attempt, e, _| {
                    warn!(secret = %arn, attempt, cause = ?e.cause, "the pending credentials did not log in yet; retrying");
                },
            )
            .await
            .map_err(|gave_up| login_failed(&pending, gave_up.error))?;
        let result = session.ping().await;
        let result = match (result, &original) {
            (Ok(()), Some(original)) => {
                alternating::same_access(&mut session, &pending, original).await
            }
            (result, _) => result.map_err(|detail| failed(&pending, "the test query", detail)),
        };
        let result = match result {
            Ok(()) => same_password_everywhere(&mut session, &pending).await,
            other => other,
        };
        session.close().await;
        result
    }
}
