//! What a run did: the function's JSON response.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::plan::{Skip, Timestamp};

/// A rotation the run started (or, in a dry run, would have started).
#[derive(Clone, Debug)]
pub struct Started {
    /// The secret's ARN.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// The new version's id (the ClientRequestToken), staged as AWSPENDING.
    /// Empty in a dry run.
    pub version: String,
    /// The policy that made it due.
    pub policy: String,
    /// When it became due.
    pub due_at: Timestamp,
    /// Set when RotateSecret answered with an error although it staged the
    /// version: the rotation is in progress, but its function may not have
    /// been invoked. The error, for the operator.
    pub note: Option<String>,
}

/// A secret left alone, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    /// The secret's ARN.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// Why.
    pub reason: Skip,
}

/// A secret whose rotation could not be started, after bounded retries.
#[derive(Clone, Debug)]
pub struct Failed {
    /// The secret's ARN.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// What failed.
    pub error: String,
    /// How many attempts the failing call made.
    pub attempts: u32,
}

/// A rotation whose RotateSecret was sent but cut short by the deadline, with
/// no sign yet that it started: it may, or may not, be under way.
#[derive(Clone, Debug)]
pub struct Unknown {
    /// The secret's ARN.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// The version the call would stage (its ClientRequestToken).
    pub version: String,
    /// The policy that made it due.
    pub policy: String,
    /// When it became due.
    pub due_at: Timestamp,
    /// What is known, and what the next run does.
    pub detail: String,
}

/// One run's outcome for every selected secret.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Whether this was a dry run (nothing started).
    pub dry_run: bool,
    /// The tag filter, as configured.
    pub tag_filter: String,
    /// How many secrets the tag filter selected.
    pub selected: usize,
    /// Rotations started (in a dry run: those that would start).
    pub started: Vec<Started>,
    /// Secrets left alone.
    pub skipped: Vec<Skipped>,
    /// Secrets whose rotation could not be started.
    pub failed: Vec<Failed>,
    /// Secrets whose RotateSecret the deadline cut short: started or not, not known.
    pub unknown: Vec<Unknown>,
    /// Calls retried after throttling or a server error, over the whole run.
    pub retries: u32,
    /// Selected secrets whose due date passed more than a day ago
    /// ([`crate::plan::is_overdue`]), whatever this run did with them.
    pub overdue: usize,
    /// RotateSecret attempts made, retries included.
    pub rotate_secret_calls: u32,
    /// How long those attempts waited for the rate limit, in all.
    pub rate_limit_wait: Duration,
}

impl Report {
    /// Orders every list by secret name, then ARN, so that reports compare.
    pub fn sort(&mut self) {
        self.started
            .sort_by(|a, b| (&a.name, &a.arn).cmp(&(&b.name, &b.arn)));
        self.skipped
            .sort_by(|a, b| (&a.name, &a.arn).cmp(&(&b.name, &b.arn)));
        self.failed
            .sort_by(|a, b| (&a.name, &a.arn).cmp(&(&b.name, &b.arn)));
        self.unknown
            .sort_by(|a, b| (&a.name, &a.arn).cmp(&(&b.name, &b.arn)));
    }

