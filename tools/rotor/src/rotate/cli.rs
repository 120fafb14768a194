//! `rotor rotate`'s command line: what it checks before a version is staged
//! (the function binary, its settings, the endpoint, the secret), and the
//! commands it prints after a run that left its version AWSPENDING.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use rotor_core::labels::AWSPENDING;
use rotor_core::store::VersionSelector;
use rotor_core::{AwsStore, SecretStore};

use super::lambda::MAX_STEP_SECONDS;
use super::{
    InProgress, LambdaFunction, RotateOptions, SettingsReport, Staging, report, rotate_with,
};
use crate::clients::emulator_config;
use crate::commands::Commands;
use crate::doctor::lambda::{Kind, read_settings};
use crate::endpoint::{self, Call, Service, explain, parse_endpoint};
use crate::function::{LocalFunction, locate_function};

/// The function binary `rotor rotate` runs when neither `--function` nor
/// `--invoke` names one.
pub const DEFAULT_FUNCTION: &str = "generic-rotation";

/// How long a step may take unless `--step-timeout` says.
const STEP_SECONDS: u64 = 30;

/// `rotor rotate`'s command line.
#[derive(Clone, Debug, clap::Args)]
pub struct RotateArgs {
    /// The secret's ARN or name.
    pub secret_id: String,
    /// The ClientRequestToken (version id); a new one when absent. Repeating
    /// a finished token does nothing; repeating a pending one resumes it.
    #[arg(long)]
    pub token: Option<String>,
    /// The function binary: the name of one beside rotor (generic-rotation
    /// when neither this nor --invoke is given), or a path.
    #[arg(long, conflicts_with = "invoke")]
    pub function: Option<String>,
    /// Invoke this function (name or ARN) through the Lambda Invoke API at
    /// --lambda-endpoint instead of running a binary: one served by
    /// `sam local start-lambda` or `cargo lambda watch`.
    #[arg(long, value_name = "FUNCTION")]
    pub invoke: Option<String>,
    /// The Lambda Invoke endpoint for --invoke, such as http://127.0.0.1:3001
    /// for `sam local start-lambda`.
    #[arg(long, requires = "invoke", value_parser = parse_endpoint)]
    pub lambda_endpoint: Option<String>,
    /// The Secrets Manager endpoint (an emulator such as moto); passed to the
    /// function too. Without it, AWS_ENDPOINT_URL_SECRETS_MANAGER is used.
    #[arg(long, value_parser = parse_endpoint)]
    pub endpoint: Option<String>,
    /// Run only testSecret, as RotateSecret with RotateImmediately=false;
    /// rotation is never turned on.
    #[arg(long)]
    pub test_only: bool,
    /// Extra environment for the function, as NAME=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Seconds each step may take (1 to 900, Lambda's limit).
    #[arg(
        long,
        default_value_t = STEP_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..=MAX_STEP_SECONDS)
    )]
    pub step_timeout: u64,
    /// Make this function (ARN) the secret's rotation function once the
    /// rotation ends; without it, the rotation settings stay as they are.
    #[arg(long, value_name = "ARN")]
    pub rotation_function: Option<String>,
    /// Turn rotation off once the rotation ends. A run does so by itself
    /// when rotation was off before it (the steps need it on); a run that
    /// resumes a rotation needs telling, and the command a failed run prints
    /// says so.
    #[arg(long)]
    pub leave_rotation_off: bool,
}

/// An `--env` argument that is not NAME=VALUE.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not NAME=VALUE with a NAME")]
pub struct NotNameValue(String);

/// clap's value parser for `--env NAME=VALUE` (rotate and doctor).
pub(crate) fn parse_env(text: &str) -> Result<(String, String), NotNameValue> {
    match text.split_once('=') {
        Some((name, value))
            if !name.is_empty() && !name.contains('\0') && !value.contains('\0') =>
        {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err(NotNameValue(text.to_owned())),
    }
}

/// Where the steps of a `rotor rotate` run, as its command line said.
#[derive(Clone, Debug)]
enum Runner {
    /// A binary: the name or path given, and where it was found.
    Binary { given: String, path: PathBuf },
    /// A function behind the Invoke API.
    Invoke { name: String, endpoint: String },
}

impl Runner {
    /// Which rotor function it runs, when its name says.
    fn kind(&self) -> Option<Kind> {
        match self {
            Runner::Binary { path, .. } => path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Kind::parse),
            Runner::Invoke { .. } => None,
        }
    }

    /// The options that select it again.
    fn options(&self, given_function: bool) -> Vec<String> {
        match self {
            Runner::Binary { given, .. } if given_function => {
                vec!["--function".into(), given.clone()]
            }
            Runner::Binary { .. } => Vec::new(),
            Runner::Invoke { name, endpoint } => vec![
                "--invoke".into(),
                name.clone(),
                "--lambda-endpoint".into(),
                endpoint.clone(),
            ],
        }
    }
}

