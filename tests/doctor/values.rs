//! Values the function cannot use: unparsable values, masters and webhook keys that
//! did not agree, generic values without their fields; and `--connect`'s checks.

use rotor_cli::rotate::rotate;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{SecretStore, SecretString};
use rotor_testbed::db::{TlsMode, random_password};
use rotor_tests::target_db::Db;
use rotor_tests::{moto, moto_store, rfc7592_secret, start_function, token, unique, value};
use serde_json::{Value, json};

use super::{
    Vars, codes, deploy, doctor, doctor_with, first_finding, function_arn, generic_secret, notes,
    options, rotor, served_by, start_rotation,
};

/// rds: a value the function cannot parse, and a master secret it cannot
/// read, found through rds-rotation's own parser.
#[tokio::test(flavor = "multi_thread")]
async fn unparsable_values_and_unreadable_masters_are_findings() {
    let store = moto_store();
    let broken = store
        .create_secret(
            &unique("doctor"),
            &SecretString::from(r#"{"engine":"postgres","host":"db.example","username":"u"}"#),
            &[],
        )
        .await
        .expect("create");
    let (code, doc) = doctor(&broken, &["--kind", "rds"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["current-unparsable"]);
    assert!(
        doc["findings"][0]["what"]
            .as_str()
            .is_some_and(|w| w.contains("password")),
        "{doc}"
    );

    let orphan = store
        .create_secret(
            &unique("doctor"),
            &SecretString::from(
                json!({
                    "engine": "postgres", "host": "db.example", "username": "u",
                    "password": "p", "masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-master-AbCdEf"
                })
                .to_string(),
            ),
            &[],
        )
        .await
        .expect("create");
    let (code, doc) = doctor(&orphan, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["master-unreadable"]);
}

/// --connect against the OAuth test server: a client_credentials grant with
/// AWSCURRENT's client secret, through oauth-rotation's own parser and grant.
#[tokio::test(flavor = "multi_thread")]
async fn connect_asks_the_provider_for_a_token() {
    use rotor_testbed::oauth_server::{AuthMethod, OAuthServer};
    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    let method = AuthMethod::ClientSecretBasic;
    let client = server.register_client(method).await.expect("register");
    let good = rfc7592_secret(&server, &client, method, None);
    let mut wrong: Value = serde_json::from_str(&good).expect("json");
    wrong["client_secret"] = json!("not-the-secret");
    let store = moto_store();
    let ca = server.ca_path().display().to_string();
    let trust = [("SSL_CERT_FILE", ca.as_str())];
    for (value, works) in [(good, true), (wrong.to_string(), false)] {
        let arn = store
            .create_secret(&unique("doctor"), &SecretString::from(value), &[])
            .await
            .expect("create");
        let (code, doc) = doctor_with(&arn, &["--connect"], &trust).await;
        assert_eq!(doc["kind"], "oauth-rotation");
        if works {
            assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
            assert_eq!(code, 0);
        } else {
            assert_eq!(codes(&doc), ["current-does-not-work"]);
            assert_eq!(code, 1);
            assert!(!doc.to_string().contains("not-the-secret"));
        }
    }
}

/// rds, alternating users on MariaDB: a value the function cannot parse, then
/// a master secret that never agreed to serve the secret (the core's
/// rotor:serves rule). Neither has a safe automatic repair; each finding's own
/// fix, done by hand, leaves a secret that rotates and logs in.
#[tokio::test(flavor = "multi_thread")]
async fn unparsable_values_and_masters_that_did_not_agree_are_fixed_by_their_commands() {
    let db = Db::start("mariadb", TlsMode::Required);
    let ca = db.ca_path();
    let store = moto_store();
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[],
        )
        .await
        .expect("create master");
    let old = random_password();
    db.create_user("svc", &old);
    let name = unique("doctor");
    let arn = store
        .create_secret(
            &name,
            &SecretString::from(r#"{"engine":"mariadb","host":"127.0.0.1"}"#),
            &[],
        )
        .await
        .expect("create");
    let function = unique("fn");
    let staged = token();
    start_rotation(&arn, &function_arn(&function), &staged).await;
    store
        .move_label(
            &arn,
            &rotor_core::labels::LabelMove {
                label: AWSPENDING.into(),
                to: None,
                from: Some(staged),
            },
        )
        .await
        .expect("unstage");
    deploy(
        &function,
        "rds-rotation",
        &[("ROTATION_STRATEGY", "alternating")],
        60,
        true,
    )
    .await;

    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["current-unparsable"]);

    // The finding's fix: put-secret-value with a value that parses.
    store
        .put_value(
            &arn,
            NewVersion {
                version_id: &token(),
                value: &SecretString::from(db.secret("svc", &old, json!({"masterarn": master}))),
                labels: &[AWSCURRENT],
                rotation_token: None,
            },
        )
        .await
        .expect("put");
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["master-unreadable"]);
    assert!(doc.to_string().contains("rotor:serves"), "{doc}");

    // The master's owner agrees to serve it.
    moto()
        .client()
        .tag_resource()
        .secret_id(&master)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("rotor:serves")
                .value(&name)
                .build(),
        )
        .send()
        .await
        .expect("tag");
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);

    let local = start_function(
        "rds-rotation",
        &[
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", "alternating"),
        ],
    )
    .await;
    let run = rotate(&store, &local, &options(&arn, &token()))
        .await
        .expect("rotate");
    assert!(run.succeeded(), "{}", rotor_cli::rotate::report(&run));
    let current = value(&store, &arn, AWSCURRENT).await.expect("current");
    assert!(db.value_logs_in(&current));
}

