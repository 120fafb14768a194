//! How a secret's credentials change, and which way a given secret uses: its
//! `rotor:strategy` tag, else the deployment's `ROTATION_STRATEGY`.
//!
//! [`single`]: one user, whose password changes. [`alternating`]: two users,
//! `u` and `u_clone`, take turns, managed by the master secret.

use rotor_core::{Error, SecretStore, StepContext};

use crate::config::Config;

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
}