    /// The function's response. In a dry run the rotations that would start are
    /// under `would_start` and `started` is empty.
    pub fn to_json(&self) -> Value {
        let started: Vec<Value> = self
            .started
            .iter()
            .map(|s| {
                let mut entry = json!({
                    "secret": s.arn,
                    "name": s.name,
                    "policy": s.policy,
                    "due_at": s.due_at.to_string(),
                });
                if !self.dry_run {
                    entry["version"] = json!(s.version);
                }
                if let Some(note) = &s.note {
                    entry["note"] = json!(note);
                }
                entry
            })
            .collect();
        let skipped: Vec<Value> = self
            .skipped
            .iter()
            .map(|s| {
                let mut entry = json!({
                    "secret": s.arn,
                    "name": s.name,
                    "reason": s.reason.code(),
                    "detail": s.reason.to_string(),
                });
                if let Skip::OutsideWindow { opens_at, .. } = &s.reason {
                    entry["window_opens_at"] = json!(opens_at.to_string());
                }
                entry
            })
            .collect();
        let failed: Vec<Value> = self
            .failed
            .iter()
            .map(|f| {
                json!({
                    "secret": f.arn,
                    "name": f.name,
                    "error": f.error,
                    "attempts": f.attempts,
                })
            })
            .collect();
        let unknown: Vec<Value> = self
            .unknown
            .iter()
            .map(|u| {
                json!({
                    "secret": u.arn,
                    "name": u.name,
                    "version": u.version,
                    "policy": u.policy,
                    "due_at": u.due_at.to_string(),
                    "detail": u.detail,
                })
            })
            .collect();
        let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &self.skipped {
            *by_reason.entry(s.reason.code()).or_default() += 1;
        }
        let (started, would_start) = if self.dry_run {
            (Vec::new(), started)
        } else {
            (started, Vec::new())
        };
        json!({
            "dry_run": self.dry_run,
            "tag_filter": self.tag_filter,
            "selected": self.selected,
            "counts": {
                "started": started.len(),
                "would_start": would_start.len(),
                "skipped": skipped.len(),
                "failed": failed.len(),
                "unknown": unknown.len(),
                "overdue": self.overdue,
                "skipped_by_reason": by_reason,
            },
            "retries": self.retries,
            "rotate_secret_calls": self.rotate_secret_calls,
            "rate_limit_wait_ms": self.rate_limit_wait.as_millis() as u64,
            "started": started,
            "would_start": would_start,
            "skipped": skipped,
            "failed": failed,
            "unknown": unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(dry_run: bool) -> Report {
        Report {
            dry_run,
            tag_filter: "rotor:fleet=payments".into(),
            selected: 3,
            started: vec![Started {
                arn: "arn:b".into(),
                name: "b".into(),
                version: "v".into(),
                policy: "30d".into(),
                due_at: Timestamp(0),
                note: None,
            }],
            skipped: vec![
                Skipped {
                    arn: "arn:a".into(),
                    name: "a".into(),
                    reason: Skip::NoDates { secret: "a".into() },
                },
                Skipped {
                    arn: "arn:e".into(),
                    name: "e".into(),
                    reason: Skip::OutsideWindow {
                        secret: "e".into(),
                        policy: "30d".into(),
                        due_at: Timestamp(0),
                        window: "tag rotor:window=02:00-04:00".into(),
                        opens_at: Timestamp(7200),
                    },
                },
            ],
            failed: vec![Failed {
                arn: "arn:c".into(),
                name: "c".into(),
                error: "RotateSecret failed".into(),
                attempts: 6,
            }],
            unknown: vec![Unknown {
                arn: "arn:d".into(),
                name: "d".into(),
                version: "w".into(),
                policy: "30d".into(),
                due_at: Timestamp(0),
                detail: "not known".into(),
            }],
            retries: 7,
            overdue: 1,
            rotate_secret_calls: 2,
            rate_limit_wait: Duration::from_millis(250),
        }
    }

    #[test]
    fn the_response_lists_what_started_what_was_skipped_and_why() {
        let value = report(false).to_json();
        assert_eq!(value["started"][0]["version"], "v");
        assert_eq!(value["started"][0]["due_at"], "1970-01-01T00:00:00Z");
        assert_eq!(value["would_start"], json!([]));
        assert_eq!(value["skipped"][0]["reason"], "no_dates");
        assert!(
            value["skipped"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("secret a")
        );
        assert_eq!(value["failed"][0]["attempts"], 6);
        assert_eq!(value["counts"]["skipped_by_reason"]["no_dates"], 1);
        assert_eq!(value["skipped"][1]["reason"], "outside_window");
        assert_eq!(
            value["skipped"][1]["window_opens_at"],
            "1970-01-01T02:00:00Z"
        );
        assert!(value["skipped"][0].get("window_opens_at").is_none());
        assert_eq!(value["counts"]["skipped_by_reason"]["outside_window"], 1);
        assert_eq!(value["retries"], 7);
        assert_eq!(value["unknown"][0]["version"], "w");
        assert_eq!(value["unknown"][0]["detail"], "not known");
        assert_eq!(value["counts"]["unknown"], 1);
        assert_eq!(value["counts"]["overdue"], 1);
        assert_eq!(value["rotate_secret_calls"], 2);
        assert_eq!(value["rate_limit_wait_ms"], 250);
    }

    #[test]
    fn a_dry_run_lists_what_would_start() {
        let value = report(true).to_json();
        assert_eq!(value["started"], json!([]));
        assert_eq!(value["would_start"][0]["name"], "b");
        assert!(value["would_start"][0].get("version").is_none());
        assert_eq!(value["counts"]["would_start"], 1);
    }
}
