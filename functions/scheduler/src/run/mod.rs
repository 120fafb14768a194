//! One run: list the tagged secrets, decide, start the due rotations within the
//! deadline, and report (the SDK-calling half of the function; [`crate::lambda`]
//! is its Lambda edge).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info};

use crate::plan::is_overdue;
use crate::retry;
use crate::{Config, Decision, Report, evaluate};

/// How long before the function's deadline the run stops: no secret is started
/// and no call (attempt, backoff or wait for the rate limit) goes on after it.
/// The margin leaves time for one look at a RotateSecret cut short
/// ([`CHECK_TIMEOUT`]) and for the answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// How long the one DescribeSecret after a RotateSecret cut at the deadline may
/// take: it tells whether that rotation started.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one attempt of one call may take before it counts as failed (and
/// is retried).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pages of ListSecrets (100 secrets each) a run reads at most: a guard against
/// a service that keeps answering with a next page.
const MAX_LIST_PAGES: usize = 10_000;
/// Pages of ListSecretVersionIds (100 versions each) read at most per secret.
const MAX_VERSION_PAGES: usize = 50;

mod calls;
mod error;
mod outcome;
mod process;

pub use error::{CallError, CallFailure, CheckError, RunError};
use outcome::{Outcome, log, record};

/// One invocation's options: the event's overrides and the deadline.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Report what would start, and start nothing.
    pub dry_run: bool,
    /// When the function must have answered.
    pub deadline: Option<SystemTime>,
}

impl RunOptions {
    /// Reads the overrides of an event: any JSON; in an object, `dry_run` must
    /// be `true` or `false` when present (a misspelt dry run must not rotate).
    /// Other fields are ignored.
    pub fn from_event(event: &Value, deadline: Option<SystemTime>) -> Result<Self, RunError> {
        let dry_run = match event.get("dry_run") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => {
                return Err(RunError::InvalidEvent {
                    field: "dry_run",
                    problem: format!("is {other}, not true or false"),
                });
            }
        };
        Ok(RunOptions { dry_run, deadline })
    }
}

/// The scheduler: a Secrets Manager client, the settings and the rate limiter,
/// built once per process.
#[derive(Debug)]
pub struct Scheduler {
    client: Client,
    config: Config,
    limiter: retry::RateLimiter,
}

impl Scheduler {
    /// Builds the scheduler on a copy of `client` whose own retries are off
    /// (every attempt is the scheduler's, counted and paced) and whose attempts
    /// time out after [`ATTEMPT_TIMEOUT`].
    pub fn new(client: &Client, config: Config) -> Self {
        let sdk_config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build();
        Scheduler {
            client: Client::from_conf(sdk_config),
            limiter: retry::RateLimiter::new(config.rate_per_second),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One run over every selected secret.
    pub async fn run(self: &Arc<Self>, options: RunOptions) -> Result<Report, RunError> {
        let now = epoch_secs(SystemTime::now());
        let run = Arc::new(Run {
            scheduler: self.clone(),
            now,
            dry_run: options.dry_run,
            stop_at: options.deadline.map(|deadline| {
                let left = deadline
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .saturating_sub(DEADLINE_MARGIN);
                Instant::now() + left
            }),
            retries: AtomicU32::new(0),
            rotate_calls: AtomicU32::new(0),
            rate_limit_wait: Mutex::new(Duration::ZERO),
        });
        let filter = self.config.tag_filter.to_string();
        info!(tag_filter = %filter, dry_run = options.dry_run, "run started");
        let listed = run.list().await.map_err(|source| RunError::List {
            filter: filter.clone(),
            source,
        })?;
        let mut report = Report {
            dry_run: options.dry_run,
            tag_filter: filter,
            ..Report::default()
        };
        let mut due = Vec::new();
        for facts in listed {
            // ListSecrets filters by prefix: keep exact matches only.
            if !self.config.tag_filter.matches(&facts.tags) {
                continue;
            }
            report.selected += 1;
            if is_overdue(&facts, &self.config, now) {
                report.overdue += 1;
            }
            match evaluate(&facts, &self.config, now) {
                Decision::Due { due_at, .. } => due.push((due_at, facts)),
                Decision::Skip(reason) => {
                    let outcome = Outcome::skipped(&facts, reason);
                    log(&outcome, run.dry_run);
                    record(&mut report, outcome);
                }
            }
        }
        // The most overdue first, should the deadline or the limits cut the run short.
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.arn.cmp(&b.1.arn)));
        let queue = Arc::new(Mutex::new(
            due.into_iter().map(|(_, f)| f).collect::<VecDeque<_>>(),
        ));
        let workers = self.config.max_concurrency.min(lock(&queue).len());
        let mut tasks = JoinSet::new();
        for _ in 0..workers {
            let (run, queue) = (run.clone(), queue.clone());
            tasks.spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let next = lock(&queue).pop_front();
                    let Some(facts) = next else { break };
                    let outcome = Box::pin(run.process(facts)).await;
                    log(&outcome, run.dry_run);
                    outcomes.push(outcome);
                }
                outcomes
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(outcomes) => outcomes.into_iter().for_each(|o| record(&mut report, o)),
                Err(e) => error!(error = %e, "a worker stopped unexpectedly"),
            }
        }
        report.retries = run.retries.load(Ordering::Relaxed);
        report.rotate_secret_calls = run.rotate_calls.load(Ordering::Relaxed);
        report.rate_limit_wait = *lock(&run.rate_limit_wait);
        report.sort();
        info!(
            selected = report.selected,
            started = if report.dry_run {
                0
            } else {
                report.started.len()
            },
            would_start = if report.dry_run {
                report.started.len()
            } else {
                0
            },
            skipped = report.skipped.len(),
            failed = report.failed.len(),
            unknown = report.unknown.len(),
            retries = report.retries,
            overdue = report.overdue,
            dry_run = report.dry_run,
            "run finished"
        );
        Ok(report)
    }
}

