//! `ldap-rotation`: rotates the password of a directory service account.
//!
//! Two kinds of secret ([`secret`]):
//! * a self-managed directory's account (Active Directory on Windows or
//!   Samba, OpenLDAP): the function speaks LDAP to the secret's servers
//!   ([`directory`], over [`client`], with AD's own rules in [`ad`]);
//! * an AWS Managed Microsoft AD account, in the shape AWS's Active
//!   Directory rotation function reads: the password changes through
//!   Directory Service's `ResetUserPassword` ([`managed`]).
//!
//! A directory keeps one password per account, so the old one stops working
//! at setSecret (AD may still accept it for an hour: its "old password
//! allowed period"); until finishSecret, AWSPENDING holds the working one.

use rotor_core::password::{PasswordPolicy, PolicyError};
use rotor_core::settings::EnvSettings;
use rotor_core::{Error, Rotator, SecretStore, SecretString, StepContext};

pub mod ad;
pub mod client;
pub mod directory;
pub mod managed;
pub mod secret;

use secret::AccountSecret;

/// The characters AWS's Active Directory function leaves out of passwords
/// by default (`EXCLUDE_CHARACTERS`), kept so that a migrated secret's
/// consumers see the same alphabet.
pub const DEFAULT_EXCLUDE_CHARACTERS: &str = "/@\"'\\";

/// The password policy before the environment's variables: 32 characters of
/// all four classes (AD's complexity asks for three), without
/// [`DEFAULT_EXCLUDE_CHARACTERS`].
pub fn default_policy() -> PasswordPolicy {
    PasswordPolicy {
        exclude_characters: DEFAULT_EXCLUDE_CHARACTERS.to_owned(),
        ..PasswordPolicy::default()
    }
}

/// A variable the function cannot use; names it and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The password policy variables.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// The deployment's settings.
#[derive(Clone, Debug)]
pub struct Config {
    master_secret: Option<String>,
    policy: PasswordPolicy,
}

impl Config {
    /// Reads the settings from any lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let policy = PasswordPolicy::from_lookup(default_policy(), &lookup)?;
        policy.validate()?;
        Ok(Config {
            master_secret: lookup(rotor_core::admin::ADMIN_VAR).filter(|v| !v.trim().is_empty()),
            policy,
        })
    }
}

/// Rotates directory service accounts' passwords.
pub struct LdapRotator {
    config: EnvSettings<Config>,
    clients: managed::Clients,
}

impl LdapRotator {
    /// Reads the environment once; a bad variable fails every step, naming it.
    /// The Directory Service client is made on first use.
    pub fn from_env() -> Self {
        LdapRotator {
            config: EnvSettings::new(Config::from_lookup(|v| std::env::var(v).ok())),
            clients: managed::Clients::default(),
        }
    }
}

impl Rotator for LdapRotator {
    type Secret = AccountSecret;

    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let config = self.config.get(ctx.secret_arn())?;
        let current = ctx.current_as::<AccountSecret>().await?;
        let password = ctx.generate_password(&config.policy)?;
        Ok(match current {
            AccountSecret::Directory(s) => s.next_value(&password),
            AccountSecret::Managed(m) => m.with_password(&password),
        })
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let config = self.config.get(ctx.secret_arn())?;
        match ctx.current_as::<AccountSecret>().await? {
            AccountSecret::Directory(_) => directory::set(ctx, config).await,
            AccountSecret::Managed(_) => managed::set(ctx, &self.clients).await,
        }
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        self.config.get(ctx.secret_arn())?;
        match ctx.pending_as::<AccountSecret>().await? {
            AccountSecret::Directory(_) => directory::test(ctx).await,
            AccountSecret::Managed(_) => managed::test(ctx, &self.clients).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_meets_ad_complexity_and_aws_exclusions() {
        let config = Config::from_lookup(|_| None).unwrap();
        for _ in 0..50 {
            let pw = config.policy.generate().unwrap();
            let pw = rotor_core::ExposeSecret::expose_secret(&pw);
            assert!(pw.chars().any(|c| c.is_ascii_uppercase()));
            assert!(pw.chars().any(|c| c.is_ascii_lowercase()));
            assert!(pw.chars().any(|c| c.is_ascii_digit()));
            assert!(pw.chars().any(|c| c.is_ascii_punctuation()));
            assert!(!pw.chars().any(|c| DEFAULT_EXCLUDE_CHARACTERS.contains(c)));
        }
        let custom =
            Config::from_lookup(|v| (v == "EXCLUDE_CHARACTERS").then(|| "x".into())).unwrap();
        assert_eq!(custom.policy.exclude_characters, "x");
        assert!(Config::from_lookup(|v| (v == "PASSWORD_LENGTH").then(|| "x".into())).is_err());
    }
}
