//! Secrets that a secret points at: a database master secret, an identity
//! provider's management secret, a webhook's signing key.
//!
//! Whoever can write a secret's value or tags is not the deployer. If a field of
//! one secret could make the function read any other secret and use its
//! credential, an application team could borrow a master password or an admin
//! token that was never meant for it. So a pointed-at secret is read only when
//! one of two parties with authority over it agrees:
//! * the pointed-at secret itself, through its tag [`SERVES_TAG`], which lists the
//!   secrets it serves (ARNs, exact names, or name prefixes ending in `/`); tags
//!   of that secret are written by its owner, not by the owner of the pointing one;
//! * the deployer, through a variable of the function's environment that names
//!   the secret for every secret the function rotates (`MASTER_SECRET_ARN`, say).
//!
//! This module never reads a value before that check has passed, and never
//! puts a value in an error.

use std::collections::BTreeMap;

use secrecy::SecretString;

use crate::error::Error;
use crate::labels::AWSCURRENT;
use crate::store::{SecretDescription, SecretStore, StoreError, VersionSelector};

/// The tag on a pointed-at secret that lists the secrets it agrees to serve,
/// space-separated: full ARNs, exact names, or name prefixes ending in `/`
/// (`team-a/` serves `team-a/orders` and `team-a/billing/db`). Tag values cannot
/// hold `*`, hence the `/`.
pub const SERVES_TAG: &str = "rotor:serves";

/// One secret pointing at another.
#[derive(Clone, Copy, Debug)]
pub struct Link<'a> {
    /// The setting that names the pointed-at secret, for messages:
    /// `masterarn`, `management_secret_arn`, `rotor:webhook-key-secret`.
    pub setting: &'a str,
    /// The pointed-at secret, as the setting names it (an ARN or a name).
    pub target: &'a str,
    /// The deployer's variable that may allow secrets for every secret the
    /// function rotates, with the ids it names (empty when it is unset).
    pub deployer: Deployer<'a>,
}

/// Secrets the deployment's environment allows any rotated secret to use.
#[derive(Clone, Copy, Debug)]
pub struct Deployer<'a> {
    /// The environment variable, for messages.
    pub variable: &'a str,
    /// The secret ids it names (ARNs, partial ARNs or names).
    pub secrets: &'a [String],
}

/// A pointed-at secret that agreed to serve, with its AWSCURRENT value.
pub struct LinkedSecret {
    /// Its full ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its AWSCURRENT value.
    pub value: SecretString,
}

/// Why a pointed-at secret may be used, once it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Consent {
    /// Its own `rotor:serves` tag lists the pointing secret.
    ServesTag,
    /// The deployer's variable names it.
    Deployer,
}

/// Whether `linked` agrees to serve `pointing`, or the deployer allows it.
/// Pure: the whole rule, for unit tests and `rotor doctor`.
///
/// ```
/// use std::collections::BTreeMap;
///
/// use rotor_core::linked::{Consent, Deployer, SERVES_TAG, consent};
/// use rotor_core::store::SecretDescription;
///
/// let secret = |name: &str, serves: Option<&str>| SecretDescription {
///     arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"),
///     name: name.into(),
///     tags: serves
///         .map(|s| BTreeMap::from([(SERVES_TAG.to_owned(), s.to_owned())]))
///         .unwrap_or_default(),
///     ..SecretDescription::default()
/// };
/// let nobody = Deployer { variable: "MASTER_SECRET_ARN", secrets: &[] };
/// let app = secret("team-a/orders", None);
///
/// // The master's owner lists the team's prefix: it serves the team's secrets.
/// let master = secret("db/master", Some("team-a/"));
/// assert_eq!(consent(&app, &master, &nobody), Some(Consent::ServesTag));
///
/// // A master that lists nobody serves nobody, unless the deployer names it.
/// let silent = secret("db/master", None);
/// assert_eq!(consent(&app, &silent, &nobody), None);
/// let allowed = ["db/master".to_owned()];
/// let deployer = Deployer { variable: "MASTER_SECRET_ARN", secrets: &allowed };
/// assert_eq!(consent(&app, &silent, &deployer), Some(Consent::Deployer));
/// ```
pub fn consent(
    pointing: &SecretDescription,
    linked: &SecretDescription,
    deployer: &Deployer<'_>,
) -> Option<Consent> {
    if deployer
        .secrets
        .iter()
        .any(|id| names_secret(id.trim(), linked))
    {
        return Some(Consent::Deployer);
    }
    let serves = linked.tags.get(SERVES_TAG)?;
    serves
        .split_whitespace()
        .any(|entry| serves_entry(entry, pointing))
        .then_some(Consent::ServesTag)
}