/// One run's state, shared by its workers.
struct Run {
    scheduler: Arc<Scheduler>,
    now: i64,
    dry_run: bool,
    /// The deadline less [`DEADLINE_MARGIN`]: nothing goes on after it.
    stop_at: Option<Instant>,
    retries: AtomicU32,
    /// RotateSecret attempts, and their waits for the rate limit.
    rotate_calls: AtomicU32,
    rate_limit_wait: Mutex<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn epoch_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_core::store::StoreError;
    use serde_json::json;

    #[test]
    fn events_carry_optional_overrides() {
        for event in [
            json!({}),
            json!(null),
            json!("tick"),
            json!([1]),
            json!({"dry_run": null}),
        ] {
            assert!(
                !RunOptions::from_event(&event, None).unwrap().dry_run,
                "{event}"
            );
        }
        assert!(
            RunOptions::from_event(&json!({"dry_run": true}), None)
                .unwrap()
                .dry_run
        );
        let error = RunOptions::from_event(&json!({"dry_run": "yes"}), None).unwrap_err();
        assert_eq!(error.error_type(), "NotRetryable.InvalidEvent");
        assert!(error.to_string().contains("dry_run is \"yes\""), "{error}");
    }

    #[test]
    fn run_errors_say_whether_a_retry_helps() {
        let throttled = RunError::List {
            filter: "a=b".into(),
            source: CallError {
                operation: "ListSecrets",
                attempts: 6,
                source: StoreError::Throttled("Rate exceeded".into()).into(),
            },
        };
        assert_eq!(throttled.error_type(), "Retryable.SecretsManager");
        let message = throttled.to_string();
        assert!(
            message.contains("a=b") && message.contains("6 attempt"),
            "{message}"
        );
        let denied = RunError::List {
            filter: "a=b".into(),
            source: CallError {
                operation: "ListSecrets",
                attempts: 1,
                source: StoreError::AccessDenied("no".into()).into(),
            },
        };
        assert_eq!(denied.error_type(), "NotRetryable.SecretsManager");
        let cut = RunError::List {
            filter: "a=b".into(),
            source: CallError {
                operation: "ListSecrets",
                attempts: 2,
                source: CallFailure::Deadline,
            },
        };
        assert_eq!(cut.error_type(), "Retryable.SecretsManager");
        assert!(
            cut.to_string().contains("before the function's deadline"),
            "{cut}"
        );
    }

    #[test]
    fn the_error_type_is_the_class_and_the_kind() {
        let errors = [
            RunError::InvalidEvent {
                field: "dry_run",
                problem: "x".into(),
            },
            RunError::List {
                filter: "a=b".into(),
                source: CallError {
                    operation: "ListSecrets",
                    attempts: 6,
                    source: StoreError::Throttled("Rate exceeded".into()).into(),
                },
            },
            RunError::List {
                filter: "a=b".into(),
                source: CallError {
                    operation: "ListSecrets",
                    attempts: 1,
                    source: StoreError::AccessDenied("no".into()).into(),
                },
            },
        ];
        for error in errors {
            let class = match error.is_retryable() {
                true => "Retryable",
                false => "NotRetryable",
            };
            assert_eq!(error.error_type(), format!("{class}.{}", error.kind()));
        }
    }

    #[test]
    fn epoch_seconds_never_panic() {
        assert_eq!(epoch_secs(UNIX_EPOCH), 0);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
