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
//! function. See [`run_fleet`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString, Step};
use serde_json::Value;

use crate::db::{ClientLogin, ClientTls, MariaDb, Postgres, TlsMode, random_password};
use crate::function::LocalFunction;
use crate::moto::{Moto, configure_rotation, local_env, workspace_root};
use crate::rotate::{RotateOptions, RotationRun, report, rotate};
use crate::sm_proxy::SmProxy;

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

/// One secret the runs rotate (runs take the kinds in turn).
struct Kind {
    secret: &'static str,
    /// For the progress lines and the calls table.
    label: &'static str,
    /// For the description above the tables.
    noun: &'static str,
}

/// What a target supplies: its secrets, already created in moto, the function's
/// environment, and the database whose user the secret holds, if any.
struct Fixture {
    kinds: Vec<Kind>,
    env: Vec<(String, String)>,
    database: Option<Database>,
}

/// The login user the database targets rotate.
const DB_USER: &str = "bench_app";

impl Fixture {
    /// generic-rotation's secrets: a plain string, and JSON with other fields.
    async fn generic(store: &AwsStore, endpoint: &str) -> anyhow::Result<Fixture> {
        let kinds = vec![
            Kind {
                secret: "bench/plain-string",
                label: "plain string",
                noun: "a plain-string secret",
            },
            Kind {
                secret: "bench/json",
                label: "JSON",
                noun: "a JSON secret",
            },
        ];
        let values = [
            SecretString::from(format!("bench-{}", uuid::Uuid::new_v4().simple())),
            SecretString::from(r#"{"username":"app","password":"x","host":"h"}"#),
        ];
        for (kind, value) in kinds.iter().zip(&values) {
            store
                .create_secret(kind.secret, value, &[])
                .await
                .with_context(|| format!("creating {}", kind.secret))?;
        }
        let mut env = local_env(endpoint);
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
        Ok(Fixture {
            kinds,
            env,
            database: None,
        })
    }

    /// rds-rotation's: a throwaway server (TLS required), a login user with a
    /// random password, and its RDS-format secret.
    async fn rds(store: &AwsStore, endpoint: &str, target: Target) -> anyhow::Result<Fixture> {
        let database = Database::start(target)?;
        let password = random_password();
        database.create_user(DB_USER, &password)?;
        let value = serde_json::json!({
            "engine": database.engine(),
            "host": "127.0.0.1",
            "port": database.port(),
            "username": DB_USER,
            "password": password.expose_secret(),
        });
        let kind = match database {
            Database::Postgres(_) => Kind {
                secret: "bench/postgres-app",
                label: "PostgreSQL",
                noun: "an RDS-format secret for a PostgreSQL user",
            },
            Database::MariaDb(_) => Kind {
                secret: "bench/mariadb-app",
                label: "MariaDB",
                noun: "an RDS-format secret for a MariaDB user",
            },
        };
        store
            .create_secret(kind.secret, &SecretString::from(value.to_string()), &[])
            .await
            .with_context(|| format!("creating {}", kind.secret))?;
        let mut env = local_env(endpoint);
        env.push((
            "SSL_CERT_FILE".into(),
            database.ca_path().display().to_string(),
        ));
        env.push(("ROTATION_STRATEGY".into(), "single".into()));
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
        Ok(Fixture {
            kinds: vec![kind],
            env,
            database: Some(database),
        })
    }

    /// After a rotation of `secret`, for a database target: the AWSCURRENT
    /// password differs from AWSPREVIOUS's and logs in, and neither shows in the
    /// function's `output`. Nothing to check for generic.
    async fn check(&self, store: &AwsStore, secret: &str, output: &str) -> anyhow::Result<()> {
        let Some(database) = &self.database else {
            return Ok(());
        };
        let credentials = |label: &'static str| async move {
            let stored = store
                .get_value(secret, VersionSelector::Label(label))
                .await
                .with_context(|| format!("reading {secret}'s {label} value"))?
                .with_context(|| format!("{secret} has no {label} value"))?;
            let value: Value = serde_json::from_str(stored.value.expose_secret())
                .map_err(|_| anyhow::anyhow!("{secret}'s {label} value is not JSON"))?;
            match (value["username"].as_str(), value["password"].as_str()) {
                (Some(user), Some(password)) => {
                    anyhow::Ok((user.to_owned(), SecretString::from(password)))
                }
                _ => bail!("{secret}'s {label} value has no username or password"),
            }
        };
        let (user, new) = credentials(AWSCURRENT).await?;
        let (_, old) = credentials(AWSPREVIOUS).await?;
        ensure!(
            new.expose_secret() != old.expose_secret(),
            "the rotation of {secret} left the password as it was"
        );
        ensure!(
            !output.contains(new.expose_secret()) && !output.contains(old.expose_secret()),
            "the function's output holds a password of {secret}"
        );
        database.logs_in(&user, &new).with_context(|| {
            format!(
                "{} could not log in as {user} with {secret}'s new AWSCURRENT password",
                database.client()
            )
        })
    }
}

