//! What `rotor doctor` asks IAM about a secret's user, with the caller's own
//! credentials (read-only: ListAccessKeys, GetAccessKeyLastUsed): a key made
//! outside rotation, a current key older than the rotation period, a
//! previous key still in use after the switch, and a previous key the
//! function deactivated (IAM keeps that record: the key's status).

use std::time::{Duration, SystemTime};

use rotor_core::TargetError;

use crate::api;
use crate::secret::KeySecret;

/// One thing doctor reports about the user's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFinding {
    /// A key no version of the secret holds: made outside rotation. The next
    /// rotation refuses to run while it and AWSCURRENT's take both places.
    Foreign {
        /// Its id.
        id: String,
        /// Whether it is active.
        active: bool,
    },
    /// AWSCURRENT's key is older than the rotation period.
    Old {
        /// Its id.
        id: String,
        /// Its age in days.
        days: u64,
    },
    /// AWSPREVIOUS's key was used after AWSCURRENT's key was made: someone
    /// still uses the old key, and will fail once it is retired.
    PreviousInUse {
        /// Its id.
        id: String,
        /// When it was last used.
        at: SystemTime,
        /// The service it was used with.
        service: String,
    },
    /// AWSPREVIOUS's key is inactive (`REVOKE_PREVIOUS=at-finish`): the
    /// next rotation deletes it.
    PreviousDeactivated {
        /// Its id.
        id: String,
    },
}

const DAY: u64 = 24 * 3600;

/// The findings for a secret whose versions hold `current`, `previous` and
/// `pending`, rotated every `period_days`.
pub async fn inspect(
    config: &aws_config::SdkConfig,
    current: &KeySecret,
    previous: Option<&KeySecret>,
    pending: Option<&KeySecret>,
    period_days: Option<i64>,
) -> Result<Vec<KeyFinding>, TargetError> {
    let iam = aws_sdk_iam::Client::new(config);
    let user = &current.user_name;
    let keys = api::keys(&iam, user).await?;
    let held = |id: &str| {
        [Some(current), previous, pending]
            .into_iter()
            .flatten()
            .any(|s| s.user_name == *user && s.access_key_id == id)
    };
    let mut found: Vec<KeyFinding> = keys
        .iter()
        .filter(|k| !held(&k.id))
        .map(|k| KeyFinding::Foreign {
            id: k.id.clone(),
            active: k.active,
        })
        .collect();
    let now = SystemTime::now();
    let current_key = keys.iter().find(|k| k.id == current.access_key_id);
    let current_made = current_key.and_then(|k| k.created);
    if let (Some(made), Some(days)) = (current_made, period_days) {
        let age = now.duration_since(made).unwrap_or(Duration::ZERO).as_secs();
        if days > 0 && age > days as u64 * DAY {
            found.push(KeyFinding::Old {
                id: current.access_key_id.clone(),
                days: age / DAY,
            });
        }
    }
    let previous =
        previous.filter(|p| p.user_name == *user && p.access_key_id != current.access_key_id);
    if let Some(previous) = previous
        && let Some(key) = keys.iter().find(|k| k.id == previous.access_key_id)
    {
        if !key.active {
            found.push(KeyFinding::PreviousDeactivated { id: key.id.clone() });
        }
        let used = api::last_used(&iam, user, &key.id).await?;
        if let (Some(at), Some(made)) = (used.at, current_made)
            && at > made
        {
            found.push(KeyFinding::PreviousInUse {
                id: key.id.clone(),
                at,
                service: used.service,
            });
        }
    }
    Ok(found)
}
