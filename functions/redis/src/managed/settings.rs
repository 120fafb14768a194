//! The deployer's settings for managed users, and the check that a secret's
//! user is one the deployer lets the function change.

use std::time::Duration;

use rotor_core::Error;
use rotor_core::password::{PasswordPolicy, PolicyError};

use rotor_core::arn::{AllowList, AllowListError};

use super::arn::{Arn, ArnError};
use super::secret::ManagedSecret;

/// The users the function may change: comma-separated ARNs, wildcards allowed.
pub const MANAGED_USER_ARNS_VAR: &str = "MANAGED_USER_ARNS";
/// How long a step waits for a user to be `active` (AWS's function's name).
pub const MAX_WAIT_VAR: &str = "MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS";
/// How long between two `DescribeUsers` while waiting (AWS's function's name).
pub const WAIT_INTERVAL_VAR: &str = "WAITING_RETRY_INTERVAL_IN_SECONDS";
/// Optional: the only secret this function rotates (AWS's function's name).
pub const SECRET_ARN_VAR: &str = "SECRET_ARN";
/// Optional: the only user name it rotates (AWS's function's name).
pub const USER_NAME_VAR: &str = "USER_NAME";
/// `true`: every writer of every secret this function rotates may rotate
/// every user `MANAGED_USER_ARNS` admits, so users need no `rotor:secret` tag.
pub const TRUST_ALL_WRITERS_VAR: &str = "MANAGED_USERS_TRUST_ALL_WRITERS";

/// The lengths both services accept for a user's password.
pub const LENGTHS: std::ops::RangeInclusive<usize> = 16..=128;
/// AWS's function's default `EXCLUDE_CHARACTERS`, kept for managed users.
pub const DEFAULT_EXCLUDED: &str = "/@\"'\\";

/// A variable the function cannot use.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// An entry of `MANAGED_USER_ARNS` is not an ARN, or
    /// `MANAGED_USERS_TRUST_ALL_WRITERS` is neither `true` nor `false`.
    #[error(transparent)]
    List(#[from] AllowListError),
    /// `SECRET_ARN` is not an ARN.
    #[error("{var}: {source}; list full ARNs (wildcards allowed within a part), comma-separated")]
    Arn {
        /// The variable.
        var: &'static str,
        /// Why the entry is not an ARN.
        source: ArnError,
    },
    /// A number of seconds is not one.
    #[error("{var}={value:?} is not a whole number of seconds")]
    Seconds {
        /// The variable.
        var: &'static str,
        /// Its value (no secret).
        value: String,
    },
    /// The password policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// `PASSWORD_LENGTH` outside what the services accept.
    #[error(
        "PASSWORD_LENGTH={0} is outside the 16 to 128 characters ElastiCache and MemoryDB accept for a user's password"
    )]
    Length(usize),
}

/// The deployer's settings for managed users.
#[derive(Clone, Debug)]
pub struct ManagedSettings {
    /// `MANAGED_USER_ARNS` and `MANAGED_USERS_TRUST_ALL_WRITERS`.
    pub allowed: AllowList,
    /// `MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS` (600 unless given).
    pub max_wait: Duration,
    /// `WAITING_RETRY_INTERVAL_IN_SECONDS` (10 unless given, at least 1).
    pub interval: Duration,
    /// `SECRET_ARN`.
    pub secret_arn: Option<Arn>,
    /// `USER_NAME`.
    pub user_name: Option<String>,
    /// The password policy, with AWS's function's excluded characters unless
    /// `EXCLUDE_CHARACTERS` is set; a length of 32 unless given.
    pub policy: PasswordPolicy,
}

fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
) -> Result<u64, SettingsError> {
    match lookup(var).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| SettingsError::Seconds {
            var,
            value: v.to_owned(),
        }),
    }
}

