//! Rotation policies and due dates, as pure functions.
//!
//! A policy is how long a secret's value may live: a whole number and a unit,
//! `30d`, `720h`, `43200m` or `604800s`, between 7 and 365 days inclusive, the
//! range of Alibaba Cloud's `UpdateSecretRotationPolicy`. A rotation is due at
//! the last rotation (`LastRotatedDate`, else `CreatedDate`) plus the interval,
//! and at once when that moment has passed.

use std::fmt;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The shortest policy, 7 days, in seconds.
pub const MIN_INTERVAL_SECS: u64 = 7 * DAY;
/// The longest policy, 365 days, in seconds.
pub const MAX_INTERVAL_SECS: u64 = 365 * DAY;

/// A valid rotation policy: an interval between 7 and 365 days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    interval_secs: u64,
    text: String,
}

/// Why a policy is refused. Messages quote the policy (never a secret value) and
/// say what a valid one looks like.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy is empty.
    #[error(
        "the policy is empty; write a whole number and a unit, such as 30d, 720h, 43200m or 604800s"
    )]
    Empty,
    /// The policy is not a whole number followed by a unit.
    #[error(
        "{text:?} is not a whole number followed by one unit d, h, m or s; write one such as 30d, 720h, 43200m or 604800s"
    )]
    Malformed {
        /// The policy as written.
        text: String,
    },
    /// The interval is shorter than 7 days or longer than 365 days.
    #[error("{text:?} is {length}; a policy must be between 7d and 365d inclusive")]
    OutOfRange {
        /// The policy as written.
        text: String,
        /// The interval it describes, such as `6d 23h`.
        length: String,
    },
}

