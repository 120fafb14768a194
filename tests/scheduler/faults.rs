//! Secrets Manager throttles or slows down: retries stay bounded and the scheduler
//! stops starting rotations before its deadline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rotor_cli::runtime_api::Outcome;
use rotor_core::labels::AWSPENDING;
use rotor_testbed::sm_proxy::{Fault, SmProxy};
use serde_json::json;

use super::{
    DAY, Expect, Fleet, NOWHERE, check_decisions, check_started_in_moto, names, reasons, run,
};

/// The scheduler's `retry::MAX_ATTEMPTS`.
const MAX_ATTEMPTS: u32 = 6;

/// Every due rotation still starts when a proxy in front of moto throttles and
/// fails a share of the requests, each retried a bounded number of times, with
/// concurrency and the RotateSecret rate within their limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_throttling_with_bounded_retries() {
    let clock = Instant::now();
    let mut fleet = Fleet::new();
    let payments = Some("payments");
    fleet
        .group(
            "due",
            40,
            400 * DAY,
            payments,
            &[Some("30d")],
            Expect::Start,
        )
        .await;
    fleet
        .group(
            "young",
            20,
            10 * DAY,
            payments,
            &[Some("30d")],
            Expect::Skip("not_due"),
        )
        .await;
    let hopeless = fleet
        .group(
            "always-throttled",
            1,
            400 * DAY,
            payments,
            &[Some("30d")],
            Expect::Fail,
        )
        .await;
    let all: Vec<String> = fleet.secrets.iter().map(|s| s.arn.clone()).collect();
    fleet.configure(&all, NOWHERE, 400 * DAY).await;
    let before = fleet.state().await;
    let proxy = SmProxy::with_faults(fleet.moto.endpoint(), fault_for)
        .await
        .unwrap();
    let function = fleet
        .scheduler(
            proxy.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet=payments"),
                ("MAX_CONCURRENCY", "4"),
                ("RATE_PER_SECOND", "20"),
                ("ROTATION_FUNCTION_ARNS", NOWHERE),
            ],
        )
        .await;
    let started_at = Instant::now();
    let report = run(&function, json!({})).await;
    let run_time = started_at.elapsed();

    check_decisions(&fleet, &report, "started");
    let after = fleet.state().await;
    check_started_in_moto(&fleet, &report, &before, &after);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["secret"], json!(hopeless[0]));
    assert_eq!(failed[0]["attempts"], MAX_ATTEMPTS);
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("RotateSecret failed after 6 attempt(s)")
            && error.contains("ThrottlingException"),
        "{error}"
    );

    let log = proxy.log();
    let hopeless_id = &hopeless[0];
    assert_eq!(
        log.attempts.get(&format!("RotateSecret {hopeless_id}")),
        Some(&MAX_ATTEMPTS),
        "a call that is always throttled is tried exactly {MAX_ATTEMPTS} times"
    );
    // Every injected failure was retried once, except the hopeless call's
    // last: no retry storms, and no hidden retries by the SDK.
    let injected: u32 = log.injected.values().sum();
    assert_eq!(report["retries"], injected - 1, "{:?}", log.injected);
    for fault in [
        Fault::Throttled,
        Fault::TooManyRequests,
        Fault::Unavailable,
        Fault::LostAnswer,
    ] {
        assert!(
            log.injected.get(&fault).is_some_and(|n| *n > 0),
            "{fault:?} was never injected: {:?}",
            log.injected
        );
    }
    assert!(
        log.max_in_flight <= 4,
        "{} requests at once with MAX_CONCURRENCY=4",
        log.max_in_flight
    );
    // RATE_PER_SECOND=20: no second holds more than 20 RotateSecret calls (and
    // the one at its very start), with a little slack for local scheduling.
    let times = &log.rotate_times;
    let busiest = times
        .iter()
        .map(|t| {
            times
                .iter()
                .filter(|u| **u >= *t && **u < *t + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest <= 22,
        "{busiest} RotateSecret calls within one second"
    );
    eprintln!(
        "throttling: {} secrets, run {run_time:.1?} with {injected} injected failures \
        {:?}, {} RotateSecret calls, busiest second {busiest}, at most {} at once; whole \
        test {:.1?}",
        fleet.secrets.len(),
        log.injected,
        times.len(),
        log.max_in_flight,
        clock.elapsed()
    );
}

/// Near the function's deadline (Lambda-Runtime-Deadline-Ms) the run stops
/// starting rotations, reports the rest as skipped for the next run, and
/// answers in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_starting_rotations_before_the_deadline() {
    let mut fleet = Fleet::new();
    fleet
        .group(
            "due",
            10,
            400 * DAY,
            Some("payments"),
            &[Some("30d")],
            Expect::Start,
        )
        .await;
    let all: Vec<String> = fleet.secrets.iter().map(|s| s.arn.clone()).collect();
    fleet.configure(&all, NOWHERE, 400 * DAY).await;
    let before = fleet.state().await;
    let function = fleet
        .scheduler(
            fleet.moto.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet=payments"),
                ("MAX_CONCURRENCY", "2"),
                ("RATE_PER_SECOND", "2"),
                ("ROTATION_FUNCTION_ARNS", NOWHERE),
            ],
        )
        .await;
    // A 12 s timeout: the scheduler keeps 10 s in hand, so it starts rotations
    // for about 2 s, at 2 a second.
    let clock = Instant::now();
    let invocation = function
        .invoke(&json!({}), Duration::from_secs(12))
        .await
        .unwrap_or_else(|e| panic!("no answer before the deadline: {e}\n{}", function.output()));
    let elapsed = clock.elapsed();
    let Outcome::Response(report) = invocation.outcome else {
        panic!("{:?}", invocation.outcome)
    };
    let started = names(&report, "started").len();
    let late = reasons(&report)
        .values()
        .filter(|r| r.as_str() == "deadline")
        .count();
    assert!(
        started >= 1 && late >= 1,
        "{started} started, {late} left: {report}"
    );
    assert_eq!(started + late, 10, "{report}");
    assert!(
        elapsed < Duration::from_secs(8),
        "answered after {elapsed:?}"
    );
    let detail = report["skipped"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("the next run picks it up"), "{detail}");
    check_started_in_moto(&fleet, &report, &before, &fleet.state().await);
    eprintln!(
        "deadline: {started} started, {late} left for the next run, answered in {elapsed:.1?}"
    );
}

