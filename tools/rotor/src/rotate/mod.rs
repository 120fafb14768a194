//! Secrets Manager's part of a rotation, played locally: stage the pending
//! version, invoke the four steps in one warm function process, and report.
//!
//! It follows the service's rules: a ClientRequestToken that already names a
//! finished version is a success with nothing done; a token that names the
//! pending version resumes that rotation (every step is idempotent); a rotation
//! in flight on another version is refused rather than stranded.
//!
//! It leaves the secret's rotation settings as it found them (its function,
//! its schedule, rotation on or off) unless `--rotation-function` asks for
//! another function, and says what the emulator recorded of its staging. It
//! checks what it can before it stages (the function binary, its settings,
//! the endpoint and the secret), and after a run that did not finish it
//! prints the commands that resume it and cancel it.

mod cli;
mod lambda;
mod settings;

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use rotor_core::labels::{AWSPENDING, LabelMove};
use rotor_core::store::{NewVersion, SecretDescription, VersionSelector};
use rotor_core::{AwsStore, SecretStore, Step};
use serde_json::{Value, json};

pub(crate) use cli::parse_env;
pub use cli::{DEFAULT_FUNCTION, NotNameValue, RotateArgs};
pub use lambda::LambdaFunction;
pub use settings::{RotationSettings, SettingsReport, Staging, rotation_settings};

use crate::endpoint::{Call, Service, explain};
use crate::function::LocalFunction;
use crate::runtime_api::Outcome;
use settings::{settings_text, staging_function};

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
    /// The secret's rotation settings before and after, when a version was
    /// staged or a function restored.
    pub settings: Option<SettingsReport>,
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

/// A rotation already in flight on another version: refused, never
/// stranded.
#[derive(Debug, thiserror::Error)]
#[error("a rotation of {secret} is already in progress: version {version} is AWSPENDING")]
pub struct InProgress {
    /// The secret's ARN.
    pub secret: String,
    /// The version in flight.
    pub version: String,
    /// Whether it has a value (createSecret stored one); `None` when unknown.
    pub has_value: Option<bool>,
}

/// Plays one RotateSecret request against `store` with `function`, as the
/// service does: rotation is on afterwards. The function and schedule stay
/// (see [`rotate_with`]); the emulator's Lambda API is unknown.
pub async fn rotate<'a>(
    store: &AwsStore,
    function: impl Into<Invoker<'a>>,
    options: &RotateOptions,
) -> anyhow::Result<RotationRun> {
    rotate_with(store, function, options, &Staging::default()).await
}

/// Plays one RotateSecret request against `store` with `function`, leaving
/// the secret's rotation function and schedule as they were (or naming
/// `staging.rotation_function`); rotation off afterwards if it was off and
/// `staging.restore_rotation_off` says so.
pub async fn rotate_with<'a>(
    store: &AwsStore,
    function: impl Into<Invoker<'a>>,
    options: &RotateOptions,
    staging: &Staging,
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
        settings: None,
    };
    let mut staged_with = None;
    let before = match secret.versions.labels_of(&token) {
        Some(labels) if labels.iter().any(|l| l == AWSPENDING) && !options.test_only => {
            // The same request again after a failure: resume the rotation.
            rotation_settings(store, &secret.arn).await?
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
                let has_value = store
                    .get_value(&secret.arn, VersionSelector::Id(other, Some(AWSPENDING)))
                    .await
                    .ok()
                    .map(|v| v.is_some());
                return Err(InProgress {
                    secret: secret.arn.clone(),
                    version: other.to_owned(),
                    has_value,
                }
                .into());
            }
            let before = rotation_settings(store, &secret.arn).await?;
            let wanted = staging
                .rotation_function
                .as_deref()
                .or(before.function.as_deref());
            let (name, why) = staging_function(staging, wanted).await;
            staged_with = why;
            store
                .stage_rotation(&secret.arn, &token, &name)
                .await
                .with_context(|| format!("staging version {token} of {}", secret.arn))?;
            before
        }
    };

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
    let wanted_function = staging
        .rotation_function
        .clone()
        .or(before.function.clone());
    let mut after = rotation_settings(store, &secret.arn).await?;
    let ended = run.after.versions.with_label(AWSPENDING).is_none();
    if let Some(wanted) = &wanted_function
        && ended
        && after.function.as_ref() != Some(wanted)
    {
        let copy = uuid::Uuid::new_v4().to_string();
        store
            .point_rotation_at(&secret.arn, &copy, wanted)
            .await
            .with_context(|| {
                format!(
                    "making {wanted} the rotation function of {} again",
                    secret.arn
                )
            })?;
        run.after = store.describe(&secret.arn).await?;
        after = rotation_settings(store, &secret.arn).await?;
    }
    // The steps need rotation on; once the rotation has ended, it goes back
    // off if it was off (or the run was told to leave it off).
    let turn_off = (staging.restore_rotation_off && !before.enabled) || staging.leave_rotation_off;
    if ended && after.enabled && turn_off {
        store
            .client()
            .cancel_rotate_secret()
            .secret_id(&secret.arn)
            .send()
            .await
            .map_err(|e| {
                let call = Call {
                    service: Service::SecretsManager,
                    endpoint: None,
                    operation: "CancelRotateSecret",
                    subject: Some(&secret.arn),
                };
                explain(&call, &e)
            })?;
        after = rotation_settings(store, &secret.arn).await?;
    }
    run.settings = Some(SettingsReport {
        before,
        after,
        wanted_function,
        staged_with,
    });
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
    if let Some(settings) = &run.settings {
        out.push_str(&settings_text(settings));
    }
    out
}