/// The server a database target's secret points at.
enum Database {
    Postgres(Postgres),
    MariaDb(MariaDb),
}

impl Database {
    fn start(target: Target) -> anyhow::Result<Database> {
        Ok(match target {
            Target::RdsPostgres => Database::Postgres(Postgres::start(TlsMode::Required)?),
            Target::RdsMariaDb => Database::MariaDb(MariaDb::start(TlsMode::Required)?),
            Target::Generic | Target::Fleet => bail!("this target has no database"),
        })
    }

    /// The secret's `engine`.
    fn engine(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::MariaDb(_) => "mariadb",
        }
    }

    fn port(&self) -> u16 {
        match self {
            Database::Postgres(db) => db.port(),
            Database::MariaDb(db) => db.port(),
        }
    }

    fn ca_path(&self) -> &Path {
        match self {
            Database::Postgres(db) => db.ca_path(),
            Database::MariaDb(db) => db.ca_path(),
        }
    }

    /// The CLI client that checks logins.
    fn client(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "psql",
            Database::MariaDb(_) => "the mariadb client",
        }
    }

    /// Creates a login user (no other privileges) as the admin.
    fn create_user(&self, user: &str, password: &SecretString) -> anyhow::Result<()> {
        match self {
            Database::Postgres(db) => db.psql(&format!(
                "CREATE ROLE {user} LOGIN PASSWORD '{}'",
                password.expose_secret()
            )),
            Database::MariaDb(db) => db.sql(&format!(
                "CREATE USER '{user}'@'%' IDENTIFIED BY '{}'",
                password.expose_secret()
            )),
        }
        .with_context(|| format!("creating the database user {user}"))?;
        Ok(())
    }

    /// Whether `user` logs in with `password` (verified TLS), as an error if not.
    fn logs_in(&self, user: &str, password: &SecretString) -> anyhow::Result<()> {
        let login = ClientLogin::new(
            user,
            SecretString::from(password.expose_secret()),
            ClientTls::Verify(self.ca_path().to_path_buf()),
        );
        match self {
            Database::Postgres(db) => db.psql_with(&login, "postgres", "SELECT 1"),
            Database::MariaDb(db) => db.sql_with(&login, "SELECT 1"),
        }
        .map(drop)
    }

    /// The server's name and version, as it reports them.
    fn version(&self) -> String {
        let reported = match self {
            Database::Postgres(db) => db.psql("SHOW server_version"),
            Database::MariaDb(db) => db.sql("SELECT VERSION()"),
        };
        let name = match self {
            Database::Postgres(_) => "PostgreSQL",
            Database::MariaDb(_) => "MariaDB",
        };
        match reported {
            Ok(version) => format!("{name} {}", version.trim()),
            Err(_) => format!("{name} (version unknown)"),
        }
    }
}

/// What one run measured.
struct Run {
    kind: usize,
    cold_start: Duration,
    first_response: Duration,
    steps: [Duration; 4],
    peak_rss_kb: u64,
    calls: BTreeMap<String, u32>,
}

