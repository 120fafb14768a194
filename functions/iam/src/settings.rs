//! The deployer's settings, and the check that a secret's user is one the
//! deployer lets the function change.
//!
//! Whoever writes a secret is not the deployer: the function changes the keys
//! of a user only if its ARN (as IAM reports it, path included) matches
//! `IAM_USER_ARNS`, the user is in the secret's own account, and, when that
//! list admits more than one user, the user's own `rotor:secret` tag names
//! the secret (as redis-rotation binds managed users, issue 18), so that one
//! team's writer cannot name another team's listed user.

use rotor_core::Error;
use rotor_core::arn::{AllowList, AllowListError, Arn};
use rotor_core::linked::names_secret;
use rotor_core::settings::{RevokePrevious, UnknownRevoke};
use rotor_core::store::SecretDescription;

/// The users the function may change: comma-separated IAM user ARNs,
/// wildcards allowed.
pub const USER_ARNS_VAR: &str = "IAM_USER_ARNS";
/// `true`: every writer of every secret this function rotates may rotate
/// every user `IAM_USER_ARNS` admits, so users need no `rotor:secret` tag.
pub const TRUST_ALL_WRITERS_VAR: &str = "IAM_USERS_TRUST_ALL_WRITERS";
/// What retiring the previous key means: `deactivate` (the default) or
/// `delete`.
pub const REVOKE_ACTION_VAR: &str = "REVOKE_PREVIOUS_ACTION";
/// The tag on an IAM user that names the secrets allowed to rotate its keys.
pub const SECRET_TAG: &str = "rotor:secret";

/// When the previous key stops working, by default: at the next rotation,
/// the overlap consumers need to pick up the new key.
pub const DEFAULT_REVOKE: RevokePrevious = RevokePrevious::NextRotation;

/// How the previous key is retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeAction {
    /// `UpdateAccessKey` to `Inactive`: reversible, and it still counts
    /// against the two keys a user may hold until the next rotation deletes it.
    Deactivate,
    /// `DeleteAccessKey`.
    Delete,
}

/// A variable the function cannot use; names it and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// An entry of `IAM_USER_ARNS` is not an ARN, or
    /// `IAM_USERS_TRUST_ALL_WRITERS` is neither `true` nor `false`.
    #[error(transparent)]
    List(#[from] AllowListError),
    /// An entry is an ARN, but not of an IAM user.
    #[error("{USER_ARNS_VAR}: {0} is not an IAM user's ARN (arn:aws:iam::ACCOUNT:user/PATH/NAME)")]
    NotAUser(String),
    /// `REVOKE_PREVIOUS`.
    #[error(transparent)]
    Revoke(#[from] UnknownRevoke),
    /// `REVOKE_PREVIOUS_ACTION`.
    #[error("{REVOKE_ACTION_VAR}={0:?}; use deactivate (the default) or delete")]
    Action(String),
}

/// The deployment's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `IAM_USER_ARNS` and `IAM_USERS_TRUST_ALL_WRITERS`.
    pub allowed: AllowList,
    /// `REVOKE_PREVIOUS`.
    pub revoke: RevokePrevious,
    /// `REVOKE_PREVIOUS_ACTION`.
    pub action: RevokeAction,
}

impl Settings {
    /// Reads the settings from any lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let allowed = AllowList::from_lookup(&lookup, USER_ARNS_VAR, TRUST_ALL_WRITERS_VAR)?;
        for pattern in &allowed.patterns {
            let p = pattern.parts();
            if p.service != "iam" || !p.region.is_empty() || !p.resource.starts_with("user/") {
                return Err(SettingsError::NotAUser(pattern.to_string()));
            }
        }
        let action = match lookup(REVOKE_ACTION_VAR).as_deref().map(str::trim) {
            None | Some("") | Some("deactivate") => RevokeAction::Deactivate,
            Some("delete") => RevokeAction::Delete,
            Some(other) => return Err(SettingsError::Action(other.to_owned())),
        };
        Ok(Settings {
            allowed,
            revoke: RevokePrevious::from_lookup(&lookup, DEFAULT_REVOKE)?,
            action,
        })
    }

    /// Whether the deployer lets the function change the keys of the user
    /// IAM reports as `user` (its ARN) with tag `tag` (the value of its
    /// [`SECRET_TAG`], if any), for `secret`'s `label` value.
    pub fn authorize(
        &self,
        secret: &SecretDescription,
        label: &str,
        user: &Arn,
        tag: Option<&str>,
    ) -> Result<(), Error> {
        let refuse = |setting: String, problem: String| Error::InvalidSettings {
            secret: secret.arn.clone(),
            setting,
            problem,
        };
        if !self.allowed.admits(user) {
            return Err(refuse(
                USER_ARNS_VAR.to_owned(),
                format!(
                    "the {label} value's UserName is {user}, which is not in the deployer's {USER_ARNS_VAR} ({}), so the function may not change its keys; nothing was changed. If this secret should rotate that user, add its ARN to {USER_ARNS_VAR} (template parameter iamUserArns, which also grants the role the key actions on it)",
                    self.allowed.describe()
                ),
            ));
        }
        let own: Option<Arn> = secret.arn.parse().ok();
        if let Some(own) = &own
            && (own.account != user.account || own.partition != user.partition)
        {
            return Err(Error::InvalidSecretValue {
                secret: secret.arn.clone(),
                label: label.to_owned(),
                problem: format!(
                    "field UserName names {user}, of account {} ({}), but the secret is in account {} ({}); the function changes the keys of users in the secret's own account only. Nothing was changed",
                    user.account, user.partition, own.account, own.partition
                ),
            });
        }
        if !self.allowed.owner_tag_required() || tag.is_some_and(|t| names(t, secret)) {
            return Ok(());
        }
        let found = match tag {
            None => format!("the user has no {SECRET_TAG} tag"),
            Some(t) if t.trim().is_empty() => format!("the user's {SECRET_TAG} tag is empty"),
            Some(t) => format!("the user's {SECRET_TAG} tag names {t}, not this secret"),
        };
        let name = user.resource.rsplit('/').next().unwrap_or_default();
        Err(refuse(
            format!("{SECRET_TAG} tag of {user}"),
            format!(
                "{USER_ARNS_VAR} ({}) admits more than one user, so whoever writes one of this function's secrets could name another team's; a user's keys are changed only for the secret its owner names, and {found}. Nothing was changed. If this secret should rotate the user's keys, its owner tags it: aws iam tag-user --user-name {name} --tags Key={SECRET_TAG},Value={}. Or the deployer lists only this user in {USER_ARNS_VAR}, or sets {TRUST_ALL_WRITERS_VAR}=true if every writer may rotate every listed user",
                self.allowed.describe(),
                secret.arn
            ),
        ))
    }
}

