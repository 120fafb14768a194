//! What happened to one secret: logged at once, then added to the report.

use tracing::{error, info, warn};

use super::CallError;
use crate::{Failed, Report, SecretFacts, Skip, Skipped, Started, Unknown};

pub(super) enum Outcome {
    Started(Started),
    Skipped(Skipped),
    Failed(Failed),
    Unknown(Unknown),
}

impl Outcome {
    pub(super) fn skipped(facts: &SecretFacts, reason: Skip) -> Outcome {
        Outcome::Skipped(Skipped {
            arn: facts.arn.clone(),
            name: facts.name.clone(),
            reason,
        })
    }

    pub(super) fn failed(facts: &SecretFacts, error: &CallError) -> Outcome {
        Outcome::Failed(Failed {
            arn: facts.arn.clone(),
            name: facts.name.clone(),
            error: error.to_string(),
            attempts: error.attempts,
        })
    }
}

/// Logs an outcome as a structured event, as soon as it is known (a run cut
/// short by a timeout still leaves a record of what it started).
pub(super) fn log(outcome: &Outcome, dry_run: bool) {
    match outcome {
        Outcome::Started(s) => match (&s.note, dry_run) {
            (_, true) => info!(secret = %s.arn, name = %s.name, policy = %s.policy,
                due_at = %s.due_at, "would start rotation (dry run)"),
            (None, false) => info!(secret = %s.arn, name = %s.name, version = %s.version,
                policy = %s.policy, due_at = %s.due_at, "started rotation"),
            (Some(note), false) => warn!(secret = %s.arn, name = %s.name,
                version = %s.version, policy = %s.policy, due_at = %s.due_at, note = %note,
                "started rotation: the version is staged, but RotateSecret answered with an error; check that the rotation function exists and Secrets Manager may invoke it"),
        },
        Outcome::Skipped(s) => info!(secret = %s.arn, name = %s.name,
            reason = s.reason.code(), detail = %s.reason, "skipped"),
        Outcome::Failed(f) => error!(secret = %f.arn, name = %f.name, attempts = f.attempts,
            error = %f.error, "could not start rotation"),
        Outcome::Unknown(u) => warn!(secret = %u.arn, name = %u.name, version = %u.version,
            detail = %u.detail, "rotation not known to have started"),
    }
}

/// Adds an outcome to the report.
pub(super) fn record(report: &mut Report, outcome: Outcome) {
    match outcome {
        Outcome::Started(s) => report.started.push(s),
        Outcome::Skipped(s) => report.skipped.push(s),
        Outcome::Failed(f) => report.failed.push(f),
        Outcome::Unknown(u) => report.unknown.push(u),
    }
}
