//! Stuck rotations: a pending version with or without a value, a pending label on the
//! current version, a young rotation; diagnosed, fixed and rotated again.

use rotor_core::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{SecretStore, SecretString};
use rotor_testbed::db::{TlsMode, random_password};
use rotor_tests::target_db::Db;
use rotor_tests::{
    labels, moto, moto_store, rfc7592_secret, start_function, start_function_at, steps, token,
    unique, value,
};
use serde_json::{Value, json};

use super::{
    codes, deploy, doctor, doctor_with, function_arn, generic_secret, rotates, rotor, secret_for,
    settings, start_rotation, start_rotation_every, unstage,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_secret_has_no_findings_and_status_says_ok() {
    let (_store, arn, name) = generic_secret(None).await;
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(codes(&doc), Vec::<String>::new());
    assert_eq!(code, 0);
    assert_eq!(doc["kind"], "generic-rotation");

    let (code, out) = rotor(&["status", "--prefix", &name, "--json"]).await;
    let doc: Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(doc["secrets"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["secrets"][0]["health"], "ok");
    assert_eq!(code, 0);
}

/// The crash before createSecret stored a value: doctor cancels the rotation
/// (nothing was made, nothing is lost), and the next rotation completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_version_without_a_value_is_cancelled() {
    let pending = token();
    let (store, arn, name) = generic_secret(Some(&pending)).await;

    // Young: in flight, not stuck; --fix leaves a running rotation alone.
    let (code, doc) = doctor(&arn, &["--fix", "--yes"]).await;
    assert_eq!(code, 0, "{doc}");
    assert!(labels(&store, &arn).await[&pending].contains(&AWSPENDING.to_owned()));

    let (code, doc) = doctor(&arn, &["--stuck-after-minutes", "0"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["pending-without-value"]);
    assert_eq!(doc["findings"][0]["repair"]["repair"], "cancel");
    let (code, out) = rotor(&[
        "status",
        "--prefix",
        &name,
        "--json",
        "--stuck-after-minutes",
        "0",
    ])
    .await;
    assert_eq!(code, 1);
    let status: Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(status["secrets"][0]["health"], "stuck");
    assert_eq!(status["secrets"][0]["in_flight"]["has_value"], false);

    let (code, doc) = doctor(&arn, &["--stuck-after-minutes", "0", "--fix", "--yes"]).await;
    assert_eq!(codes(&doc), Vec::<String>::new());
    assert_eq!(code, 0);
    rotates(&store, &arn).await;
}

/// finishSecret moved AWSCURRENT and died before removing AWSPENDING.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_label_on_the_current_version_is_removed() {
    let (store, arn, _) = generic_secret(None).await;
    let version = token();
    store
        .put_value(
            &arn,
            NewVersion {
                version_id: &version,
                value: &SecretString::from("newer"),
                labels: &[AWSCURRENT, AWSPENDING],
                rotation_token: None,
            },
        )
        .await
        .expect("put");
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["pending-on-current"]);
    // Without --yes a repair needs a "y" on stdin; none came, nothing changed.
    let (code, doc) = doctor(&arn, &["--fix"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["pending-on-current"]);
    let (code, doc) = doctor(&arn, &["--fix", "--yes"]).await;
    assert_eq!(codes(&doc), Vec::<String>::new());
    assert_eq!(code, 0);
    let after = labels(&store, &arn).await;
    assert_eq!(after[&version], [AWSCURRENT]);
    rotates(&store, &arn).await;
}

/// The crash after setSecret: the database already has the pending password
/// and AWSCURRENT no longer logs in. --connect shows it; --fix resumes the
/// rotation with its own token (never deletes the pending value), and the
/// secret ends rotated with a credential that logs in.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_version_with_a_value_is_resumed_and_connect_checks_logins() {
    for engine in ["postgres", "mariadb"] {
        let db = Db::start(engine, TlsMode::Required);
        let ca = db.ca_path();
        let user = format!("doc{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let password = random_password();
        db.create_user(&user, &password);
        let store = moto_store();
        let arn = store
            .create_secret(
                &unique("doctor"),
                &SecretString::from(db.secret(&user, &password, json!({}))),
                &[],
            )
            .await
            .expect("create");
        let function = unique("fn");
        let pending = token();
        start_rotation(&arn, &function_arn(&function), &pending).await;
        deploy(
            &function,
            "rds-rotation",
            &[("ROTATION_STRATEGY", "single")],
            60,
            true,
        )
        .await;

        let env = [
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", "single"),
        ];
        let local = start_function("rds-rotation", &env).await;
        for step in [Step::CreateSecret, Step::SetSecret] {
            steps::run(&local, &arn, &pending, step)
                .await
                .unwrap_or_else(|(kind, _)| panic!("{step}: {kind}"));
        }
        drop(local);

        let connect = ["--connect", "--stuck-after-minutes", "0"];
        let trust = [("SSL_CERT_FILE", ca.as_str())];
        let (code, doc) = doctor_with(&arn, &connect, &trust).await;
        assert_eq!(code, 1);
        assert_eq!(
            codes(&doc),
            ["current-does-not-work", "pending-with-value"],
            "{engine}"
        );
        assert_eq!(doc["findings"][1]["repair"]["repair"], "resume");

        let cert = format!("SSL_CERT_FILE={ca}");
        let (code, doc) = doctor_with(
            &arn,
            &[
                "--connect",
                "--stuck-after-minutes",
                "0",
                "--fix",
                "--yes",
                "--function",
                "rds-rotation",
                "--env",
                &cert,
            ],
            &trust,
        )
        .await;
        assert_eq!(codes(&doc), Vec::<String>::new(), "{engine}: {doc}");
        assert_eq!(code, 0);
        assert_eq!(labels(&store, &arn).await[&pending], [AWSCURRENT]);
        let current = value(&store, &arn, AWSCURRENT).await.expect("current");
        assert!(db.value_logs_in(&current), "{engine}");
    }
}

/// oauth-rotation against an RFC 7592 server: the server issued the new
/// secret (and retired the old one), and Secrets Manager refused to store it
/// (ValueNotStored). The pending version has no value, yet cancelling it would
/// throw away the only recovery path the function's error names: retrying the
/// rotation with that version. doctor offers Resume there, never Cancel, and
/// --fix completes the rotation.
#[tokio::test(flavor = "multi_thread")]
async fn an_rfc7592_value_that_was_not_stored_is_resumed_never_cancelled() {
    use rotor_testbed::oauth_server::{AuthMethod, OAuthServer};
    use rotor_testbed::sm_proxy::{Fault, SmProxy};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    let method = AuthMethod::ClientSecretBasic;
    let client = server.register_client(method).await.expect("register");
    let ca = server.ca_path().display().to_string();
    let trust = [("SSL_CERT_FILE", ca.as_str())];
    let store = moto_store();
    let function = unique("fn");
    let pending = token();
    let arn = secret_for(
        &store,
        &unique("doctor"),
        &rfc7592_secret(&server, &client, method, None),
        &[],
        &function,
        Some(&pending),
    )
    .await;
    deploy(&function, "oauth-rotation", &[], 120, true).await;

    // Every PutSecretValue fails as a KMS key that refuses does.
    let refuse = Arc::new(AtomicBool::new(true));
    let plan = refuse.clone();
    let sm = SmProxy::with_faults(moto().endpoint(), move |operation, _, _| {
        (operation == "PutSecretValue" && plan.load(Ordering::SeqCst))
            .then_some(Fault::EncryptionFailure)
    })
    .await
    .expect("proxy");
    let local = start_function_at("oauth-rotation", sm.endpoint(), &trust).await;
    let (kind, message) = steps::run(&local, &arn, &pending, Step::CreateSecret)
        .await
        .expect_err("the value cannot be stored");
    assert_eq!(kind, "NotRetryable.ValueNotStored", "{message}");
    refuse.store(false, Ordering::SeqCst);
    drop(local);

    let (code, doc) = doctor_with(&arn, &["--stuck-after-minutes", "0"], &trust).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["pending-without-value"], "{doc}");
    assert_eq!(doc["findings"][0]["repair"]["repair"], "resume", "{doc}");
    let fix = doc["findings"][0]["fix"].to_string();
    assert!(
        !fix.contains("cancel") && !fix.contains("--remove-from-version-id"),
        "{fix}"
    );

    let cert = format!("SSL_CERT_FILE={ca}");
    let (code, doc) = doctor_with(
        &arn,
        &[
            "--connect",
            "--stuck-after-minutes",
            "0",
            "--fix",
            "--yes",
            "--function",
            "oauth-rotation",
            "--env",
            &cert,
        ],
        &trust,
    )
    .await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);
    assert_eq!(labels(&store, &arn).await[&pending], [AWSCURRENT]);
}

