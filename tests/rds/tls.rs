//! How rds-rotation connects: verified TLS unless the secret says
//! `"ssl": false`, the trusted certificates, and the clear, typed errors of
//! each way a connection fails, none of which changes anything.

use rotor_core::labels::AWSCURRENT;
use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretString, Step};
use rotor_tests::db::{
    ClientLogin, ClientTls, MariaDb, Postgres, ServerCert, TestCa, TlsMode, random_password,
};
use rotor_tests::target_db::{Db, password};
use rotor_tests::{
    labels, moto_store, same, staged_secret, start_function, steps, token, unique, value,
};
use serde_json::{Value, json};

use super::{function, refusal, rotate_ok, rotate_to};

/// An unreachable host, a wrong CA and plaintext to a server that requires TLS
/// each give a clear error and change nothing.
#[tokio::test]
async fn connection_failures_are_clear_and_change_nothing() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let old = random_password();
    db.create_user("app", &old);
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let other_ca = TestCa::new();
    let other_ca_dir = std::env::temp_dir().join(unique("ca"));
    std::fs::create_dir_all(&other_ca_dir).unwrap();
    let other_ca_path = other_ca.write_ca(&other_ca_dir).display().to_string();

    type Case<'a> = (Value, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: [Case; 3] = [
        (
            json!({"port": closed_port}),
            vec![],
            "Retryable.DatabaseUnreachable",
            "refused the connection",
        ),
        (
            json!({}),
            vec![("SSL_CERT_FILE", other_ca_path.as_str())],
            "NotRetryable.DatabaseTls",
            "TLS failed",
        ),
        (
            json!({"ssl": false}),
            vec![],
            "NotRetryable.DatabaseAuth",
            "PostgreSQL at 127.0.0.1",
        ),
    ];
    for (extra, env, kind, expected) in cases {
        let function = match env.is_empty() {
            true => function(&db, "single", &[]).await,
            false => start_function("rds-rotation", &env).await,
        };
        let t = token();
        let arn = staged_secret(&store, &db.secret("app", &old, extra), &[], &t).await;

        let run = rotate_to(&store, &function, &arn, Some(&t)).await;

        let (step, got, message) = refusal(&run);
        assert_eq!(step, Step::SetSecret);
        assert_eq!(got, kind, "{message}");
        assert!(
            message.contains(expected) && message.contains(&arn),
            "{message:?} lacks {expected:?}"
        );
        assert!(
            db.logs_in("app", &old),
            "the database password did not change"
        );
        let current = labels(&store, &arn)
            .await
            .into_iter()
            .find(|(_, labels)| labels.iter().any(|l| l == AWSCURRENT))
            .map(|(version, _)| version);
        assert_eq!(run.after.versions.current().map(str::to_owned), current);
    }
}

/// Issue 22: the causes a connection fails for are told apart by typed
/// values only (the function resolves the host itself, and reads the
/// server's answer to its TLS request), never by a driver's message. A host
/// name that does not resolve is Retryable.DatabaseUnreachable naming it;
/// a server that offers no TLS, to a secret that does not say "ssl": false,
/// is NotRetryable.DatabaseTls; on both engines, before any login.
#[tokio::test]
async fn dns_and_a_server_without_tls_are_told_apart() {
    let store = moto_store();
    for engine in ["postgres", "mariadb"] {
        let db = Db::start(engine, TlsMode::Off);
        let old = random_password();
        db.create_user("app", &old);
        let function = function(&db, "single", &[]).await;
        let nowhere = "no-such-host.invalid";
        let cases = [
            (
                db.secret_at(nowhere, db.port(), "app", &old, json!({})),
                "Retryable.DatabaseUnreachable",
                "could not resolve the host name",
            ),
            (
                db.secret("app", &old, json!({})),
                "NotRetryable.DatabaseTls",
                "TLS failed",
            ),
        ];
        for (stored, kind, expected) in cases {
            let t = token();
            let arn = staged_secret(&store, &stored, &[], &t).await;
            steps::run(&function, &arn, &t, Step::CreateSecret)
                .await
                .unwrap();

            let (got, message) = steps::run(&function, &arn, &t, Step::SetSecret)
                .await
                .unwrap_err();

            assert_eq!(got, kind, "{engine}: {message}");
            assert!(message.contains(expected), "{engine}: {message}");
            let current = value(&store, &arn, AWSCURRENT).await;
            assert!(
                same(&current, &Some(SecretString::from(stored))),
                "{engine}: AWSCURRENT changed"
            );
        }
    }
}

