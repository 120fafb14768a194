//! Which secret may rotate a managed user. `MANAGED_USER_ARNS` says which
//! users the function may change, for every secret it rotates; whoever writes
//! one of those secrets could name any of them, another team's included. So
//! when the list admits more than one user, a user is changed only for the
//! secret its own tag [`SECRET_TAG`] names. Tags of an ElastiCache or
//! MemoryDB user are written with the service's tagging API by whoever owns
//! the user, not by a secret's writer.
//!
//! Ids compare as `rotor_core::linked::names_secret` compares them: a full
//! ARN names that one secret, an ARN without Secrets Manager's six-character
//! suffix or a bare name names any secret of that name (now or recreated).

use rotor_core::Error;
use rotor_core::linked::names_secret;
use rotor_core::store::SecretDescription;

use super::arn::{Arn, CacheUser};
use super::settings::{MANAGED_USER_ARNS_VAR, ManagedSettings, TRUST_ALL_WRITERS_VAR};

/// The tag on an ElastiCache or MemoryDB user that names the secrets allowed
/// to rotate it: space-separated secret ARNs (best: full ARNs) or names.
pub const SECRET_TAG: &str = "rotor:secret";

/// Whether the tag's value names `secret`.
pub fn names(tag: &str, secret: &SecretDescription) -> bool {
    tag.split_whitespace().any(|id| names_secret(id, secret))
}

/// Refuses `secret` for the user `arn` unless the user's [`SECRET_TAG`]
/// (`tag`: its value, `None` when the user has none) names it. Call only
/// where [`rotor_core::arn::AllowList::owner_tag_required`] says so.
pub fn require_bound(
    secret: &SecretDescription,
    arn: &Arn,
    user: &CacheUser,
    settings: &ManagedSettings,
    tag: Option<&str>,
) -> Result<(), Error> {
    if tag.is_some_and(|t| names(t, secret)) {
        return Ok(());
    }
    let found = match tag {
        None => format!("the user has no {SECRET_TAG} tag"),
        Some(t) if t.trim().is_empty() => format!("the user's {SECRET_TAG} tag is empty"),
        Some(t) => format!("the user's {SECRET_TAG} tag names {t}, not this secret"),
    };
    let tag_it = match user {
        CacheUser::ElastiCache(_) => format!(
            "aws elasticache add-tags-to-resource --resource-name {arn} --tags Key={SECRET_TAG},Value={}",
            secret.arn
        ),
        CacheUser::MemoryDb(_) => format!(
            "aws memorydb tag-resource --resource-arn {arn} --tags Key={SECRET_TAG},Value={}",
            secret.arn
        ),
    };
    Err(Error::InvalidSettings {
        secret: secret.arn.clone(),
        setting: format!("{SECRET_TAG} tag of {arn}"),
        problem: format!(
            "{MANAGED_USER_ARNS_VAR} ({}) admits more than one user, so whoever writes one of this function's secrets could name another team's; a user is changed only for the secret its owner names, and {found}. Nothing was changed. If this secret should rotate the user, its owner tags it: {tag_it}. Or the deployer lists only this user in {MANAGED_USER_ARNS_VAR}, or sets {TRUST_ALL_WRITERS_VAR}=true if every writer may rotate every listed user",
            settings.allowed.describe()
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::managed::arn::CacheUserArn;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-b/billing-AbCdEf";

    fn secret() -> SecretDescription {
        SecretDescription {
            arn: ARN.into(),
            name: "team-b/billing".into(),
            ..SecretDescription::default()
        }
    }

    fn wide() -> ManagedSettings {
        let vars = HashMap::from([(
            MANAGED_USER_ARNS_VAR,
            "arn:aws:elasticache:us-east-1:123456789012:user:*",
        )]);
        ManagedSettings::from_lookup(|v| vars.get(v).map(|s| s.to_string())).unwrap()
    }

    #[test]
    fn the_tag_names_full_arns_partial_arns_and_names() {
        let s = secret();
        for tag in [
            ARN,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-b/billing",
            "team-b/billing",
            "team-c/x  team-b/billing",
        ] {
            assert!(names(tag, &s), "{tag}");
        }
        for tag in [
            "",
            "team-b/",
            "team-b/billing-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-b/billing-ZzZzZz",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-b/",
        ] {
            assert!(!names(tag, &s), "{tag}");
        }
    }

    #[test]
    fn a_refusal_names_the_user_the_tag_and_the_fix() {
        let arn: Arn = "arn:aws:elasticache:us-east-1:123456789012:user:billing"
            .parse()
            .unwrap();
        let user = arn.cache_user().unwrap();
        let s = secret();
        assert!(require_bound(&s, &arn, &user, &wide(), Some(ARN)).is_ok());
        for tag in [None, Some(""), Some("team-a/orders")] {
            let e = require_bound(&s, &arn, &user, &wide(), tag).unwrap_err();
            assert_eq!(e.error_type(), "NotRetryable.InvalidSettings");
            let text = e.to_string();
            assert!(
                text.contains(&arn.to_string())
                    && text.contains(SECRET_TAG)
                    && text.contains(MANAGED_USER_ARNS_VAR)
                    && text.contains(TRUST_ALL_WRITERS_VAR)
                    && text.contains("add-tags-to-resource"),
                "{text}"
            );
        }
        let memorydb: Arn = "arn:aws:memorydb:us-east-1:123456789012:user/billing"
            .parse()
            .unwrap();
        let e = require_bound(
            &s,
            &memorydb,
            &memorydb.cache_user().unwrap(),
            &wide(),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("aws memorydb tag-resource"), "{e}");
    }
}