/// `rotor rotate` (a rotation, and --test-only) leaves the secret's rotation
/// settings as it found them: the function, deployed in the emulator or not,
/// the schedule, on or off; status and doctor still find nothing wrong. A
/// secret without rotation keeps rotation off, and the runner says what the
/// emulator records of its staging.
#[tokio::test(flavor = "multi_thread")]
async fn rotate_keeps_the_rotation_settings_it_found() {
    let store = moto_store();
    for deployed in [true, false] {
        for extra in [&["--test-only"][..], &[]] {
            let name = unique("keep");
            let arn = store
                .create_secret(&name, &SecretString::from("v1"), &[])
                .await
                .expect("create");
            let function = unique("fn");
            let staged = token();
            start_rotation_every(&arn, &function_arn(&function), &staged, 7).await;
            unstage(&store, &arn, &staged).await;
            if deployed {
                deploy(&function, "generic-rotation", &[], 60, true).await;
            }
            let before = settings(&arn).await;
            assert_eq!(before, (true, Some(function_arn(&function)), Some(7)));
            let mut args = vec!["rotate", name.as_str()];
            args.extend_from_slice(extra);
            let (code, out) = rotor(&args).await;
            assert_eq!(code, 0, "{out}");
            assert_eq!(
                settings(&arn).await,
                before,
                "deployed {deployed}, {extra:?}: {out}"
            );
            assert!(out.contains("rotation settings unchanged"), "{out}");
            if deployed {
                let (code, doc) = doctor(&arn, &[]).await;
                assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
                assert_eq!(code, 0);
                let (code, out) = rotor(&["status", "--prefix", &name]).await;
                assert_eq!(code, 0, "{out}");
            }
        }
    }
    for extra in [&["--test-only"][..], &[]] {
        let name = unique("off");
        let arn = store
            .create_secret(&name, &SecretString::from("v1"), &[])
            .await
            .expect("create");
        let mut args = vec!["rotate", name.as_str()];
        args.extend_from_slice(extra);
        let (code, out) = rotor(&args).await;
        assert_eq!(code, 0, "{out}");
        let (enabled, _, _) = settings(&arn).await;
        assert!(!enabled, "{extra:?}: {out}");
        assert!(out.contains("rotation stays off"), "{out}");
        let (code, out) = rotor(&["status", "--prefix", &name]).await;
        assert_eq!(code, 0, "{out}");
        let (code, doc) = doctor(&arn, &[]).await;
        assert_eq!(code, 0, "{doc}");
    }
}

/// A rotation in flight for less than --stuck-after-minutes may still be
/// running: doctor says when --fix may touch it and how to override, and
/// --fix says why it did not act, rather than "nothing to repair".
#[tokio::test(flavor = "multi_thread")]
async fn a_young_rotation_says_when_fix_may_touch_it() {
    let pending = token();
    let (store, arn, _) = generic_secret(Some(&pending)).await;
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 0, "{doc}");
    assert_eq!(codes(&doc), ["pending-without-value"]);
    assert_eq!(doc["findings"][0]["health"], "warning", "{doc}");
    let finding = doc["findings"][0].to_string();
    assert!(
        finding.contains("60 minutes") && finding.contains("UTC"),
        "{finding}"
    );
    assert!(finding.contains("--stuck-after-minutes 0"), "{finding}");

    let (code, out) = rotor(&["doctor", &arn, "--fix", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("not repaired") && out.contains("--stuck-after-minutes 0"),
        "{out}"
    );
    assert!(labels(&store, &arn).await[&pending].contains(&AWSPENDING.to_owned()));
}