impl RotateArgs {
    /// Rotates the secret and prints the report; `Ok(false)` when the
    /// rotation did not complete.
    pub async fn run(self) -> anyhow::Result<bool> {
        let Some(endpoint) = endpoint::secrets_manager(self.endpoint.as_deref())? else {
            bail!(
                "give --endpoint (or AWS_ENDPOINT_URL_SECRETS_MANAGER): the local runner stages rotations the way an emulator allows; against AWS, use RotateSecret with the deployed function"
            );
        };
        // Everything that can be checked is checked before a version is staged.
        let runner = match (&self.invoke, &self.lambda_endpoint) {
            (Some(name), Some(lambda)) => Runner::Invoke {
                name: name.clone(),
                endpoint: lambda.clone(),
            },
            (Some(_), None) => bail!(
                "--invoke needs --lambda-endpoint (sam local start-lambda's or cargo lambda watch's Invoke endpoint): the secret is in the emulator at {endpoint}, which a function deployed in AWS cannot read; or run a local binary with --function"
            ),
            (None, _) => {
                let given = self.function.as_deref().unwrap_or(DEFAULT_FUNCTION);
                Runner::Binary {
                    given: given.to_owned(),
                    path: locate_function(given)?,
                }
            }
        };
        if let Some(kind) = runner.kind() {
            check_settings(kind, &self.env)?;
        }
        let config = emulator_config(&endpoint);
        let store = AwsStore::new(aws_sdk_secretsmanager::Client::new(&config));
        let arn = find_secret(&store, &endpoint, &self.secret_id).await?;
        let options = RotateOptions {
            secret_id: arn.clone(),
            token: self.token.clone(),
            test_only: self.test_only,
            step_timeout: Duration::from_secs(self.step_timeout),
        };
        let staging = Staging {
            lambda: Some(aws_sdk_lambda::Client::new(&config)),
            rotation_function: self.rotation_function.clone(),
            restore_rotation_off: true,
            leave_rotation_off: self.leave_rotation_off,
        };
        let next = NextSteps {
            commands: Commands::new(Some(&endpoint)),
            arn,
            runner: runner.clone(),
            given_function: self.function.is_some(),
            env: self.env.clone(),
            step_timeout: self.step_timeout,
        };
        let outcome = match &runner {
            Runner::Invoke { name, endpoint } => {
                let remote = LambdaFunction::local(endpoint, name);
                rotate_with(&store, &remote, &options, &staging).await
            }
            Runner::Binary { path, .. } => {
                let mut function_env = rotor_testbed::moto::local_env(&endpoint);
                function_env.extend(self.env.iter().cloned());
                let function = LocalFunction::start(path, &function_env).await?;
                let outcome = rotate_with(&store, &function, &options, &staging).await;
                // The function's own log lines, then our account of the rotation.
                eprint!("{}", function.output());
                outcome
            }
        };
        let run = match outcome {
            Ok(run) => run,
            Err(error) => match error.downcast::<InProgress>() {
                Ok(busy) => {
                    let commands = next.commands_for(&busy.version, busy.has_value, None);
                    bail!("{busy}.\n{commands}")
                }
                Err(other) => return Err(other),
            },
        };
        print!("{}", report(&run));
        let in_flight = run.after.versions.has_label(&run.token, AWSPENDING);
        if !run.succeeded() && in_flight {
            let has_value = store
                .get_value(
                    &run.secret,
                    VersionSelector::Id(&run.token, Some(AWSPENDING)),
                )
                .await
                .ok()
                .map(|v| v.is_some());
            print!(
                "{}",
                next.commands_for(&run.token, has_value, run.settings.as_ref())
            );
        }
        Ok(run.succeeded())
    }
}

/// The function's own parser reads the settings it would start with (the
/// `--env` given, over this process's environment, which it inherits): a
/// setting it refuses fails every step, so the run is refused before a
/// version is staged.
fn check_settings(kind: Kind, env: &[(String, String)]) -> anyhow::Result<()> {
    if kind == Kind::Scheduler {
        bail!(
            "rotation-scheduler starts rotations and cannot run one: give a rotation function with --function"
        );
    }
    let mut settings: BTreeMap<String, String> = std::env::vars().collect();
    settings.extend(env.iter().cloned());
    if let Err(problem) = read_settings(kind, &settings) {
        bail!(
            "{} would refuse every step with these settings: {problem}; fix the --env (or the variable in this environment)",
            kind.name()
        );
    }
    Ok(())
}

