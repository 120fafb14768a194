//! Which rotations the scheduler starts: the due ones among hundreds of tagged
//! secrets, and never more than the hourly limit of one secret.

use std::collections::BTreeMap;
use std::time::Instant;

use rotor_core::SecretStore;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use serde_json::{Value, json};

use super::{
    DAY, Expect, Fleet, NOWHERE, POLICY, check_decisions, check_started_in_moto, names, reasons,
    run,
};

const HOUR: i64 = 3_600;

/// The function `AwsStore::begin_rotation` configures while it stages a
/// rotation (the secrets that [`Fleet::in_progress`] makes busy).
const LOCAL_RUNNER: &str = "arn:aws:lambda:us-east-1:000000000000:function:rotor-local-runner";

/// The scheduler starts exactly the due rotations among 300 tagged secrets: a
/// dry run first (which changes nothing), then the run, then a second run that
/// finds every started rotation in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_exactly_the_due_rotations_among_300_secrets() {
    let setup = Instant::now();
    let mut fleet = Fleet::new();
    let payments = Some("payments");
    let skip = Expect::Skip;
    let thirty = [Some("30d"), Some("720h"), Some("43200m"), Some("2592000s")];
    let week = [Some("7d"), Some("168h"), Some("10080m"), Some("604800s")];
    let bad = [
        Some("167h"),
        Some("366d"),
        Some("99999999999999999999d"),
        Some("30x"),
        Some("6d"),
        Some("thirty"),
        Some("-7d"),
        Some("7.5d"),
        Some("30D"),
        Some(""),
    ];
    fleet
        .group("due", 50, 400 * DAY, payments, &thirty, Expect::Start)
        .await;
    // No policy tag: DEFAULT_POLICY (90d) applies.
    fleet
        .group("default", 30, 400 * DAY, payments, &[None], Expect::Start)
        .await;
    fleet
        .group(
            "default-young",
            10,
            80 * DAY,
            payments,
            &[None],
            skip("not_due"),
        )
        .await;
    fleet
        .group("young", 30, 10 * DAY, payments, &thirty, skip("not_due"))
        .await;
    fleet
        .group(
            "week-due",
            10,
            7 * DAY + HOUR,
            payments,
            &week,
            Expect::Start,
        )
        .await;
    fleet
        .group(
            "week-young",
            10,
            7 * DAY - HOUR,
            payments,
            &week,
            skip("not_due"),
        )
        .await;
    let year = [Some("365d"), Some("8760h")];
    fleet
        .group("year-due", 10, 366 * DAY, payments, &year, Expect::Start)
        .await;
    fleet
        .group(
            "year-young",
            10,
            364 * DAY,
            payments,
            &year,
            skip("not_due"),
        )
        .await;
    fleet
        .group("bad", 30, 400 * DAY, payments, &bad, skip("bad_policy"))
        .await;
    let busy = fleet
        .group(
            "busy",
            30,
            400 * DAY,
            payments,
            &thirty,
            skip("in_progress"),
        )
        .await;
    let pending = fleet.in_progress(&busy, 300 * DAY).await;
    let recent = fleet
        .group(
            "rotated-recently",
            20,
            400 * DAY,
            payments,
            &thirty,
            skip("not_due"),
        )
        .await;
    fleet.rotated(&recent, 10 * DAY).await;
    let old = fleet
        .group(
            "rotated-long-ago",
            10,
            400 * DAY,
            payments,
            &thirty,
            Expect::Start,
        )
        .await;
    fleet.rotated(&old, 40 * DAY).await;
    // MAX_ROTATIONS_PER_SECRET_PER_HOUR=3: three versions in the last hour stop
    // a due secret, two do not.
    let limited = fleet
        .group(
            "limited",
            10,
            400 * DAY,
            payments,
            &thirty,
            skip("hourly_limit"),
        )
        .await;
    fleet.new_versions(&limited, 3, 0).await;
    let below = fleet
        .group(
            "below-limit",
            10,
            400 * DAY,
            payments,
            &thirty,
            Expect::Start,
        )
        .await;
    fleet.new_versions(&below, 2, 0).await;
    // ListSecrets' tag filters match prefixes: "payments-eu" comes back, and
    // the scheduler must still leave it out.
    fleet
        .group(
            "other-fleet",
            15,
            400 * DAY,
            Some("payments-eu"),
            &thirty,
            Expect::Ignored,
        )
        .await;
    fleet
        .group("untagged", 15, 400 * DAY, None, &thirty, Expect::Ignored)
        .await;
    assert_eq!(fleet.secrets.len(), 300);
    assert_eq!(fleet.expected(Expect::Start).len(), 120);
    // The deployer configured the fleet's rotation (the busy secrets' through
    // the local runner's staging function, see `in_progress`).
    let configured: Vec<String> = fleet
        .secrets
        .iter()
        .filter(|s| s.expect != Expect::Ignored && !busy.contains(&s.arn))
        .map(|s| s.arn.clone())
        .collect();
    fleet.configure(&configured, NOWHERE, 401 * DAY).await;
    let before = fleet.state().await;
    let setup = setup.elapsed();

    let function = fleet
        .scheduler(
            fleet.moto.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet=payments"),
                ("DEFAULT_POLICY", "90d"),
                ("MAX_ROTATIONS_PER_SECRET_PER_HOUR", "3"),
                ("RATE_PER_SECOND", "100"),
                (
                    "ROTATION_FUNCTION_ARNS",
                    &format!("{NOWHERE},{LOCAL_RUNNER}"),
                ),
                ("AWS_LAMBDA_LOG_FORMAT", "json"),
                ("AWS_LAMBDA_LOG_LEVEL", "info"),
            ],
        )
        .await;

    let clock = Instant::now();
    let dry = run(&function, json!({"dry_run": true})).await;
    let dry_time = clock.elapsed();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["started"], json!([]));
    check_decisions(&fleet, &dry, "would_start");
    assert_eq!(fleet.state().await, before, "a dry run changes nothing");

    let clock = Instant::now();
    let report = run(&function, json!({"source": "aws.scheduler"})).await;
    let run_time = clock.elapsed();
    assert_eq!(report["dry_run"], false);
    check_decisions(&fleet, &report, "started");
    assert_eq!(report["failed"], json!([]), "{report}");
    assert_eq!(report["retries"], 0);
    assert_eq!(report["counts"]["started"], 120);
    assert_eq!(report["counts"]["skipped"], 150);
    let after = fleet.state().await;
    check_started_in_moto(&fleet, &report, &before, &after);
    // moto answered every RotateSecret with ResourceNotFoundException after
    // staging the version: the scheduler says so in each entry.
    for entry in report["started"].as_array().unwrap() {
        assert!(
            entry["note"]
                .as_str()
                .is_some_and(|n| n.contains("ResourceNotFoundException")),
            "{entry}"
        );
    }
    for (arn, t) in &pending {
        assert_eq!(
            after[arn].get(t),
            Some(&vec![AWSPENDING.to_owned()]),
            "{}: the rotation in progress is kept",
            fleet.name_of(arn)
        );
    }
    for entry in report["skipped"].as_array().unwrap() {
        if entry["reason"] == "bad_policy" {
            let detail = entry["detail"].as_str().unwrap();
            let name = entry["name"].as_str().unwrap();
            assert!(
                detail.contains(&format!("secret {name}")) && detail.contains(POLICY),
                "{detail}"
            );
        }
    }
    let details: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    for expected in [
        "\"167h\" is 6d 23h; a policy must be between 7d and 365d inclusive",
        "\"366d\" is 366d",
        "\"99999999999999999999d\" is far longer than 365d",
        "\"30x\" is not a whole number followed by one unit",
        "the policy is empty",
        "3 rotations of secret limited-",
    ] {
        assert!(
            details.iter().any(|d| d.contains(expected)),
            "no skip says {expected:?}"
        );
    }

    // Structured logs: one event per decision, with the secret as a field.
    let logs = function.output();
    let events: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    for (arn, _) in after.iter().filter(|(arn, _)| {
        report["started"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["secret"] == **arn)
    }) {
        assert!(
            events.iter().any(|e| {
                e["fields"]["secret"] == json!(arn)
                    && e["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("started rotation"))
            }),
            "no log event for the start of {arn}"
        );
    }
    assert!(events.iter().any(|e| e["fields"]["reason"] == "bad_policy"));
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "run finished" && e["fields"]["started"] == 120)
    );

    // Again: every rotation just started is in progress, and nothing starts.
    let clock = Instant::now();
    let again = run(&function, json!({})).await;
    let again_time = clock.elapsed();
    assert_eq!(again["started"], json!([]));
    let reasons = reasons(&again);
    for name in fleet.expected(Expect::Start) {
        assert_eq!(reasons.get(&name).map(String::as_str), Some("in_progress"));
    }
    assert_eq!(fleet.state().await, after);
    eprintln!(
        "300 secrets: setup {setup:.1?}, dry run {dry_time:.1?}, run {run_time:.1?} (120 \
        started), second run {again_time:.1?}"
    );
}

