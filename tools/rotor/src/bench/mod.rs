//! `rotor bench`: measures a rotation function on this machine and prints a
//! Markdown table for the README. It is a benchmark, not a test: it asserts
//! nothing about timings, only that every rotation completed (and, for the
//! database targets, really changed the password).
//!
//! A [`Target`] says what is measured, and only supplies the setup: the secrets
//! (created in moto), the function's environment and a check after each
//! rotation. `generic` runs generic-rotation on a plain string and a JSON secret
//! in turn; `rds-postgres` and `rds-mariadb` run rds-rotation (single user) on an
//! RDS-format secret whose user lives on a throwaway server with TLS required.
//!
//! The measuring is the same for every target. One moto server plays Secrets
//! Manager. Each run spawns a fresh function process and rotates one secret with
//! [`rotate`], as Secrets Manager would: cold start, time to the first response,
//! each step, the whole rotation and the process's peak RSS. The function, and
//! only the function, reaches moto through a counting proxy that tallies its
//! Secrets Manager calls by `X-Amz-Target`; rotor's own staging calls go to moto
//! directly. No secret value is ever printed.
//!
//! `fleet` is different: it measures `rotation-scheduler`, not a rotation
//! function. See [`fleet`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString, Step};
use serde_json::Value;

use rotor_testbed::db::{ClientLogin, ClientTls, MariaDb, Postgres, TlsMode, random_password};
use rotor_testbed::moto::{Moto, configure_rotation, local_env, workspace_root};
use rotor_testbed::sm_proxy::SmProxy;

use crate::function::{LocalFunction, function_binary};
use crate::rotate::{RotateOptions, RotationRun, report, rotate};

mod fleet;
mod rotation;

/// `rotor bench`'s command line.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Target::Generic)]
    pub target: Target,
    /// The function binary [default: the target's, generic-rotation,
    /// rds-rotation or rotation-scheduler, beside rotor].
    #[arg(long)]
    pub function: Option<PathBuf>,
    /// How many runs, each a fresh process doing one full rotation.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// fleet: how many secrets the scheduler starts rotations for.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub secrets: u32,
    /// fleet: the scheduler's RATE_PER_SECOND, RotateSecret calls a second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
}

impl BenchArgs {
    /// Runs the benchmark; `command_line` is printed with the results.
    pub async fn run(self, command_line: String) -> anyhow::Result<bool> {
        let options = BenchOptions {
            target: self.target,
            function: self
                .function
                .unwrap_or_else(|| function_binary(self.target.function_name())),
            runs: self.runs,
            command_line,
            secrets: self.secrets,
            rate: self.rate,
        };
        print!("{}", run(&options).await?);
        Ok(true)
    }
}

/// What `rotor bench` measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// generic-rotation: a plain-string and a JSON secret in turn.
    #[default]
    Generic,
    /// rds-rotation, single user: a PostgreSQL 15 user on a throwaway server (TLS required).
    RdsPostgres,
    /// rds-rotation, single user: a MariaDB 10.11 user on a throwaway server (TLS required).
    #[value(name = "rds-mariadb")]
    RdsMariaDb,
    /// redis-rotation: a Redis 7 ACL user on a throwaway server (TLS, ACL file),
    /// its admin secret named by MASTER_SECRET_ARN.
    Redis,
    /// ldap-rotation: an OpenLDAP 2.5 account on a throwaway server (StartTLS,
    /// verified), which changes its own password.
    Ldap,
    /// iam-rotation: an IAM user's access key, in moto's IAM with
    /// authentication on (a second moto server).
    Iam,
    /// rotation-scheduler: one run starting rotations for a fleet of due secrets
    /// (1,000 by default) at `--rate` a second.
    Fleet,
}

impl Target {
    /// The function binary this target measures.
    pub fn function_name(self) -> &'static str {
        match self {
            Target::Generic => "generic-rotation",
            Target::RdsPostgres | Target::RdsMariaDb => "rds-rotation",
            Target::Redis => "redis-rotation",
            Target::Ldap => "ldap-rotation",
            Target::Iam => "iam-rotation",
            Target::Fleet => "rotation-scheduler",
        }
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// What the function rotates.
    pub target: Target,
    /// The function binary.
    pub function: PathBuf,
    /// How many runs, each with a fresh process and one rotation.
    pub runs: u32,
    /// The command line, as printed with the results.
    pub command_line: String,
    /// fleet: how many secrets.
    pub secrets: u32,
    /// fleet: the scheduler's `RATE_PER_SECOND`.
    pub rate: f64,
}

/// Runs the benchmark and returns the Markdown report; fails if any run's
/// rotation did not complete.
pub async fn run(options: &BenchOptions) -> anyhow::Result<String> {
    match options.target {
        Target::Fleet => fleet::run(options).await,
        _ => rotation::run(options).await,
    }
}

/// The process's peak resident set size (`VmHWM`), in kB.
fn peak_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmHWM line in {path}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, min and max; the median of an even count is the mean of the middle two.
fn summary(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, values[0], values[n - 1])
}

/// `nproc` and the CPU model from /proc/cpuinfo.
fn machine() -> (String, String) {
    let cpus = std::process::Command::new("nproc")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.to_string())
        })
        .unwrap_or_else(|| "?".into());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    (cpus, model)
}

/// moto's version, from the interpreter [`Moto::start`] uses.
fn moto_version() -> String {
    let python = std::env::var_os("ROTOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    std::process::Command::new(python)
        .args(["-c", "import moto; print(moto.__version__)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "(version unknown)".into())
}

/// The closing table of a report: the binary measured and the machine.
fn setup_table(out: &mut String, role: &str, binary: &Path, size: u64) {
    let (cpus, model) = machine();
    let _ = writeln!(out, "\n| Setup | |\n|---|---|");
    let _ = writeln!(
        out,
        "| {role} binary | `{}`: {size} bytes ({:.2} MiB) |",
        binary.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    let _ = writeln!(out, "| Machine | {cpus} CPUs (`nproc`), {model} |");
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(summary(vec![3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(summary(vec![4.0, 1.0, 3.0, 2.0]), (2.5, 1.0, 4.0));
    }
}
