//! Metrics (issue 25): every function's output, read as CloudWatch Logs reads
//! it (`rotor_tests::emf`), holds one embedded metric format document per
//! invocation, on a line of its own, in both of Lambda's log formats: the
//! step or run, its outcome class and, for a failure, the error's kind; for
//! the finishSecret that completes a rotation, the rotation's time and the age
//! of the credential it replaced. No document carries a stored credential,
//! nor the secret's name unless the deployer opts in.

use std::time::Duration;

use rotor_cli::function::LocalFunction;
use rotor_cli::runtime_api::Outcome;
use rotor_core::metrics::SECRET_DIMENSION_VAR;
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString, Step};
use rotor_testbed::db::TlsMode;
use rotor_testbed::moto::{Moto, configure_rotation, local_env};
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator, TokenAuth};
use rotor_testbed::redis_server::{ADMIN_USER, RedisServer};
use rotor_tests::db::random_password;
use rotor_tests::emf::{Emitted, await_emitted, set, sets, unit};
use rotor_tests::target_db::Db;
use rotor_tests::{
    assert_no_stored_secret_in, labels, moto_store, providers, staged_secret, staged_secret_named,
    start_function, start_function_at, step_within, steps, token, unique,
};
use serde_json::{Value, json};

/// Both formats Lambda sets.
const FORMATS: [&str; 2] = ["text", "json"];

fn log_format(format: &str) -> (&'static str, &str) {
    ("AWS_LAMBDA_LOG_FORMAT", format)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The documents of a rotation whose every step ran twice (`steps::replay`):
/// one per invocation, in order, each a success counted by function, step and
/// outcome; the first finishSecret alone counts the completed rotation, with
/// its time and the replaced credential's age.
fn check_replayed_rotation(docs: &[Value], function: &str) {
    assert_eq!(docs.len(), 8, "{docs:#?}");
    for (i, doc) in docs.iter().enumerate() {
        let step = Step::ALL[i / 2];
        assert_eq!(doc["Function"], function, "{doc}");
        assert_eq!(doc["Step"], step.as_str(), "{doc}");
        assert_eq!(doc["Outcome"], "Success", "{doc}");
        assert_eq!(doc["Steps"], 1.0);
        assert!(doc["StepDuration"].as_f64().is_some_and(|d| d >= 0.0));
        assert_eq!(unit(doc, "StepDuration").as_deref(), Some("Milliseconds"));
        assert_eq!(unit(doc, "Steps").as_deref(), Some("Count"));
        assert_eq!(
            sets(doc, "StepDuration"),
            [set(&["Function"]), set(&["Function", "Step"])]
        );
        assert_eq!(
            sets(doc, "Steps"),
            [
                set(&["Function", "Outcome"]),
                set(&["Function", "Step", "Outcome"])
            ]
        );
        assert!(doc.get("ErrorType").is_none(), "{doc}");
        assert!(doc.get("Secret").is_none(), "no opt-in, no secret: {doc}");
    }
    assert_eq!(docs[1]["Result"], "pending_kept");
    let completed: Vec<usize> = (0..docs.len())
        .filter(|i| docs[*i].get("RotationsCompleted").is_some())
        .collect();
    assert_eq!(completed, [6], "only the first finishSecret completes it");
    let finish = &docs[6];
    assert_eq!(finish["RotationsCompleted"], 1.0);
    assert_eq!(sets(finish, "RotationsCompleted"), [set(&["Function"])]);
    assert_eq!(
        unit(finish, "RotationDuration").as_deref(),
        Some("Milliseconds")
    );
    assert!(
        finish["RotationDuration"]
            .as_f64()
            .is_some_and(|d| d >= 0.0)
    );
    assert_eq!(
        unit(finish, "ReplacedCredentialAge").as_deref(),
        Some("Seconds")
    );
    assert!(
        finish["ReplacedCredentialAge"]
            .as_f64()
            .is_some_and(|a| a >= 0.0)
    );
    assert_eq!(docs[7]["Result"], "already_current");
}

/// The document of a failed step: its class and kind are the Lambda error
/// type's (`error_type`), whose class must be `class`.
fn check_failure(doc: &Value, step: Step, error_type: &str, class: &str) {
    let (got_class, kind) = error_type
        .split_once('.')
        .unwrap_or_else(|| panic!("an error type without a class: {error_type}"));
    assert_eq!(got_class, class, "{error_type}");
    assert_eq!(doc["Step"], step.as_str(), "{doc}");
    assert_eq!(doc["Outcome"], class, "{doc}");
    assert_eq!(doc["ErrorType"], kind, "{doc}");
    assert_eq!(doc["Steps"], 1.0);
    assert!(sets(doc, "Steps").contains(&set(&["Function", "Outcome", "ErrorType"])));
    assert!(doc.get("RotationsCompleted").is_none() && doc.get("Result").is_none());
}

/// Runs the steps in order until one fails: (the step, its error type, the
/// invocations made).
async fn until_failure(function: &LocalFunction, arn: &str, t: &str) -> (Step, String, usize) {
    for (i, step_) in Step::ALL.into_iter().enumerate() {
        let answer = step_within(
            function,
            &steps::event(arn, t, step_),
            Duration::from_secs(20),
        )
        .await;
        if let Err((error_type, _)) = answer {
            return (step_, error_type, i + 1);
        }
    }
    panic!("every step passed:\n{}", function.output())
}

/// In JSON format every other line is a JSON log event with a level; in text
/// format none of them is JSON. Either way the documents stand alone.
fn check_format(output: &str, format: &str, emitted: &Emitted) {
    let others: Vec<&str> = output
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("\"_aws\""))
        .collect();
    assert!(!others.is_empty(), "the function logged nothing");
    for line in others {
        let parsed = serde_json::from_str::<Value>(line);
        match format {
            "json" => assert!(
                parsed.is_ok_and(|v| v.get("level").is_some()),
                "not a JSON log event: {line}"
            ),
            _ => assert!(parsed.is_err(), "a JSON line in text format: {line}"),
        }
    }
    assert!(!emitted.lines.is_empty());
}