impl Policy {
    /// Parses a policy such as `30d`. Surrounding whitespace is ignored; the unit
    /// is one lowercase letter; the number has only ASCII digits (no sign, no
    /// fraction). Never panics: numbers too large for any arithmetic are refused
    /// as out of range.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PolicyError::Empty);
        }
        let malformed = || PolicyError::Malformed {
            text: text.to_owned(),
        };
        let (digits, unit) =
            text.split_at(text.len() - text.chars().last().map_or(0, char::len_utf8));
        let unit_secs = match unit {
            "d" => DAY,
            "h" => HOUR,
            "m" => MINUTE,
            "s" => 1,
            _ => return Err(malformed()),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let too_long = || PolicyError::OutOfRange {
            text: text.to_owned(),
            length: "far longer than 365d".to_owned(),
        };
        // Only digits remain, so the one way to fail is a number beyond u64.
        let count: u64 = digits.parse().map_err(|_| too_long())?;
        let interval_secs = count.checked_mul(unit_secs).ok_or_else(too_long)?;
        if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&interval_secs) {
            return Err(PolicyError::OutOfRange {
                text: text.to_owned(),
                length: describe_secs(interval_secs),
            });
        }
        Ok(Policy {
            interval_secs,
            text: text.to_owned(),
        })
    }

    /// The interval, in seconds.
    pub fn interval_secs(&self) -> u64 {
        self.interval_secs
    }

    /// The policy as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// When the next rotation is due, in seconds since the Unix epoch, given the
    /// last rotation (or the secret's creation). `None` only for a date so far
    /// in the future that adding the interval overflows.
    pub fn due_at(&self, last_rotation: i64) -> Option<i64> {
        let interval = i64::try_from(self.interval_secs).ok()?;
        last_rotation.checked_add(interval)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether a rotation due at `due_at` is due at `now` (both in seconds since the
/// Unix epoch): from the due moment on, including when it has long passed.
pub fn is_due(due_at: i64, now: i64) -> bool {
    now >= due_at
}

/// The moment a secret's rotation clock starts from: `LastRotatedDate`, else
/// `CreatedDate`.
pub fn last_rotation(last_rotated: Option<i64>, created: Option<i64>) -> Option<i64> {
    last_rotated.or(created)
}

/// An interval in words, such as `6d 23h` or `366d`.
pub fn describe_secs(secs: u64) -> String {
    let parts = [
        (secs / DAY, "d"),
        (secs % DAY / HOUR, "h"),
        (secs % HOUR / MINUTE, "m"),
        (secs % MINUTE, "s"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if words.is_empty() {
        "0s".to_owned()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> u64 {
        Policy::parse(text).unwrap().interval_secs()
    }

    #[test]
    fn the_four_units_describe_the_same_30_days() {
        for text in ["30d", "720h", "43200m", "2592000s"] {
            assert_eq!(secs(text), 30 * DAY, "{text}");
        }
        assert_eq!(Policy::parse(" 30d ").unwrap().as_str(), "30d");
    }

    #[test]
    fn seven_days_is_the_shortest_policy() {
        for text in ["7d", "168h", "10080m", "604800s"] {
            assert_eq!(secs(text), MIN_INTERVAL_SECS, "{text}");
        }
        for text in ["167h", "6d", "10079m", "604799s"] {
            let error = Policy::parse(text).unwrap_err();
            assert!(matches!(error, PolicyError::OutOfRange { .. }), "{text}");
        }
        let message = Policy::parse("167h").unwrap_err().to_string();
        assert!(
            message.contains("\"167h\" is 6d 23h") && message.contains("between 7d and 365d"),
            "{message}"
        );
    }

    #[test]
    fn three_hundred_sixty_five_days_is_the_longest_policy() {
        assert_eq!(secs("365d"), MAX_INTERVAL_SECS);
        assert_eq!(secs("8760h"), MAX_INTERVAL_SECS);
        assert_eq!(secs("31536000s"), MAX_INTERVAL_SECS);
        let message = Policy::parse("366d").unwrap_err().to_string();
        assert!(message.contains("is 366d"), "{message}");
        assert!(Policy::parse("31536001s").is_err());
        assert!(Policy::parse("8761h").is_err());
    }

    #[test]
    fn overflow_is_refused_not_a_panic() {
        for text in [
            "99999999999999999999d",
            "18446744073709551615s",
            "18446744073709551616s",
            "213503982334601d",
            "18446744073709551615d",
        ] {
            let error = Policy::parse(text).unwrap_err();
            assert!(
                matches!(error, PolicyError::OutOfRange { .. }),
                "{text}: {error}"
            );
        }
        assert!(
            Policy::parse("99999999999999999999d")
                .unwrap_err()
                .to_string()
                .contains("far longer than 365d")
        );
    }

    #[test]
    fn malformed_policies_say_what_a_policy_looks_like() {
        for text in [
            "30", "d", "30D", "30 d", "+30d", "-30d", "7.5d", "30dd", "thirty", "30x", "1w", "٣٠d",
            "30д", "0x1Fd",
        ] {
            let error = Policy::parse(text).unwrap_err();
            assert!(
                matches!(error, PolicyError::Malformed { .. }),
                "{text}: {error}"
            );
            assert!(error.to_string().contains("such as 30d"), "{error}");
        }
        assert_eq!(Policy::parse("").unwrap_err(), PolicyError::Empty);
        assert_eq!(Policy::parse("   ").unwrap_err(), PolicyError::Empty);
        assert!(matches!(
            Policy::parse("0d").unwrap_err(),
            PolicyError::OutOfRange { .. }
        ));
    }

    #[test]
    fn due_at_the_last_rotation_plus_the_interval() {
        let policy = Policy::parse("30d").unwrap();
        let last = 1_700_000_000;
        let due = policy.due_at(last).unwrap();
        assert_eq!(due, last + 30 * 86_400);
        assert!(!is_due(due, due - 1));
        assert!(is_due(due, due), "due exactly at the due moment");
        assert!(is_due(due, due + 400 * 86_400), "long overdue is due now");
        assert_eq!(policy.due_at(i64::MAX - 10), None);
    }

    #[test]
    fn the_clock_starts_at_the_last_rotation_else_the_creation() {
        assert_eq!(last_rotation(Some(20), Some(10)), Some(20));
        assert_eq!(last_rotation(None, Some(10)), Some(10));
        assert_eq!(last_rotation(None, None), None);
    }

    #[test]
    fn boundaries_of_the_due_window() {
        let week = Policy::parse("7d").unwrap();
        let created = 1_000_000_000;
        // Created 6 days 23 hours ago: not due; 7 days ago: due.
        let now = created + 7 * 86_400;
        assert!(!is_due(week.due_at(created + 3600).unwrap(), now));
        assert!(is_due(week.due_at(created).unwrap(), now));
        let year = Policy::parse("365d").unwrap();
        assert!(!is_due(
            year.due_at(created).unwrap(),
            created + 364 * 86_400
        ));
        assert!(is_due(
            year.due_at(created).unwrap(),
            created + 366 * 86_400
        ));
    }

    #[test]
    fn describes_intervals() {
        assert_eq!(describe_secs(601_200), "6d 23h");
        assert_eq!(describe_secs(366 * DAY), "366d");
        assert_eq!(describe_secs(604_799), "6d 23h 59m 59s");
        assert_eq!(describe_secs(0), "0s");
        assert!(describe_secs(u64::MAX).starts_with("213503982334601d "));
    }
}
