//! `rotor status`'s WINDOW column: when rotation-scheduler may next start a
//! secret's rotation, read with the scheduler's own rules
//! ([`rotation_scheduler::window`]) from the secret's window tag and its
//! `RotationRules`, so that status and the scheduler never disagree.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
use aws_sdk_secretsmanager::types::SecretListEntry;
use rotation_scheduler::window::Window;
use serde_json::{Value, json};

/// A secret's window as status shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowState {
    /// Its window, and its opening in force now or next.
    Next {
        /// The window, such as `tag rotor:window=02:00-04:00`.
        window: String,
        /// When the opening opens (in the past when open now), in seconds
        /// since the Unix epoch.
        opens: i64,
        /// When it closes.
        closes: i64,
        /// Whether it is open now.
        open: bool,
    },
    /// The window cannot be used: the scheduler skips the secret. Why, naming
    /// the tag or the field, and the fix.
    Invalid(String),
}

/// The window of one listed secret at `now`, `None` when it has none.
pub fn of(tag: &str, entry: &SecretListEntry, now: SystemTime) -> Option<WindowState> {
    let tags: BTreeMap<String, String> = entry
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    let rules = entry.rotation_rules();
    let window = Window::of(
        tag,
        &tags,
        rules.and_then(|r| r.schedule_expression()),
        rules.and_then(|r| r.duration()),
    );
    let window = match window {
        Ok(None) => return None,
        Ok(Some(window)) => window,
        Err(e) => return Some(WindowState::Invalid(e.to_string())),
    };
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    Some(match window.next_opening(now) {
        Ok(opening) => WindowState::Next {
            window: window.describe(),
            opens: opening.opens,
            closes: opening.closes,
            open: opening.is_open_at(now),
        },
        Err(e) => WindowState::Invalid(e.to_string()),
    })
}

fn minutes(secs: i64) -> String {
    rfc3339(secs)
        .map(|s| s.chars().take(16).collect::<String>().replace('T', " "))
        .unwrap_or_else(|| secs.to_string())
}

fn rfc3339(secs: i64) -> Option<String> {
    DateTime::from_secs(secs).fmt(DateTimeFormat::DateTime).ok()
}

/// The table's cell: `-`, `open until 2026-12-08 04:00`,
/// `2026-12-08 02:00-04:00`, or `invalid` (the reason goes under the table).
pub fn cell(state: Option<&WindowState>) -> String {
    match state {
        None => "-".to_owned(),
        Some(WindowState::Invalid(_)) => "invalid".to_owned(),
        Some(WindowState::Next {
            closes, open: true, ..
        }) => format!("open until {}", minutes(*closes)),
        Some(WindowState::Next { opens, closes, .. }) => {
            let from = minutes(*opens);
            // The closing time alone when it is the same day (24:00 its end).
            if closes.div_euclid(86_400) == opens.div_euclid(86_400) {
                let to = minutes(*closes);
                format!(
                    "{from}-{}",
                    to.split_once(' ').map_or(to.as_str(), |(_, t)| t)
                )
            } else if *closes == (opens.div_euclid(86_400) + 1) * 86_400 {
                format!("{from}-24:00")
            } else {
                format!("{from} to {}", minutes(*closes))
            }
        }
    }
}

/// The JSON document's `window`: `null` without one; else `window` (what it
/// is made of), `open`, `opens_at`, `closes_at`, or `error` when it cannot be
/// used.
pub fn to_json(state: Option<&WindowState>) -> Value {
    match state {
        None => Value::Null,
        Some(WindowState::Invalid(error)) => json!({ "error": error }),
        Some(WindowState::Next {
            window,
            opens,
            closes,
            open,
        }) => json!({
            "window": window,
            "open": open,
            "opens_at": rfc3339(*opens),
            "closes_at": rfc3339(*closes),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::types::{RotationRulesType, Tag};
    use std::time::Duration;

    /// 2026-12-07T15:30:00Z.
    const NOW: u64 = 20_794 * 86_400 + 15 * 3_600 + 1_800;

    fn entry(window: Option<&str>, schedule: Option<&str>) -> SecretListEntry {
        let mut entry = SecretListEntry::builder().name("app");
        if let Some(window) = window {
            entry = entry.tags(Tag::builder().key("rotor:window").value(window).build());
        }
        if let Some(schedule) = schedule {
            entry = entry.rotation_rules(
                RotationRulesType::builder()
                    .schedule_expression(schedule)
                    .build(),
            );
        }
        entry.build()
    }

    fn state(window: Option<&str>, schedule: Option<&str>) -> Option<WindowState> {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        of("rotor:window", &entry(window, schedule), now)
    }

    #[test]
    fn the_next_window_as_a_cell_and_as_json() {
        assert_eq!(state(None, None), None);
        assert_eq!(cell(None), "-");
        assert_eq!(to_json(None), Value::Null);

        let open = state(Some("15:00-17:00"), None);
        assert_eq!(cell(open.as_ref()), "open until 2026-12-07 17:00");
        let value = to_json(open.as_ref());
        assert_eq!(value["open"], true);
        assert_eq!(value["opens_at"], "2026-12-07T15:00:00Z");
        assert_eq!(value["closes_at"], "2026-12-07T17:00:00Z");
        assert_eq!(value["window"], "tag rotor:window=15:00-17:00");

        let later = state(Some("02:00-04:00"), None);
        assert_eq!(cell(later.as_ref()), "2026-12-08 02:00-04:00");
        assert_eq!(to_json(later.as_ref())["open"], false);

        let overnight = state(Some("22:00-02:00"), None);
        assert_eq!(
            cell(overnight.as_ref()),
            "2026-12-07 22:00 to 2026-12-08 02:00"
        );

        // The rotation rules: Sundays from 02:00 to the end of the day.
        let rules = state(None, Some("cron(0 2 ? * SUN *)"));
        assert_eq!(cell(rules.as_ref()), "2026-12-13 02:00-24:00");
        assert_eq!(
            to_json(rules.as_ref())["window"],
            "RotationRules cron(0 2 ? * SUN *)"
        );
    }

    #[test]
    fn an_invalid_window_says_why() {
        let bad = state(Some("2am-4am"), None);
        assert_eq!(cell(bad.as_ref()), "invalid");
        let error = to_json(bad.as_ref())["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("tag rotor:window=\"2am-4am\"") && error.contains("02:00-04:00"),
            "{error}"
        );
        let never = state(Some("00:00-01:00"), Some("cron(0 2 ? * SUN *)"));
        assert!(
            matches!(&never, Some(WindowState::Invalid(e)) if e.contains("never overlap")),
            "{never:?}"
        );
    }
}