/// Which attempt of which call fails, and how: deterministic per call, so
/// that a bounded number of retries always gets through (except for the
/// secret named `always-throttled`, whose RotateSecret never does).
fn fault_for(operation: &str, secret: &str, attempt: u32) -> Option<Fault> {
    if operation == "RotateSecret" && secret.contains("always-throttled") {
        return Some(Fault::Throttled);
    }
    if operation == "ListSecrets" {
        return (attempt <= 2).then_some(Fault::Throttled);
    }
    // FNV-1a: a stable share of the calls per fault.
    let bucket = format!("{operation} {secret}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
        % 4;
    match bucket {
        0 => (attempt <= 2).then_some(Fault::Throttled),
        1 => (attempt == 1).then_some(Fault::TooManyRequests),
        2 if operation == "RotateSecret" => (attempt == 1).then_some(Fault::LostAnswer),
        2 => (attempt == 1).then_some(Fault::Unavailable),
        _ => None,
    }
}

/// Issue 11, item 3. A RotateSecret slower than the time left (its request
/// held, or its answer held, by the proxy) does not keep the run past the
/// function's deadline: the run answers in time with a report that says which
/// secrets it did not reach and, for a RotateSecret it stopped waiting for,
/// whether the rotation started or that it is not known. A later run is
/// consistent: each secret gains one version in all, the one the first report
/// named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_rotate_secret_does_not_outlast_the_deadline() {
    let mut fleet = Fleet::new();
    let payments = Some("payments");
    let thirty = [Some("30d")];
    // The most overdue first: the two slow secrets take both workers.
    let slow_answer = fleet
        .group(
            "slow-answer",
            1,
            402 * DAY,
            payments,
            &thirty,
            Expect::Start,
        )
        .await;
    let slow_request = fleet
        .group(
            "slow-request",
            1,
            402 * DAY,
            payments,
            &thirty,
            Expect::Fail,
        )
        .await;
    let rest = fleet
        .group(
            "not-reached",
            3,
            400 * DAY,
            payments,
            &thirty,
            Expect::Skip("deadline"),
        )
        .await;
    let all: Vec<String> = fleet.secrets.iter().map(|s| s.arn.clone()).collect();
    fleet.configure(&all, NOWHERE, 403 * DAY).await;
    let before = fleet.state().await;
    let hold = Duration::from_secs(20);
    let proxy =
        SmProxy::with_faults(
            fleet.moto.endpoint(),
            move |operation, secret, _| match operation {
                "RotateSecret" if secret.contains("slow-answer") => Some(Fault::SlowAnswer(hold)),
                "RotateSecret" if secret.contains("slow-request") => Some(Fault::SlowRequest(hold)),
                _ => None,
            },
        )
        .await
        .unwrap();
    let function = fleet
        .scheduler(
            proxy.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet=payments"),
                ("MAX_CONCURRENCY", "2"),
                ("RATE_PER_SECOND", "50"),
                ("ROTATION_FUNCTION_ARNS", NOWHERE),
            ],
        )
        .await;
    // A 15 s timeout: the run has about 5 s before its 10 s margin, and each
    // slow call would take 20 s.
    let invocation = function
        .invoke(&json!({}), Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("no answer before the deadline: {e}\n{}", function.output()));
    let Outcome::Response(report) = invocation.outcome else {
        panic!("{:?}\n{}", invocation.outcome, function.output())
    };
    // Not reached: skipped for the next run.
    let reasons = reasons(&report);
    for arn in &rest {
        assert_eq!(
            reasons.get(fleet.name_of(arn)).map(String::as_str),
            Some("deadline"),
            "{report}"
        );
    }
    // The held answer: moto staged the version, so the rotation started.
    let started = report["started"].as_array().unwrap();
    assert_eq!(started.len(), 1, "{report}");
    assert_eq!(started[0]["secret"], json!(slow_answer[0]));
    let note = started[0]["note"].as_str().unwrap_or_default();
    assert!(note.contains("deadline"), "{note}");
    let first_version = started[0]["version"].as_str().unwrap().to_owned();
    // The held request: not staged when the run looked, but it may still
    // arrive: not known.
    let unknown = report["unknown"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(unknown.len(), 1, "{report}");
    assert_eq!(unknown[0]["secret"], json!(slow_request[0]));
    let detail = unknown[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("not known") && detail.contains("next run"),
        "{detail}"
    );
    let unknown_version = unknown[0]["version"].as_str().unwrap().to_owned();
    assert_eq!(report["counts"]["unknown"], 1);
    assert_eq!(report["failed"], json!([]), "{report}");

    // The held request reaches moto after the run: then the rotation started.
    while proxy.log().in_flight > 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let middle = fleet.state().await;
    assert_eq!(
        middle[&slow_request[0]].get(&unknown_version),
        Some(&vec![AWSPENDING.to_owned()]),
        "the held RotateSecret staged the version the report named"
    );

    // The next run finds both rotations in progress and starts the rest.
    let again = run(&function, json!({})).await;
    let reasons = self::reasons(&again);
    for arn in slow_answer.iter().chain(&slow_request) {
        assert_eq!(
            reasons.get(fleet.name_of(arn)).map(String::as_str),
            Some("in_progress"),
            "{again}"
        );
    }
    let mut versions: BTreeMap<String, String> = [
        (slow_answer[0].clone(), first_version),
        (slow_request[0].clone(), unknown_version),
    ]
    .into();
    for entry in again["started"].as_array().unwrap() {
        versions.insert(
            entry["secret"].as_str().unwrap().to_owned(),
            entry["version"].as_str().unwrap().to_owned(),
        );
    }
    assert_eq!(versions.len(), 5, "{again}");
    // No double rotation: one new version per secret over both runs, staged
    // AWSPENDING, under the token a report named.
    let after = fleet.state().await;
    for (arn, version) in &versions {
        let added: Vec<&String> = after[arn]
            .keys()
            .filter(|v| !before[arn].contains_key(*v))
            .collect();
        assert_eq!(added, vec![version], "{}", fleet.name_of(arn));
        assert_eq!(after[arn][version], vec![AWSPENDING.to_owned()]);
    }
}
