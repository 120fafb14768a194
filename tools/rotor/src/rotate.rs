//! Secrets Manager's part of a rotation, played locally: stage the pending
//! version, invoke the four steps in one warm function process, and report.
//!
//! It follows the service's rules: a ClientRequestToken that already names a
//! finished version is a success with nothing done; a token that names the
//! pending version resumes that rotation (every step is idempotent); a rotation
//! in flight on another version is refused rather than stranded.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use rotor_core::labels::{AWSPENDING, LabelMove};
use rotor_core::store::{NewVersion, RotationService, SecretDescription, VersionSelector};
use rotor_core::{AwsStore, SecretStore, Step};
use serde_json::{Value, json};

use crate::function::{LocalFunction, function_binary};
use crate::runtime_api::Outcome;

/// `rotor rotate`'s command line.
#[derive(Clone, Debug, clap::Args)]
pub struct RotateArgs {
    /// The secret's ARN or name.
    pub secret_id: String,
    /// The ClientRequestToken (version id); a new one when absent. Repeating
    /// a finished token does nothing; repeating a pending one resumes it.
    #[arg(long)]
    pub token: Option<String>,
    /// The function binary, or the name of one beside rotor.
    #[arg(long, default_value = "generic-rotation")]
    pub function: String,
    /// Invoke this function (name or ARN) through the Lambda Invoke API
    /// instead of running a binary: one served by `sam local start-lambda`
    /// or `cargo lambda watch`, or deployed in AWS.
    #[arg(long, value_name = "FUNCTION")]
    pub invoke: Option<String>,
    /// The Lambda Invoke endpoint for --invoke, such as http://127.0.0.1:3001
    /// for `sam local start-lambda`; AWS's when absent.
    #[arg(long, requires = "invoke")]
    pub lambda_endpoint: Option<String>,
    /// The Secrets Manager endpoint (an emulator such as moto); passed to the
    /// function too. Without it, AWS_ENDPOINT_URL_SECRETS_MANAGER is used.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Run only testSecret, as RotateSecret with RotateImmediately=false.
    #[arg(long)]
    pub test_only: bool,
    /// Extra environment for the function, as NAME=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Seconds each step may take.
    #[arg(long, default_value_t = 30)]
    pub step_timeout: u64,
}

/// An `--env` argument without `=`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not NAME=VALUE")]
pub struct NotNameValue(String);

/// clap's value parser for `--env NAME=VALUE` (rotate and doctor).
pub(crate) fn parse_env(text: &str) -> Result<(String, String), NotNameValue> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| NotNameValue(text.to_owned()))
}

impl RotateArgs {
    /// Rotates the secret and prints the report; `Ok(false)` when the
    /// rotation did not complete.
    pub async fn run(self) -> anyhow::Result<bool> {
        let endpoint = self
            .endpoint
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").ok());
        let Some(endpoint) = endpoint else {
            bail!(
                "give --endpoint (or AWS_ENDPOINT_URL_SECRETS_MANAGER): the local runner stages rotations the way an emulator allows; against AWS, use RotateSecret with the deployed function"
            );
        };
        let store = AwsStore::new(rotor_testbed::moto::local_client(&endpoint));
        let options = RotateOptions {
            secret_id: self.secret_id,
            token: self.token,
            test_only: self.test_only,
            step_timeout: Duration::from_secs(self.step_timeout),
        };
        let run = if let Some(name) = self.invoke {
            let remote = match self.lambda_endpoint {
                Some(url) => LambdaFunction::local(&url, &name),
                None => LambdaFunction::from_env(&name).await,
            };
            rotate(&store, &remote, &options).await?
        } else {
            let binary = if self.function.contains('/') {
                std::path::PathBuf::from(self.function)
            } else {
                function_binary(&self.function)
            };
            let mut function_env = rotor_testbed::moto::local_env(&endpoint);
            function_env.extend(self.env);
            let function = LocalFunction::start(&binary, &function_env).await?;
            let outcome = rotate(&store, &function, &options).await;
            // The function's own log lines, then our account of the rotation.
            eprint!("{}", function.output());
            outcome?
        };
        print!("{}", report(&run));
        Ok(run.succeeded())
    }
}

