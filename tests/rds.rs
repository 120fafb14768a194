//! The real `rds-rotation` binary, over the Lambda Runtime API, against moto and
//! throwaway PostgreSQL and MariaDB servers with password authentication and
//! TLS required. After each rotation an independent client (psql, mariadb)
//! proves which credentials log in.

use std::time::Duration;

use rotor_cli::function::LocalFunction;
use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretStore, SecretString};
use rotor_tests::db::{
    ClientLogin, ClientTls, MariaDb, Postgres, TestCa, TlsMode, random_password,
};
use rotor_tests::target_db::*;
use rotor_tests::*;
use serde_json::{Value, json};

async fn function(db: &Db, strategy: &str, extra: &[(&str, &str)]) -> LocalFunction {
    let ca = db.ca_path();
    let mut env = vec![
        ("SSL_CERT_FILE", ca.as_str()),
        ("ROTATION_STRATEGY", strategy),
    ];
    env.extend_from_slice(extra);
    start_function("rds-rotation", &env).await
}

fn options(arn: &str, token: &str) -> RotateOptions {
    RotateOptions {
        secret_id: arn.into(),
        token: Some(token.into()),
        test_only: false,
        step_timeout: Duration::from_secs(60),
    }
}

/// Single user: the password changes; the old one is refused afterwards.
async fn single_user_rotation(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let old = random_password();
    db.create_user("app", &old);
    let t = token();
    let arn = staged_secret(
        &store,
        &db.secret("app", &old, json!({"dbname": null, "note": "kept"})),
        &[],
        &t,
    )
    .await;
    let function = function(&db, "single", &[]).await;

    let mut staged = None;
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let first = step(&function, &event(&arn, &t, name)).await;
        let second = step(&function, &event(&arn, &t, name)).await;
        assert!(
            first.is_ok() && second.is_ok(),
            "{name}: {first:?} / {second:?}\n{}",
            function.output()
        );
        if name == "createSecret" {
            staged = value(&store, &arn, AWSPENDING).await;
        }
    }
    let new = password(&store, &arn, AWSCURRENT).await;
    assert!(
        same(&value(&store, &arn, AWSCURRENT).await, &staged),
        "the staged value became current"
    );
    assert!(db.logs_in("app", &new), "the new password logs in");
    assert!(!db.logs_in("app", &old), "the old password is refused");
    assert_eq!(
        field(&store, &arn, AWSCURRENT, "note").await.as_deref(),
        Some("kept")
    );
    assert_eq!(
        field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
        Some("app")
    );
    assert!(password(&store, &arn, AWSPREVIOUS).await.expose_secret() == old.expose_secret());
    // Excluded by default, as in AWS's functions.
    let excluded = if engine == "postgres" {
        ":/@\"'\\"
    } else {
        "/@\"'\\"
    };
    assert!(!new.expose_secret().chars().any(|c| excluded.contains(c)));
}

#[tokio::test]
async fn postgres_single_user_rotation() {
    single_user_rotation("postgres").await;
}

#[tokio::test]
async fn mariadb_single_user_rotation() {
    single_user_rotation("mariadb").await;
}

