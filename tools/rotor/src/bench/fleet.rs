//! The `fleet` target of `rotor bench`: rotation-scheduler starting rotations
//! for a fleet of due secrets, against its allowed rate.

use super::*;

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
pub(super) async fn run(options: &BenchOptions) -> anyhow::Result<String> {
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