/// What to rotate and how.
#[derive(Clone, Debug)]
pub struct RotateOptions {
    /// The secret's ARN or name.
    pub secret_id: String,
    /// The ClientRequestToken; a new UUID when absent.
    pub token: Option<String>,
    /// Run only testSecret, as RotateSecret with RotateImmediately=false does.
    pub test_only: bool,
    /// How long each step may take.
    pub step_timeout: Duration,
}

/// One step as it ran.
#[derive(Clone, Debug)]
pub struct StepRun {
    /// The step.
    pub step: Step,
    /// The function's answer: its report, or the error type and message.
    pub result: Result<Value, (String, String)>,
    /// How long the invocation took.
    pub duration: Duration,
}

/// How a rotation request ended.
#[derive(Clone, Debug)]
pub struct RotationRun {
    /// The secret's ARN.
    pub secret: String,
    /// The version rotated to.
    pub token: String,
    /// Why nothing was done, when nothing was.
    pub nothing_to_do: Option<String>,
    /// The steps that ran, in order; the last one failed if any did.
    pub steps: Vec<StepRun>,
    /// The secret's versions and labels afterwards.
    pub after: SecretDescription,
}

impl RotationRun {
    /// Whether every step that ran succeeded.
    pub fn succeeded(&self) -> bool {
        self.steps.iter().all(|s| s.result.is_ok())
    }
}

/// Where the steps run.
#[derive(Clone, Copy)]
pub enum Invoker<'a> {
    /// A local process behind rotor's own Runtime API.
    Local(&'a LocalFunction),
    /// A function behind the Lambda Invoke API.
    Lambda(&'a LambdaFunction),
}

impl<'a> From<&'a LocalFunction> for Invoker<'a> {
    fn from(function: &'a LocalFunction) -> Self {
        Invoker::Local(function)
    }
}

impl<'a> From<&'a LambdaFunction> for Invoker<'a> {
    fn from(function: &'a LambdaFunction) -> Self {
        Invoker::Lambda(function)
    }
}

/// A function reached through the Lambda Invoke API: one served by
/// `sam local start-lambda` or `cargo lambda watch`, or deployed in AWS.
pub struct LambdaFunction {
    client: aws_sdk_lambda::Client,
    name: String,
}

impl LambdaFunction {
    /// The function `name` (or ARN) at a local Invoke endpoint, with throwaway credentials.
    pub fn local(endpoint: &str, name: &str) -> Self {
        let config = rotor_testbed::moto::local_sdk_config(endpoint);
        LambdaFunction {
            client: aws_sdk_lambda::Client::new(&config),
            name: name.to_owned(),
        }
    }

