//! The Lambda edge: serves runs over the Runtime API, turns a run's error
//! into the Lambda error type, and prints each run's metrics ([`run_metrics`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_secretsmanager::Client;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use rotor_core::metrics::dimensions::{ERROR_TYPE, FUNCTION, OUTCOME, REASON};
use rotor_core::metrics::{self, Document, OutcomeClass, Unit, names};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::run::{RunError, RunOptions, Scheduler};
use crate::{Config, ConfigError, FunctionArn, Policy, Report};

impl From<RunError> for Diagnostic {
    fn from(error: RunError) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Serves runs over the Lambda Runtime API until the process ends. `config` is
/// read once at start; if it is unusable, every invocation fails with an error
/// that names the variable.
pub async fn serve(
    client: &Client,
    config: Result<Config, ConfigError>,
) -> Result<(), lambda_runtime::Error> {
    let scheduler = match config {
        Ok(config) => {
            info!(tag_filter = %config.tag_filter, policy_tag = %config.policy_tag,
                default_policy = config.default_policy.as_ref().map(Policy::as_str),
                max_per_hour = config.max_per_hour, max_concurrency = config.max_concurrency,
                rate_per_second = config.rate_per_second,
                rotation_functions = %config.authority.describe_functions(),
                rotation_lambda_arn = config.authority.assign.as_ref().map(FunctionArn::as_str),
                allowed_secrets = config.authority.allowed.len(),
                "configured");
            if !config.authority.names_functions() {
                warn!(
                    "ROTATION_FUNCTION_ARNS and ROTATION_LAMBDA_ARN are not set: only secrets whose rotation is enabled are rotated, each with its own function"
                );
            }
            Ok(Arc::new(Scheduler::new(client, config)))
        }
        Err(e) => {
            error!(error = %e, "invalid configuration: every invocation will fail until it is fixed");
            Err(e)
        }
    };
    let scheduler = &scheduler;
    let function = &metrics::function_name_from_env();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(
            scheduler,
            function,
            &event.payload,
            event.context.deadline(),
        )
        .await
    }))
    .await
}

/// Runs one invocation, and prints its metrics under the `Function`
/// dimension `function` (a dry run prints none).
pub async fn handle(
    scheduler: &Result<Arc<Scheduler>, ConfigError>,
    function: &str,
    event: &Value,
    deadline: SystemTime,
) -> Result<Value, Diagnostic> {
    let started = Instant::now();
    let outcome = async {
        let scheduler = scheduler
            .as_ref()
            .map_err(|e| RunError::Config(e.clone()))?;
        let options = RunOptions::from_event(event, Some(deadline))?;
        // Boxed: the run's future is deep, and the runtime's is deeper still.
        Box::pin(scheduler.run(options)).await
    }
    .await;
    let rate = scheduler.as_ref().ok().map(|s| s.config().rate_per_second);
    let figures = RunFigures {
        function,
        duration: started.elapsed(),
        rate_per_second: rate,
    };
    match outcome {
        Ok(report) => {
            if !report.dry_run {
                metrics::emit(&run_metrics(&figures, Ok(&report), SystemTime::now()));
            }
            Ok(report.to_json())
        }
        Err(e) => {
            error!(error_type = e.error_type(), error = %e, "run failed");
            metrics::emit(&run_metrics(&figures, Err(&e), SystemTime::now()));
            Err(e.into())
        }
    }
}

/// What the edge knows of a run besides its report.
#[derive(Clone, Copy, Debug)]
pub struct RunFigures<'a> {
    /// The `Function` dimension.
    pub function: &'a str,
    /// From the invocation's arrival to its answer.
    pub duration: Duration,
    /// `RATE_PER_SECOND`, when the configuration could be read.
    pub rate_per_second: Option<f64>,
}