/// Whether `id` (a full ARN, an ARN without Secrets Manager's six-character
/// suffix, or a name) names the secret `secret`.
///
/// A full ARN (one that ends in `-` and six letters or digits) names that one
/// secret and nothing else: `...:secret:team-a/app-AbCdEf` does not name a
/// secret *called* `team-a/app-AbCdEf`, whose ARN is `...-AbCdEf-Zz9Yy8`. An
/// ARN without the suffix names any secret of that name in that account and
/// region, now or recreated later, as a name does; so an owner who names a
/// secret rather than one ARN trusts whoever can create a secret of that name
/// (and, for a prefix, any name under it).
pub fn names_secret(id: &str, secret: &SecretDescription) -> bool {
    if id.is_empty() {
        return false;
    }
    if !id.starts_with("arn:") {
        return id == secret.name;
    }
    if id == secret.arn {
        return true;
    }
    if has_random_suffix(id) {
        return false;
    }
    // A partial ARN: everything up to the `-XXXXXX` that Secrets Manager appends.
    secret
        .arn
        .strip_prefix(id)
        .is_some_and(|rest| rest.len() == 7 && has_random_suffix(rest))
}

/// Whether `text` ends in `-` and six ASCII letters or digits, as every full
/// secret ARN does.
pub(crate) fn has_random_suffix(text: &str) -> bool {
    text.len() >= 7
        && text.as_bytes()[text.len() - 7] == b'-'
        && text.as_bytes()[text.len() - 6..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
}

fn serves_entry(entry: &str, pointing: &SecretDescription) -> bool {
    if entry.ends_with('/') && !entry.starts_with("arn:") {
        return pointing.name.starts_with(entry);
    }
    names_secret(entry, pointing)
}

/// Reads the secret `link` points at, after checking that it agreed to serve the
/// secret being rotated (or that the deployer allows it). DescribeSecret first,
/// for its tags; GetSecretValue only once the check has passed.
pub async fn read<S: SecretStore>(
    store: &S,
    pointing: &SecretDescription,
    link: Link<'_>,
) -> Result<LinkedSecret, Error> {
    let target = link.target.trim();
    if target.is_empty() {
        return Err(Error::InvalidSettings {
            secret: pointing.arn.clone(),
            setting: link.setting.to_owned(),
            problem: "is empty; name a secret by its ARN or name".into(),
        });
    }
    let store_error = |operation: &'static str, source: StoreError| Error::Store {
        secret: target.to_owned(),
        operation,
        source,
    };
    let linked = match store.describe(target).await {
        Ok(found) => found,
        Err(StoreError::NotFound(_)) => {
            return Err(Error::InvalidSettings {
                secret: pointing.arn.clone(),
                setting: link.setting.to_owned(),
                problem: format!("names the secret {target}, which does not exist"),
            });
        }
        Err(source) => {
            return Err(store_error(
                "DescribeSecret (a secret this one points at)",
                source,
            ));
        }
    };
    if consent(pointing, &linked, &link.deployer).is_none() {
        return Err(Error::NotServed {
            secret: pointing.arn.clone(),
            setting: link.setting.to_owned(),
            linked: linked.arn.clone(),
            fix: format!(
                "Its owner adds to it the tag {SERVES_TAG} with this secret's name ({}), its ARN, or a name prefix ending in / (space-separated); or the deployer names it in the function's {}",
                pointing.name, link.deployer.variable
            ),
        });
    }
    let stored = store
        .get_value(&linked.arn, VersionSelector::Label(AWSCURRENT))
        .await
        .map_err(|source| store_error("GetSecretValue (a secret this one points at)", source))?
        .ok_or_else(|| Error::InvalidSettings {
            secret: pointing.arn.clone(),
            setting: link.setting.to_owned(),
            problem: format!(
                "names the secret {}, which has no AWSCURRENT value",
                linked.arn
            ),
        })?;
    Ok(LinkedSecret {
        arn: linked.arn,
        name: linked.name,
        tags: linked.tags,
        value: stored.value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, tags: &[(&str, &str)]) -> SecretDescription {
        SecretDescription {
            arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"),
            name: name.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..SecretDescription::default()
        }
    }

    const NOBODY: Deployer<'static> = Deployer {
        variable: "MASTER_SECRET_ARN",
        secrets: &[],
    };

    #[test]
    fn a_secret_that_does_not_agree_serves_nobody() {
        let app = secret("team-a/orders", &[]);
        let master = secret("db/master", &[]);
        assert_eq!(consent(&app, &master, &NOBODY), None);
        let other = secret("db/master", &[(SERVES_TAG, "team-b/ team-a/ordersx")]);
        assert_eq!(consent(&app, &other, &NOBODY), None);
    }

    #[test]
    fn the_serves_tag_lists_names_arns_and_prefixes() {
        let app = secret("team-a/orders", &[]);
        for serves in [
            "team-a/orders",
            "team-b/ team-a/",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/orders-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/orders",
        ] {
            let master = secret("db/master", &[(SERVES_TAG, serves)]);
            assert_eq!(
                consent(&app, &master, &NOBODY),
                Some(Consent::ServesTag),
                "{serves}"
            );
        }
        // A prefix is a name prefix, not an ARN prefix; and `team-a` alone is a name.
        for serves in [
            "team-a",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/",
        ] {
            let master = secret("db/master", &[(SERVES_TAG, serves)]);
            assert_eq!(consent(&app, &master, &NOBODY), None, "{serves}");
        }
    }

    #[test]
    fn a_full_arn_serves_only_itself() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/app-AbCdEf";
        let master = secret("db/master", &[(SERVES_TAG, arn)]);
        let owner = secret("team-a/app", &[]);
        assert_eq!(consent(&owner, &master, &NOBODY), Some(Consent::ServesTag));
        // A secret named like the full ARN's tail: its ARN has a suffix of its own.
        let look_alike = secret("team-a/app-AbCdEf", &[]);
        assert_eq!(look_alike.arn, format!("{arn}-AbCdEf"));
        assert_eq!(consent(&look_alike, &master, &NOBODY), None);
        // The same rule for the deployer's list.
        let allowed = [look_alike.arn.trim_end_matches("-AbCdEf").to_owned()];
        let deployer = Deployer {
            variable: "MASTER_SECRET_ARN",
            secrets: &allowed,
        };
        assert_eq!(consent(&owner, &look_alike, &deployer), None);
        let original = secret("team-a/app", &[]);
        assert_eq!(
            consent(&owner, &original, &deployer),
            Some(Consent::Deployer)
        );
    }

    #[test]
    fn the_deployer_may_allow_a_secret_for_every_secret() {
        let app = secret("team-a/orders", &[]);
        let master = secret("db/master", &[]);
        for id in [
            "db/master",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/master-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/master",
        ] {
            let allowed = [id.to_owned()];
            let deployer = Deployer {
                variable: "MASTER_SECRET_ARN",
                secrets: &allowed,
            };
            assert_eq!(
                consent(&app, &master, &deployer),
                Some(Consent::Deployer),
                "{id}"
            );
        }
        let near = ["arn:aws:secretsmanager:us-east-1:123456789012:secret:db/mas".to_owned()];
        let deployer = Deployer {
            variable: "MASTER_SECRET_ARN",
            secrets: &near,
        };
        assert_eq!(consent(&app, &master, &deployer), None);
    }

    #[tokio::test]
    async fn read_checks_consent_before_it_reads_a_value() {
        use crate::store::RotationService;
        use crate::store::memory::MemoryStore;
        use secrecy::ExposeSecret;

        let store = MemoryStore::new();
        let master_value = SecretString::from("{\"username\":\"admin\",\"password\":\"m\"}");
        let app_arn = store
            .create_secret("team-a/orders", &SecretString::from("{}"), &[])
            .await
            .unwrap();
        store
            .create_secret("db/master", &master_value, &[(SERVES_TAG, "team-b/")])
            .await
            .unwrap();
        let app = store.describe(&app_arn).await.unwrap();
        let link = Link {
            setting: "masterarn",
            target: "db/master",
            deployer: NOBODY,
        };

        let refused = read(&store, &app, link).await.err().unwrap();
        assert_eq!(refused.error_type(), "NotRetryable.NotServed");
        let text = refused.to_string();
        assert!(
            text.contains("masterarn")
                && text.contains("team-a/orders")
                && text.contains(SERVES_TAG),
            "{text}"
        );
        assert_eq!(store.reads(), 0, "no value is read before consent");

        let allowed = ["db/master".to_owned()];
        let deployer = Deployer {
            variable: "MASTER_SECRET_ARN",
            secrets: &allowed,
        };
        let read_back = read(&store, &app, Link { deployer, ..link }).await.unwrap();
        assert_eq!(read_back.name, "db/master");
        assert_eq!(
            read_back.value.expose_secret(),
            master_value.expose_secret()
        );

        let missing = Link {
            target: "db/none",
            ..link
        };
        let error = read(&store, &app, missing).await.err().unwrap();
        assert_eq!(error.error_type(), "NotRetryable.InvalidSettings");
    }
}
