//! After-rotation actions: what finishSecret does for a secret's consumers
//! once the new version is AWSCURRENT, such as forcing a new deployment of the
//! ECS services that read it.
//!
//! A secret asks for actions with its `rotor:after` tag ([`AFTER_TAG`]):
//! space-separated entries `ecs:<cluster>/<service>`, `sns:<topic ARN>` and
//! `webhook:<https URL>`. Whoever may tag a secret is not the deployer, so an
//! entry runs only if the function's deployer allowed its target (the
//! `ROTOR_AFTER_*` variables, set from the template's parameters, which also
//! give the role exactly those permissions); any other entry does nothing,
//! and the log, the metrics and `rotor status` say why.
//!
//! The actions never undo or fail a rotation: the new value is current before
//! the first runs. Each is retried a bounded number of times, and its outcome
//! is recorded in the secret's `rotor:after-result` tag ([`RESULT_TAG`]) under
//! the version id, so that a replayed finishSecret runs none twice. This module
//! holds that record's format, which `rotor status` reads too; the runner
//! (`plan` and `run`) needs the `after` feature.
//!
//! Nothing here may carry a secret value: a webhook receives the secret's ARN,
//! name and version id, an SNS topic the same, an ECS service nothing but the
//! request to start new tasks (which read the secret themselves).

use std::time::SystemTime;

use crate::metrics::{ActionRun, Document, Unit, dimensions, names};

#[cfg(feature = "after")]
pub mod plan;
#[cfg(feature = "after")]
mod run;
#[cfg(feature = "after")]
pub use run::{Actions, Clients};

/// The tag that lists a secret's actions.
pub const AFTER_TAG: &str = "rotor:after";

/// The tag rotor writes, after each action, with the version id and each
/// entry's outcome: `<version id> ok failed refused`.
pub const RESULT_TAG: &str = "rotor:after-result";

/// The most entries a secret may list; more are refused (the record must
/// fit a tag value's 256 characters).
pub const MAX_ACTIONS: usize = 16;

/// Deployer variables (comma-separated lists), set by the template from its
/// parameters of the same meaning.
pub mod vars {
    /// ECS service ARNs (`arn:aws:ecs:<region>:<account>:service/<cluster>/<service>`)
    /// that a `rotor:after` entry `ecs:<cluster>/<service>` may redeploy.
    pub const ECS_SERVICES: &str = "ROTOR_AFTER_ECS_SERVICES";
    /// SNS topic ARNs a `sns:<topic ARN>` entry may publish to.
    pub const SNS_TOPICS: &str = "ROTOR_AFTER_SNS_TOPICS";
    /// URL prefixes a `webhook:<url>` entry must lie under (scheme, host,
    /// port and path segments compared after parsing).
    pub const WEBHOOK_PREFIXES: &str = "ROTOR_AFTER_WEBHOOK_PREFIXES";
    /// The secret whose AWSCURRENT value signs webhook calls.
    pub const WEBHOOK_KEY_SECRET: &str = "ROTOR_AFTER_WEBHOOK_KEY_SECRET";
    /// An SNS topic (the stack's notice topic) told of every failed or
    /// refused action.
    pub const NOTICE_TOPIC: &str = "ROTOR_AFTER_NOTICE_TOPIC";
}

/// What became of one entry of the `rotor:after` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionOutcome {
    /// The action was done (the service or receiver accepted it).
    Done,
    /// It failed, after its retries; the rotation stands.
    Failed,
    /// It was not run: its target is not allowed, or the entry is malformed.
    Refused,
}

impl ActionOutcome {
    /// The word the record and the log use.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Done => "ok",
            ActionOutcome::Failed => "failed",
            ActionOutcome::Refused => "refused",
        }
    }

    /// The metrics' `Outcome` dimension value.
    pub fn metric_name(self) -> &'static str {
        match self {
            ActionOutcome::Done => "Success",
            ActionOutcome::Failed => "Failed",
            ActionOutcome::Refused => "Refused",
        }
    }

    fn parse(word: &str) -> Option<ActionOutcome> {
        match word {
            "ok" => Some(ActionOutcome::Done),
            "failed" => Some(ActionOutcome::Failed),
            "refused" => Some(ActionOutcome::Refused),
            _ => None,
        }
    }
}

/// The entries of a `rotor:after` value: words separated by spaces (tag
/// values may not hold commas; a comma separates too, for variables).
///
/// ```
/// use rotor_core::after::entries;
/// assert_eq!(entries(" ecs:app/web  sns:arn:aws:sns:us-east-1:1:t,webhook:https://h/x"),
///            ["ecs:app/web", "sns:arn:aws:sns:us-east-1:1:t", "webhook:https://h/x"]);
/// ```
pub fn entries(value: &str) -> Vec<&str> {
    value
        .split([' ', ','])
        .filter(|entry| !entry.is_empty())
        .collect()
}

