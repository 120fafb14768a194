//! How a secret's credentials change, and which way a given secret uses: its
//! `rotor:strategy` tag, else the deployment's `ROTATION_STRATEGY`.
//!
//! [`single`]: one user, whose password changes. [`alternating`]: two users,
//! `u` and `u_clone`, take turns; the master secret changes them.

use rotor_core::labels::AWSCURRENT;
use rotor_core::{Error, SecretStore, StepContext};

use crate::config::Config;
use crate::master::{self, Master};
use crate::secret::{DbSecret, alternate_username};

pub(crate) mod alternating;
pub(crate) mod single;

/// The tag with which a secret chooses its strategy, over `ROTATION_STRATEGY`.
pub const STRATEGY_TAG: &str = "rotor:strategy";

/// How a secret's credentials change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// One user; its password changes.
    Single,
    /// Two users take turns; the master secret manages them.
    Alternating,
}

/// A strategy name that is none of those [`Strategy::parse`] knows.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0:?} is not a strategy; use single or alternating")]
pub struct UnknownStrategy(String);

impl Strategy {
    /// Parses a strategy as `ROTATION_STRATEGY` or the `rotor:strategy` tag
    /// names it; empty means single.
    pub fn parse(text: &str) -> Result<Strategy, UnknownStrategy> {
        match text.trim() {
            "" | "single" | "single-user" => Ok(Strategy::Single),
            "alternating" | "alternating-users" | "multi-user" | "multiuser" => {
                Ok(Strategy::Alternating)
            }
            _ => Err(UnknownStrategy(text.to_owned())),
        }
    }

    /// A secret's strategy: its `rotor:strategy` tag, else the deployment's.
    pub(crate) fn of<S: SecretStore>(
        ctx: &StepContext<'_, S>,
        config: &Config,
    ) -> Result<Strategy, Error> {
        match ctx.secret.tags.get(STRATEGY_TAG) {
            None => Ok(config.strategy()),
            Some(text) => Strategy::parse(text).map_err(|e| Error::InvalidSettings {
                secret: ctx.secret_arn().to_owned(),
                setting: STRATEGY_TAG.into(),
                problem: e.to_string(),
            }),
        }
    }

    /// The user a new pending value names: AWSCURRENT's (single user), or
    /// the other user of the pair within the engine's name limit
    /// (alternating users).
    pub(crate) fn pending_user<S: SecretStore>(
        self,
        ctx: &StepContext<'_, S>,
        config: &Config,
        current: &DbSecret,
    ) -> Result<String, Error> {
        let (user, engine) = (&current.username, current.engine);
        match self {
            Strategy::Single => Ok(user.clone()),
            Strategy::Alternating => {
                alternate_username(user, config.username_limit(engine), engine).map_err(|e| {
                    Error::InvalidSecretValue {
                        secret: ctx.secret_arn().to_owned(),
                        label: AWSCURRENT.into(),
                        problem: e.to_string(),
                    }
                })
            }
        }
    }

    /// setSecret: refuses a pending value that names another user than
    /// [`Strategy::pending_user`], then gives the database the pending
    /// credentials the strategy's way.
    pub(crate) async fn set_secret<S: SecretStore>(
        self,
        ctx: &StepContext<'_, S>,
        config: &Config,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        let expected = self.pending_user(ctx, config, current).ok();
        if expected.as_deref() != Some(pending.username.as_str()) {
            let (names, current) = (&pending.username, &current.username);
            let problem = match self {
                Strategy::Single => format!(
                    "names user {names:?}, but AWSCURRENT names {current:?}; {}",
                    "single-user rotation changes one user's password"
                ),
                Strategy::Alternating => format!(
                    "names user {names:?}, which is not the alternate of the current user {:?}",
                    current
                ),
            };
            return Err(Error::InvalidSecretValue {
                secret: ctx.secret_arn().to_owned(),
                label: ctx.pending_label.to_owned(),
                problem,
            });
        }
        let rotation = Rotation {
            ctx,
            config,
            current,
            pending,
        };
        match self {
            Strategy::Single => single::set_secret(&rotation).await,
            Strategy::Alternating => alternating::set_secret(&rotation).await,
        }
    }
}

/// What setSecret works with: the step, the deployment's settings, and the
/// current and pending values (the pending one names the strategy's user).
pub(crate) struct Rotation<'a, S> {
    pub(crate) ctx: &'a StepContext<'a, S>,
    pub(crate) config: &'a Config,
    pub(crate) current: &'a DbSecret,
    pub(crate) pending: &'a DbSecret,
}

impl<S: SecretStore> Rotation<'_, S> {
    /// The secret's ARN, for messages and logs.
    pub(crate) fn arn(&self) -> &str {
        self.ctx.secret_arn()
    }

    /// Whether a master secret is named (the secret's masterarn or the
    /// deployer's variable), before it is read.
    pub(crate) fn has_master(&self) -> bool {
        self.current.masterarn.is_some() || self.config.master_secret().is_some()
    }

    /// The master, logged in to this secret's database ([`master::open`]).
    pub(crate) async fn master(&self) -> Result<Master, Error> {
        master::open(self.ctx, self.config, self.current).await
    }
}