/// Plaintext only when the secret says so, and then it works.
#[tokio::test]
async fn plaintext_only_when_the_secret_says_so() {
    let db = Db::start("mariadb", TlsMode::Optional);
    let store = moto_store();
    let old = random_password();
    db.create_user("plain", &old);
    let function = function(&db, "single", &[]).await;
    let stored = SecretString::from(db.secret("plain", &old, json!({"ssl": false})));
    let arn = store
        .create_secret(&unique("plain"), &stored, &[])
        .await
        .unwrap();

    rotate_ok(&store, &function, &arn, "plaintext").await;

    assert!(db.logs_in("plain", &password(&store, &arn, AWSCURRENT).await));
}

/// Issue 14, item 3: `ssl` values other than true and false, which AWS's
/// functions accept, rotate over verified TLS (the server refuses plaintext),
/// with a warning in the log.
#[tokio::test]
async fn any_other_ssl_value_means_verified_tls() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let function = function(&db, "single", &[]).await;
    let values = [json!("require"), json!("VERIFY-FULL"), json!(1)];
    for (i, ssl) in values.into_iter().enumerate() {
        let user = format!("ssl_{i}");
        let old = random_password();
        db.create_user(&user, &old);
        let stored = SecretString::from(db.secret(&user, &old, json!({"ssl": ssl})));
        let arn = store
            .create_secret(&unique("ssl"), &stored, &[])
            .await
            .unwrap();

        rotate_ok(&store, &function, &arn, &format!("ssl {ssl}")).await;

        assert!(db.logs_in(&user, &password(&store, &arn, AWSCURRENT).await));
    }
    assert!(function.output().contains("neither true nor false"));
}

/// A server whose certificate has expired is refused, on both engines, and the
/// password stays as it was.
#[tokio::test]
async fn an_expired_server_certificate_is_refused() {
    let store = moto_store();
    let servers = [
        Db::Postgres(Postgres::start_with(TlsMode::Required, ServerCert::Expired).unwrap()),
        Db::MariaDb(MariaDb::start_with(TlsMode::Required, ServerCert::Expired).unwrap()),
    ];
    for db in &servers {
        let old = random_password();
        // The admin's client connects without verifying the certificate, to set up the user.
        let admin = ClientLogin::new(&db.admin_user(), db.admin_password(), ClientTls::Unverified);
        let create = format!("CREATE USER app PASSWORD '{}'", old.expose_secret());
        match db {
            Db::Postgres(pg) => pg.psql_with(&admin, "postgres", &create).map(drop),
            Db::MariaDb(maria) => maria
                .sql_with(&admin, &create.replace("PASSWORD", "IDENTIFIED BY"))
                .map(drop),
        }
        .unwrap();
        let function = function(db, "single", &[]).await;
        let t = token();
        let arn = staged_secret(&store, &db.secret("app", &old, json!({})), &[], &t).await;

        let run = rotate_to(&store, &function, &arn, Some(&t)).await;

        let (step, kind, message) = refusal(&run);
        assert_eq!(step, Step::SetSecret, "{}", db.engine());
        assert_eq!(kind, "NotRetryable.DatabaseTls", "{message}");
        assert!(
            message.contains("TLS failed")
                && message.contains("caBundleLayerArn")
                && message.to_ascii_lowercase().contains("expired"),
            "{message}"
        );
        let current = value(&store, &arn, AWSCURRENT).await;
        assert!(current.is_some_and(|v| v.expose_secret().contains(old.expose_secret())));
    }
}

/// A CA bundle with one certificate that does not parse (valid PEM around
/// bytes that are not a certificate) still verifies with the others, on both
/// engines, as the system bundle might on some image.
#[tokio::test]
async fn an_unparsable_certificate_in_the_bundle_is_skipped() {
    for engine in ["postgres", "mariadb"] {
        let db = Db::start(engine, TlsMode::Required);
        let ca = std::fs::read_to_string(db.ca_path()).unwrap();
        // "not a certificate", base64.
        let junk =
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        let bundle = std::env::temp_dir().join(format!("rotor-bundle-{}.pem", token()));
        std::fs::write(&bundle, format!("{junk}{ca}")).unwrap();
        let store = moto_store();
        let old = random_password();
        db.create_user("bundle", &old);
        let t = token();
        let arn = staged_secret(&store, &db.secret("bundle", &old, json!({})), &[], &t).await;
        let bundle_path = bundle.display().to_string();
        let env = [
            ("SSL_CERT_FILE", bundle_path.as_str()),
            ("ROTATION_STRATEGY", "single"),
        ];
        let function = start_function("rds-rotation", &env).await;

        steps::replay(&function, &arn, &t, &Step::ALL).await;

        let new = password(&store, &arn, AWSCURRENT).await;
        assert!(
            db.logs_in("bundle", &new),
            "{engine}: the new password logs in"
        );
        let _ = std::fs::remove_file(bundle);
    }
}