#[tokio::test]
async fn generic_rotation_metrics_in_both_log_formats() {
    for format in FORMATS {
        let store = moto_store();
        let function = start_function("generic-rotation", &[log_format(format)]).await;
        let t = token();
        let initial = json!({"username": "svc", "password": random_password().expose_secret()});
        let arn = staged_secret(&store, &initial.to_string(), &[], &t).await;
        steps::replay(&function, &arn, &t, &Step::ALL).await;
        let refused = steps::run(&function, &arn, "not-a-version", Step::TestSecret)
            .await
            .unwrap_err();
        let emitted = await_emitted(&function, 9).await;
        assert_eq!(emitted.docs.len(), 9, "one document per invocation");
        check_replayed_rotation(&emitted.docs[..8], "generic-rotation");
        check_failure(
            &emitted.docs[8],
            Step::TestSecret,
            &refused.0,
            "NotRetryable",
        );
        check_format(&function.output(), format, &emitted);
        assert_no_stored_secret_in(&store, &arn, &emitted.text()).await;
    }

    // Retryable: Secrets Manager does not answer.
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let function = start_function_at("generic-rotation", &endpoint, &[]).await;
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf";
    let failed = steps::run(&function, arn, &token(), Step::CreateSecret)
        .await
        .unwrap_err();
    let emitted = await_emitted(&function, 1).await;
    check_failure(&emitted.docs[0], Step::CreateSecret, &failed.0, "Retryable");
}

#[tokio::test]
async fn the_secret_name_is_a_dimension_only_when_the_deployer_opts_in() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[(SECRET_DIMENSION_VAR, "true")]).await;
    let name = unique("team-a/opted-in");
    let t = token();
    let arn = staged_secret_named(&store, &name, "initial-value", &[], &t).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let emitted = await_emitted(&function, 8).await;
    for doc in &emitted.docs {
        assert_eq!(doc["Secret"], name.as_str(), "{doc}");
        assert!(sets(doc, "Steps").contains(&set(&["Function", "Secret", "Outcome"])));
        assert!(sets(doc, "StepDuration").contains(&set(&["Function", "Secret"])));
    }
    let finish = &emitted.docs[6];
    assert_eq!(
        sets(finish, "RotationsCompleted"),
        [set(&["Function"]), set(&["Function", "Secret"])]
    );
    assert_no_stored_secret_in(&store, &arn, &emitted.text()).await;

    // A value other than true or false: every step fails naming the
    // variable, changes nothing, and its document names no secret.
    let function = start_function("generic-rotation", &[(SECRET_DIMENSION_VAR, "yes")]).await;
    let t = token();
    let arn = staged_secret(&store, "initial-value", &[], &t).await;
    let before = labels(&store, &arn).await;
    let (error_type, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap_err();
    assert_eq!(error_type, "NotRetryable.InvalidSettings");
    assert!(
        message.contains(SECRET_DIMENSION_VAR) && message.contains(&arn),
        "{message}"
    );
    assert_eq!(labels(&store, &arn).await, before);
    let emitted = await_emitted(&function, 1).await;
    check_failure(
        &emitted.docs[0],
        Step::CreateSecret,
        &error_type,
        "NotRetryable",
    );
    assert!(emitted.docs[0].get("Secret").is_none());
}

