//! Hostile input at the edge of every rotation function: payloads that are
//! not events, not JSON or not UTF-8, oversized fields, and secrets built to
//! break a parser. Each is refused with a clear, non-retryable error that
//! changes nothing, and the same warm process then rotates normally.

use std::time::Duration;

use bytes::Bytes;
use rotor_core::ExposeSecret;
use rotor_core::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::RotationService;
use rotor_tests::{
    answer, assert_no_stored_secret_in, moto_store, providers, staged_secret, staged_secret_named,
    start_function, steps, token, unique, value,
};
use serde_json::json;

#[tokio::test]
async fn payloads_that_are_not_rotation_events_are_refused_and_the_process_keeps_serving() {
    let store = moto_store();
    let huge = "s".repeat(1 << 20);
    // Payloads that are not JSON never reach rotor: lambda_runtime refuses them
    // with its own error type, as it would in Lambda.
    const NOT_JSON: &str = "&lambda_runtime::deserializer::DeserializeError";
    const INVALID: &str = "NotRetryable.InvalidEvent";
    let not_events: Vec<(&str, &str, Bytes)> = vec![
        ("empty object", INVALID, Bytes::from_static(b"{}")),
        ("array", INVALID, Bytes::from_static(b"[1,2]")),
        ("string", INVALID, Bytes::from_static(b"\"createSecret\"")),
        ("not JSON", NOT_JSON, Bytes::from_static(b"SecretId=x&Step=createSecret")),
        ("not UTF-8", NOT_JSON, Bytes::from_static(b"{\"SecretId\":\"\xff\xfe\"}")),
        ("truncated", NOT_JSON, Bytes::from_static(b"{\"SecretId\":\"a")),
        (
            "wrong types",
            INVALID,
            Bytes::from(json!({"SecretId": 5, "ClientRequestToken": [], "Step": null}).to_string()),
        ),
        (
            "unknown step",
            INVALID,
            Bytes::from(
                json!({"SecretId": "s", "ClientRequestToken": token(), "Step": "dropDatabase"})
                    .to_string(),
            ),
        ),
        (
            "1 MiB SecretId",
            INVALID,
            Bytes::from(
                json!({"SecretId": huge, "ClientRequestToken": token(), "Step": "createSecret"})
                    .to_string(),
            ),
        ),
        (
            "control characters",
            INVALID,
            Bytes::from(
                json!({"SecretId": "a\u{0}b\r\nc", "ClientRequestToken": "\u{1b}[2J", "Step": "createSecret"})
                    .to_string(),
            ),
        ),
        ("deep nesting", NOT_JSON, Bytes::from("[".repeat(100_000))),
    ];
    for name in ["generic-rotation", "rds-rotation", "oauth-rotation"] {
        let function = start_function(name, &[]).await;
        for (what, expected, payload) in &not_events {
            let (kind, message) = answer(&function, payload.clone(), Duration::from_secs(30))
                .await
                .expect_err(what);
            assert_eq!(
                kind,
                *expected,
                "{name}, {what}: {}",
                &message[..message.len().min(300)]
            );
            assert!(
                message.len() < 4096,
                "{name}, {what}: the error repeats the payload ({} bytes)",
                message.len()
            );
            assert!(function.exit_status().is_none(), "{name} died on {what}");
        }
        // The same process still rotates.
        if name == "generic-rotation" {
            let t = token();
            let arn = staged_secret(&store, "before", &[], &t).await;
            for step in Step::ALL {
                steps::run(&function, &arn, &t, step).await.unwrap();
            }
            let current = value(&store, &arn, AWSCURRENT).await.unwrap();
            assert!(current.expose_secret() != "before");
        }
    }
}

/// A function, the secret's tags, and its value.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    String,
);