/// generic-rotation with a webhook: the signing-key secret must agree to
/// serve the secret (rotor:serves), as the function itself requires.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_key_that_did_not_agree_is_a_finding() {
    let store = moto_store();
    let key = store
        .create_secret(&unique("hook-key"), &SecretString::from("k"), &[])
        .await
        .expect("create key");
    let name = unique("doctor");
    let arn = store
        .create_secret(
            &name,
            &SecretString::from("v"),
            &[
                ("rotor:webhook", "https://hooks.example.com/rotor"),
                ("rotor:webhook-key-secret", key.as_str()),
            ],
        )
        .await
        .expect("create");
    let function = unique("fn");
    let staged = token();
    start_rotation(&arn, &function_arn(&function), &staged).await;
    store
        .move_label(
            &arn,
            &rotor_core::labels::LabelMove {
                label: AWSPENDING.into(),
                to: None,
                from: Some(staged),
            },
        )
        .await
        .expect("unstage");
    deploy(
        &function,
        "generic-rotation",
        &[(
            "ROTOR_WEBHOOK_ALLOWED_PREFIXES",
            "https://hooks.example.com/",
        )],
        60,
        true,
    )
    .await;
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["webhook-key-unreadable"], "{doc}");
    // status --filter matches the tag's key and value together.
    let filter = format!("rotor:webhook-key-secret={key}");
    let (_, out) = rotor(&["status", "--filter", &filter, "--json"]).await;
    let status: Value = serde_json::from_str(&out).expect("status --json");
    let names: Vec<&str> = status["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, [name.as_str()]);
    moto()
        .client()
        .tag_resource()
        .secret_id(&key)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("rotor:serves")
                .value(&name)
                .build(),
        )
        .send()
        .await
        .expect("tag");
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);
}

/// generic-rotation logs in nowhere: --connect on a healthy generic secret
/// says there is nothing to log in to, and is no finding.
#[tokio::test(flavor = "multi_thread")]
async fn connect_on_a_generic_secret_has_nothing_to_log_in_to() {
    let (_store, arn, _) = generic_secret(None).await;
    let (code, doc) = doctor(&arn, &["--connect"]).await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);
    assert!(notes(&doc).contains("nothing to log in to"), "{doc}");
}

/// generic-rotation refuses a JSON value without the fields its settings
/// regenerate (`password` by default, rotor:fields otherwise), and a value
/// that is not JSON when fields are named: doctor reads the value through the
/// same rule, and so does a value that starts like JSON but is none (with no
/// fields named the function refuses it rather than replace it whole).
#[tokio::test(flavor = "multi_thread")]
async fn a_generic_value_without_the_fields_its_settings_name_is_a_finding() {
    let store = moto_store();
    let broken = r#"{"username":"app","password":"x""#;
    let cases: [(&str, Vars, &[&str], &str); 5] = [
        (r#"{"username":"app","password":"x"}"#, &[], &[], ""),
        (
            r#"{"username":"app"}"#,
            &[],
            &["current-unparsable"],
            "\"password\"",
        ),
        (
            r#"{"username":"app","password":"x"}"#,
            &[("rotor:fields", "password api_key")],
            &["current-unparsable"],
            "\"api_key\"",
        ),
        (
            broken,
            &[("rotor:fields", "password")],
            &["current-unparsable"],
            "not a JSON object",
        ),
        (broken, &[], &["current-unparsable"], "rotor:format"),
    ];
    for (value, tags, expected, words) in cases {
        let (arn, function) = served_by(&store, &unique("doctor"), value, tags).await;
        deploy(&function, "generic-rotation", &[], 60, true).await;
        let (code, doc) = doctor(&arn, &[]).await;
        assert_eq!(doc["kind"], "generic-rotation");
        assert_eq!(codes(&doc), expected, "{value} {tags:?}: {doc}");
        assert!(first_finding(&doc).contains(words), "{doc}");
        let needs_attention = expected.contains(&"current-unparsable");
        assert_eq!(code, i32::from(needs_attention), "{doc}");
    }
}
