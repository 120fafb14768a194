//! The real `generic-rotation` binary, over the Lambda Runtime API, against moto.

use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, LabelMove};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{ExposeSecret, SecretStore, SecretString, Step};
use rotor_testbed::webhook_receiver::{Behaviour, WebhookReceiver};
use rotor_tests::{
    labels, moto, moto_store, same, staged_secret, staged_secret_named, start_function, step,
    steps, token, unique, value,
};
use serde_json::{Value, json};

/// Every step run twice in a row gives the same result, and the rotation ends
/// with exactly the expected labels.
async fn rotate_with_replays(
    initial: &str,
    tags: &[(&str, &str)],
) -> (Option<SecretString>, Option<SecretString>) {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let t = token();
    let arn = staged_secret(&store, initial, tags, &t).await;
    let mut staged = None;
    for step in Step::ALL {
        let first = steps::run(&function, &arn, &t, step).await;
        let second = steps::run(&function, &arn, &t, step).await;
        match step {
            Step::CreateSecret => {
                assert_eq!(first.as_deref(), Ok("done"));
                assert_eq!(
                    second.as_deref(),
                    Ok("pending_kept"),
                    "createSecret must keep the staged value"
                );
                staged = value(&store, &arn, AWSPENDING).await;
                assert!(staged.is_some());
            }
            Step::FinishSecret => {
                assert_eq!(first.as_deref(), Ok("done"));
                assert_eq!(second.as_deref(), Ok("already_current"));
            }
            _ => assert!(
                first == second && first.is_ok(),
                "{step}: {first:?} then {second:?}"
            ),
        }
    }
    let labels = labels(&store, &arn).await;
    assert_eq!(labels.get(&t), Some(&vec![AWSCURRENT.to_owned()]));
    assert_eq!(
        labels
            .values()
            .filter(|l| l.contains(&AWSPREVIOUS.to_owned()))
            .count(),
        1
    );
    assert_eq!(
        labels
            .values()
            .filter(|l| l.contains(&AWSPENDING.to_owned()))
            .count(),
        0
    );
    let current = value(&store, &arn, AWSCURRENT).await;
    assert!(
        same(&current, &staged),
        "the value staged by the first createSecret became current"
    );
    let previous = value(&store, &arn, AWSPREVIOUS).await;
    assert!(
        previous
            .as_ref()
            .is_some_and(|p| p.expose_secret() == initial)
    );
    (current, previous)
}

#[tokio::test]
async fn plain_string_secret_full_rotation_with_replays() {
    let (current, _) = rotate_with_replays("the-old-password", &[]).await;
    let current = current.unwrap();
    assert_eq!(current.expose_secret().chars().count(), 32);
}

#[tokio::test]
async fn json_secret_full_rotation_keeps_other_fields() {
    let initial = json!({
        "username": "app", "password": "old", "host": "db.internal", "port": 5432,
        "options": {"ssl": true}, "api_key": "k0",
    })
    .to_string();
    let initial = initial.as_str();
    let tags = [
        ("rotor:fields", "password api_key"),
        ("rotor:generate:api_key", "base64 bytes=24"),
    ];
    let (current, _) = rotate_with_replays(initial, &tags).await;
    let new: Value = serde_json::from_str(current.unwrap().expose_secret()).unwrap();
    let old: Value = serde_json::from_str(initial).unwrap();
    for kept in ["username", "host", "port", "options"] {
        assert_eq!(new[kept], old[kept], "{kept} is kept");
    }
    assert!(new["password"] != old["password"] && new["api_key"] != old["api_key"]);
    assert_eq!(new["api_key"].as_str().unwrap().len(), 32);
}

#[tokio::test]
async fn the_legacy_endpoint_variable_is_honoured() {
    let store = moto_store();
    let endpoint = moto().endpoint().to_owned();
    // Only SECRETS_MANAGER_ENDPOINT, as AWS's official functions are configured.
    let function = start_function(
        "generic-rotation",
        &[
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", ""),
            ("SECRETS_MANAGER_ENDPOINT", &endpoint),
        ],
    )
    .await;
    let t = token();
    let arn = staged_secret(&store, "old", &[], &t).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    assert_eq!(
        labels(&store, &arn).await.get(&t),
        Some(&vec![AWSCURRENT.to_owned()])
    );
}

