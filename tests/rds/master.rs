//! The master secret: which one a secret may use (its owner's consent, or
//! the deployer's variable), and how it logs in (with its own secret's
//! transport, whatever the user's secret says).

use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretString, Step};
use rotor_tests::db::{TlsMode, random_password};
use rotor_tests::target_db::Db;
use rotor_tests::{moto_store, staged_secret, token, unique};
use serde_json::json;

use super::{function, function_with_master, master_secret, recording_relay, refusal, rotate_to};

/// The writer of an application secret sets "ssl": false: that applies to
/// the application user's own login, never to the master's. The master logs
/// in with its own secret's transport (TLS), so a relay that records every
/// byte on the way never sees the master user's login in the clear; only a
/// master secret that itself says "ssl": false sends it in plaintext.
#[tokio::test]
async fn an_app_secret_cannot_send_the_master_login_in_plaintext() {
    let db = Db::start("postgres", TlsMode::Optional);
    let store = moto_store();
    let (port, seen) = recording_relay(([127, 0, 0, 1], db.port()).into()).await;
    let admin = db.admin_user();
    for master_ssl in [json!(true), json!(false)] {
        let master_login = db.secret_at(
            "127.0.0.1",
            port,
            &admin,
            &db.admin_password(),
            json!({"ssl": master_ssl}),
        );
        let master = store
            .create_secret(&unique("master"), &SecretString::from(master_login), &[])
            .await
            .unwrap();
        let function = function_with_master(&db, "alternating", &master).await;
        let user = format!("plain_{}", &token()[..8]);
        let old = random_password();
        db.create_user(&user, &old);
        let t = token();
        let plaintext = db.secret_at("127.0.0.1", port, &user, &old, json!({"ssl": false}));
        let arn = staged_secret(&store, &plaintext, &[], &t).await;
        seen.lock().unwrap().clear();

        let run = rotate_to(&store, &function, &arn, Some(&t)).await;

        let results: Vec<_> = run.steps.iter().map(|s| &s.result).collect();
        assert!(
            run.succeeded(),
            "master ssl {master_ssl}: {results:?}\n{}",
            function.output()
        );
        let bytes = seen.lock().unwrap().clone();
        let in_clear = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(
            in_clear(&user),
            "the relay sees the app user's plaintext login"
        );
        assert!(!in_clear(db.admin_password().expose_secret()));
        if master_ssl == json!(true) {
            assert!(
                !in_clear(&admin),
                "the master logged in in plaintext because the app secret says \"ssl\": false"
            );
        } else {
            assert!(
                in_clear(&admin),
                "the master secret says \"ssl\": false: the relay sees its login"
            );
        }
    }
}

/// A masterarn is written by whoever writes the application's secret: the
/// master secret it names is used only when it agrees to serve that secret
/// (its rotor:serves tag), or when the deployer's MASTER_SECRET_ARN names it.
/// Otherwise setSecret fails with NotServed naming the tag to set, before the
/// master's value is read, and nothing changes in the database.
#[tokio::test]
async fn a_masterarn_is_used_only_when_the_master_serves_the_secret() {
    let db = Db::start("mariadb", TlsMode::Required);
    let store = moto_store();
    let team = format!("{}/", unique("team"));
    let silent = master_secret(&db, &store, &[]).await;
    let serving = master_secret(&db, &store, &[("rotor:serves", &team)]).await;
    let deployers = master_secret(&db, &store, &[]).await;
    let plain = function(&db, "alternating", &[]).await;
    let with_deployer = function_with_master(&db, "alternating", &deployers).await;
    let cases = [
        (&silent, &plain, false),
        // The deployer's variable allows the secret it names, not another one.
        (&silent, &with_deployer, false),
        (&deployers, &with_deployer, true),
        (&serving, &plain, true),
    ];
    for (i, (master, function, allowed)) in cases.into_iter().enumerate() {
        let user = format!("served_{i}_{}", &token()[..6]);
        let old = random_password();
        db.create_user(&user, &old);
        let t = token();
        let stored = SecretString::from(db.secret(&user, &old, json!({"masterarn": master})));
        let arn = store
            .create_secret(&format!("{team}{user}"), &stored, &[])
            .await
            .unwrap();
        store.begin_rotation(&arn, &t).await.unwrap();

        let run = rotate_to(&store, function, &arn, Some(&t)).await;

        if allowed {
            let results: Vec<_> = run.steps.iter().map(|s| &s.result).collect();
            assert!(run.succeeded(), "case {i}: {results:?}");
            continue;
        }
        let (step, kind, message) = refusal(&run);
        assert_eq!(step, Step::SetSecret);
        assert_eq!(kind, "NotRetryable.NotServed", "case {i}: {message}");
        assert!(
            message.contains("rotor:serves") && message.contains("masterarn"),
            "case {i}: {message}"
        );
        let clones = db.admin(&format!(
            "SELECT count(*) FROM mysql.user WHERE User = '{user}_clone'"
        ));
        assert_eq!(clones.trim(), "0", "case {i}: the database changed");
        assert!(db.logs_in(&user, &old));
    }
}