/// What the [`RESULT_TAG`] says: the version whose actions ran, and each
/// entry's outcome in the order of the `rotor:after` tag (shorter while the
/// actions are running).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The version that became AWSCURRENT.
    pub version_id: String,
    /// The outcomes of the first entries.
    pub outcomes: Vec<ActionOutcome>,
}

impl Record {
    /// Reads a tag value; `None` if it is not one rotor wrote.
    ///
    /// ```
    /// use rotor_core::after::{ActionOutcome, Record};
    /// let record = Record::parse("v2 ok refused").unwrap();
    /// assert_eq!(record.version_id, "v2");
    /// assert_eq!(record.outcomes, [ActionOutcome::Done, ActionOutcome::Refused]);
    /// assert_eq!(record.to_tag(), "v2 ok refused");
    /// assert!(Record::parse("v2 maybe").is_none());
    /// ```
    pub fn parse(value: &str) -> Option<Record> {
        let mut words = value.split_whitespace();
        let version_id = words.next()?.to_owned();
        let outcomes = words
            .map(ActionOutcome::parse)
            .collect::<Option<Vec<_>>>()?;
        Some(Record {
            version_id,
            outcomes,
        })
    }

    /// The tag value.
    pub fn to_tag(&self) -> String {
        let mut value = self.version_id.clone();
        for outcome in &self.outcomes {
            value.push(' ');
            value.push_str(outcome.as_str());
        }
        value
    }

    /// The outcome recorded for entry `index` of `version_id`'s actions.
    pub fn outcome(&self, version_id: &str, index: usize) -> Option<ActionOutcome> {
        if self.version_id != version_id {
            return None;
        }
        self.outcomes.get(index).copied()
    }
}

/// Each entry of a `rotor:after` value with its outcome in `record` (`not
/// run` for an entry it has none for), as `rotor status` shows them.
///
/// ```
/// use rotor_core::after::{Record, last_outcomes};
/// let record = Record::parse("v2 ok failed");
/// let shown = last_outcomes("ecs:app/web sns:arn:aws:sns:us-east-1:1:t webhook:https://h/x", record.as_ref());
/// assert_eq!(shown, [("ecs:app/web", "ok"), ("sns:arn:aws:sns:us-east-1:1:t", "failed"),
///                    ("webhook:https://h/x", "not run")]);
/// ```
pub fn last_outcomes<'a>(after: &'a str, record: Option<&Record>) -> Vec<(&'a str, &'static str)> {
    entries(after)
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let outcome = record
                .and_then(|r| r.outcomes.get(i))
                .map_or("not run", |o| o.as_str());
            (entry, outcome)
        })
        .collect()
}

/// The documents of a step's after-rotation actions: [`names::ACTIONS`](crate::metrics::names::ACTIONS),
/// counted by action and outcome, under `Function, Outcome` and
/// `Function, Action, Outcome`.
pub fn documents(function: &str, runs: &[ActionRun], at: SystemTime) -> Vec<Document> {
    let mut counted: Vec<(ActionRun, u32)> = Vec::new();
    for run in runs {
        match counted.iter_mut().find(|(r, _)| r == run) {
            Some((_, n)) => *n += 1,
            None => counted.push((*run, 1)),
        }
    }
    counted
        .into_iter()
        .map(|(run, n)| {
            Document::new(at)
                .dimension(dimensions::FUNCTION, function.to_owned())
                .dimension(dimensions::ACTION, run.action)
                .dimension(dimensions::OUTCOME, run.outcome)
                .metric(
                    names::ACTIONS,
                    Unit::Count,
                    f64::from(n),
                    &[
                        &[dimensions::FUNCTION, dimensions::OUTCOME],
                        &[
                            dimensions::FUNCTION,
                            dimensions::ACTION,
                            dimensions::OUTCOME,
                        ],
                    ],
                )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_the_version_and_the_order() {
        let record = Record {
            version_id: "0f1e2d3c-aaaa-4bbb-8ccc-123456789abc".into(),
            outcomes: vec![ActionOutcome::Failed, ActionOutcome::Done],
        };
        let parsed = Record::parse(&record.to_tag()).unwrap();
        assert_eq!(parsed, record);
        assert_eq!(
            parsed.outcome(&record.version_id, 0),
            Some(ActionOutcome::Failed)
        );
        assert_eq!(parsed.outcome(&record.version_id, 2), None);
        assert_eq!(parsed.outcome("another", 0), None);
    }

    #[test]
    fn a_full_record_fits_a_tag_value() {
        let record = Record {
            version_id: "0f1e2d3c-aaaa-4bbb-8ccc-123456789abc".into(),
            outcomes: vec![ActionOutcome::Refused; MAX_ACTIONS],
        };
        assert!(record.to_tag().len() <= 256);
    }

    #[test]
    fn an_empty_or_foreign_tag_is_no_record() {
        assert_eq!(Record::parse(""), None);
        assert_eq!(Record::parse("v1 done"), None);
        assert_eq!(Record::parse("v1").unwrap().outcomes, []);
    }
}
