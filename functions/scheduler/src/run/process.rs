//! One due secret, looked at again and started if it still is due.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use rotor_core::labels::AWSPENDING;

use super::{CallFailure, DEADLINE_MARGIN, Outcome, Run};
use crate::{Decision, SecretFacts, Skip, Started, Unknown, evaluate, hourly, retry};

impl Run {
    /// Looks again at a due secret and starts its rotation if it still is due
    /// and under the hourly limit.
    pub(super) async fn process(&self, listed: SecretFacts) -> Outcome {
        let not_reached = |facts: &SecretFacts| {
            let reason = Skip::Deadline {
                secret: facts.label().to_owned(),
            };
            Outcome::skipped(facts, reason)
        };
        if self.past_stop() {
            return not_reached(&listed);
        }
        let facts = match self.describe(&listed.arn).await {
            Ok(facts) => facts,
            Err(e) if matches!(e.source, CallFailure::Deadline) => return not_reached(&listed),
            Err(e) => return Outcome::failed(&listed, &e),
        };
        // Decided again from DescribeSecret: ListSecrets may be stale, and the
        // rotation settings decide which call, if any, is made. On the clock
        // of now, not of the run's start: a window may have closed meanwhile.
        let now = super::epoch_secs(SystemTime::now()).max(self.now);
        let (policy, due_at, rotation) = match evaluate(&facts, self.config(), now) {
            Decision::Due {
                policy,
                due_at,
                rotation,
            } => (policy, due_at, rotation),
            Decision::Skip(reason) => return Outcome::skipped(&facts, reason),
        };
        let dates = match self.version_dates(&facts.arn).await {
            Ok(dates) => dates,
            Err(e) if matches!(e.source, CallFailure::Deadline) => return not_reached(&facts),
            Err(e) => return Outcome::failed(&facts, &e),
        };
        let recent = hourly::starts_in_last_hour(dates, self.now);
        let limit = self.config().max_per_hour;
        if !hourly::may_start(recent, limit) {
            let reason = Skip::HourlyLimit {
                secret: facts.label().to_owned(),
                recent,
                limit,
            };
            return Outcome::skipped(&facts, reason);
        }
        let mut started = Started {
            arn: facts.arn.clone(),
            name: facts.name.clone(),
            version: String::new(),
            policy: policy.to_string(),
            due_at,
            note: None,
        };
        if self.dry_run {
            return Outcome::Started(started);
        }
        let token = retry::new_version_id();
        started.version = token.clone();
        let sent = AtomicBool::new(false);
        match self.rotate(&facts.arn, &token, &rotation, &sent).await {
            Ok(()) => Outcome::Started(started),
            Err(error) if matches!(error.source, CallFailure::Deadline) => {
                if !sent.load(Ordering::Relaxed) {
                    return not_reached(&facts);
                }
                let margin = DEADLINE_MARGIN.as_secs();
                let looked = match self.staged(&facts.arn, &token).await {
                    Ok(true) => {
                        started.note = Some(format!(
                            "RotateSecret had not answered when the run stopped waiting, {margin} s before the function's deadline; DescribeSecret shows version {token} staged as AWSPENDING, so the rotation started"
                        ));
                        return Outcome::Started(started);
                    }
                    Ok(false) => "DescribeSecret did not show it staged yet".to_owned(),
                    Err(why) => format!("DescribeSecret could not tell ({why})"),
                };
                Outcome::Unknown(Unknown {
                    arn: started.arn,
                    name: started.name,
                    version: token.clone(),
                    policy: started.policy,
                    due_at,
                    detail: format!(
                        "RotateSecret for version {token} of secret {} was sent, but had not answered when the run stopped waiting, {margin} s before the function's deadline, and {looked}: whether the rotation started is not known. If it did, the next run finds version {token} AWSPENDING and leaves it to finish; if not, the next run starts the rotation",
                        facts.label()
                    ),
                })
            }
            Err(error) => {
                // Did the call stage the version before it failed? (An emulator
                // that cannot invoke the function does so; so may a lost answer.)
                // Past the deadline margin, one quick look instead of a call
                // with retries, which would be cut at once.
                let staged = match self.describe(&facts.arn).await {
                    Ok(after) => after.versions.has_label(&token, AWSPENDING),
                    Err(e) if matches!(e.source, CallFailure::Deadline) => {
                        matches!(self.staged(&facts.arn, &token).await, Ok(true))
                    }
                    Err(_) => false,
                };
                if staged {
                    started.note = Some(error.to_string());
                    Outcome::Started(started)
                } else {
                    Outcome::failed(&facts, &error)
                }
            }
        }
    }
}