/// Runs the benchmark and returns the Markdown report; fails if any run's
/// rotation did not complete.
pub async fn run(options: &BenchOptions) -> anyhow::Result<String> {
    if options.target == Target::Fleet {
        return run_fleet(options).await;
    }
    ensure!(options.runs > 0, "--runs must be at least 1");
    let binary_size = std::fs::metadata(&options.function)
        .with_context(|| {
            format!(
                "{} (build it with cargo build --release -p {})",
                options.function.display(),
                options.target.function_name()
            )
        })?
        .len();

    let moto = Moto::start()?;
    let store = AwsStore::new(moto.client());
    let proxy = SmProxy::start(moto.endpoint()).await?;
    let fixture = match options.target {
        Target::Generic => Fixture::generic(&store, proxy.endpoint()).await?,
        target => Fixture::rds(&store, proxy.endpoint(), target).await?,
    };

    // One unmeasured rotation of each secret first, so that every measured one
    // is a steady-state rotation (the secret already has an AWSPREVIOUS version,
    // which createSecret reads) and moto has served each operation once.
    let warm_up = LocalFunction::start(&options.function, &fixture.env).await?;
    for kind in &fixture.kinds {
        rotate_completely(&store, &warm_up, kind.secret)
            .await
            .with_context(|| format!("warm-up rotation of {}", kind.secret))?;
        fixture
            .check(&store, kind.secret, &warm_up.output())
            .await
            .with_context(|| format!("warm-up rotation of {}", kind.secret))?;
    }
    drop(warm_up);

    let mut runs = Vec::new();
    for i in 0..options.runs {
        let kind = i as usize % fixture.kinds.len();
        let run = run_once(&store, &proxy, &options.function, &fixture, kind)
            .await
            .with_context(|| {
                format!(
                    "run {} of {} ({})",
                    i + 1,
                    options.runs,
                    fixture.kinds[kind].secret
                )
            })?;
        eprintln!(
            "rotor bench: run {:>3}/{}  {:<12}  cold start {:>6.1} ms  first response {:>6.1} ms  rotation {:>6.1} ms  peak RSS {:>5.1} MiB",
            i + 1,
            options.runs,
            fixture.kinds[kind].label,
            ms(run.cold_start),
            ms(run.first_response),
            ms(run.steps.iter().sum()),
            run.peak_rss_kb as f64 / 1024.0
        );
        runs.push(run);
    }
    ensure!(
        proxy.log().failures == 0,
        "the counting proxy failed to forward {} request(s) to moto",
        proxy.log().failures
    );
    Ok(render(options, &fixture, binary_size, &runs))
}

/// One measured run: a fresh process rotates `fixture.kinds[kind]` once; then,
/// unmeasured, the fixture checks the result.
async fn run_once(
    store: &AwsStore,
    proxy: &SmProxy,
    binary: &Path,
    fixture: &Fixture,
    kind: usize,
) -> anyhow::Result<Run> {
    let secret_id = fixture.kinds[kind].secret;
    proxy.reset();
    let spawned = Instant::now();
    let function = LocalFunction::start(binary, &fixture.env).await?;
    let started = spawned.elapsed();
    let cold_start = function
        .cold_start()
        .context("the function never polled the Runtime API")?;
    let rotation = rotate_completely(store, &function, secret_id).await?;
    let pid = function.pid().context("the function process has exited")?;
    let peak_rss_kb = peak_rss_kb(pid)?;
    let calls = proxy.take_calls();
    let output = function.output();
    drop(function);
    fixture.check(store, secret_id, &output).await?;

    let mut steps = [Duration::ZERO; 4];
    for (slot, step) in steps.iter_mut().zip(&rotation.steps) {
        *slot = step.duration;
    }
    Ok(Run {
        kind,
        cold_start,
        // Spawn until the first poll, then from queueing createSecret to its
        // answer. Between the two, rotate() stages the version with rotor's own
        // calls while the function idles in its long poll; that wait is rotor's,
        // not the function's, so it is left out — as if createSecret had been
        // queued when the process started, as Lambda does on a cold invocation.
        first_response: started + steps[0],
        steps,
        peak_rss_kb,
        calls,
    })
}