/// The secret's ARN, or the endpoint's failure in the operator's terms
/// (nothing listening, not Secrets Manager, no answer, no such secret).
async fn find_secret(store: &AwsStore, endpoint: &str, secret_id: &str) -> anyhow::Result<String> {
    let call = Call {
        service: Service::SecretsManager,
        endpoint: Some(endpoint),
        operation: "DescribeSecret",
        subject: Some(secret_id),
    };
    let described = store
        .client()
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| explain(&call, &e))?;
    Ok(described.arn().unwrap_or(secret_id).to_owned())
}

/// What to run after a run that left its version AWSPENDING.
struct NextSteps {
    commands: Commands,
    arn: String,
    runner: Runner,
    given_function: bool,
    env: Vec<(String, String)>,
    step_timeout: u64,
}

impl NextSteps {
    /// The options that run the same function the same way.
    fn function_options(&self) -> Vec<String> {
        let mut options = self.runner.options(self.given_function);
        for (name, value) in &self.env {
            options.extend(["--env".to_owned(), format!("{name}={value}")]);
        }
        options
    }

    /// The commands that resume the rotation to `version`, and cancel it
    /// where that cannot lose a credential: only a version without a value,
    /// of a function that does not make its value at the target (where the
    /// value may exist only in the function's memory, doctor resumes).
    fn commands_for(
        &self,
        version: &str,
        has_value: Option<bool>,
        settings: Option<&SettingsReport>,
    ) -> String {
        let mut resume = vec![
            "rotate".to_owned(),
            self.arn.clone(),
            "--token".into(),
            version.to_owned(),
        ];
        resume.extend(self.function_options());
        if self.step_timeout != STEP_SECONDS {
            resume.extend(["--step-timeout".into(), self.step_timeout.to_string()]);
        }
        if let Some(function) = settings.and_then(SettingsReport::to_restore) {
            resume.extend(["--rotation-function".into(), function.to_owned()]);
        }
        let was_off = settings.is_some_and(|s| !s.before.enabled);
        if was_off {
            resume.push("--leave-rotation-off".into());
        }
        let mut doctor = vec![
            "doctor".to_owned(),
            self.arn.clone(),
            "--fix".into(),
            "--stuck-after-minutes".into(),
            "0".into(),
        ];
        if let Runner::Binary { given, .. } = &self.runner {
            doctor.extend(["--function".into(), given.clone()]);
            for (name, value) in &self.env {
                doctor.extend(["--env".to_owned(), format!("{name}={value}")]);
            }
        }
        let value = match has_value {
            Some(true) => "with a value",
            Some(false) => "without a value",
            None => "(its value could not be read)",
        };
        let mut out = String::new();
        let _ = writeln!(out, "  version {version} is still AWSPENDING, {value}.");
        let _ = writeln!(
            out,
            "  resume it once the cause is fixed (every step is idempotent):"
        );
        let _ = writeln!(out, "    {}", self.commands.rotor(&resume));
        let cancellable = has_value == Some(false)
            && self.runner.kind() != Some(Kind::Oauth)
            && matches!(self.runner, Runner::Binary { .. });
        if cancellable {
            let cancel = [
                "secretsmanager",
                "update-secret-version-stage",
                "--secret-id",
                &self.arn,
                "--version-stage",
                AWSPENDING,
                "--remove-from-version-id",
                version,
            ];
            let _ = writeln!(
                out,
                "  or cancel it (createSecret stored nothing, so nothing is lost):"
            );
            let _ = writeln!(out, "    {}", self.commands.aws(cancel));
            let _ = writeln!(out, "  or let doctor choose the repair that loses nothing:");
        } else {
            let _ = writeln!(
                out,
                "  or let doctor choose the repair that loses nothing (it never cancels a rotation whose credential may exist):"
            );
        }
        let _ = writeln!(out, "    {}", self.commands.rotor(&doctor));
        if was_off {
            let off = [
                "secretsmanager",
                "cancel-rotate-secret",
                "--secret-id",
                &self.arn,
            ];
            let _ = writeln!(
                out,
                "  rotation was off before this run and stays on while the version is in flight (the steps need it); after a cancel, turn it off again:"
            );
            let _ = writeln!(out, "    {}", self.commands.aws(off));
        }
        out
    }
}
