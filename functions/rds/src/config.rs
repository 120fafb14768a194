//! The deployment's settings, read once per process from the environment:
//! the default strategy, the deployer's master secret, the password policy of
//! each engine and MySQL's user name limit.

use rotor_core::password::{PasswordPolicy, PolicyError};

use crate::secret::Engine;
use crate::strategy::{Strategy, UnknownStrategy};

/// The environment variable choosing the strategy.
pub const STRATEGY_VAR: &str = "ROTATION_STRATEGY";
/// The longest MySQL user name (AWS's MySQL functions default to 16).
pub const USERNAME_LIMIT_VAR: &str = "USERNAME_CHARACTER_LIMIT";

/// A variable the settings cannot be read from; the message names it and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `ROTATION_STRATEGY` names no strategy.
    #[error("{STRATEGY_VAR}={0}")]
    Strategy(UnknownStrategy),
    /// `USERNAME_CHARACTER_LIMIT` is not a number from 1 to 80.
    #[error("{USERNAME_LIMIT_VAR}={0:?} must be a whole number from 1 to 80")]
    UsernameLimit(String),
    /// A password policy variable is wrong.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// The deployment's settings, read once per process.
#[derive(Clone, Debug)]
pub struct Config {
    strategy: Strategy,
    master_secret: Option<String>,
    mysql_username_limit: usize,
    mysql_policy: PasswordPolicy,
    postgres_policy: PasswordPolicy,
    pub(crate) test_attempts: u32,
}

impl Config {
    /// Reads the settings from any lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let strategy = match lookup(STRATEGY_VAR) {
            None => Strategy::Single,
            Some(text) => Strategy::parse(&text).map_err(ConfigError::Strategy)?,
        };
        let policy = |engine: Engine| {
            let defaults = PasswordPolicy {
                exclude_characters: engine.default_excluded_characters().to_owned(),
                ..PasswordPolicy::default()
            };
            PasswordPolicy::from_lookup(defaults, &lookup)
        };
        let mysql_username_limit = match lookup(USERNAME_LIMIT_VAR) {
            None => 16,
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=80).contains(n))
                .ok_or(ConfigError::UsernameLimit(text))?,
        };
        Ok(Config {
            strategy,
            master_secret: lookup(rotor_core::admin::ADMIN_VAR).filter(|v| !v.trim().is_empty()),
            mysql_username_limit,
            mysql_policy: policy(Engine::MySql)?,
            postgres_policy: policy(Engine::Postgres)?,
            test_attempts: 5,
        })
    }

    /// The strategy (`rotor doctor` reports it).
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The deployment's master secret, for secrets without a `masterarn`.
    pub fn master_secret(&self) -> Option<&str> {
        self.master_secret.as_deref()
    }

    /// The longest user name `engine` accepts.
    pub(crate) fn username_limit(&self, engine: Engine) -> usize {
        match engine {
            Engine::MySql => self.mysql_username_limit,
            Engine::MariaDb => 80,
            Engine::Postgres => 63,
        }
    }

    /// The policy for new passwords on `engine`.
    pub(crate) fn policy(&self, engine: Engine) -> &PasswordPolicy {
        match engine {
            Engine::Postgres => &self.postgres_policy,
            _ => &self.mysql_policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn errors_name_the_variable_and_the_fix() {
        let strategy = read(&[(STRATEGY_VAR, "both")]).unwrap_err().to_string();
        assert_eq!(
            strategy,
            "ROTATION_STRATEGY=\"both\" is not a strategy; use single or alternating"
        );
        let limit = read(&[(USERNAME_LIMIT_VAR, "0")]).unwrap_err().to_string();
        assert_eq!(
            limit,
            "USERNAME_CHARACTER_LIMIT=\"0\" must be a whole number from 1 to 80"
        );
        let policy = read(&[("PASSWORD_LENGTH", "x")]).unwrap_err().to_string();
        assert!(policy.starts_with("PASSWORD_LENGTH="), "{policy}");
        let config = read(&[(STRATEGY_VAR, "multi-user"), (USERNAME_LIMIT_VAR, "32")]).unwrap();
        assert_eq!(config.strategy(), Strategy::Alternating);
        assert_eq!(config.username_limit(Engine::MySql), 32);
    }
}
