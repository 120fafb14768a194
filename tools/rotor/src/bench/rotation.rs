//! The rotation targets of `rotor bench` (`generic`, `rds-postgres`,
//! `rds-mariadb`): one secret rotated per run, by a fresh function process.

use super::*;

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
        let mut env = local_env(endpoint);
        if let Database::Redis(redis) = &database {
            let admin = serde_json::json!({
                "host": "127.0.0.1",
                "port": redis.tls_port(),
                "username": rotor_testbed::redis_server::ADMIN_USER,
                "password": redis.admin_password().expose_secret(),
            });
            store
                .create_secret(
                    "bench/redis-admin",
                    &SecretString::from(admin.to_string()),
                    &[],
                )
                .await
                .context("creating bench/redis-admin")?;
            env.push(("MASTER_SECRET_ARN".into(), "bench/redis-admin".into()));
        }
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
            Database::Redis(_) => Kind {
                secret: "bench/redis-app",
                label: "Redis",
                noun: "a secret for a Redis ACL user",
            },
        };
        store
            .create_secret(kind.secret, &SecretString::from(value.to_string()), &[])
            .await
            .with_context(|| format!("creating {}", kind.secret))?;
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
    Redis(rotor_testbed::redis_server::RedisServer),
}

impl Database {
    fn start(target: Target) -> anyhow::Result<Database> {
        Ok(match target {
            Target::RdsPostgres => Database::Postgres(Postgres::start(TlsMode::Required)?),
            Target::RdsMariaDb => Database::MariaDb(MariaDb::start(TlsMode::Required)?),
            Target::Redis => Database::Redis(rotor_testbed::redis_server::RedisServer::start()?),
            Target::Generic | Target::Fleet => bail!("this target has no database"),
        })
    }

    /// The secret's `engine`.
    fn engine(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::MariaDb(_) => "mariadb",
            Database::Redis(_) => "redis",
        }
    }

    fn port(&self) -> u16 {
        match self {
            Database::Postgres(db) => db.port(),
            Database::MariaDb(db) => db.port(),
            Database::Redis(db) => db.tls_port(),
        }
    }

    fn ca_path(&self) -> &Path {
        match self {
            Database::Postgres(db) => db.ca_path(),
            Database::MariaDb(db) => db.ca_path(),
            Database::Redis(db) => db.ca_path(),
        }
    }

    /// The CLI client that checks logins.
    fn client(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "psql",
            Database::MariaDb(_) => "the mariadb client",
            Database::Redis(_) => "redis-cli",
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
            Database::Redis(db) => db.create_user(user, password, &[]).map(|()| String::new()),
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
            Database::Redis(db) => {
                ensure!(
                    db.logs_in(user, password),
                    "redis-cli could not log in as {user}"
                );
                Ok(String::new())
            }
        }
        .map(drop)
    }

    /// The server's name and version, as it reports them.
    fn version(&self) -> String {
        let reported = match self {
            Database::Postgres(db) => db.psql("SHOW server_version"),
            Database::MariaDb(db) => db.sql("SELECT VERSION()"),
            Database::Redis(db) => db.admin(&["INFO", "server"]).map(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("redis_version:"))
                    .unwrap_or("?")
                    .to_owned()
            }),
        };
        let name = match self {
            Database::Postgres(_) => "PostgreSQL",
            Database::MariaDb(_) => "MariaDB",
            Database::Redis(_) => "Redis",
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

/// Runs a rotation target and returns the Markdown report; fails if any run's
/// rotation did not complete.
pub(super) async fn run(options: &BenchOptions) -> anyhow::Result<String> {
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
            if matches!(database, Database::Redis(_)) {
                " (the admin secret named by `MASTER_SECRET_ARN`)".to_owned()
            } else {
                " (`ROTATION_STRATEGY=single`)".to_owned()
            },
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
