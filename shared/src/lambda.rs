//! The Lambda edge: turns an invocation into a [`Driver`] step and a failure into
//! a Lambda error whose type says whether a retry can help and whose message
//! names the step, the secret and the fix.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::error;

use crate::error::Error;
use crate::event::RotationEvent;
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
                event.step, event.secret_id, event.token
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

/// Parses and runs one invocation.
pub async fn handle<S: SecretStore, R: Rotator>(
    driver: &Driver<S, R>,
    payload: &Value,
) -> Result<StepReport, Failure> {
    let event = RotationEvent::from_json(payload).map_err(|e| {
        error!(error = %e, "rejected the invocation");
        Failure::new(None, &e)
    })?;
    driver.run(&event).await.map_err(|e| {
        error!(secret = %event.secret_id, step = %event.step, version = %event.token,
            error_type = %e.error_type(), error = %e, "step failed");
        Failure::new(Some(&event), &e)
    })
}

/// Serves rotation steps over the Lambda Runtime API until the process ends.
/// Call it once from `main`, with clients built once.
pub async fn serve<S: SecretStore, R: Rotator>(
    driver: Driver<S, R>,
) -> Result<(), lambda_runtime::Error> {
    let driver = match std::env::var(PENDING_LABEL_VAR) {
        Ok(label) if !label.is_empty() => driver.with_pending_label(label),
        _ => driver,
    };
    let driver = &driver;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(driver, &event.payload).await
    }))
    .await
}

/// Sets up logging as Lambda expects: JSON when `AWS_LAMBDA_LOG_FORMAT=json`,
/// the level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}