    /// The function `name` (or ARN) in AWS, with the environment's credentials and region.
    pub async fn from_env(name: &str) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(rotor_core::store::aws::https_client())
            .load()
            .await;
        LambdaFunction {
            client: aws_sdk_lambda::Client::new(&config),
            name: name.to_owned(),
        }
    }

    async fn invoke(
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
                None => Err((
                    "Lambda.InvokeFailed".into(),
                    format!(
                        "invoking {}: {}",
                        self.name,
                        aws_sdk_lambda::error::DisplayErrorContext(&e)
                    ),
                )),
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

/// Plays one RotateSecret request against `store` with `function`.
pub async fn rotate<'a>(
    store: &AwsStore,
    function: impl Into<Invoker<'a>>,
    options: &RotateOptions,
) -> anyhow::Result<RotationRun> {
    let function = function.into();
    let secret = store
        .describe(&options.secret_id)
        .await
        .with_context(|| format!("describing secret {}", options.secret_id))?;
    let token = options
        .token
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut run = RotationRun {
        secret: secret.arn.clone(),
        token: token.clone(),
        nothing_to_do: None,
        steps: Vec::new(),
        after: secret.clone(),
    };
    match secret.versions.labels_of(&token) {
        Some(labels) if labels.iter().any(|l| l == AWSPENDING) && !options.test_only => {
            // The same request again after a failure: resume the rotation.
        }
        Some(labels) => {
            run.nothing_to_do = Some(format!(
                "version {token} already exists (labels: {}); a repeated request is a success with nothing done",
                if labels.is_empty() {
                    "none".into()
                } else {
                    labels.join(", ")
                }
            ));
            return Ok(run);
        }
        None => {
            if let Some(other) = secret.versions.rotation_in_progress(&token, AWSPENDING) {
                bail!(
                    "a rotation of {} is already in progress: version {other} is AWSPENDING. Finish it by rotating again with --token {other}, or cancel it by removing AWSPENDING from that version",
                    secret.arn
                );
            }
            store
                .begin_rotation(&secret.arn, &token)
                .await
                .with_context(|| format!("staging version {token} of {}", secret.arn))?;
        }
    }

    if options.test_only {
        // RotateImmediately=false: testSecret runs against a pending copy of the
        // current value, which is removed afterwards.
        let current = store
            .get_value(
                &secret.arn,
                VersionSelector::Label(rotor_core::labels::AWSCURRENT),
            )
            .await?
            .context("the secret has no AWSCURRENT value")?;
        store
            .put_value(
                &secret.arn,
                NewVersion {
                    version_id: &token,
                    value: &current.value,
                    labels: &[AWSPENDING],
                    rotation_token: None,
                },
            )
            .await?;
        run.steps.push(
            invoke(
                function,
                &secret.arn,
                &token,
                Step::TestSecret,
                options.step_timeout,
            )
            .await,
        );
        store
            .move_label(
                &secret.arn,
                &LabelMove {
                    label: AWSPENDING.into(),
                    to: None,
                    from: Some(token.clone()),
                },
            )
            .await?;
    } else {
        for step in Step::ALL {
            let ran = invoke(function, &secret.arn, &token, step, options.step_timeout).await;
            let failed = ran.result.is_err();
            run.steps.push(ran);
            if failed {
                break;
            }
        }
    }
    run.after = store.describe(&secret.arn).await?;
    Ok(run)
}

async fn invoke(
    function: Invoker<'_>,
    secret: &str,
    token: &str,
    step: Step,
    timeout: Duration,
) -> StepRun {
    let event = json!({ "SecretId": secret, "ClientRequestToken": token, "Step": step.as_str() });
    let (result, duration) = match function {
        Invoker::Lambda(remote) => remote.invoke(&event, timeout).await,
        Invoker::Local(local) => match local.invoke(&event, timeout).await {
            Ok(invocation) => (
                match invocation.outcome {
                    Outcome::Response(value) => Ok(value),
                    Outcome::Error {
                        error_type,
                        error_message,
                    } => Err((error_type, error_message)),
                },
                invocation.duration,
            ),
            Err(e) => (Err(("Local.InvokeFailed".into(), e.to_string())), timeout),
        },
    };
    StepRun {
        step,
        result,
        duration,
    }
}

/// The secret's versions and labels as a small table.
pub fn label_table(secret: &SecretDescription) -> String {
    let mut table = String::new();
    for (version, labels) in secret.versions.iter() {
        let _ = writeln!(table, "    {version:<38} {}", labels.join(" "));
    }
    table
}

/// A step-by-step account of a run, ending with the label table.
pub fn report(run: &RotationRun) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  secret  {}", run.secret);
    let _ = writeln!(out, "  version {}", run.token);
    if let Some(reason) = &run.nothing_to_do {
        let _ = writeln!(out, "  nothing to do: {reason}");
    }
    for step in &run.steps {
        let millis = step.duration.as_secs_f64() * 1000.0;
        match &step.result {
            Ok(value) => {
                let outcome = value
                    .get("outcome")
                    .and_then(Value::as_str)
                    .unwrap_or("done");
                let _ = writeln!(
                    out,
                    "  {:<13} {:<16} {millis:>7.1} ms",
                    step.step.as_str(),
                    outcome
                );
            }
            Err((kind, message)) => {
                let _ = writeln!(
                    out,
                    "  {:<13} {:<16} {millis:>7.1} ms\n    {kind}: {message}",
                    step.step.as_str(),
                    "FAILED"
                );
            }
        }
    }
    let _ = writeln!(out, "  labels:");
    out.push_str(&label_table(&run.after));
    out
}