impl ManagedSettings {
    /// Reads the settings from any lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let allowed =
            AllowList::from_lookup(&lookup, MANAGED_USER_ARNS_VAR, TRUST_ALL_WRITERS_VAR)?;
        let secret_arn = match lookup(SECRET_ARN_VAR).as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(a.parse().map_err(|source| SettingsError::Arn {
                var: SECRET_ARN_VAR,
                source,
            })?),
        };
        let defaults = PasswordPolicy {
            exclude_characters: DEFAULT_EXCLUDED.into(),
            ..PasswordPolicy::default()
        };
        let policy = PasswordPolicy::from_lookup(defaults, &lookup)?;
        if !LENGTHS.contains(&policy.length) {
            return Err(SettingsError::Length(policy.length));
        }
        Ok(ManagedSettings {
            allowed,
            max_wait: Duration::from_secs(seconds(&lookup, MAX_WAIT_VAR, 600)?),
            interval: Duration::from_secs(seconds(&lookup, WAIT_INTERVAL_VAR, 10)?.max(1)),
            secret_arn,
            user_name: lookup(USER_NAME_VAR).filter(|u| !u.trim().is_empty()),
            policy,
        })
    }

    /// Whether the deployer lets the function change `s`'s user for secret
    /// `secret`: `SECRET_ARN` and `USER_NAME` when set, `MANAGED_USER_ARNS`
    /// always, and the user in the secret's own account and partition.
    pub fn authorize(&self, secret: &str, label: &str, s: &ManagedSecret) -> Result<(), Error> {
        let refuse = |setting: &str, problem: String| Error::InvalidSettings {
            secret: secret.to_owned(),
            setting: setting.to_owned(),
            problem,
        };
        let secret_arn: Option<Arn> = secret.parse().ok();
        if let Some(only) = &self.secret_arn
            && secret_arn.as_ref() != Some(only)
        {
            return Err(refuse(
                SECRET_ARN_VAR,
                format!(
                    "this function rotates only secret {only}; nothing was changed. Rotate this secret with another function, or change {SECRET_ARN_VAR}"
                ),
            ));
        }
        if let Some(only) = &self.user_name
            && only != &s.username
        {
            return Err(refuse(
                USER_NAME_VAR,
                format!(
                    "this function rotates only user name {only:?}, and the {label} value names {:?}; nothing was changed",
                    s.username
                ),
            ));
        }
        if !self.allowed.admits(&s.user_arn) {
            return Err(refuse(
                MANAGED_USER_ARNS_VAR,
                format!(
                    "the {label} value's user_arn {} is not in the deployer's {MANAGED_USER_ARNS_VAR} ({}), so the function may not change its password; nothing was changed. If this secret should rotate that user, add the ARN to {MANAGED_USER_ARNS_VAR} (template parameter redisManagedUserArns, which also grants the role ModifyUser/UpdateUser on it)",
                    s.user_arn,
                    self.allowed.describe()
                ),
            ));
        }
        if let Some(own) = &secret_arn
            && (own.account != s.user_arn.account || own.partition != s.user_arn.partition)
        {
            return Err(Error::InvalidSecretValue {
                secret: secret.to_owned(),
                label: label.to_owned(),
                problem: format!(
                    "field user_arn names a user of account {} ({}), but the secret is in account {} ({}); the function changes users of its own account only. Nothing was changed",
                    s.user_arn.account, s.user_arn.partition, own.account, own.partition
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rotor_core::SecretString;
    use rotor_core::value::SecretValue;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<ManagedSettings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ManagedSettings::from_lookup(|v| map.get(v).cloned())
    }

    fn user(arn: &str) -> ManagedSecret {
        ManagedSecret::parse(&SecretString::from(format!(
            r#"{{"user_arn":"{arn}","username":"app","password":"pw"}}"#
        )))
        .unwrap()
    }

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf";
    const USER: &str = "arn:aws:memorydb:us-east-1:123456789012:user/app";

    #[test]
    fn only_listed_users_of_the_secrets_account() {
        let s = settings(&[(
            MANAGED_USER_ARNS_VAR,
            &format!(" {USER} , arn:aws:elasticache:us-east-1:123456789012:user:orders-*"),
        )])
        .unwrap();
        assert!(s.authorize(SECRET, "AWSCURRENT", &user(USER)).is_ok());
        assert!(
            s.authorize(
                SECRET,
                "AWSCURRENT",
                &user("arn:aws:elasticache:us-east-1:123456789012:user:orders-1")
            )
            .is_ok()
        );
        let refused = s
            .authorize(
                SECRET,
                "AWSCURRENT",
                &user("arn:aws:memorydb:us-east-1:123456789012:user/admin"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("user/admin") && refused.contains(MANAGED_USER_ARNS_VAR),
            "{refused}"
        );
        let empty = settings(&[]).unwrap();
        assert!(empty.authorize(SECRET, "AWSCURRENT", &user(USER)).is_err());
        let other = "arn:aws:memorydb:us-east-1:210987654321:user/app";
        let wide =
            settings(&[(MANAGED_USER_ARNS_VAR, "arn:aws:memorydb:us-east-1:*:user/*")]).unwrap();
        let e = wide
            .authorize(SECRET, "AWSCURRENT", &user(other))
            .unwrap_err();
        assert!(e.to_string().contains("210987654321"), "{e}");
    }

    #[test]
    fn aws_functions_restrictions_apply_when_set() {
        let s = settings(&[
            (MANAGED_USER_ARNS_VAR, USER),
            (SECRET_ARN_VAR, SECRET),
            (USER_NAME_VAR, "app"),
        ])
        .unwrap();
        assert!(s.authorize(SECRET, "AWSCURRENT", &user(USER)).is_ok());
        let e = s
            .authorize(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf",
                "AWSCURRENT",
                &user(USER),
            )
            .unwrap_err();
        assert!(e.to_string().contains(SECRET_ARN_VAR));
        let s = settings(&[(MANAGED_USER_ARNS_VAR, USER), (USER_NAME_VAR, "other")]).unwrap();
        assert!(
            s.authorize(SECRET, "AWSCURRENT", &user(USER))
                .unwrap_err()
                .to_string()
                .contains(USER_NAME_VAR)
        );
    }

    #[test]
    fn the_owner_tag_is_required_unless_one_exact_user_or_trust() {
        let required = |vars: &[(&str, &str)]| settings(vars).unwrap().allowed.owner_tag_required();
        assert!(!required(&[(MANAGED_USER_ARNS_VAR, USER)]));
        assert!(required(&[(
            MANAGED_USER_ARNS_VAR,
            "arn:aws:memorydb:us-east-1:123456789012:user/app-*"
        )]));
        assert!(required(&[(
            MANAGED_USER_ARNS_VAR,
            &format!("{USER},arn:aws:memorydb:us-east-1:123456789012:user/other")
        )]));
        assert!(
            required(&[]),
            "an empty list admits nobody, and binds nobody"
        );
        assert!(!required(&[
            (
                MANAGED_USER_ARNS_VAR,
                "arn:aws:memorydb:us-east-1:123456789012:user/*"
            ),
            (TRUST_ALL_WRITERS_VAR, "true"),
        ]));
        assert!(required(&[
            (
                MANAGED_USER_ARNS_VAR,
                "arn:aws:memorydb:us-east-1:123456789012:user/*"
            ),
            (TRUST_ALL_WRITERS_VAR, " false "),
        ]));
        let e = settings(&[(TRUST_ALL_WRITERS_VAR, "yes")]).unwrap_err();
        assert!(e.to_string().contains(TRUST_ALL_WRITERS_VAR), "{e}");
    }

    #[test]
    fn bad_variables_are_named() {
        let e = settings(&[(MANAGED_USER_ARNS_VAR, "*")])
            .unwrap_err()
            .to_string();
        assert!(e.contains(MANAGED_USER_ARNS_VAR), "{e}");
        let e = settings(&[(MAX_WAIT_VAR, "ten")]).unwrap_err().to_string();
        assert!(e.contains(MAX_WAIT_VAR), "{e}");
        let e = settings(&[("PASSWORD_LENGTH", "8")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("PASSWORD_LENGTH"), "{e}");
        let s = settings(&[(MAX_WAIT_VAR, "0"), (WAIT_INTERVAL_VAR, "0")]).unwrap();
        assert_eq!((s.max_wait.as_secs(), s.interval.as_secs()), (0, 1));
        assert_eq!(s.policy.exclude_characters, DEFAULT_EXCLUDED);
    }
}
