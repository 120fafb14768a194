//! Steps through the Lambda Invoke API: a function served by `sam local
//! start-lambda` or `cargo lambda watch`.

use std::time::Duration;

use serde_json::Value;

use crate::clients::emulator_config;
use crate::endpoint::{self, Call, Service, explain};

/// The longest a step may take: Lambda's own limit.
pub(super) const MAX_STEP_SECONDS: u64 = 900;

/// A function reached through the Lambda Invoke API: one served by
/// `sam local start-lambda` or `cargo lambda watch`, or deployed in AWS.
pub struct LambdaFunction {
    client: aws_sdk_lambda::Client,
    name: String,
    endpoint: String,
}

impl LambdaFunction {
    /// The function `name` (or ARN) at a local Invoke endpoint (`sam local
    /// start-lambda`, `cargo lambda watch`), with throwaway credentials. Its
    /// client connects within the CLI's connect timeout; each invocation
    /// is bounded by the step's own timeout.
    pub fn local(endpoint: &str, name: &str) -> Self {
        let config = emulator_config(endpoint);
        let longest = Duration::from_secs(MAX_STEP_SECONDS + 60);
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(endpoint::CONNECT_TIMEOUT)
            .operation_attempt_timeout(longest)
            .operation_timeout(longest)
            .build();
        let lambda = aws_sdk_lambda::config::Builder::from(&config)
            .timeout_config(timeouts)
            .build();
        LambdaFunction {
            client: aws_sdk_lambda::Client::from_conf(lambda),
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
        }
    }

    pub(super) async fn invoke(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> (Result<Value, (String, String)>, Duration) {
        let started = std::time::Instant::now();
        let payload = aws_sdk_lambda::primitives::Blob::new(event.to_string());
        let call = self
            .client
            .invoke()
            .function_name(&self.name)
            .payload(payload)
            .send();
        let result = match tokio::time::timeout(timeout, call).await {
            Err(_) => Err((
                "Lambda.Timeout".into(),
                format!("{} did not answer within {timeout:?}", self.name),
            )),
            // AWS answers a function error with 200 and X-Amz-Function-Error;
            // cargo lambda's emulator answers 500 with the same error body.
            Ok(Err(e)) => match e
                .raw_response()
                .and_then(|raw| raw.body().bytes())
                .and_then(function_error)
            {
                Some(error) => Err(error),
                None => {
                    let invoked = Call {
                        service: Service::Lambda,
                        endpoint: Some(&self.endpoint),
                        operation: "Invoke",
                        subject: Some(&self.name),
                    };
                    let why = explain(&invoked, &e).to_string();
                    Err(("Lambda.InvokeFailed".into(), why))
                }
            },
            Ok(Ok(out)) => {
                let body: Value = out
                    .payload()
                    .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
                    .unwrap_or(Value::Null);
                match out.function_error() {
                    None => Ok(body),
                    Some(kind) => Err(function_error(
                        &serde_json::to_vec(&body).unwrap_or_default(),
                    )
                    .unwrap_or_else(|| {
                        (
                            kind.to_owned(),
                            "the function failed without a message".to_owned(),
                        )
                    })),
                }
            }
        };
        (result, started.elapsed())
    }
}

/// A function error body, `{"errorType": ..., "errorMessage": ...}`.
fn function_error(body: &[u8]) -> Option<(String, String)> {
    let body: Value = serde_json::from_slice(body).ok()?;
    Some((
        body["errorType"].as_str()?.to_owned(),
        body["errorMessage"].as_str().unwrap_or("").to_owned(),
    ))
}