/// At most MAX_ROTATIONS_PER_SECRET_PER_HOUR rotations of one secret start in an
/// hour, over several runs; versions older than an hour do not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_starts_more_than_the_hourly_limit_of_one_secret() {
    let clock = Instant::now();
    let mut fleet = Fleet::new();
    let due = fleet
        .group(
            "hourly",
            3,
            400 * DAY,
            Some("payments"),
            &[Some("30d")],
            Expect::Start,
        )
        .await;
    fleet.configure(&due, NOWHERE, 400 * DAY).await;
    // Five versions 61 minutes ago: outside the window.
    fleet.new_versions(&due[..1], 5, HOUR + 60).await;
    let function = fleet
        .scheduler(
            fleet.moto.endpoint(),
            &[
                ("TAG_FILTER", "rotor:fleet"),
                ("MAX_ROTATIONS_PER_SECRET_PER_HOUR", "2"),
                ("ROTATION_FUNCTION_ARNS", NOWHERE),
            ],
        )
        .await;
    let mut starts: BTreeMap<String, u32> = BTreeMap::new();
    for round in 1..=4 {
        let report = run(&function, json!({})).await;
        for entry in report["started"].as_array().unwrap() {
            let arn = entry["secret"].as_str().unwrap();
            let version = entry["version"].as_str().unwrap();
            *starts.entry(arn.to_owned()).or_default() += 1;
            // Finish the rotation by hand, as a rotation function's finishSecret
            // would; moto leaves LastRotatedDate alone, so the secret stays due.
            let current = fleet
                .store
                .describe(arn)
                .await
                .unwrap()
                .versions
                .current()
                .unwrap()
                .to_owned();
            fleet
                .client
                .update_secret_version_stage()
                .secret_id(arn)
                .version_stage(AWSCURRENT)
                .move_to_version_id(version)
                .remove_from_version_id(current)
                .send()
                .await
                .unwrap();
            fleet
                .client
                .update_secret_version_stage()
                .secret_id(arn)
                .version_stage(AWSPENDING)
                .remove_from_version_id(version)
                .send()
                .await
                .unwrap();
        }
        let reasons = reasons(&report);
        match round {
            1 | 2 => assert_eq!(
                names(&report, "started").len(),
                3,
                "round {round}: {report}"
            ),
            _ => {
                assert_eq!(report["started"], json!([]), "round {round}");
                for secret in &fleet.secrets {
                    assert_eq!(reasons[&secret.name], "hourly_limit");
                }
                let detail = report["skipped"][0]["detail"].as_str().unwrap();
                assert!(
                    detail.contains("2 rotations of secret")
                        && detail.contains("MAX_ROTATIONS_PER_SECRET_PER_HOUR allows 2"),
                    "{detail}"
                );
            }
        }
    }
    assert!(starts.values().all(|n| *n == 2), "{starts:?}");
    assert_eq!(starts.len(), 3);
    eprintln!("hourly limit over 4 runs: {:.1?}", clock.elapsed());
}