#[tokio::test]
async fn a_refused_set_secret_is_resumed_on_the_same_pending_version() {
    let store = moto_store();
    let key = SecretString::from(token());
    let receiver = WebhookReceiver::start(SecretString::from(key.expose_secret()))
        .await
        .unwrap();
    let key_secret = store
        .create_secret(&unique("hook-key"), &key, &[])
        .await
        .unwrap();
    let function = start_function(
        "generic-rotation",
        &[
            ("ROTOR_WEBHOOK_URL", &receiver.url()),
            ("ROTOR_WEBHOOK_KEY_SECRET", &key_secret),
        ],
    )
    .await;
    let t = token();
    let arn = staged_secret(&store, r#"{"user":"svc","password":"old"}"#, &[], &t).await;
    let options = RotateOptions {
        secret_id: arn.clone(),
        token: Some(t.clone()),
        test_only: false,
        step_timeout: std::time::Duration::from_secs(30),
    };

    receiver.set_behaviour("setSecret", Behaviour::Refuse(503));
    let first = rotate(&store, &function, &options).await.unwrap();
    let failed = first.steps.last().unwrap();
    let (kind, message) = failed.result.as_ref().unwrap_err();
    assert_eq!(failed.step, Step::SetSecret);
    assert_eq!(kind, "Retryable.WebhookUnavailable");
    assert!(
        message.contains("HTTP 503") && message.contains("/rotor") && message.contains(&arn),
        "{message}"
    );
    let staged = value(&store, &arn, AWSPENDING).await;
    assert!(staged.is_some());
    let before_current = value(&store, &arn, AWSCURRENT).await;

    receiver.set_behaviour("setSecret", Behaviour::Accept);
    let second = rotate(&store, &function, &options).await.unwrap();
    assert!(
        second.succeeded(),
        "{:?}",
        second.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
    );
    assert_eq!(
        second.steps[0].result.as_ref().unwrap()["outcome"],
        "pending_kept"
    );
    let current = value(&store, &arn, AWSCURRENT).await;
    assert!(
        same(&current, &staged),
        "the value staged the first time became current"
    );
    assert!(same(
        &value(&store, &arn, AWSPREVIOUS).await,
        &before_current
    ));
    assert!(
        same(&receiver.registered(&t), &staged),
        "the receiver registered the same value"
    );
    assert!(
        receiver.seen().iter().all(|s| s.signature_ok),
        "every request was signed with the key"
    );

    // A third identical request is a success with nothing done.
    let third = rotate(&store, &function, &options).await.unwrap();
    assert!(third.nothing_to_do.is_some() && third.steps.is_empty());
}

#[tokio::test]
async fn multi_call_rotation_waits_for_validation() {
    let store = moto_store();
    let key = SecretString::from(token());
    let receiver = WebhookReceiver::start(SecretString::from(key.expose_secret()))
        .await
        .unwrap();
    // The key secret agrees to serve the secret that names it in a tag.
    let name = unique("it");
    let key_secret = store
        .create_secret(
            &unique("hook-key"),
            &key,
            &[("rotor:serves", name.as_str())],
        )
        .await
        .unwrap();
    let allowed = receiver.url();
    let function = start_function(
        "generic-rotation",
        &[("ROTOR_WEBHOOK_ALLOWED_PREFIXES", allowed.as_str())],
    )
    .await;
    let t = token();
    let url = receiver.url();
    let tags = [
        ("rotor:mode", "multi"),
        ("rotor:webhook", url.as_str()),
        ("rotor:webhook-key-secret", key_secret.as_str()),
    ];
    let arn = staged_secret_named(&store, &name, "old", &tags, &t).await;
    receiver.set_behaviour("testSecret", Behaviour::Defer);
    steps::replay(&function, &arn, &t, &[Step::CreateSecret, Step::SetSecret]).await;
    let waiting = steps::run(&function, &arn, &t, Step::TestSecret)
        .await
        .unwrap_err();
    assert_eq!(waiting.0, "Retryable.WebhookPending");
    assert!(
        waiting.1.contains("has not validated") && waiting.1.contains("same ClientRequestToken"),
        "{}",
        waiting.1
    );
    assert!(
        value(&store, &arn, AWSCURRENT)
            .await
            .is_some_and(|v| v.expose_secret() == "old")
    );

    receiver.set_behaviour("testSecret", Behaviour::Accept);
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    assert!(same(
        &value(&store, &arn, AWSCURRENT).await,
        &receiver.registered(&t)
    ));
}

#[tokio::test]
async fn a_webhook_that_refuses_the_signature_is_a_permanent_error() {
    let receiver = WebhookReceiver::start(SecretString::from("the receiver's key"))
        .await
        .unwrap();
    let (kind, message) = failed_set_secret(&receiver.url(), "another key").await;
    assert_eq!(kind, "NotRetryable.WebhookAuth");
    assert!(
        message.contains("HTTP 401") && message.contains("same key"),
        "{message}"
    );
}

/// Bad input is refused with a clear error and changes nothing.
#[tokio::test]
async fn bad_input_is_refused_and_nothing_changes() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let t = token();
    let arn = staged_secret(&store, "plain value", &[], &t).await;
    let unknown_version: [&str; 2] = ["no version no-such-version", &arn];
    let cases: Vec<(Value, &str, &[&str])> = vec![
        (
            json!("createSecret"),
            "NotRetryable.InvalidEvent",
            &["JSON object", "check what invoked"],
        ),
        (
            json!({"SecretId": arn, "Step": "createSecret"}),
            "NotRetryable.InvalidEvent",
            &["ClientRequestToken is missing"],
        ),
        (
            json!({"SecretId": arn, "ClientRequestToken": t, "Step": "rotateSecret"}),
            "NotRetryable.InvalidEvent",
            &["\"rotateSecret\" is not one of"],
        ),
        (
            steps::event(&arn, "no-such-version", Step::CreateSecret),
            "NotRetryable.UnknownVersion",
            &unknown_version,
        ),
        (
            steps::event(&unique("missing"), &t, Step::CreateSecret),
            "NotRetryable.SecretsManager",
            &["DescribeSecret", "not found"],
        ),
    ];
    let before = labels(&store, &arn).await;
    for (payload, kind, expected) in cases {
        let (got_kind, message) = step(&function, &payload).await.unwrap_err();
        assert_eq!(got_kind, kind, "{message}");
        for text in expected {
            assert!(message.contains(text), "{message:?} lacks {text:?}");
        }
    }
    assert_eq!(labels(&store, &arn).await, before);
    assert!(value(&store, &arn, AWSPENDING).await.is_none());
}