#[tokio::test]
async fn rds_rotation_metrics() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let ca = db.ca_path();
    let env = [
        ("SSL_CERT_FILE", ca.as_str()),
        ("ROTATION_STRATEGY", "single"),
        log_format("text"),
    ];
    let function = start_function("rds-rotation", &env).await;
    let first = random_password();
    db.create_user("app", &first);
    let t = token();
    let arn = staged_secret(&store, &db.secret("app", &first, json!({})), &[], &t).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let mut invocations = 8;

    // Retryable: nothing listens on the database's port. Not retryable: TLS
    // turned off for a server that requires it, so the login is refused.
    let other = random_password();
    db.create_user("other", &other);
    let cases = [
        (json!({"port": closed_port()}), "Retryable"),
        (json!({"ssl": false}), "NotRetryable"),
    ];
    let mut failures = Vec::new();
    let mut arns = vec![arn];
    for (extra, class) in cases {
        let t = token();
        let arn = staged_secret(&store, &db.secret("other", &other, extra), &[], &t).await;
        let (failed, error_type, made) = until_failure(&function, &arn, &t).await;
        invocations += made;
        failures.push((invocations - 1, failed, error_type, class));
        arns.push(arn);
    }
    let emitted = await_emitted(&function, invocations).await;
    assert_eq!(emitted.docs.len(), invocations);
    check_replayed_rotation(&emitted.docs[..8], "rds-rotation");
    for (index, failed, error_type, class) in failures {
        check_failure(&emitted.docs[index], failed, &error_type, class);
    }
    check_format(&function.output(), "text", &emitted);
    for arn in &arns {
        assert_no_stored_secret_in(&store, arn, &emitted.text()).await;
    }
}

#[tokio::test]
async fn oauth_rotation_metrics() {
    let emulator = ProviderEmulator::start().await.expect("the emulator");
    let store = moto_store();
    let function = start_function("oauth-rotation", &[log_format("json")]).await;
    let (case, t) =
        providers::setup(&emulator, &store, Provider::Okta, TokenAuth::Basic, true).await;
    steps::replay(&function, &case.arn, &t, &Step::ALL).await;
    let mut invocations = 8;

    // Not retryable: the provider refuses the management token. Retryable:
    // nothing answers at the provider's address.
    let (refused, refused_token) =
        providers::setup(&emulator, &store, Provider::Okta, TokenAuth::Basic, false).await;
    let down = format!("http://127.0.0.1:{}", closed_port());
    let (unreachable, unreachable_token) = providers::setup_at(
        &emulator,
        &store,
        Provider::Okta,
        TokenAuth::Basic,
        true,
        &down,
    )
    .await;
    let mut failures = Vec::new();
    for (failing, t, class) in [
        (&refused, &refused_token, "NotRetryable"),
        (&unreachable, &unreachable_token, "Retryable"),
    ] {
        let (failed, error_type, made) = until_failure(&function, &failing.arn, t).await;
        invocations += made;
        failures.push((invocations - 1, failed, error_type, class));
    }
    let emitted = await_emitted(&function, invocations).await;
    assert_eq!(emitted.docs.len(), invocations);
    check_replayed_rotation(&emitted.docs[..8], "oauth-rotation");
    for (index, failed, error_type, class) in failures {
        check_failure(&emitted.docs[index], failed, &error_type, class);
    }
    check_format(&function.output(), "json", &emitted);
    for case in [&case, &refused, &unreachable] {
        assert_no_stored_secret_in(&store, &case.arn, &emitted.text()).await;
        assert_no_stored_secret_in(&store, &case.management_arn, &emitted.text()).await;
    }
}

