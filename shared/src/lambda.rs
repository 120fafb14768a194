//! The Lambda edge: turns an invocation into a [`Driver`] step and a failure into
//! a Lambda error whose type says whether a retry can help and whose message
//! names the step, the secret and the fix. After each step it prints the
//! step's metrics ([`crate::metrics`]).

use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::{error, warn};

use crate::error::Error;
use crate::event::RotationEvent;
use crate::metrics::{self, Metrics, Recorder, StepRecord};
use crate::progress::Progress;
use crate::rotation::{Driver, Rotator, StepReport};
use crate::store::SecretStore;

/// The environment variable that names a custom pending label.
pub const PENDING_LABEL_VAR: &str = "ROTOR_PENDING_LABEL";

/// A failed invocation, as Lambda reports it.
#[derive(Debug)]
pub struct Failure {
    error_type: String,
    message: String,
}

impl Failure {
    fn new(event: Option<&RotationEvent>, error: &Error) -> Self {
        let message = match event {
            Some(event) => format!(
                "{} for secret {} (version {}) failed: {error}",
                event.step, event.secret_id, event.version_id
            ),
            None => error.to_string(),
        };
        Failure {
            error_type: error.error_type(),
            message,
        }
    }
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        Diagnostic {
            error_type: failure.error_type,
            error_message: failure.message,
        }
    }
}

/// How long before the function's deadline a step stops waiting, so that it
/// reports where it was instead of being killed mid-call by Lambda.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// How long a step may run when the deadline is `deadline`: until
/// [`DEADLINE_MARGIN`] before it, or half the time left if that is shorter.
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// use rotor_core::lambda::step_budget;
///
/// let now = SystemTime::now();
/// assert_eq!(step_budget(now + Duration::from_secs(30), now), Duration::from_secs(29));
/// assert_eq!(step_budget(now + Duration::from_secs(1), now), Duration::from_millis(500));
/// ```
pub fn step_budget(deadline: SystemTime, now: SystemTime) -> Duration {
    let left = deadline.duration_since(now).unwrap_or_default();
    if left > DEADLINE_MARGIN * 2 {
        left - DEADLINE_MARGIN
    } else {
        left / 2
    }
}

/// The invocation's deadline, unless it is already past on arrival. Lambda
/// sends an absolute time; some emulators send a duration instead (cargo
/// lambda's sends `600000`, which reads as January 1970), and guarding a step
/// with it would fail every step at once.
fn usable_deadline(deadline: SystemTime) -> Option<SystemTime> {
    if deadline > SystemTime::now() {
        Some(deadline)
    } else {
        warn!(
            deadline_ms = deadline
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
            "the invocation's deadline is already past; running the step without a deadline"
        );
        None
    }
}

/// Parses and runs one invocation, giving up before `deadline` (the Lambda
/// context's) with an error that says what the step was waiting for, and
/// prints the step's metrics ([`Metrics::step`]), whatever its outcome.
pub async fn handle<S: SecretStore, R: Rotator>(
    driver: &Driver<S, R>,
    metrics: &Metrics,
    payload: &Value,
    deadline: Option<SystemTime>,
) -> Result<StepReport, Failure> {
    let started = Instant::now();
    let event = match RotationEvent::from_json(payload) {
        Ok(event) => event,
        Err(e) => {
            error!(error = %e, "rejected the invocation");
            emit_step(metrics, None, started, Err(&e), None);
            return Err(Failure::new(None, &e));
        }
    };
    let recorder = Recorder::default();
    let result = match metrics.problem() {
        Some(problem) => Err(Error::InvalidSettings {
            secret: event.secret_id.clone(),
            setting: metrics::SECRET_DIMENSION_VAR.to_owned(),
            problem: problem.to_owned(),
        }),
        None => {
            recorder
                .track(run_step(driver, &event, started, deadline))
                .await
        }
    };
    emit_step(
        metrics,
        Some(&event),
        started,
        result.as_ref(),
        recorder.completion(),
    );
    let actions = recorder.actions();
    if !actions.is_empty() {
        let at = SystemTime::now();
        metrics::emit(&crate::after::documents(metrics.function(), &actions, at));
    }
    result.map_err(|e| {
        error!(secret = %event.secret_id, step = %event.step, version = %event.version_id,
            error_type = %e.error_type(), error = %e, "step failed");
        Failure::new(Some(&event), &e)
    })
}

/// Runs the event's step within the time `deadline` leaves.
async fn run_step<S: SecretStore, R: Rotator>(
    driver: &Driver<S, R>,
    event: &RotationEvent,
    started: Instant,
    deadline: Option<SystemTime>,
) -> Result<StepReport, Error> {
    let budget = deadline.map(|deadline| step_budget(deadline, SystemTime::now()));
    let progress = match budget {
        Some(budget) => Progress::with_deadline(started + budget),
        None => Progress::default(),
    };
    // Boxed: a step's future is deep enough to overflow the compiler's layout
    // depth limit in a function's `main` otherwise.
    let step = progress.track(Box::pin(driver.run(event)));
    match (deadline, budget) {
        (Some(deadline), Some(budget)) => match tokio::time::timeout(budget, step).await {
            Ok(result) => result,
            Err(_) => Err(Error::DeadlineReached {
                secret: event.secret_id.clone(),
                waiting_for: progress
                    .last()
                    .unwrap_or_else(|| "the step to start".to_owned()),
                elapsed_ms: started.elapsed().as_millis(),
                margin_ms: deadline
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .as_millis(),
            }),
        },
        _ => step.await,
    }
}

/// Prints one step's metrics document.
fn emit_step(
    metrics: &Metrics,
    event: Option<&RotationEvent>,
    started: Instant,
    result: Result<&StepReport, &Error>,
    completion: Option<metrics::Completion>,
) {
    let record = StepRecord {
        step: event.map(|e| e.step),
        secret_id: event.map(|e| e.secret_id.as_str()),
        duration: started.elapsed(),
        result,
        completion,
    };
    metrics::emit(&[metrics.step(&record, SystemTime::now())]);
}

/// Serves rotation steps over the Lambda Runtime API until the process ends.
/// Call it once from `main`, with clients built once. The metric settings are
/// read from the environment here, once ([`Metrics::from_env`]).
pub async fn serve<S: SecretStore, R: Rotator>(
    driver: Driver<S, R>,
) -> Result<(), lambda_runtime::Error> {
    let driver = match std::env::var(PENDING_LABEL_VAR) {
        Ok(label) if !label.is_empty() => driver.with_pending_label(label),
        _ => driver,
    };
    #[cfg(feature = "after")]
    let driver = driver.with_actions(crate::after::Actions::from_env());
    let driver = &driver;
    let metrics = &Metrics::from_env();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(
            driver,
            metrics,
            &event.payload,
            usable_deadline(event.context.deadline()),
        )
        .await
    }))
    .await
}

/// Sets up logging as Lambda expects: JSON when `AWS_LAMBDA_LOG_FORMAT=json`,
/// the level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_stops_short_of_the_deadline() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let second = Duration::from_secs(1);
        assert_eq!(step_budget(now + 30 * second, now), 29 * second);
        assert_eq!(step_budget(now + second, now), second / 2);
        assert_eq!(step_budget(now - 5 * second, now), Duration::ZERO);
    }
}
