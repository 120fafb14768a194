//! What the scheduler refuses: bad settings and events, and tags that would make it
//! start or re-point another team's rotation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rotor_cli::function::LocalFunction;
use rotor_cli::runtime_api::Outcome;
use rotor_core::SecretString;
use rotor_core::store::RotationService;
use rotor_testbed::sm_proxy::SmProxy;
use rotor_tests::unique;
use serde_json::{Value, json};

use super::{
    DAY, Expect, FLEET, Fleet, NOWHERE, POLICY, TestSecret, check_decisions, check_started_in_moto,
    names, reasons, run, start_scheduler,
};

/// One run that must fail: (error type, message).
async fn failed_run(function: &LocalFunction, event: Value) -> (String, String) {
    let invocation = function
        .invoke(&event, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("invocation failed: {e}\n{}", function.output()));
    match invocation.outcome {
        Outcome::Error {
            error_type,
            error_message,
        } => (error_type, error_message),
        Outcome::Response(report) => panic!("the run succeeded: {report}"),
    }
}

/// Unusable settings and events fail every invocation with an error that names
/// the variable or field, before any call to Secrets Manager.
#[tokio::test]
async fn bad_settings_and_events_are_refused_with_the_variable_named() {
    let endpoint = rotor_tests::moto().endpoint().to_owned();
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[], "TAG_FILTER: it is not set"),
        (
            &[("TAG_FILTER", "a"), ("DEFAULT_POLICY", "167h")],
            "DEFAULT_POLICY",
        ),
        (
            &[("TAG_FILTER", "a"), ("RATE_PER_SECOND", "fast")],
            "RATE_PER_SECOND",
        ),
        (
            &[
                ("TAG_FILTER", "a"),
                ("MAX_ROTATIONS_PER_SECRET_PER_HOUR", "0"),
            ],
            "MAX_ROTATIONS_PER_SECRET_PER_HOUR",
        ),
        (
            &[
                ("TAG_FILTER", "a"),
                ("ROTATION_ALLOWED_SECRETS", "prod/app"),
            ],
            "ROTATION_ALLOWED_SECRETS: it is set but ROTATION_LAMBDA_ARN is not",
        ),
        (
            &[
                ("TAG_FILTER", "a"),
                ("ROTATION_FUNCTION_ARNS", "generic-rotation"),
            ],
            "ROTATION_FUNCTION_ARNS: \"generic-rotation\" is not an ARN",
        ),
    ];
    for (env, expected) in cases {
        let function = start_scheduler(&endpoint, env).await;
        for _ in 0..2 {
            let (kind, message) = failed_run(&function, json!({})).await;
            assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }
    let function = start_scheduler(&endpoint, &[("TAG_FILTER", &unique("fleet"))]).await;
    let (kind, message) = failed_run(&function, json!({"dry_run": "yes"})).await;
    assert_eq!(kind, "NotRetryable.InvalidEvent");
    assert!(message.contains("dry_run is \"yes\""), "{message}");
    // A fleet with no secrets is an empty report, not an error.
    let report = run(&function, json!({"dry_run": true})).await;
    assert_eq!(report["selected"], 0);
}

/// One of the deployment's rotation functions (`ROTATION_FUNCTION_ARNS`); like
/// [`NOWHERE`], moto does not know it, so a rotation through it is staged and
/// answered with ResourceNotFoundException.
const DEPLOYED: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-test-generic-rotation";

/// Another of the deployment's functions, that no secret here uses.
const DEPLOYED_RDS: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-test-rds-rotation";

/// Another team's rotation function: not the deployment's.
const OTHER_TEAM: &str = "arn:aws:lambda:us-east-1:123456789012:function:team-b-rotation";