/// A Redis user's secret at `port` of the test server's host.
fn redis_secret(
    redis: &RedisServer,
    port: u16,
    user: &str,
    pw: &SecretString,
    extra: Value,
) -> String {
    let mut value = json!({
        "host": redis.host(),
        "port": port,
        "username": user,
        "password": pw.expose_secret(),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut value, extra) {
        map.extend(more);
    }
    value.to_string()
}

/// An admin secret at `port` that serves a fresh name prefix: (ARN, prefix).
async fn redis_admin(
    store: &AwsStore,
    redis: &RedisServer,
    port: u16,
    pw: &SecretString,
) -> (String, String) {
    let team = format!("{}/", unique("team"));
    let value = redis_secret(redis, port, ADMIN_USER, pw, json!({}));
    let arn = store
        .create_secret(
            &unique("redis-admin"),
            &SecretString::from(value),
            &[("rotor:serves", team.as_str())],
        )
        .await
        .expect("the admin secret");
    (arn, team)
}

#[tokio::test]
async fn redis_rotation_metrics() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let ca = redis.ca_path().display().to_string();
    let env = [("SSL_CERT_FILE", ca.as_str()), log_format("json")];
    let function = start_function("redis-rotation", &env).await;
    let port = redis.tls_port();
    let (admin, team) = redis_admin(&store, &redis, port, &redis.admin_password()).await;
    let first = random_password();
    redis.create_user("app", &first, &[]).unwrap();
    let t = token();
    let value = redis_secret(&redis, port, "app", &first, json!({"masterarn": admin}));
    let arn = staged_secret_named(&store, &format!("{team}app"), &value, &[], &t).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let mut invocations = 8;

    // Not retryable: the admin's password is wrong. Retryable: nothing
    // listens where the user and its admin are.
    let other = random_password();
    redis.create_user("other", &other, &[]).unwrap();
    let closed = closed_port();
    let cases = [
        (port, random_password(), "NotRetryable"),
        (closed, redis.admin_password(), "Retryable"),
    ];
    let mut failures = Vec::new();
    let mut arns = vec![arn, admin];
    for (at, admin_password, class) in cases {
        let (admin, team) = redis_admin(&store, &redis, at, &admin_password).await;
        let t = token();
        let value = redis_secret(&redis, at, "other", &other, json!({"masterarn": admin}));
        let arn = staged_secret_named(&store, &format!("{team}other"), &value, &[], &t).await;
        let (failed, error_type, made) = until_failure(&function, &arn, &t).await;
        invocations += made;
        failures.push((invocations - 1, failed, error_type, class));
        arns.extend([arn, admin]);
    }
    let emitted = await_emitted(&function, invocations).await;
    assert_eq!(emitted.docs.len(), invocations);
    check_replayed_rotation(&emitted.docs[..8], "redis-rotation");
    for (index, failed, error_type, class) in failures {
        check_failure(&emitted.docs[index], failed, &error_type, class);
    }
    check_format(&function.output(), "json", &emitted);
    for arn in &arns {
        assert_no_stored_secret_in(&store, arn, &emitted.text()).await;
    }
}

const DAY: i64 = 86_400;
const FLEET_TAG: &str = "rotor:fleet";
const POLICY_TAG: &str = "rotor:rotation-policy";
/// A rotation function moto does not know: its RotateSecret stages
/// AWSPENDING and answers an error, which the scheduler reports as started
/// (see tests/scheduler/mod.rs).
const NOWHERE: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-metrics-nowhere";

async fn start_scheduler(endpoint: &str, extra: &[(&str, &str)]) -> LocalFunction {
    let mut env = local_env(endpoint);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let binary = rotor_cli::function::function_binary("rotation-scheduler");
    LocalFunction::start(&binary, &env)
        .await
        .unwrap_or_else(|e| panic!("cannot start rotation-scheduler: {e:#}"))
}

/// One scheduler run: Ok(report) or Err(error type).
async fn run(function: &LocalFunction, event: Value) -> Result<Value, String> {
    let invocation = function
        .invoke(&event, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("invocation failed: {e}\n{}", function.output()));
    match invocation.outcome {
        Outcome::Response(report) => Ok(report),
        Outcome::Error { error_type, .. } => Err(error_type),
    }
}

/// Creates a secret in the fleet `age` seconds ago (by moto's clock), its
/// rotation configured with [`NOWHERE`].
async fn fleet_secret(moto: &mut Moto, fleet: &str, policy: Option<&str>, age: i64) -> String {
    let client = moto.client();
    let store = AwsStore::new(client.clone());
    moto.set_clock(-age).expect("moto shifts its clock");
    let mut tags = vec![(FLEET_TAG, fleet)];
    if let Some(policy) = policy {
        tags.push((POLICY_TAG, policy));
    }
    let arn = store
        .create_secret(&unique("fleet"), &SecretString::from("initial"), &tags)
        .await
        .expect("create secret");
    configure_rotation(&client, &arn, NOWHERE)
        .await
        .expect("configure rotation");
    moto.set_clock(0).expect("moto shifts its clock");
    arn
}