/// Alternating users: the clone is created with the original's privileges, takes
/// over, and the previous user still logs in; the next rotation swaps back.
async fn alternating_users_rotation(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[],
        )
        .await
        .unwrap();
    let old = random_password();
    db.create_user("svc", &old);
    if engine == "postgres" {
        db.admin("CREATE TABLE orders (id int); ALTER TABLE orders OWNER TO svc; GRANT CREATE ON SCHEMA public TO svc");
    } else {
        // The clone must inherit the original's TLS requirement.
        db.admin("ALTER USER 'svc'@'%' REQUIRE SSL");
    }
    // PostgreSQL takes the master secret from MASTER_SECRET_ARN, MariaDB from masterarn.
    let (function, extra) = match engine {
        "postgres" => (
            function(
                &db,
                "alternating",
                &[("MASTER_SECRET_ARN", master.as_str())],
            )
            .await,
            json!({}),
        ),
        _ => (
            function(&db, "alternating", &[]).await,
            json!({"masterarn": master}),
        ),
    };
    let t = token();
    let arn = staged_secret(&store, &db.secret("svc", &old, extra), &[], &t).await;
    // The first rotation creates the clone; every step is replayed.
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        for attempt in 0..2 {
            let result = step(&function, &event(&arn, &t, name)).await;
            assert!(
                result.is_ok(),
                "{name} #{attempt}: {result:?}\n{}",
                function.output()
            );
        }
    }
    assert_eq!(
        field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
        Some("svc_clone")
    );
    let clone_password = password(&store, &arn, AWSCURRENT).await;
    assert!(
        db.logs_in("svc_clone", &clone_password),
        "the clone logs in"
    );
    assert!(db.logs_in("svc", &old), "the previous user still logs in");
    match engine {
        "postgres" => {
            // The clone acts as the original role: it can use and create objects
            // that stay usable by both.
            db.query_as(
                "svc_clone",
                &clone_password,
                "INSERT INTO orders VALUES (1); CREATE TABLE made_by_clone (x int)",
            )
            .unwrap();
            db.query_as("svc", &old, "SELECT count(*) FROM made_by_clone")
                .unwrap();
        }
        _ => {
            db.query_as(
                "svc_clone",
                &clone_password,
                "CREATE TABLE IF NOT EXISTS shop.t (x int)",
            )
            .expect_err("no CREATE privilege");
            db.query_as(
                "svc_clone",
                &clone_password,
                "SELECT 1 FROM information_schema.tables LIMIT 1",
            )
            .unwrap();
        }
    }

    // Privileges changed on the original since: the next rotations carry them over.
    if engine == "mariadb" {
        db.admin("GRANT UPDATE ON shop.* TO 'svc'@'%'; REVOKE INSERT ON shop.* FROM 'svc'@'%'");
    }
    let second = rotate(&store, &function, &options(&arn, &token()))
        .await
        .unwrap();
    assert!(
        second.succeeded(),
        "{:?}",
        second.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
    );
    assert_eq!(
        field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
        Some("svc")
    );
    let svc_password = password(&store, &arn, AWSCURRENT).await;
    assert!(db.logs_in("svc", &svc_password) && !db.logs_in("svc", &old));
    assert!(
        db.logs_in("svc_clone", &clone_password),
        "the previous (clone) user still logs in"
    );
    if engine == "mariadb" {
        let grants = db.admin("SHOW GRANTS FOR 'svc'@'%'");
        assert!(
            grants.contains("UPDATE"),
            "the original keeps its own privileges: {grants}"
        );
    }
    let third = rotate(&store, &function, &options(&arn, &token()))
        .await
        .unwrap();
    assert!(third.succeeded());
    if engine == "mariadb" {
        let grants = db.admin("SHOW GRANTS FOR 'svc_clone'@'%'");
        assert!(
            grants.contains("UPDATE") && !grants.contains("INSERT"),
            "grants re-synchronised: {grants}"
        );
        let require = db.admin("SELECT ssl_type FROM mysql.user WHERE User = 'svc_clone'");
        assert_eq!(require.trim(), "ANY", "REQUIRE SSL copied to the clone");
    }
}

#[tokio::test]
async fn postgres_alternating_users_rotation() {
    alternating_users_rotation("postgres").await;
}

#[tokio::test]
async fn mariadb_alternating_users_rotation() {
    alternating_users_rotation("mariadb").await;
}

