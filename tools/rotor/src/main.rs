//! `rotor`: rotate a secret locally, playing Secrets Manager's part. Glue only:
//! each subcommand's options and work live in its own module of `rotor_cli`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rotor_cli::rotate::RotateArgs;
#[cfg(feature = "testbed")]
use rotor_cli::{bench::BenchArgs, demo::DemoArgs};

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
    Demo(DemoArgs),
    /// Measure a rotation function against a throwaway moto server (and, for the
    /// rds targets, a throwaway database server): cold start, step latencies,
    /// peak memory and Secrets Manager calls, as a Markdown table. The fleet
    /// target measures rotation-scheduler instead: the rate at which one run
    /// starts rotations for a fleet of due secrets, against the allowed rate.
    Bench(BenchArgs),
    /// Rotate one secret: stage the pending version, then run the function's
    /// four steps in one warm process over the Lambda Runtime API.
    Rotate(RotateArgs),
    /// Every secret's rotation at a glance: schedule, last and next rotation,
    /// rotation in flight, and a health word (ok, overdue, stuck,
    /// misconfigured). Exits 1 when any secret needs attention.
    Status(rotor_cli::status::StatusArgs),
    /// Why one secret's rotation is stuck or would fail, and the command that
    /// fixes each problem; --fix applies the repairs that cannot lose a
    /// working credential. Exits 1 when anything needs attention.
    Doctor(rotor_cli::doctor::DoctorArgs),
}

/// Without the `testbed` feature, `demo` and `bench` are still commands, so that
/// they can say how to get them rather than be unknown.
#[cfg(not(feature = "testbed"))]
#[derive(clap::Args)]
struct NotBuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

#[cfg(not(feature = "testbed"))]
type DemoArgs = NotBuilt;
#[cfg(not(feature = "testbed"))]
type BenchArgs = NotBuilt;

#[cfg(not(feature = "testbed"))]
fn not_built(command: &str) -> anyhow::Result<bool> {
    anyhow::bail!(
        "`rotor {command}` needs the test bed (throwaway moto and database servers), which this build leaves out: \
         install with `cargo install --path tools/rotor --features testbed`, or run scripts/{command}.sh from a checkout"
    )
}

/// This process's command line, quoted for a POSIX shell where needed.
#[cfg(feature = "testbed")]
fn command_line() -> String {
    std::env::args()
        .map(|arg| rotor_cli::commands::quote(&arg))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        #[cfg(feature = "testbed")]
        Command::Demo(args) => args.run().await,
        #[cfg(feature = "testbed")]
        Command::Bench(args) => args.run(command_line()).await,
        #[cfg(not(feature = "testbed"))]
        Command::Demo(_) => not_built("demo"),
        #[cfg(not(feature = "testbed"))]
        Command::Bench(_) => not_built("bench"),
        Command::Rotate(args) => args.run().await,
        Command::Status(args) => rotor_cli::status::run(&args).await,
        Command::Doctor(args) => rotor_cli::doctor::run(&args).await,
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("rotor: {error:#}");
            ExitCode::from(2)
        }
    }
}
