//! The Lambda edge: serves runs over the Runtime API and turns a run's
//! error into the Lambda error type.

use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_secretsmanager::Client;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::{error, info, warn};

use crate::run::{RunError, RunOptions, Scheduler};
use crate::{Config, ConfigError, FunctionArn, Policy};

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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(scheduler, &event.payload, event.context.deadline()).await
    }))
    .await
}

/// Runs one invocation.
pub async fn handle(
    scheduler: &Result<Arc<Scheduler>, ConfigError>,
    event: &Value,
    deadline: SystemTime,
) -> Result<Value, Diagnostic> {
    let outcome = async {
        let scheduler = scheduler
            .as_ref()
            .map_err(|e| RunError::Config(e.clone()))?;
        let options = RunOptions::from_event(event, Some(deadline))?;
        // Boxed: the run's future is deep, and the runtime's is deeper still.
        Box::pin(scheduler.run(options)).await
    }
    .await;
    match outcome {
        Ok(report) => Ok(report.to_json()),
        Err(e) => {
            error!(error_type = e.error_type(), error = %e, "run failed");
            Err(e.into())
        }
    }
}