#[tokio::test]
async fn a_version_that_is_not_pending_is_refused() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let t = token();
    let arn = staged_secret(&store, "v1", &[], &t).await;
    let stray = token();
    let value2 = SecretString::from("stray");
    store
        .put_value(
            &arn,
            NewVersion {
                version_id: &stray,
                value: &value2,
                labels: &["Custom"],
                rotation_token: None,
            },
        )
        .await
        .unwrap();
    let (kind, message) = steps::run(&function, &arn, &stray, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.NotPending");
    assert!(
        message.contains(&stray) && message.contains("AWSPENDING") && message.contains("Custom"),
        "{message}"
    );
}

/// Issue 21, item 17: with `ROTOR_PENDING_LABEL` set, a rotation that
/// Secrets Manager started (RotateSecret stages every rotation as AWSPENDING)
/// is refused with an error that says why and what to do, not a bare
/// NotPending that tells the operator to start another rotation, which would
/// fail the same way. A version staged under the label (by the deployer's
/// own orchestrator) is rotated, and the label is taken off at the end.
#[tokio::test]
async fn a_pending_label_applies_only_to_versions_staged_under_it() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[("ROTOR_PENDING_LABEL", "STAGED")]).await;
    let t = token();
    let arn = staged_secret(&store, "v1", &[], &t).await;
    let before = labels(&store, &arn).await;
    for step in Step::ALL {
        let (kind, message) = steps::run(&function, &arn, &t, step).await.unwrap_err();
        assert_eq!(kind, "NotRetryable.PendingLabelMismatch", "{message}");
        assert!(
            message.contains(&t)
                && message.contains("AWSPENDING")
                && message.contains("RotateSecret")
                && message.contains("ROTOR_PENDING_LABEL")
                && message.contains("STAGED"),
            "{message}"
        );
    }
    assert_eq!(labels(&store, &arn).await, before);
    assert!(value(&store, &arn, AWSPENDING).await.is_none());

    // The way it works: the orchestrator takes AWSPENDING off (or never had
    // RotateSecret put it on) and stages its own value under the label.
    store
        .move_label(
            &arn,
            &LabelMove {
                label: AWSPENDING.into(),
                to: None,
                from: Some(t.clone()),
            },
        )
        .await
        .unwrap();
    let staged = token();
    let new = SecretString::from(format!("staged-{}", token()));
    store
        .put_value(
            &arn,
            NewVersion {
                version_id: &staged,
                value: &new,
                labels: &["STAGED"],
                rotation_token: None,
            },
        )
        .await
        .unwrap();
    steps::replay(&function, &arn, &staged, &Step::ALL).await;
    assert!(same(&value(&store, &arn, AWSCURRENT).await, &Some(new)));
    assert_eq!(
        labels(&store, &arn).await.get(&staged),
        Some(&vec![AWSCURRENT.to_owned()])
    );
}