/// Secret values that a careless parser would choke on: the largest value
/// Secrets Manager stores, a 60,000-character user name, fields of the wrong
/// type, and JSON that is not an object. Refused before anything is stored,
/// naming the field but never echoing the value.
#[tokio::test]
async fn secrets_built_to_break_a_parser_change_nothing() {
    let store = moto_store();
    let long = "u".repeat(60_000);
    let cases: Vec<Case> = vec![
        (
            "rds-rotation",
            &[],
            json!({"engine": "postgres", "host": "127.0.0.1", "username": long, "password": "p"})
                .to_string(),
        ),
        (
            "rds-rotation",
            &[],
            json!({
                "engine": "postgres", "host": "127.0.0.1", "port": "5432; DROP",
                "username": "u", "password": "p"
            })
            .to_string(),
        ),
        (
            "rds-rotation",
            &[],
            json!({"engine": "mysql", "host": "db\"; --", "username": ["u"], "password": 7})
                .to_string(),
        ),
        (
            "rds-rotation",
            &[],
            "[\"not\", \"an\", \"object\"]".to_owned(),
        ),
        (
            "oauth-rotation",
            &[],
            json!({"provider": "keycloak", "client_id": "c", "client_secret": {"a": 1}})
                .to_string(),
        ),
        (
            "generic-rotation",
            &[("rotor:fields", "password")],
            format!("{{\"password\": \"{}\"", "x".repeat(65_000)),
        ),
    ];
    for (name, tags, value_text) in cases {
        let function = start_function(name, &[]).await;
        let t = token();
        let arn = staged_secret(&store, &value_text, tags, &t).await;
        let (kind, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap_err();
        assert!(
            kind == "NotRetryable.InvalidSecretValue" || kind == "NotRetryable.InvalidSettings",
            "{name}: {kind}: {}",
            &message[..message.len().min(300)]
        );
        assert!(message.contains(&arn), "{name}: {message}");
        assert!(
            message.len() < 2000 && !message.contains("uuuuuuuu") && !message.contains("xxxxxxxx"),
            "{name}: the error repeats the value"
        );
        assert!(
            value(&store, &arn, AWSPENDING).await.is_none(),
            "{name}: something was stored"
        );
        let current = value(&store, &arn, AWSCURRENT).await.unwrap();
        assert!(
            current.expose_secret() == value_text,
            "{name}: the current value changed"
        );
    }
}

/// The secrecy check itself finds a credential that leaked into output.
#[tokio::test]
async fn the_secrecy_check_finds_a_leaked_credential() {
    let store = moto_store();
    let arn = store
        .create_secret(
            &unique("leak"),
            &rotor_core::SecretString::from(r#"{"username":"u","password":"p-4f1c-leak"}"#),
            &[],
        )
        .await
        .unwrap();
    assert_no_stored_secret_in(&store, &arn, "user u logged in").await;
    let leaked = tokio::spawn(async move {
        assert_no_stored_secret_in(&store, &arn, "login with p-4f1c-leak failed").await;
    })
    .await;
    assert!(leaked.is_err_and(|e| e.is_panic()));
}

/// SECURITY.md row 9: a client secret's writer puts `/../` in the id field a
/// management call puts in its path (Keycloak's `client_uuid`, Okta's
/// `okta_app_id`, Entra's `application_object_id`, Auth0's `client_id`), to
/// climb from their own client to another team's at the same provider. Each
/// id is one percent-encoded path segment, so the call names no resource and
/// is refused; the other client's secret is untouched and no request's path
/// has a segment naming it.
#[tokio::test]
async fn an_id_field_cannot_climb_to_another_client() {
    use rotor_testbed::provider_emulator::{Provider, ProviderEmulator, TokenAuth};
    use serde_json::Value;

    let function = start_function("oauth-rotation", &[]).await;
    for (provider, field) in [
        (Provider::Keycloak, "client_uuid"),
        (Provider::Okta, "okta_app_id"),
        (Provider::Entra, "application_object_id"),
        (Provider::Auth0, "client_id"),
    ] {
        let emulator = ProviderEmulator::start().await.expect("the emulator");
        let store = moto_store();
        let (victim, _) =
            providers::setup(&emulator, &store, provider, TokenAuth::Post, true).await;
        let (attacker, _) =
            providers::setup(&emulator, &store, provider, TokenAuth::Post, true).await;
        let stored = value(&store, &attacker.arn, AWSCURRENT).await.unwrap();
        let mut hostile: Value = serde_json::from_str(stored.expose_secret()).unwrap();
        hostile[field] = json!(format!("{}/../{}", attacker.admin_id, victim.admin_id));
        let t = token();
        let arn = staged_secret_named(
            &store,
            &format!("{}{}", attacker.team, unique("climb")),
            &hostile.to_string(),
            &[],
            &t,
        )
        .await;
        let seen_before = emulator.seen().len();

        let (_, (kind, message)) = steps::until_refused(&function, &arn, &t)
            .await
            .expect("the rotation is refused");
        assert!(
            kind.starts_with("NotRetryable."),
            "{provider:?}: {kind}: {message}"
        );
        let climbed: Vec<String> = emulator.seen()[seen_before..]
            .iter()
            .filter(|seen| seen.path.split('/').any(|s| s == victim.admin_id))
            .map(|seen| format!("{} {}", seen.method, seen.path))
            .collect();
        assert!(
            climbed.is_empty(),
            "{provider:?}: requests reached the other client: {climbed:?}"
        );
        assert!(
            victim.gets_token(&emulator, &victim.initial).await,
            "{provider:?}: the other client's secret stopped working"
        );
        assert_eq!(victim.active(&emulator), 1, "{provider:?}");
        assert!(value(&store, &arn, AWSPENDING).await.is_none() || kind.contains("Provider"));
        assert_no_stored_secret_in(&store, &arn, &format!("{message}\n{}", function.output()))
            .await;
    }
}
