//! The rotation targets of `rotor bench` (`generic`, `rds-postgres`,
//! `rds-mariadb`, `redis`, `ldap`): one secret rotated per run, by a fresh
//! function process.
//!
//! The fixtures (secrets, environment, database) are in `fixture`, the
//! Markdown report in `render`; this module measures.

use super::*;

mod fixture;
mod render;

use fixture::Fixture;
use render::render;

/// What one run measured.
pub(super) struct Run {
    pub(super) kind: usize,
    pub(super) cold_start: Duration,
    pub(super) first_response: Duration,
    pub(super) steps: [Duration; 4],
    pub(super) peak_rss_kb: u64,
    pub(super) calls: BTreeMap<String, u32>,
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
        Target::Iam => Fixture::iam(&store, proxy.endpoint()).await?,
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
