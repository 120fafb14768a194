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

use rotor_core::settings::EnvSettings;
use rotor_core::{Error, Rotator, SecretStore, SecretString, StepContext};

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

use secret::{DbSecret, base_username};
use session::{failed, same_password_everywhere};
use strategy::alternating;

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
        let config = self.config(ctx.secret_arn())?;
        let current: DbSecret = ctx.current_as().await?;
        let username = Strategy::of(ctx, config)?.pending_user(ctx, config, &current)?;
        let password = ctx.generate_password(config.policy(current.engine))?;
        Ok(current.with_credentials(&username, &password))
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let config = self.config(ctx.secret_arn())?;
        let pending: DbSecret = ctx.pending_as().await?;
        let current: DbSecret = ctx.current_as().await?;
        let strategy = Strategy::of(ctx, config)?;
        strategy.set_secret(ctx, config, &current, &pending).await
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let config = self.config(ctx.secret_arn())?;
        let pending: DbSecret = ctx.pending_as().await?;
        // The clone of an alternating pair must also act with exactly the
        // original's privileges; the original is the reference itself.
        let original: Option<DbSecret> = match Strategy::of(ctx, config)? {
            Strategy::Alternating if base_username(&pending.username) != pending.username => {
                Some(ctx.current_as().await?)
            }
            _ => None,
        };
        let arn = ctx.secret_arn();
        let mut session = session::pending_login(arn, &pending, config.test_attempts).await?;
        let mut result = session
            .ping()
            .await
            .map_err(|detail| failed(&pending, "the test query", detail));
        if let (Ok(()), Some(original)) = (&result, &original) {
            result = alternating::same_access(&mut session, &pending, original).await;
        }
        if result.is_ok() {
            result = same_password_everywhere(&mut session, &pending).await;
        }
        session.close().await;
        result
    }
}
