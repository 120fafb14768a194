//! `rotor`: rotate a secret locally, playing Secrets Manager's part.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rotor_cli::bench::Target;
use rotor_cli::function::{LocalFunction, function_binary};
use rotor_cli::rotate::{LambdaFunction, RotateOptions, report, rotate};
use rotor_core::AwsStore;

/// Rotate AWS Secrets Manager secrets with rotor's functions, locally.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rotate sample secrets end to end against a throwaway moto server.
    Demo,
    /// Measure a rotation function against a throwaway moto server (and, for the
    /// rds targets, a throwaway database server): cold start, step latencies,
    /// peak memory and Secrets Manager calls, as a Markdown table. The fleet
    /// target measures rotation-scheduler instead: the rate at which one run
    /// starts rotations for a fleet of due secrets, against the allowed rate.
    Bench {
        /// What to measure.
        #[arg(long, value_enum, default_value_t = Target::Generic)]
        target: Target,
        /// The function binary [default: the target's, generic-rotation,
        /// rds-rotation or rotation-scheduler, beside rotor].
        #[arg(long)]
        function: Option<PathBuf>,
        /// How many runs, each a fresh process doing one full rotation.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// fleet: how many secrets the scheduler starts rotations for.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        secrets: u32,
        /// fleet: the scheduler's RATE_PER_SECOND, RotateSecret calls a second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
    },
    /// Rotate one secret: stage the pending version, then run the function's
    /// four steps in one warm process over the Lambda Runtime API.
    Rotate {
        /// The secret's ARN or name.
        secret_id: String,
        /// The ClientRequestToken (version id); a new one when absent. Repeating
        /// a finished token does nothing; repeating a pending one resumes it.
        #[arg(long)]
        token: Option<String>,
        /// The function binary, or the name of one beside rotor.
        #[arg(long, default_value = "generic-rotation")]
        function: String,
        /// Invoke this function (name or ARN) through the Lambda Invoke API
        /// instead of running a binary: one served by `sam local start-lambda`
        /// or `cargo lambda watch`, or deployed in AWS.
        #[arg(long, value_name = "FUNCTION")]
        invoke: Option<String>,
        /// The Lambda Invoke endpoint for --invoke, such as http://127.0.0.1:3001
        /// for `sam local start-lambda`; AWS's when absent.
        #[arg(long, requires = "invoke")]
        lambda_endpoint: Option<String>,
        /// The Secrets Manager endpoint (an emulator such as moto); passed to the
        /// function too. Without it, AWS_ENDPOINT_URL_SECRETS_MANAGER is used.
        #[arg(long)]
        endpoint: Option<String>,
        /// Run only testSecret, as RotateSecret with RotateImmediately=false.
        #[arg(long)]
        test_only: bool,
        /// Extra environment for the function, as NAME=VALUE (repeatable).
        #[arg(long = "env", value_parser = parse_env)]
        env: Vec<(String, String)>,
        /// Seconds each step may take.
        #[arg(long, default_value_t = 30)]
        step_timeout: u64,
    },
    /// Every secret's rotation at a glance: schedule, last and next rotation,
    /// rotation in flight, and a health word (ok, overdue, stuck,
    /// misconfigured). Exits 1 when any secret needs attention.
    Status(rotor_cli::status::StatusArgs),
    /// Why one secret's rotation is stuck or would fail, and the command that
    /// fixes each problem; --fix applies the repairs that cannot lose a
    /// working credential. Exits 1 when anything needs attention.
    Doctor(rotor_cli::doctor::DoctorArgs),
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

/// This process's command line, quoted for a POSIX shell where needed.
fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("rotor: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Status(args) => rotor_cli::status::run(&args).await,
        Command::Doctor(args) => rotor_cli::doctor::run(&args).await,
        Command::Demo => {
            print!("{}", rotor_cli::demo::run().await?);
            Ok(true)
        }
        Command::Bench {
            target,
            function,
            runs,
            secrets,
            rate,
        } => {
            let options = rotor_cli::bench::BenchOptions {
                target,
                function: function.unwrap_or_else(|| function_binary(target.function_name())),
                runs,
                command_line: command_line(),
                secrets,
                rate,
            };
            print!("{}", rotor_cli::bench::run(&options).await?);
            Ok(true)
        }
        Command::Rotate {
            secret_id,
            token,
            function,
            invoke,
            lambda_endpoint,
            endpoint,
            test_only,
            env,
            step_timeout,
        } => {
            let endpoint =
                endpoint.or_else(|| std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").ok());
            let Some(endpoint) = endpoint else {
                anyhow::bail!(
                    "give --endpoint (or AWS_ENDPOINT_URL_SECRETS_MANAGER): the local runner stages rotations the way an emulator allows; against AWS, use RotateSecret with the deployed function"
                );
            };
            let store = AwsStore::new(rotor_cli::moto::local_client(&endpoint));
            let options = RotateOptions {
                secret_id,
                token,
                test_only,
                step_timeout: Duration::from_secs(step_timeout),
            };
            let run = if let Some(name) = invoke {
                let remote = match lambda_endpoint {
                    Some(url) => LambdaFunction::local(&url, &name),
                    None => LambdaFunction::from_env(&name).await,
                };
                rotate(&store, &remote, &options).await?
            } else {
                let binary = if function.contains('/') {
                    PathBuf::from(function)
                } else {
                    function_binary(&function)
                };
                let mut function_env = rotor_cli::moto::local_env(&endpoint);
                function_env.extend(env);
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
}