/// Names with quotes, backslashes and non-ASCII letters; passwords drawn from
/// every printable character.
async fn hostile_names_and_passwords(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let user = r#"o'bri\en"ž"#;
    let old = SecretString::from(r#"it's a \"pass\word\"#);
    db.create_user(user, &old);
    let function = function(
        &db,
        "single",
        &[("EXCLUDE_CHARACTERS", ""), ("PASSWORD_LENGTH", "64")],
    )
    .await;
    let arn = store
        .create_secret(
            &unique("hostile"),
            &SecretString::from(db.secret(user, &old, json!({}))),
            &[],
        )
        .await
        .unwrap();
    for round in 0..3 {
        let run = rotate(&store, &function, &options(&arn, &token()))
            .await
            .unwrap();
        assert!(
            run.succeeded(),
            "round {round}: {:?}\n{}",
            run.steps.iter().map(|s| &s.result).collect::<Vec<_>>(),
            function.output()
        );
        let new = password(&store, &arn, AWSCURRENT).await;
        assert!(
            db.logs_in(user, &new),
            "round {round}: the new password logs in"
        );
    }
    assert!(!db.logs_in(user, &old));
}

#[tokio::test]
async fn postgres_hostile_names_and_passwords() {
    hostile_names_and_passwords("postgres").await;
}

#[tokio::test]
async fn mariadb_hostile_names_and_passwords() {
    hostile_names_and_passwords("mariadb").await;
}

/// A failed setSecret (master credentials wrong) is re-attempted on the same
/// pending version and completes with the value staged the first time.
#[tokio::test]
async fn a_failed_set_secret_resumes_with_the_staged_value() {
    let db = Db::start("mariadb", TlsMode::Required);
    let store = moto_store();
    let wrong = SecretString::from(db.secret(&db.admin_user(), &random_password(), json!({})));
    let master = store
        .create_secret(&unique("master"), &wrong, &[])
        .await
        .unwrap();
    let old = random_password();
    db.create_user("svc", &old);
    let function = function(&db, "alternating", &[]).await;
    let arn = store
        .create_secret(
            &unique("alt"),
            &SecretString::from(db.secret("svc", &old, json!({"masterarn": master}))),
            &[],
        )
        .await
        .unwrap();
    let t = token();
    let first = rotate(&store, &function, &options(&arn, &t)).await.unwrap();
    let failed = first.steps.last().unwrap();
    assert_eq!(failed.step.as_str(), "setSecret");
    let (kind, message) = failed.result.as_ref().unwrap_err();
    assert_eq!(kind, "NotRetryable.Target");
    assert!(
        message.contains("master credentials") && message.contains(&master),
        "{message}"
    );
    let staged = value(&store, &arn, AWSPENDING).await;
    assert!(db.logs_in("svc", &old), "nothing changed in the database");

    let right = SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({})));
    store
        .put_value(
            &master,
            rotor_core::store::NewVersion {
                token: &token(),
                value: &right,
                labels: &[AWSCURRENT],
                rotation_token: None,
            },
        )
        .await
        .unwrap();
    let second = rotate(&store, &function, &options(&arn, &t)).await.unwrap();
    assert!(
        second.succeeded(),
        "{:?}",
        second.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
    );
    assert!(same(&value(&store, &arn, AWSCURRENT).await, &staged));
}

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
            "Retryable.Target",
            "refused the connection",
        ),
        (
            json!({}),
            vec![("SSL_CERT_FILE", other_ca_path.as_str())],
            "NotRetryable.Target",
            "TLS failed",
        ),
        (
            json!({"ssl": false}),
            vec![],
            "NotRetryable.Target",
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
        let run = rotate(&store, &function, &options(&arn, &t)).await.unwrap();
        let failed = run.steps.last().unwrap();
        assert_eq!(failed.step.as_str(), "setSecret");
        let (got, message) = failed.result.as_ref().unwrap_err();
        assert_eq!(got, kind, "{message}");
        assert!(
            message.contains(expected) && message.contains(&arn),
            "{message:?} lacks {expected:?}"
        );
        assert!(
            db.logs_in("app", &old),
            "the database password did not change"
        );
        assert_eq!(
            run.after.versions.current().map(str::to_owned),
            labels(&store, &arn)
                .await
                .into_iter()
                .find(|(_, l)| l.contains(&AWSCURRENT.to_owned()))
                .map(|(v, _)| v)
        );
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
    let arn = store
        .create_secret(
            &unique("plain"),
            &SecretString::from(db.secret("plain", &old, json!({"ssl": false}))),
            &[],
        )
        .await
        .unwrap();
    let run = rotate(&store, &function, &options(&arn, &token()))
        .await
        .unwrap();
    assert!(
        run.succeeded(),
        "{:?}",
        run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
    );
    assert!(db.logs_in("plain", &password(&store, &arn, AWSCURRENT).await));
}