#[tokio::test]
async fn rotation_disabled_is_refused() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let arn = store
        .create_secret(&unique("norot"), &SecretString::from("v1"), &[])
        .await
        .unwrap();
    let current = labels(&store, &arn).await.into_keys().next().unwrap();
    let (kind, message) = steps::run(&function, &arn, &current, Step::CreateSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.RotationDisabled");
    assert!(
        message.contains("rotation is not enabled") && message.contains(&arn),
        "{message}"
    );
}

#[tokio::test]
async fn bad_secret_values_and_policies_are_refused_and_nothing_changes() {
    let store = moto_store();
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a str,
    );
    let cases: [Case; 4] = [
        (
            "not json",
            &[("rotor:fields", "password")],
            &[],
            "NotRetryable.InvalidSecretValue",
            "not a JSON object",
        ),
        (
            r#"{"username":"u"}"#,
            &[],
            &[],
            "NotRetryable.InvalidSecretValue",
            "no field \"password\"",
        ),
        (
            "plain",
            &[],
            &[("PASSWORD_LENGTH", "3")],
            "NotRetryable.PasswordPolicy",
            "PASSWORD_LENGTH",
        ),
        (
            "plain",
            &[("rotor:generate", "password length=5000")],
            &[],
            "NotRetryable.InvalidSettings",
            "rotor:generate",
        ),
    ];
    for (initial, tags, env, kind, expected) in cases {
        let function = start_function("generic-rotation", env).await;
        let t = token();
        let arn = staged_secret(&store, initial, tags, &t).await;
        let before = labels(&store, &arn).await;
        let (got, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap_err();
        assert_eq!(got, kind, "{message}");
        assert!(
            message.contains(expected) && message.contains(&arn),
            "{message:?} lacks {expected:?}"
        );
        assert_eq!(labels(&store, &arn).await, before);
        assert!(value(&store, &arn, AWSPENDING).await.is_none());
        assert!(
            value(&store, &arn, AWSCURRENT)
                .await
                .is_some_and(|v| v.expose_secret() == initial)
        );
    }
}