/// A run's metric documents, stamped `at`: one with the run's figures (or,
/// for a failed run, its outcome), and one per reason secrets were skipped
/// for, with the `Reason` dimension.
pub fn run_metrics(
    figures: &RunFigures<'_>,
    outcome: Result<&Report, &RunError>,
    at: SystemTime,
) -> Vec<Document> {
    let by_function: &[&[&'static str]] = &[&[FUNCTION]];
    let class = match outcome {
        Ok(_) => OutcomeClass::Success,
        Err(e) => OutcomeClass::failure(e.is_retryable()),
    };
    let millis = figures.duration.as_secs_f64() * 1000.0;
    let mut run = Document::new(at)
        .dimension(FUNCTION, figures.function)
        .dimension(OUTCOME, class.as_str())
        .metric(
            names::RUNS,
            Unit::Count,
            1.0,
            &[
                &[FUNCTION],
                &[FUNCTION, OUTCOME],
                &[FUNCTION, OUTCOME, ERROR_TYPE],
            ],
        )
        .metric(names::RUN_DURATION, Unit::Milliseconds, millis, by_function);
    let report = match outcome {
        Ok(report) => report,
        Err(e) => return vec![run.dimension(ERROR_TYPE, e.kind())],
    };
    let counts = [
        (names::SECRETS_SELECTED, report.selected),
        (names::ROTATIONS_STARTED, report.started.len()),
        (names::ROTATIONS_NOT_STARTED, report.failed.len()),
        (names::ROTATIONS_UNKNOWN, report.unknown.len()),
        (names::SKIPPED, report.skipped.len()),
        (names::OVERDUE, report.overdue),
        (names::RETRIES, report.retries as usize),
        (
            names::ROTATE_SECRET_CALLS,
            report.rotate_secret_calls as usize,
        ),
    ];
    for (name, count) in counts {
        run = run.metric(name, Unit::Count, count as f64, by_function);
    }
    let wait = report.rate_limit_wait.as_secs_f64() * 1000.0;
    run = run.metric(
        names::RATE_LIMIT_WAIT,
        Unit::Milliseconds,
        wait,
        by_function,
    );
    if let Some(used) = rate_used(report.rotate_secret_calls, figures) {
        run = run.metric(names::RATE_USED, Unit::Percent, used, by_function);
    }
    let mut documents = vec![run];
    let mut reasons: Vec<&'static str> = report.skipped.iter().map(|s| s.reason.code()).collect();
    reasons.sort_unstable();
    reasons.dedup();
    for reason in reasons {
        let count = report
            .skipped
            .iter()
            .filter(|s| s.reason.code() == reason)
            .count();
        let skipped = Document::new(at)
            .dimension(FUNCTION, figures.function)
            .dimension(REASON, reason)
            .metric(
                names::SKIPPED,
                Unit::Count,
                count as f64,
                &[&[FUNCTION, REASON]],
            );
        documents.push(skipped);
    }
    documents
}

/// A run shorter than this has no [`names::RATE_USED`]: the rate limit lets
/// a run's first call go at once, so a share of a few milliseconds says
/// nothing about the limit.
const RATE_USED_MIN_RUN: Duration = Duration::from_secs(1);

/// RotateSecret attempts as a share of what `RATE_PER_SECOND` allows over the
/// run's duration, 0 to 100: near 100 the rate limit paced the run.
fn rate_used(calls: u32, figures: &RunFigures<'_>) -> Option<f64> {
    let rate = figures.rate_per_second?;
    if figures.duration < RATE_USED_MIN_RUN {
        return None;
    }
    let allowed = rate * figures.duration.as_secs_f64();
    if allowed <= 0.0 || !allowed.is_finite() {
        return None;
    }
    Some((f64::from(calls) / allowed * 100.0).min(100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Skip, Timestamp};
    use crate::{Skipped, Started};

    fn skipped(name: &str, reason: Skip) -> Skipped {
        Skipped {
            arn: format!("arn:{name}"),
            name: name.into(),
            reason,
        }
    }

    fn figures() -> RunFigures<'static> {
        RunFigures {
            function: "rotor-rotation-scheduler",
            duration: Duration::from_secs(2),
            rate_per_second: Some(5.0),
        }
    }

    #[test]
    fn a_run_reports_its_figures_and_skips_by_reason() {
        let not_due = |n: &str| Skip::NotDue {
            secret: n.into(),
            policy: "30d".into(),
            due_at: Timestamp(0),
        };
        let report = Report {
            selected: 4,
            started: vec![Started {
                arn: "arn:a".into(),
                name: "a".into(),
                version: "v".into(),
                policy: "30d".into(),
                due_at: Timestamp(0),
                note: None,
            }],
            skipped: vec![
                skipped("b", not_due("b")),
                skipped("c", not_due("c")),
                skipped("d", Skip::NoDates { secret: "d".into() }),
            ],
            overdue: 1,
            rotate_secret_calls: 5,
            rate_limit_wait: Duration::from_millis(800),
            ..Report::default()
        };
        let docs = run_metrics(&figures(), Ok(&report), SystemTime::UNIX_EPOCH);
        let run = docs[0].to_json();
        assert_eq!(run["Function"], "rotor-rotation-scheduler");
        assert_eq!(run["Outcome"], "Success");
        assert_eq!(run["Runs"], 1.0);
        assert_eq!(run["RunDuration"], 2000.0);
        assert_eq!(run["SecretsSelected"], 4.0);
        assert_eq!(run["RotationsStarted"], 1.0);
        assert_eq!(run["RotationsNotStarted"], 0.0);
        assert_eq!(run["Skipped"], 3.0);
        assert_eq!(run["Overdue"], 1.0);
        assert_eq!(run["RotateSecretCalls"], 5.0);
        assert_eq!(run["RateLimitWait"], 800.0);
        // 5 calls in 2 s at 5 a second: half of what the rate allows.
        assert_eq!(run["RateUsed"], 50.0);
        assert!(run.get("ErrorType").is_none());
        let reasons: Vec<(String, f64)> = docs[1..]
            .iter()
            .map(|d| d.to_json())
            .map(|d| {
                (
                    d["Reason"].as_str().unwrap().to_owned(),
                    d["Skipped"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            vec![("no_dates".to_owned(), 1.0), ("not_due".to_owned(), 2.0)]
        );
    }

    #[test]
    fn a_failed_run_reports_its_class_and_kind() {
        let error = RunError::InvalidEvent {
            field: "dry_run",
            problem: "is \"yes\"".into(),
        };
        let figures = RunFigures {
            rate_per_second: None,
            ..figures()
        };
        let docs = run_metrics(&figures, Err(&error), SystemTime::UNIX_EPOCH);
        assert_eq!(docs.len(), 1);
        let run = docs[0].to_json();
        assert_eq!(run["Outcome"], "NotRetryable");
        assert_eq!(run["ErrorType"], "InvalidEvent");
        assert_eq!(run["Runs"], 1.0);
        assert!(run.get("SecretsSelected").is_none() && run.get("RateUsed").is_none());
    }

    #[test]
    fn the_rate_used_is_bounded() {
        assert_eq!(rate_used(100, &figures()), Some(100.0));
        assert_eq!(rate_used(0, &figures()), Some(0.0));
        let short = RunFigures {
            duration: Duration::from_millis(80),
            ..figures()
        };
        assert_eq!(rate_used(1, &short), None);
    }
}