/// Accounts whose host is not `%` rotate too, in both strategies; the clone gets
/// an account on the same host.
#[tokio::test]
async fn mariadb_accounts_on_a_specific_host() {
    let db = Db::start("mariadb", TlsMode::Required);
    let store = moto_store();
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[],
        )
        .await
        .unwrap();
    for (user, strategy) in [("local1", "single"), ("local2", "alternating")] {
        let old = random_password();
        db.admin(&format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{}'; GRANT SELECT ON mysql.* TO '{user}'@'127.0.0.1'",
            old.expose_secret()
        ));
        let function = function(&db, strategy, &[]).await;
        let arn = store
            .create_secret(
                &unique("host"),
                &SecretString::from(db.secret(user, &old, json!({"masterarn": master}))),
                &[],
            )
            .await
            .unwrap();
        let run = rotate(&store, &function, &options(&arn, &token()))
            .await
            .unwrap();
        assert!(
            run.succeeded(),
            "{strategy}: {:?}",
            run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
        );
        let new_user = field(&store, &arn, AWSCURRENT, "username").await.unwrap();
        assert!(db.logs_in(&new_user, &password(&store, &arn, AWSCURRENT).await));
        let hosts = db.admin(&format!(
            "SELECT Host FROM mysql.user WHERE User = '{new_user}'"
        ));
        assert_eq!(
            hosts.trim(),
            "127.0.0.1",
            "{strategy}: the account stays on its host"
        );
        if strategy == "alternating" {
            let grants = db.admin(&format!("SHOW GRANTS FOR '{new_user}'@'127.0.0.1'"));
            assert!(grants.contains("GRANT SELECT ON `mysql`.*"), "{grants}");
        }
    }
}

/// A server whose certificate has expired is refused, on both engines, and the
/// password stays as it was.
#[tokio::test]
async fn an_expired_server_certificate_is_refused() {
    use rotor_tests::db::ServerCert;
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
        let run = rotate(&store, &function, &options(&arn, &t)).await.unwrap();
        let failed = run.steps.last().unwrap();
        assert_eq!(failed.step.as_str(), "setSecret", "{}", db.engine());
        let (kind, message) = failed.result.as_ref().unwrap_err();
        assert_eq!(kind, "NotRetryable.Target", "{message}");
        assert!(
            message.contains("TLS failed") && message.to_ascii_lowercase().contains("expired"),
            "{message}"
        );
        assert!(
            value(&store, &arn, AWSCURRENT)
                .await
                .is_some_and(|v| v.expose_secret().contains(old.expose_secret()))
        );
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
        let function = start_function(
            "rds-rotation",
            &[
                ("SSL_CERT_FILE", bundle_path.as_str()),
                ("ROTATION_STRATEGY", "single"),
            ],
        )
        .await;
        for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            let result = step(&function, &event(&arn, &t, name)).await;
            assert!(result.is_ok(), "{engine} {name}: {result:?}");
        }
        let new = password(&store, &arn, AWSCURRENT).await;
        assert!(
            db.logs_in("bundle", &new),
            "{engine}: the new password logs in"
        );
        let _ = std::fs::remove_file(bundle);
    }
}