/// Issue 21, item 19: a JSON secret with a syntax error and no `rotor:fields`
/// tag was rotated as a plain string: the whole value became a 32-character
/// password and `username`, `host` and the rest were gone. Now a value that
/// starts with `{` or `[` and is no JSON object is refused at createSecret,
/// with where the JSON breaks and the fix, and nothing changes.
#[tokio::test]
async fn a_json_secret_with_a_syntax_error_is_refused_not_replaced() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let password = format!("pw-{}", token());
    let cases = [
        (
            format!(
                r#"{{"username":"app","password":"{password}","host":"db.internal","port":5432,"#
            ),
            "the JSON ends too early at line 1, column",
        ),
        (
            format!(r#"{{"username":"app" "password":"{password}"}}"#),
            "a JSON syntax error at line 1, column 19",
        ),
        (
            format!(r#"["app", "{password}""#),
            "the JSON ends too early at line 1, column",
        ),
        (format!(r#"["app", "{password}"]"#), "it is a JSON array"),
    ];
    for (initial, problem) in cases {
        let t = token();
        let arn = staged_secret(&store, &initial, &[], &t).await;
        let before = labels(&store, &arn).await;
        let (kind, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap_err();
        assert_eq!(kind, "NotRetryable.InvalidSecretValue", "{message}");
        assert!(
            message.contains(&arn)
                && message.contains(problem)
                && message.contains("rotor:format=plain"),
            "{message}"
        );
        assert!(!message.contains(&password), "the message shows the value");
        assert_eq!(labels(&store, &arn).await, before);
        assert!(value(&store, &arn, AWSPENDING).await.is_none());
        assert!(
            value(&store, &arn, AWSCURRENT)
                .await
                .is_some_and(|v| v.expose_secret() == initial),
            "AWSCURRENT changed"
        );
        assert!(
            !function.output().contains(&password),
            "the function's output shows the value"
        );
    }
}

/// Every log line of several rotations, at the most verbose level, is searched
/// for every secret value those rotations handled: none may appear.
#[tokio::test]
async fn no_secret_value_reaches_the_logs() {
    let store = moto_store();
    let key = SecretString::from(format!("hook-key-{}", token()));
    let receiver = WebhookReceiver::start(SecretString::from(key.expose_secret()))
        .await
        .unwrap();
    // The key secret serves this test's secrets (a name prefix).
    let team = format!("{}/", unique("team"));
    let key_secret = store
        .create_secret(
            &unique("hook-key"),
            &key,
            &[("rotor:serves", team.as_str())],
        )
        .await
        .unwrap();
    let allowed = receiver.url();
    let function = start_function(
        "generic-rotation",
        &[
            ("AWS_LAMBDA_LOG_LEVEL", "trace"),
            ("ROTOR_WEBHOOK_ALLOWED_PREFIXES", allowed.as_str()),
        ],
    )
    .await;
    let url = receiver.url();
    let webhook_tags = [
        ("rotor:webhook", url.as_str()),
        ("rotor:webhook-key-secret", key_secret.as_str()),
    ];
    let initial_values = [
        ("plain-initial-value-0123456789", &[][..]),
        (
            r#"{"username":"app","password":"json-initial-password-xyz"}"#,
            &[][..],
        ),
        (
            r#"{"password":"hooked-initial-password-abc"}"#,
            &webhook_tags[..],
        ),
    ];
    let mut values = vec![SecretString::from(key.expose_secret())];
    for (initial, tags) in initial_values {
        let t = token();
        let name = format!("{team}{}", unique("it"));
        let arn = staged_secret_named(&store, &name, initial, tags, &t).await;
        steps::replay(&function, &arn, &t, &Step::ALL).await;
        // A failing step too: its error path must not leak either.
        let _ = steps::run(&function, &arn, "not-a-version", Step::TestSecret).await;
        values.extend(value(&store, &arn, AWSCURRENT).await);
        values.extend(value(&store, &arn, AWSPREVIOUS).await);
    }
    let mut needles: Vec<String> = Vec::new();
    for v in &values {
        needles.push(v.expose_secret().to_owned());
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(v.expose_secret()) {
            needles.extend(
                fields
                    .values()
                    .filter_map(Value::as_str)
                    .filter(|s| s.len() >= 8)
                    .map(str::to_owned),
            );
        }
    }
    let logs = function.output();
    assert!(
        logs.lines().count() > 20,
        "trace logging produced output to search"
    );
    let hits = needles.iter().filter(|n| logs.contains(n.as_str())).count();
    assert!(
        hits == 0,
        "{hits} secret values found in the function's logs"
    );
}

#[tokio::test]
async fn logs_are_json_when_lambda_asks_for_json() {
    let store = moto_store();
    let function = start_function(
        "generic-rotation",
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "json"),
            ("AWS_LAMBDA_LOG_LEVEL", "info"),
        ],
    )
    .await;
    let t = token();
    let arn = staged_secret(&store, "old", &[], &t).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let _ = steps::run(&function, &arn, "not-a-version", Step::TestSecret).await;
    let logs = function.output();
    // Metric documents are JSON lines of their own (tests/metrics.rs).
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("\"_aws\""))
        .collect();
    assert!(lines.len() >= 5, "{logs}");
    for line in &lines {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            parsed.get("level").is_some() && parsed.get("fields").is_some(),
            "{line}"
        );
    }
    // The step's own fields are structured, so a log query can filter on them.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"step\":\"finishSecret\"") && l.contains(&arn)),
        "{logs}"
    );
}

/// A webhook whose TLS handshake fails is named as such, and is not retried:
/// running the step again meets the same certificate.
#[tokio::test]
async fn a_webhook_whose_tls_fails_is_a_tls_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server that answers the TLS hello with plain HTTP.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = plain.accept().await {
            let mut hello = [0u8; 1024];
            let _ = socket.read(&mut hello).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let url = format!("https://localhost:{port}/rotor");
    let (kind, message) = failed_set_secret(&url, "a key").await;
    assert_eq!(kind, "NotRetryable.WebhookTls", "{message}");
    assert!(
        message.contains(&format!("localhost:{port}/rotor")),
        "{message}"
    );
}

/// Runs createSecret, then setSecret, of a new secret whose webhook is `url`,
/// signed with `key`: setSecret's error type and message.
async fn failed_set_secret(url: &str, key: &str) -> (String, String) {
    let store = moto_store();
    let key_secret = store
        .create_secret(&unique("hook-key"), &SecretString::from(key), &[])
        .await
        .unwrap();
    let function = start_function(
        "generic-rotation",
        &[
            ("ROTOR_WEBHOOK_URL", url),
            ("ROTOR_WEBHOOK_KEY_SECRET", &key_secret),
        ],
    )
    .await;
    let t = token();
    let arn = staged_secret(&store, "old", &[], &t).await;
    assert!(
        steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .is_ok()
    );
    steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err()
}