/// Whether the tag's value names `secret` (space-separated ARNs or names).
pub fn names(tag: &str, secret: &SecretDescription) -> bool {
    tag.split_whitespace().any(|id| names_secret(id, secret))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/ci-AbCdEf";
    const USER: &str = "arn:aws:iam::123456789012:user/ci/deploy";

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|v| map.get(v).cloned())
    }

    fn secret() -> SecretDescription {
        SecretDescription {
            arn: SECRET.into(),
            name: "team-a/ci".into(),
            ..SecretDescription::default()
        }
    }

    fn arn(text: &str) -> Arn {
        text.parse().unwrap()
    }

    #[test]
    fn only_listed_users_of_the_secrets_account() {
        let s = settings(&[(USER_ARNS_VAR, USER)]).unwrap();
        assert!(!s.allowed.owner_tag_required());
        assert!(
            s.authorize(&secret(), "AWSCURRENT", &arn(USER), None)
                .is_ok()
        );
        let e = s
            .authorize(
                &secret(),
                "AWSCURRENT",
                &arn("arn:aws:iam::123456789012:user/admin"),
                None,
            )
            .unwrap_err();
        assert_eq!(e.error_type(), "NotRetryable.InvalidSettings");
        assert!(e.to_string().contains("user/admin") && e.to_string().contains(USER_ARNS_VAR));
        let wide = settings(&[
            (USER_ARNS_VAR, "arn:aws:iam::*:user/ci/*"),
            (TRUST_ALL_WRITERS_VAR, "true"),
        ])
        .unwrap();
        let other = arn("arn:aws:iam::210987654321:user/ci/deploy");
        let e = wide
            .authorize(&secret(), "AWSCURRENT", &other, None)
            .unwrap_err();
        assert_eq!(e.error_type(), "NotRetryable.InvalidSecretValue");
        assert!(e.to_string().contains("210987654321"), "{e}");
        let empty = settings(&[]).unwrap();
        assert!(
            empty
                .authorize(&secret(), "AWSCURRENT", &arn(USER), None)
                .is_err()
        );
    }

    #[test]
    fn a_list_of_several_users_binds_each_to_the_secret_its_tag_names() {
        let s = settings(&[(USER_ARNS_VAR, "arn:aws:iam::123456789012:user/ci/*")]).unwrap();
        assert!(s.allowed.owner_tag_required());
        let user = arn(USER);
        assert!(
            s.authorize(&secret(), "AWSCURRENT", &user, Some(SECRET))
                .is_ok()
        );
        assert!(
            s.authorize(&secret(), "AWSCURRENT", &user, Some("x team-a/ci"))
                .is_ok()
        );
        for tag in [None, Some(""), Some("team-b/ci")] {
            let e = s
                .authorize(&secret(), "AWSCURRENT", &user, tag)
                .unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("aws iam tag-user --user-name deploy") && text.contains(SECRET_TAG),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_variables_are_named() {
        for (var, value) in [
            (USER_ARNS_VAR, "*"),
            (USER_ARNS_VAR, "arn:aws:iam::123456789012:role/x"),
            (USER_ARNS_VAR, "arn:aws:s3:::bucket"),
            (TRUST_ALL_WRITERS_VAR, "yes"),
            (REVOKE_ACTION_VAR, "disable"),
            ("REVOKE_PREVIOUS", "never"),
        ] {
            let e = settings(&[(var, value)]).unwrap_err().to_string();
            assert!(e.contains(var), "{e}");
        }
        let s = settings(&[
            ("REVOKE_PREVIOUS", "at-finish"),
            (REVOKE_ACTION_VAR, "delete"),
        ])
        .unwrap();
        assert_eq!(
            (s.revoke, s.action),
            (RevokePrevious::AtFinish, RevokeAction::Delete)
        );
    }
}