/// Issue 12, item 3. A team that may tag secrets (its own, or another team's)
/// but not configure their rotation puts the fleet's tag on them. The scheduler
/// must start rotation only where the deployer configured it: a secret already
/// rotated by one of the deployment's functions (`ROTATION_FUNCTION_ARNS`,
/// rotated with RotateSecret naming no function), or one the deployer
/// allow-listed (`ROTATION_ALLOWED_SECRETS`, given `ROTATION_LAMBDA_ARN`). It
/// never re-points a secret's rotation to a rotor function, which would give
/// that function read and write on the secret (the template's
/// AllowRotationLambdaArn grant). Checked three ways: the RotateSecret calls
/// that reach the counting proxy, moto's state (no new version, rotation
/// settings unchanged), and the report's reasons.
///
/// moto differs from AWS here: RotateSecret turns rotation on in moto only
/// when it carries a schedule (AWS turns it on for any RotateSecret), so
/// "rotation not enabled" alone would not catch a stray call; the call counts
/// and the unchanged RotationLambdaARN and versions do. moto also forgets the
/// configured function on a RotateSecret that names none (AWS uses it);
/// scripts/moto_server.py makes moto behave as AWS does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_writer_cannot_make_the_scheduler_start_or_re_point_rotation() {
    let mut fleet = Fleet::new();
    let payments = Some("payments");
    let thirty = [Some("30d")];
    let skip = Expect::Skip;
    let age = 400 * DAY;
    // Tagged by the lower-privileged team; rotation never configured.
    let tagged = fleet
        .group(
            "tagged-by-team",
            2,
            age,
            payments,
            &thirty,
            skip("not_configured"),
        )
        .await;
    // Another team's secret, rotated by that team's own function, tagged too.
    let other_team = fleet
        .group(
            "other-team",
            1,
            age,
            payments,
            &thirty,
            skip("foreign_function"),
        )
        .await;
    fleet.configure(&other_team, OTHER_TEAM, age).await;
    // Allow-listed by the deployer, but its rotation points elsewhere: never re-pointed.
    let allowed_elsewhere = fleet
        .group(
            "allowed-elsewhere",
            1,
            age,
            payments,
            &thirty,
            skip("foreign_function"),
        )
        .await;
    fleet.configure(&allowed_elsewhere, OTHER_TEAM, age).await;
    // A version or alias of a deployment function is not the function the deployer named.
    let pinned = fleet
        .group(
            "pinned-version",
            1,
            age,
            payments,
            &thirty,
            skip("foreign_function"),
        )
        .await;
    fleet
        .configure(&pinned, &format!("{DEPLOYED}:7"), age)
        .await;
    // Configured by the deployer: rotated, naming no function.
    let configured = fleet
        .group("configured", 2, age, payments, &thirty, Expect::Start)
        .await;
    fleet.configure(&configured, DEPLOYED, age).await;
    let latest = fleet
        .group(
            "configured-latest",
            1,
            age,
            payments,
            &thirty,
            Expect::Start,
        )
        .await;
    fleet
        .configure(&latest, &format!("{DEPLOYED}:$LATEST"), age)
        .await;
    // Allow-listed with no rotation: given ROTATION_LAMBDA_ARN.
    let by_name = fleet
        .group("allowed-by-name", 1, age, payments, &thirty, Expect::Start)
        .await;
    let by_arn = fleet
        .group("allowed-by-arn", 1, age, payments, &thirty, Expect::Start)
        .await;
    let allowed_name = fleet.name_of(&by_name[0]).to_owned();
    let allowed_elsewhere_name = fleet.name_of(&allowed_elsewhere[0]).to_owned();
    // Named like an allow-listed secret, but not it.
    fleet.moto.set_clock(-age).expect("moto shifts its clock");
    let lookalike_name = format!("{allowed_name}-copy");
    let lookalike = fleet
        .store
        .create_secret(
            &lookalike_name,
            &SecretString::from("initial"),
            &[(FLEET, "payments"), (POLICY, "30d")],
        )
        .await
        .expect("create secret");
    fleet.moto.set_clock(0).expect("moto shifts its clock");
    fleet.secrets.push(TestSecret {
        arn: lookalike.clone(),
        name: lookalike_name,
        expect: skip("not_configured"),
    });

    let before = fleet.state().await;
    let settings_before = fleet.rotation_settings().await;
    let proxy = SmProxy::start(fleet.moto.endpoint()).await.unwrap();
    let function_arns = format!("{DEPLOYED}, {DEPLOYED_RDS}");
    let allowed = format!("{allowed_name},{},{allowed_elsewhere_name}", by_arn[0]);

    // Without any of the deployer's settings the scheduler rotates only secrets
    // whose rotation is enabled, each with its own function (a dry run: the
    // decisions, nothing started).
    let bare = start_scheduler(proxy.endpoint(), &[("TAG_FILTER", "rotor:fleet=payments")]).await;
    let dry = run(&bare, json!({"dry_run": true})).await;
    let enabled: BTreeSet<String> = [
        &other_team,
        &allowed_elsewhere,
        &pinned,
        &configured,
        &latest,
    ]
    .into_iter()
    .flatten()
    .map(|arn| fleet.name_of(arn).to_owned())
    .collect();
    assert_eq!(names(&dry, "would_start"), enabled, "{dry}");
    for arn in tagged.iter().chain(&by_name).chain(&by_arn) {
        assert_eq!(
            reasons(&dry).get(fleet.name_of(arn)).map(String::as_str),
            Some("not_configured"),
            "{dry}"
        );
    }
    drop(bare);

    let function = start_scheduler(
        proxy.endpoint(),
        &[
            ("TAG_FILTER", "rotor:fleet=payments"),
            ("ROTATION_FUNCTION_ARNS", &function_arns),
            ("ROTATION_LAMBDA_ARN", NOWHERE),
            ("ROTATION_ALLOWED_SECRETS", &allowed),
        ],
    )
    .await;
    let report = run(&function, json!({})).await;
    check_decisions(&fleet, &report, "started");
    assert_eq!(report["failed"], json!([]), "{report}");
    let after = fleet.state().await;
    check_started_in_moto(&fleet, &report, &before, &after);

    // The calls that reached Secrets Manager: RotateSecret only for the
    // started secrets; a function named only for the allow-listed ones
    // without rotation, and then only ROTATION_LAMBDA_ARN.
    let log = proxy.log();
    let mut requests: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (secret, function) in &log.rotate_requests {
        requests
            .entry(secret.clone())
            .or_default()
            .push(function.clone());
    }
    let wanted: BTreeMap<String, Vec<Option<String>>> = configured
        .iter()
        .chain(&latest)
        .map(|arn| (arn.clone(), vec![None]))
        .chain(
            by_name
                .iter()
                .chain(&by_arn)
                .map(|arn| (arn.clone(), vec![Some(NOWHERE.to_owned())])),
        )
        .collect();
    assert_eq!(
        requests, wanted,
        "RotateSecret calls by secret and function"
    );
    for arn in tagged
        .iter()
        .chain(&other_team)
        .chain(&allowed_elsewhere)
        .chain(&pinned)
    {
        assert_eq!(
            log.attempts.get(&format!("RotateSecret {arn}")),
            None,
            "{}: RotateSecret was called",
            fleet.name_of(arn)
        );
    }

    // Rotation settings: unchanged for every skipped secret (moto turns
    // rotation on only with a schedule, so the function is the telling part),
    // and the configured secrets still point at the function they had.
    let settings_after = fleet.rotation_settings().await;
    for secret in &fleet.secrets {
        if matches!(secret.expect, Expect::Skip(_))
            || configured.contains(&secret.arn)
            || latest.contains(&secret.arn)
        {
            assert_eq!(
                settings_after[&secret.arn], settings_before[&secret.arn],
                "{}: rotation settings changed",
                secret.name
            );
        }
    }
    for arn in &tagged {
        assert_eq!(settings_after[arn], (false, None), "{}", fleet.name_of(arn));
    }

    // The report says why, and what the deployer must do.
    for entry in report["skipped"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let detail = entry["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("secret {name}")), "{detail}");
        match entry["reason"].as_str().unwrap() {
            "not_configured" => assert!(
                detail.contains("ROTATION_ALLOWED_SECRETS")
                    && detail.contains(DEPLOYED)
                    && detail.contains("not enabled"),
                "{detail}"
            ),
            "foreign_function" => assert!(
                detail.contains("never re-points")
                    && detail.contains("ROTATION_FUNCTION_ARNS")
                    && (detail.contains(OTHER_TEAM) || detail.contains(&format!("{DEPLOYED}:7"))),
                "{detail}"
            ),
            other => panic!("unexpected skip {other}: {detail}"),
        }
    }
}
