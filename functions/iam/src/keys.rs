//! Which of a user's access keys createSecret may remove: pure logic over
//! what ListAccessKeys reports and which key each version of the secret
//! holds, testable without IAM.
//!
//! IAM lets a user hold two keys. A rotation needs room for one more, and
//! takes it, in this order:
//! 1. its own orphan: a key no version holds that was created after the
//!    rotation's version was staged, left by an attempt that created it and
//!    died (or could not store it) before PutSecretValue;
//! 2. the key AWSPREVIOUS holds, which the rotation before this one replaced.
//!
//! Never the AWSCURRENT key, and never a key of another origin (one no
//! version holds, older than this rotation): that one is named, with what to
//! do, and nothing changes.

use std::time::{SystemTime, UNIX_EPOCH};

/// A key as ListAccessKeys reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    /// The access key id.
    pub id: String,
    /// `Active` (else `Inactive`).
    pub active: bool,
    /// `CreateDate`.
    pub created: Option<SystemTime>,
}

/// The key ids the secret's versions hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// AWSCURRENT's.
    pub current: String,
    /// AWSPREVIOUS's, if it has one that parses.
    pub previous: Option<String>,
}

/// Why a key is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// This rotation's own key, created by an attempt that never stored it.
    Orphan,
    /// The key AWSPREVIOUS holds, to make room.
    Previous,
}

/// Why createSecret cannot make a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// The AWSCURRENT key is not one of the user's keys.
    CurrentNotTheUsers,
    /// The user holds two keys and the other one is of another origin.
    Foreign(Vec<ListedKey>),
}

/// Whole seconds since the epoch: Secrets Manager (and moto) date versions
/// to the second, IAM to the second or finer, so instants are compared at
/// the coarser grain. A key created in the same second as the version was
/// staged counts as created after it.
fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether `key`, which no version holds, is this rotation's own: created no
/// earlier than the second the rotation's version was staged. Without both
/// dates, it is not (a key of unknown origin is never removed).
pub fn is_orphan(key: &ListedKey, staged: Option<SystemTime>) -> bool {
    match (key.created, staged) {
        (Some(created), Some(staged)) => seconds(created) >= seconds(staged),
        _ => false,
    }
}

/// The keys to remove, in order, before createSecret makes a new one.
pub fn make_room(
    keys: &[ListedKey],
    held: &Held,
    staged: Option<SystemTime>,
) -> Result<Vec<(String, Removal)>, Blocked> {
    if !keys.iter().any(|k| k.id == held.current) {
        return Err(Blocked::CurrentNotTheUsers);
    }
    let mut removals = Vec::new();
    let mut foreign = Vec::new();
    let mut previous = None;
    for key in keys.iter().filter(|k| k.id != held.current) {
        if held.previous.as_deref() == Some(key.id.as_str()) {
            previous = Some(key);
        } else if is_orphan(key, staged) {
            removals.push((key.id.clone(), Removal::Orphan));
        } else {
            foreign.push(key.clone());
        }
    }
    let kept = keys.len() - removals.len();
    if kept < 2 {
        return Ok(removals);
    }
    match previous {
        Some(key) => {
            removals.push((key.id.clone(), Removal::Previous));
            Ok(removals)
        }
        _ => Err(Blocked::Foreign(foreign)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn key(id: &str, created: Option<SystemTime>) -> ListedKey {
        ListedKey {
            id: id.into(),
            active: true,
            created,
        }
    }

    fn held(previous: Option<&str>) -> Held {
        Held {
            current: "CUR".into(),
            previous: previous.map(str::to_owned),
        }
    }

    #[test]
    fn one_key_leaves_room() {
        let keys = [key("CUR", at(10))];
        assert_eq!(make_room(&keys, &held(None), at(100)), Ok(vec![]));
    }

    #[test]
    fn the_previous_key_makes_room_never_the_current() {
        let keys = [key("OLD", at(10)), key("CUR", at(50))];
        let plan = make_room(&keys, &held(Some("OLD")), at(100)).unwrap();
        assert_eq!(plan, [("OLD".to_owned(), Removal::Previous)]);
    }

    #[test]
    fn the_rotations_own_orphan_is_removed_even_in_the_same_second() {
        // Staged at 100.9 s, dated 100 s by Secrets Manager; the key made at 100.95 s.
        let staged = Some(UNIX_EPOCH + Duration::from_millis(100_000));
        let created = Some(UNIX_EPOCH + Duration::from_millis(100_950));
        let keys = [key("CUR", at(50)), key("MINE", created)];
        let plan = make_room(&keys, &held(Some("GONE")), staged).unwrap();
        assert_eq!(plan, [("MINE".to_owned(), Removal::Orphan)]);
    }

    #[test]
    fn a_key_of_another_origin_is_never_removed() {
        let keys = [key("CUR", at(50)), key("THEIRS", at(99))];
        match make_room(&keys, &held(None), at(100)) {
            Err(Blocked::Foreign(found)) => assert_eq!(found[0].id, "THEIRS"),
            other => panic!("{other:?}"),
        }
        // Without a staging time, no key is taken for an orphan.
        let keys = [key("CUR", at(50)), key("NEW", at(500))];
        assert!(make_room(&keys, &held(None), None).is_err());
        // Nor without a creation date.
        let keys = [key("CUR", at(50)), key("NEW", None)];
        assert!(make_room(&keys, &held(None), at(100)).is_err());
    }

    #[test]
    fn the_current_key_must_be_the_users() {
        let keys = [key("OTHER", at(50))];
        assert_eq!(
            make_room(&keys, &held(None), at(100)),
            Err(Blocked::CurrentNotTheUsers)
        );
        assert_eq!(
            make_room(&[], &held(None), at(100)),
            Err(Blocked::CurrentNotTheUsers)
        );
    }
}