/// One rotation of `secret_id` to a new version with [`rotate`]; an error
/// unless all four steps succeeded and the new version is AWSCURRENT.
async fn rotate_completely(
    store: &AwsStore,
    function: &LocalFunction,
    secret_id: &str,
) -> anyhow::Result<RotationRun> {
    let token = uuid::Uuid::new_v4().to_string();
    let options = RotateOptions {
        secret_id: secret_id.into(),
        token: Some(token.clone()),
        test_only: false,
        step_timeout: Duration::from_secs(30),
    };
    let rotation = match rotate(store, function, &options).await {
        Ok(rotation) => rotation,
        Err(error) => bail!("{error:#}\nthe function's output:\n{}", function.output()),
    };
    let ran: Vec<&str> = rotation.steps.iter().map(|s| s.step.as_str()).collect();
    let all: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
    if !rotation.succeeded()
        || ran != all
        || rotation.after.versions.current() != Some(token.as_str())
    {
        bail!(
            "the rotation did not complete:\n{}the function's output:\n{}",
            report(&rotation),
            function.output()
        );
    }
    Ok(rotation)
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

fn render(options: &BenchOptions, fixture: &Fixture, binary_size: u64, runs: &[Run]) -> String {
    let mut out = String::new();
    let kinds = &fixture.kinds;
    let subject = match kinds.as_slice() {
        [only] => format!(" of {}", only.noun),
        _ => {
            let each: Vec<String> = kinds
                .iter()
                .enumerate()
                .map(|(k, kind)| {
                    let n = runs.iter().filter(|r| r.kind == k).count();
                    format!("{} ({n} runs)", kind.noun)
                })
                .collect();
            format!(", alternating {}", each.join(" and "))
        }
    };
    let (strategy, against, checked) = match &fixture.database {
        None => (
            String::new(),
            format!("against moto {} on 127.0.0.1", moto_version()),
            String::new(),
        ),
        Some(database) => (
            " (`ROTATION_STRATEGY=single`)".to_owned(),
            format!(
                "against moto {} and a throwaway {} server on 127.0.0.1 with TLS required (the function verifies its certificate against the server's test CA, given as `SSL_CERT_FILE`)",
                moto_version(),
                database.version()
            ),
            format!(
                " After each run, {} logs in with the new AWSCURRENT password, which differs from the previous one.",
                database.client()
            ),
        ),
    };
    let _ = writeln!(
        out,
        "`{}`\n\n{} runs, each a fresh `{}` process doing one full rotation{strategy}{subject}, {against}. Each secret was rotated once beforehand, unmeasured, so every run is a steady-state rotation.{checked}\n",
        options.command_line,
        runs.len(),
        options
            .function
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
    );

    let _ = writeln!(out, "| Measure | median | min | max |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let mut row = |label: &str, values: Vec<f64>, decimals: usize| {
        let (median, min, max) = summary(values);
        let _ = writeln!(
            out,
            "| {label} | {median:.decimals$} | {min:.decimals$} | {max:.decimals$} |"
        );
    };
    row(
        "Cold start: spawn → first Runtime API poll (ms)",
        runs.iter().map(|r| ms(r.cold_start)).collect(),
        1,
    );
    row(
        "Spawn → first response, createSecret answered (ms)",
        runs.iter().map(|r| ms(r.first_response)).collect(),
        1,
    );
    for (i, step) in Step::ALL.iter().enumerate() {
        row(
            &format!("`{}` (ms)", step.as_str()),
            runs.iter().map(|r| ms(r.steps[i])).collect(),
            1,
        );
    }
    row(
        "Whole rotation, four steps (ms)",
        runs.iter().map(|r| ms(r.steps.iter().sum())).collect(),
        1,
    );
    row(
        "Peak RSS, `VmHWM` (MiB)",
        runs.iter().map(|r| r.peak_rss_kb as f64 / 1024.0).collect(),
        1,
    );

    // Calls per rotation, by operation and kind of secret; a range if runs differed.
    let operations: std::collections::BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.calls.keys().map(String::as_str))
        .collect();
    let cell = |kind: usize, count: &dyn Fn(&Run) -> u32| {
        let counts: Vec<u32> = runs.iter().filter(|r| r.kind == kind).map(count).collect();
        match (counts.iter().min(), counts.iter().max()) {
            (Some(min), Some(max)) if min == max => min.to_string(),
            (Some(min), Some(max)) => format!("{min}–{max}"),
            _ => "–".into(),
        }
    };
    let cells = |count: &dyn Fn(&Run) -> u32, bold: bool| {
        (0..kinds.len())
            .map(|k| {
                let text = cell(k, count);
                if bold { format!("**{text}**") } else { text }
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let labels: Vec<&str> = kinds.iter().map(|k| k.label).collect();
    let _ = writeln!(
        out,
        "\n| Secrets Manager calls per rotation (by the function) | {} |",
        labels.join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---:|".repeat(kinds.len()));
    for operation in &operations {
        let count = |r: &Run| r.calls.get(*operation).copied().unwrap_or(0);
        let _ = writeln!(out, "| `{operation}` | {} |", cells(&count, false));
    }
    let total = |r: &Run| r.calls.values().sum::<u32>();
    let _ = writeln!(out, "| **total** | {} |", cells(&total, true));

    setup_table(&mut out, "Function", &options.function, binary_size);
    let _ = writeln!(
        out,
        "\nSpawn → first response is the time to the first poll plus createSecret's invocation (queued → answered); rotor's own staging calls in between, while the function idles in its poll, are left out. Step times are from queueing the invocation to the function's answer. The function reaches moto through a local counting proxy, which adds a little to each of its calls."
    );
    out
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

/// The tag that puts a secret in the benchmark's fleet: `TAG_FILTER`.
const FLEET_FILTER: &str = "rotor:fleet=bench";
/// The scheduler's default `POLICY_TAG`, and every secret's policy.
const FLEET_POLICY_TAG: (&str, &str) = ("rotor:rotation-policy", "30d");
/// How long ago, by moto's shifted clock, the secrets were created: 31 days, so
/// that a 30-day policy makes every one of them due.
const FLEET_AGE_SECS: i64 = 31 * 86_400;
/// The scheduler's `MAX_CONCURRENCY`.
const FLEET_CONCURRENCY: usize = 4;
/// A rotation function that exists nowhere, with which every secret's rotation
/// is configured and which the scheduler's `ROTATION_FUNCTION_ARNS` names:
/// moto's RotateSecret then stages AWSPENDING and answers
/// ResourceNotFoundException (see tests/scheduler.rs).
const FLEET_NOWHERE: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:rotor-bench-fleet-nowhere";
/// The invocation's timeout, Lambda's maximum.
const FLEET_TIMEOUT: Duration = Duration::from_secs(900);

/// The `fleet` target: `options.secrets` secrets, all due, and one run of the
/// real `rotation-scheduler` over the Runtime API at `RATE_PER_SECOND =
/// options.rate` with `MAX_CONCURRENCY=4`, reaching moto through the counting
/// proxy. What "started" means is as in tests/scheduler.rs: each secret's
/// rotation is configured with a function that exists nowhere (one of the
/// scheduler's `ROTATION_FUNCTION_ARNS`, so RotateSecret names no function and
/// re-points nothing), so moto's RotateSecret stages the new version as AWSPENDING and answers
/// ResourceNotFoundException; the scheduler sees the version staged and reports
/// the rotation started, with a note. Afterwards rotor checks, in moto, that each
/// reported version really is AWSPENDING. Fails only if the run could not be
/// made; failures of the scheduler are reported, not raised.
pub async fn run_fleet(options: &BenchOptions) -> anyhow::Result<String> {
    ensure!(options.secrets > 0, "--secrets must be at least 1");
    ensure!(
        options.rate.is_finite() && options.rate > 0.0,
        "--rate must be a positive number"
    );
    let binary_size = std::fs::metadata(&options.function)
        .with_context(|| {
            format!(
                "{} (build it with cargo build --release -p rotation-scheduler)",
                options.function.display()
            )
        })?
        .len();

    // moto's clock, set back while the secrets are made, makes them all due.
    let mut moto = Moto::start()?;
    let client = moto.client();
    let store = AwsStore::new(client.clone());
    let (fleet_key, fleet_value) = FLEET_FILTER.split_once('=').unwrap_or((FLEET_FILTER, ""));
    let tags = [(fleet_key, fleet_value), FLEET_POLICY_TAG];
    moto.set_clock(-FLEET_AGE_SECS)?;
    let creating = Instant::now();
    for i in 0..options.secrets {
        let name = format!("bench/fleet/secret-{i:04}");
        let value = SecretString::from(format!("fleet-{}", uuid::Uuid::new_v4().simple()));
        let arn = store
            .create_secret(&name, &value, &tags)
            .await
            .with_context(|| format!("creating {name}"))?;
        // The deployer's part: the scheduler starts only rotations configured
        // with one of the deployment's functions.
        configure_rotation(&client, &arn, FLEET_NOWHERE).await?;
        if (i + 1) % 250 == 0 || i + 1 == options.secrets {
            eprintln!(
                "rotor bench: created {}/{} secrets ({:.1} s)",
                i + 1,
                options.secrets,
                creating.elapsed().as_secs_f64()
            );
        }
    }
    moto.set_clock(0)?;

    let proxy = SmProxy::start(moto.endpoint()).await?;
    let mut env = local_env(proxy.endpoint());
    for (name, value) in [
        ("TAG_FILTER", FLEET_FILTER.to_owned()),
        ("RATE_PER_SECOND", options.rate.to_string()),
        ("MAX_CONCURRENCY", FLEET_CONCURRENCY.to_string()),
        ("ROTATION_FUNCTION_ARNS", FLEET_NOWHERE.to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "warn".to_owned()),
    ] {
        env.push((name.to_owned(), value));
    }
    let function = LocalFunction::start(&options.function, &env).await?;
    proxy.reset();
    eprintln!(
        "rotor bench: invoking rotation-scheduler ({} secrets at {} a second)",
        options.secrets, options.rate
    );
    let invocation = match function.invoke(&serde_json::json!({}), FLEET_TIMEOUT).await {
        Ok(invocation) => invocation,
        Err(error) => bail!("{error}\nthe function's output:\n{}", function.output()),
    };
    let calls = proxy.take_calls();
    let window = proxy.log().rotate_window;
    let pid = function.pid().context("the function process has exited")?;
    let peak_rss_kb = peak_rss_kb(pid)?;
    drop(function);
    ensure!(
        proxy.log().failures == 0,
        "the counting proxy failed to forward {} request(s) to moto",
        proxy.log().failures
    );
    let report = match invocation.outcome {
        crate::runtime_api::Outcome::Response(report) => report,
        crate::runtime_api::Outcome::Error {
            error_type,
            error_message,
        } => bail!("the scheduler's run failed: {error_type}: {error_message}"),
    };
    let list = |name: &str| report[name].as_array().cloned().unwrap_or_default();
    let (started, skipped, failed) = (list("started"), list("skipped"), list("failed"));
    let selected = report["selected"].as_u64().unwrap_or(0);
    let retries = report["retries"].as_u64().unwrap_or(0);

    // The ground truth: each reported version is AWSPENDING in moto.
    let mut staged = 0usize;
    for entry in &started {
        let (Some(arn), Some(version)) = (entry["secret"].as_str(), entry["version"].as_str())
        else {
            continue;
        };
        let described = store
            .describe(arn)
            .await
            .with_context(|| format!("describing {arn}"))?;
        if described.versions.has_label(version, AWSPENDING) {
            staged += 1;
        }
    }
    let mut reasons: BTreeMap<String, u32> = BTreeMap::new();
    for entry in &skipped {
        *reasons
            .entry(entry["reason"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let failures = failed.len() + (started.len() - staged);
    eprintln!(
        "rotor bench: started {} (AWSPENDING verified: {staged}), skipped {}, failed {}",
        started.len(),
        skipped.len(),
        failed.len()
    );

    let wall = invocation.duration.as_secs_f64();
    let starting = window.map(|(first, last)| last.duration_since(first).as_secs_f64());
    let achieved = starting.filter(|s| *s > 0.0).map(|s| staged as f64 / s);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "`{}`\n\nOne run of `rotation-scheduler` over the Runtime API against moto {} on 127.0.0.1, with `TAG_FILTER={FLEET_FILTER}`, `RATE_PER_SECOND={}`, `MAX_CONCURRENCY={FLEET_CONCURRENCY}` and `ROTATION_FUNCTION_ARNS` naming a function that moto does not know. The {} secrets carry the fleet tag and `{}={}`, have their rotation configured with that function, and were created while moto's clock was set back 31 days, so every one is due. moto's RotateSecret then stages the new version as AWSPENDING and answers ResourceNotFoundException (where AWS would invoke the function); the scheduler sees the version staged and counts the rotation started. Afterwards rotor checked in moto that each reported version is AWSPENDING.\n",
        options.command_line,
        moto_version(),
        options.rate,
        options.secrets,
        FLEET_POLICY_TAG.0,
        FLEET_POLICY_TAG.1,
    );
    let _ = writeln!(out, "| Measure | value |\n|---|---:|");
    let _ = writeln!(
        out,
        "| Secrets (selected by the tag filter) | {} ({selected}) |",
        options.secrets
    );
    let _ = writeln!(
        out,
        "| Rotations started (AWSPENDING verified in moto) | {} ({staged}) |",
        started.len()
    );
    let skip_text = if reasons.is_empty() {
        "0".to_owned()
    } else {
        let each: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} `{r}`")).collect();
        format!("{} ({})", skipped.len(), each.join(", "))
    };
    let _ = writeln!(out, "| Skipped | {skip_text} |");
    let _ = writeln!(
        out,
        "| **Failures** (failed, or reported but not staged) | **{failures}** |"
    );
    let _ = writeln!(
        out,
        "| Calls retried (throttling, server errors) | {retries} |"
    );
    let _ = writeln!(out, "| Wall time of the invocation (s) | {wall:.2} |");
    match starting {
        Some(s) => {
            let _ = writeln!(
                out,
                "| Time spent starting: first RotateSecret sent → last answered (s) | {s:.2} |"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| Time spent starting (s) | – (no RotateSecret call) |"
            );
        }
    }
    let allowed = options.rate;
    match achieved {
        Some(rate) => {
            let _ = writeln!(
                out,
                "| Achieved rate: started / time spent starting (per s) | {rate:.2} |"
            );
            let _ = writeln!(
                out,
                "| Allowed rate, `RATE_PER_SECOND` (per s) | {allowed} |"
            );
            let _ = writeln!(
                out,
                "| **Achieved / allowed** | **{:.1} %** |",
                rate / allowed * 100.0
            );
        }
        None => {
            let _ = writeln!(out, "| Achieved rate (per s) | – |");
            let _ = writeln!(
                out,
                "| Allowed rate, `RATE_PER_SECOND` (per s) | {allowed} |"
            );
        }
    }
    let _ = writeln!(
        out,
        "| Started / wall time of the invocation (per s) | {:.2} |",
        staged as f64 / wall
    );
    let _ = writeln!(
        out,
        "| Peak RSS, `VmHWM` (MiB) | {:.1} |",
        peak_rss_kb as f64 / 1024.0
    );

    let _ = writeln!(
        out,
        "\n| Secrets Manager calls (by the scheduler) | count | per secret |\n|---|---:|---:|"
    );
    for (operation, count) in &calls {
        let _ = writeln!(
            out,
            "| `{operation}` | {count} | {:.2} |",
            f64::from(*count) / f64::from(options.secrets)
        );
    }
    let total: u32 = calls.values().sum();
    let _ = writeln!(
        out,
        "| **total** | **{total}** | **{:.2}** |",
        f64::from(total) / f64::from(options.secrets)
    );

    setup_table(&mut out, "Scheduler", &options.function, binary_size);
    let _ = writeln!(
        out,
        "\nThe wall time runs from queueing the invocation to the scheduler's answer, so it includes listing the fleet; the time spent starting is measured at the counting proxy. The scheduler spaces RotateSecret calls 1/`RATE_PER_SECOND` apart, so n calls span (n − 1) intervals plus the last call's latency. Every RotateSecret answer here is moto's ResourceNotFoundException, after which the scheduler makes one more DescribeSecret to see the version staged; against AWS, which invokes the function, that DescribeSecret is not made."
    );
    Ok(out)
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