#[tokio::test]
async fn scheduler_metrics_in_both_log_formats() {
    for format in FORMATS {
        let mut moto = Moto::start().expect("cannot start moto");
        let fleet = unique("metrics");
        // Due for ten days, so overdue; not due; no policy.
        fleet_secret(&mut moto, &fleet, Some("30d"), 40 * DAY).await;
        fleet_secret(&mut moto, &fleet, Some("30d"), DAY).await;
        fleet_secret(&mut moto, &fleet, None, 40 * DAY).await;
        let filter = format!("{FLEET_TAG}={fleet}");
        let env = [
            ("TAG_FILTER", filter.as_str()),
            ("ROTATION_FUNCTION_ARNS", NOWHERE),
            log_format(format),
        ];
        let function = start_scheduler(moto.endpoint(), &env).await;
        let dry = run(&function, json!({"dry_run": true})).await.unwrap();
        assert_eq!(dry["counts"]["would_start"], 1, "{dry}");
        let report = run(&function, json!({})).await.unwrap();
        assert_eq!(report["counts"]["started"], 1, "{report}");
        let emitted = await_emitted(&function, 3).await;
        assert_eq!(emitted.docs.len(), 3, "a dry run prints no metrics");
        let doc = &emitted.docs[0];
        assert_eq!(doc["Function"], "rotation-scheduler");
        assert_eq!(doc["Outcome"], "Success");
        for (name, value) in [
            ("Runs", 1.0),
            ("SecretsSelected", 3.0),
            ("RotationsStarted", 1.0),
            ("RotationsNotStarted", 0.0),
            ("RotationsUnknown", 0.0),
            ("Skipped", 2.0),
            ("Overdue", 1.0),
            ("Retries", 0.0),
            ("RotateSecretCalls", 1.0),
        ] {
            assert_eq!(doc[name], value, "{name}: {doc}");
            assert_eq!(unit(doc, name).as_deref(), Some("Count"), "{name}");
        }
        for name in ["RunDuration", "RateLimitWait"] {
            assert_eq!(unit(doc, name).as_deref(), Some("Milliseconds"), "{name}");
        }
        // The share of the rate only for a run of a second or more.
        match doc.get("RateUsed").and_then(Value::as_f64) {
            Some(used) => {
                assert_eq!(unit(doc, "RateUsed").as_deref(), Some("Percent"));
                assert!(used > 0.0 && used <= 100.0, "{doc}");
            }
            None => assert!(doc["RunDuration"].as_f64().unwrap() < 1000.0, "{doc}"),
        }
        assert_eq!(
            sets(doc, "Runs"),
            [set(&["Function"]), set(&["Function", "Outcome"])]
        );
        assert_eq!(sets(doc, "Overdue"), [set(&["Function"])]);
        let by_reason: Vec<(&str, f64)> = emitted.docs[1..]
            .iter()
            .map(|d| {
                assert_eq!(sets(d, "Skipped"), [set(&["Function", "Reason"])]);
                (
                    d["Reason"].as_str().unwrap(),
                    d["Skipped"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(by_reason, [("no_policy", 1.0), ("not_due", 1.0)]);
        check_format(&function.output(), format, &emitted);
    }
}

#[tokio::test]
async fn a_failed_scheduler_run_is_counted_by_class_and_kind() {
    // Not retryable: no TAG_FILTER. Retryable: Secrets Manager does not answer.
    let moto = Moto::start().expect("cannot start moto");
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let filter = format!("{FLEET_TAG}={}", unique("metrics"));
    let cases = [
        (moto.endpoint(), vec![], "NotRetryable"),
        (
            closed.as_str(),
            vec![("TAG_FILTER", filter.as_str())],
            "Retryable",
        ),
    ];
    for (endpoint, env, class) in cases {
        let function = start_scheduler(endpoint, &env).await;
        let error_type = run(&function, json!({})).await.unwrap_err();
        let emitted = await_emitted(&function, 1).await;
        let doc = &emitted.docs[0];
        let (got_class, kind) = error_type.split_once('.').unwrap();
        assert_eq!(got_class, class, "{error_type}");
        assert_eq!(doc["Outcome"], class, "{doc}");
        assert_eq!(doc["ErrorType"], kind, "{doc}");
        assert_eq!(doc["Runs"], 1.0);
        assert!(sets(doc, "Runs").contains(&set(&["Function", "Outcome", "ErrorType"])));
        assert!(doc.get("SecretsSelected").is_none(), "{doc}");
    }
}
