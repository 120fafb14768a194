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
    // The master agrees to serve the application's secrets (rotor:serves), as
    // a masterarn needs.
    let team = format!("{}/", unique("team"));
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[("rotor:serves", team.as_str())],
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
    let arn = store
        .create_secret(
            &format!("{team}svc"),
            &SecretString::from(db.secret("svc", &old, extra)),
            &[],
        )
        .await
        .unwrap();
    store.begin_rotation(&arn, &t).await.unwrap();
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
    let function = function(
        &db,
        "alternating",
        &[("MASTER_SECRET_ARN", master.as_str())],
    )
    .await;
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
    assert_eq!(kind, "NotRetryable.DatabaseAuth");
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
                version_id: &token(),
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

/// Issue 14, item 3: `ssl` values other than true and false, which AWS's
/// functions accept, rotate over verified TLS (the server refuses plaintext),
/// with a warning in the log.
#[tokio::test]
async fn any_other_ssl_value_means_verified_tls() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let function = function(&db, "single", &[]).await;
    for (i, ssl) in [json!("require"), json!("VERIFY-FULL"), json!(1)]
        .into_iter()
        .enumerate()
    {
        let user = format!("ssl_{i}");
        let old = random_password();
        db.create_user(&user, &old);
        let arn = store
            .create_secret(
                &unique("ssl"),
                &SecretString::from(db.secret(&user, &old, json!({"ssl": ssl}))),
                &[],
            )
            .await
            .unwrap();
        let run = rotate(&store, &function, &options(&arn, &token()))
            .await
            .unwrap();
        assert!(
            run.succeeded(),
            "ssl {ssl}: {:?}",
            run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
        );
        assert!(db.logs_in(&user, &password(&store, &arn, AWSCURRENT).await));
    }
    assert!(function.output().contains("neither true nor false"));
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
        let function = function(&db, strategy, &[("MASTER_SECRET_ARN", master.as_str())]).await;
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
        assert_eq!(kind, "NotRetryable.DatabaseTls", "{message}");
        assert!(
            message.contains("TLS failed")
                && message.contains("caBundleLayerArn")
                && message.to_ascii_lowercase().contains("expired"),
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

/// A master secret for `db` and an alternating-users function that uses it
/// (through MASTER_SECRET_ARN, as the deployer sets it).
async fn alternating_with_master(db: &Db, store: &rotor_core::AwsStore) -> (LocalFunction, String) {
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[],
        )
        .await
        .unwrap();
    let function = function(db, "alternating", &[("MASTER_SECRET_ARN", master.as_str())]).await;
    (function, master)
}

/// The other user of an alternating pair already exists, in each state a
/// real deployment can leave it in; the next rotation converges it to the
/// original's access, proved by an independent client reading one table the
/// original can read and failing on one it cannot. Its extras are ordinary
/// ones: an existing clone that is privileged (GRANT OPTION, SUPERUSER, ...)
/// is refused instead (untrusted_writer::rds::*_a_privileged_account_is_never_the_other_user).
async fn a_pre_existing_other_user_is_converged(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let (function, _) = alternating_with_master(&db, &store).await;
    let postgres = engine == "postgres";
    for state in ["no grants", "extra grants", "the pending password"] {
        let user = format!("conv_{}", &token()[..8]);
        let clone = format!("{user}_clone");
        let old = random_password();
        db.create_user(&user, &old);
        db.grant_items_not_vault(&user);
        if !postgres {
            // A role and a default role, which the clone must get too.
            db.admin(&format!(
                "CREATE ROLE {r}; GRANT SELECT ON mysql.db TO {r}; GRANT {r} TO {u}; SET DEFAULT ROLE {r} FOR {u}",
                r = my_literal(&format!("{user}_r")),
                u = my_account(&user)
            ));
        }
        let t = token();
        let arn = staged_secret(&store, &db.secret(&user, &old, json!({})), &[], &t).await;
        step(&function, &event(&arn, &t, "createSecret"))
            .await
            .unwrap();
        // The pending password, as a first attempt that created the user and
        // then failed leaves it; else a password nobody knows.
        let clone_password = match state {
            "the pending password" => password(&store, &arn, AWSPENDING).await,
            _ => random_password(),
        };
        let pw = clone_password.expose_secret();
        if postgres {
            db.admin(&format!(
                "CREATE ROLE {} LOGIN PASSWORD {}",
                pg_ident(&clone),
                pg_literal(pw)
            ));
        } else {
            db.admin(&format!(
                "CREATE USER {} IDENTIFIED BY {}",
                my_account(&clone),
                my_literal(pw)
            ));
        }
        if state == "extra grants" {
            let role = format!("{user}_extra");
            if postgres {
                db.admin(&format!(
                    "GRANT SELECT ON vault TO {c}; CREATE ROLE {r}; GRANT SELECT ON vault TO {r}; GRANT {r} TO {c}; ALTER ROLE {c} CREATEDB",
                    c = pg_ident(&clone),
                    r = pg_ident(&role)
                ));
            } else {
                // Also an account on a host the original lacks, which a
                // login from 127.0.0.1 would match before '%'.
                db.admin(&format!(
                    "CREATE USER {c_local} IDENTIFIED BY {p}; GRANT SELECT ON vault.* TO {c_local}",
                    c_local = format!("{}@'127.0.0.1'", my_literal(&clone)),
                    p = my_literal(random_password().expose_secret())
                ));
                db.admin(&format!(
                    "GRANT SELECT ON vault.* TO {c}; CREATE ROLE {r}; GRANT SELECT ON vault.* TO {r}; GRANT {r} TO {c}; SET DEFAULT ROLE {r} FOR {c}; GRANT UPDATE ON shop.* TO {c}",
                    c = my_account(&clone),
                    r = my_literal(&role)
                ));
            }
        }
        for name in ["setSecret", "testSecret", "finishSecret"] {
            let result = step(&function, &event(&arn, &t, name)).await;
            assert!(
                result.is_ok(),
                "{engine}, {state}: {name}: {result:?}\n{}",
                function.output()
            );
        }
        assert_eq!(
            field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
            Some(clone.as_str())
        );
        let current = password(&store, &arn, AWSCURRENT).await;
        if let Err(problem) = db.has_access_of_original(&clone, &current) {
            panic!("{engine}, {state}: {problem}");
        }
        if postgres {
            let acts_as = db
                .query_as(&clone, &current, "SELECT current_user")
                .unwrap();
            assert!(acts_as.contains(&user), "{engine}, {state}: {acts_as}");
            // Acting as itself, the clone must not reach more either.
            assert!(
                db.query_as(&clone, &current, "RESET ROLE; SELECT count(*) FROM vault")
                    .is_err(),
                "{engine}, {state}: the clone kept a way to read vault"
            );
            let createdb = db.admin(&format!(
                "SELECT rolcreatedb FROM pg_roles WHERE rolname = '{clone}'"
            ));
            assert_eq!(
                createdb.trim(),
                "f",
                "{engine}, {state}: the clone kept CREATEDB"
            );
        } else {
            let grants = db.admin(&format!("SHOW GRANTS FOR {}", my_account(&clone)));
            assert!(
                !grants.contains("UPDATE") && !grants.contains("_extra"),
                "{engine}, {state}: extra grants kept: {grants}"
            );
            let hosts = db.admin(&format!(
                "SELECT Host FROM mysql.user WHERE User = '{clone}'"
            ));
            assert_eq!(hosts.trim(), "%", "{engine}, {state}: the clone's hosts");
            assert!(
                grants.contains(&format!("SET DEFAULT ROLE `{user}_r`")),
                "{engine}, {state}: the default role was not copied: {grants}"
            );
            db.query_as(&clone, &current, "SELECT count(*) FROM mysql.db")
                .unwrap_or_else(|e| panic!("{engine}, {state}: the role is not active: {e}"));
        }
        assert!(db.logs_in(&user, &old), "the previous user still logs in");
        assert_no_stored_secret_in(&store, &arn, &function.output()).await;
    }
}

#[tokio::test]
async fn postgres_a_pre_existing_other_user_is_converged() {
    a_pre_existing_other_user_is_converged("postgres").await;
}

#[tokio::test]
async fn mariadb_a_pre_existing_other_user_is_converged() {
    a_pre_existing_other_user_is_converged("mariadb").await;
}

/// A master that may not create users: the statement that carries the new
/// password fails, and neither the password nor the server's message reaches
/// the error or the log, only the error code and SQLSTATE with a hint. Then
/// (MariaDB) a master that may create users but not grant: the first attempt
/// creates the user and fails; the retry, once the master may grant,
/// converges it. PostgreSQL does it all in one transaction: nothing is left.
async fn a_master_without_privileges(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let postgres = engine == "postgres";
    let weak = format!("weak_{}", &token()[..8]);
    let weak_password = random_password();
    let pw = weak_password.expose_secret();
    if postgres {
        db.admin(&format!("CREATE ROLE {weak} LOGIN PASSWORD '{pw}'"));
    } else {
        db.admin(&format!(
            "CREATE USER '{weak}'@'%' IDENTIFIED BY '{pw}'; GRANT SELECT ON mysql.* TO '{weak}'@'%'"
        ));
    }
    let master = store
        .create_secret(
            &unique("weak-master"),
            &SecretString::from(db.secret(&weak, &weak_password, json!({}))),
            &[],
        )
        .await
        .unwrap();
    let function = function(
        &db,
        "alternating",
        &[("MASTER_SECRET_ARN", master.as_str())],
    )
    .await;
    let old = random_password();
    db.create_user("svc", &old);
    db.grant_items_not_vault("svc");
    let t = token();
    let arn = staged_secret(&store, &db.secret("svc", &old, json!({})), &[], &t).await;
    step(&function, &event(&arn, &t, "createSecret"))
        .await
        .unwrap();
    let (kind, message) = step(&function, &event(&arn, &t, "setSecret"))
        .await
        .unwrap_err();
    let (code, server_text) = if postgres {
        ("SQLSTATE 42501", "permission denied")
    } else {
        ("server error 1227 (SQLSTATE 42000)", "Access denied")
    };
    assert!(
        message.contains(code) && message.contains("withheld") && message.contains("privilege"),
        "{kind}: {message}"
    );
    let output = function.output();
    assert!(
        !message.contains(server_text) && !output.contains(server_text),
        "the server's message reached the error or the log: {message}\n{output}"
    );
    assert_no_stored_secret_in(&store, &arn, &format!("{message}{output}")).await;
    let clone_exists = if postgres {
        db.admin("SELECT count(*) FROM pg_roles WHERE rolname = 'svc_clone'")
    } else {
        db.admin("SELECT count(*) FROM mysql.user WHERE User = 'svc_clone'")
    };
    assert_eq!(clone_exists.trim(), "0", "nothing was created");

    if !postgres {
        // May create users, may not grant: the user is created, the grant fails.
        db.admin(&format!("GRANT CREATE USER ON *.* TO '{weak}'@'%'"));
        let (_, message) = step(&function, &event(&arn, &t, "setSecret"))
            .await
            .unwrap_err();
        assert!(message.contains("svc_clone"), "{message}");
        let created = db.admin("SELECT count(*) FROM mysql.user WHERE User = 'svc_clone'");
        assert_eq!(created.trim(), "1", "the first attempt created the user");
    }
    // The master gets what it needs; the retried rotation converges.
    if postgres {
        db.admin(&format!("ALTER ROLE {weak} SUPERUSER"));
    } else {
        db.admin(&format!(
            "GRANT ALL PRIVILEGES ON *.* TO '{weak}'@'%' WITH GRANT OPTION"
        ));
    }
    for name in ["setSecret", "testSecret", "finishSecret"] {
        let result = step(&function, &event(&arn, &t, name)).await;
        assert!(result.is_ok(), "{name}: {result:?}\n{}", function.output());
    }
    let current = password(&store, &arn, AWSCURRENT).await;
    if let Err(problem) = db.has_access_of_original("svc_clone", &current) {
        panic!("{engine}: {problem}");
    }
}

#[tokio::test]
async fn postgres_a_master_without_privileges() {
    a_master_without_privileges("postgres").await;
}

#[tokio::test]
async fn mariadb_a_master_without_privileges() {
    a_master_without_privileges("mariadb").await;
}

/// testSecret of an alternate user proves access, not just login: privileges
/// taken from the clone between setSecret and testSecret fail it with an
/// error naming the difference.
async fn test_secret_checks_the_clones_access(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let (function, _) = alternating_with_master(&db, &store).await;
    let old = random_password();
    db.create_user("svc", &old);
    db.grant_items_not_vault("svc");
    let t = token();
    let arn = staged_secret(&store, &db.secret("svc", &old, json!({})), &[], &t).await;
    for name in ["createSecret", "setSecret"] {
        step(&function, &event(&arn, &t, name)).await.unwrap();
    }
    let expected = if engine == "postgres" {
        db.admin("REVOKE svc FROM svc_clone; ALTER ROLE svc_clone RESET role");
        "acts as \"svc_clone\""
    } else {
        db.admin("REVOKE INSERT ON shop.* FROM 'svc_clone'@'%'");
        "lacks"
    };
    let (kind, message) = step(&function, &event(&arn, &t, "testSecret"))
        .await
        .unwrap_err();
    assert!(
        message.contains(expected) && message.contains("setSecret again"),
        "{kind}: {message}"
    );
    if engine == "mariadb" {
        assert!(message.contains("INSERT"), "{message}");
    }
    assert_no_stored_secret_in(&store, &arn, &format!("{message}{}", function.output())).await;
    // The retried setSecret converges it again.
    for name in ["setSecret", "testSecret", "finishSecret"] {
        let result = step(&function, &event(&arn, &t, name)).await;
        assert!(result.is_ok(), "{name}: {result:?}\n{}", function.output());
    }
}

#[tokio::test]
async fn postgres_test_secret_checks_the_clones_access() {
    test_secret_checks_the_clones_access("postgres").await;
}

#[tokio::test]
async fn mariadb_test_secret_checks_the_clones_access() {
    test_secret_checks_the_clones_access("mariadb").await;
}

/// A TCP relay to `upstream` that keeps every byte the client sent.
pub(crate) async fn recording_relay(
    upstream: std::net::SocketAddr,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (port, seen)
}

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
        let master = store
            .create_secret(
                &unique("master"),
                &SecretString::from(db.secret_at(
                    "127.0.0.1",
                    port,
                    &admin,
                    &db.admin_password(),
                    json!({"ssl": master_ssl}),
                )),
                &[],
            )
            .await
            .unwrap();
        let function = function(
            &db,
            "alternating",
            &[("MASTER_SECRET_ARN", master.as_str())],
        )
        .await;
        let user = format!("plain_{}", &token()[..8]);
        let old = random_password();
        db.create_user(&user, &old);
        let t = token();
        let arn = staged_secret(
            &store,
            &db.secret_at("127.0.0.1", port, &user, &old, json!({"ssl": false})),
            &[],
            &t,
        )
        .await;
        seen.lock().unwrap().clear();
        let run = rotate(&store, &function, &options(&arn, &t)).await.unwrap();
        assert!(
            run.succeeded(),
            "master ssl {master_ssl}: {:?}\n{}",
            run.steps.iter().map(|s| &s.result).collect::<Vec<_>>(),
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
    let admin = SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({})));
    let team = format!("{}/", unique("team"));
    let silent = store
        .create_secret(&unique("master"), &admin, &[])
        .await
        .unwrap();
    let serving = store
        .create_secret(
            &unique("master"),
            &admin,
            &[("rotor:serves", team.as_str())],
        )
        .await
        .unwrap();
    let deployers = store
        .create_secret(&unique("master"), &admin, &[])
        .await
        .unwrap();
    let plain = function(&db, "alternating", &[]).await;
    let with_deployer = function(
        &db,
        "alternating",
        &[("MASTER_SECRET_ARN", deployers.as_str())],
    )
    .await;
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
        let arn = store
            .create_secret(
                &format!("{team}{user}"),
                &SecretString::from(db.secret(&user, &old, json!({"masterarn": master}))),
                &[],
            )
            .await
            .unwrap();
        store.begin_rotation(&arn, &t).await.unwrap();
        let run = rotate(&store, function, &options(&arn, &t)).await.unwrap();
        if allowed {
            assert!(
                run.succeeded(),
                "case {i}: {:?}",
                run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
            );
            continue;
        }
        let failed = run.steps.last().unwrap();
        assert_eq!(failed.step.as_str(), "setSecret");
        let (kind, message) = failed.result.as_ref().unwrap_err();
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

/// A DB instance in moto's RDS API whose master password RDS manages, at the
/// test server's port: its endpoint host name and its master secret's ARN.
async fn managed_instance(db: &Db) -> (String, String) {
    let (_, host, secret) = managed_instance_named(db).await;
    (host, secret)
}

/// An engine version moto accepts for the test server's engine.
fn engine_version(db: &Db) -> &'static str {
    match db.engine() {
        "postgres" => "16.3",
        _ => "10.11.8",
    }
}

/// [`managed_instance`] with the instance's identifier first.
async fn managed_instance_named(db: &Db) -> (String, String, String) {
    let rds = moto_rds();
    let id = unique("db");
    let created = rds
        .create_db_instance()
        .db_instance_identifier(&id)
        .engine(db.engine())
        // moto knows no default version for mariadb.
        .engine_version(engine_version(db))
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("admin")
        .manage_master_user_password(true)
        .port(i32::from(db.port()))
        .send()
        .await
        .expect("CreateDBInstance");
    let instance = created.db_instance().expect("the instance");
    let host = instance
        .endpoint()
        .and_then(|e| e.address())
        .expect("an endpoint")
        .to_owned();
    let secret = instance
        .master_user_secret()
        .and_then(|s| s.secret_arn())
        .expect("a managed master secret")
        .to_owned();
    (id, host, secret)
}

/// The endpoint host of a new read replica of instance `source`, or of a new
/// stand-alone instance when `source` is None; at the test server's port.
async fn other_instance(db: &Db, source: Option<&str>) -> String {
    let rds = moto_rds();
    let id = unique("replica");
    let instance = match source {
        Some(source) => rds
            .create_db_instance_read_replica()
            .db_instance_identifier(&id)
            .source_db_instance_identifier(source)
            .port(i32::from(db.port()))
            .send()
            .await
            .expect("CreateDBInstanceReadReplica")
            .db_instance
            .expect("the replica"),
        None => rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .engine(db.engine())
            .db_instance_class("db.t3.micro")
            .allocated_storage(20)
            .master_username("other")
            .master_user_password("other-password")
            .port(i32::from(db.port()))
            .send()
            .await
            .expect("CreateDBInstance")
            .db_instance
            .expect("the instance"),
    };
    instance
        .endpoint()
        .and_then(|e| e.address())
        .expect("an endpoint")
        .to_owned()
}

/// Issue 14, item 1: the master secret RDS manages (only username and
/// password, tagged aws:rds:primaryDBInstanceArn) rotates an alternating pair
/// with no change to any secret; engine, host and port come from the RDS API,
/// and the master logs in to the host RDS names.
async fn an_rds_managed_master_secret_serves_as_masterarn(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let (host, master) = managed_instance(&db).await;
    // RDS's master user exists with the password RDS keeps in the secret.
    let master_password = password(&store, &master, AWSCURRENT).await;
    create_master(&db, "admin", &master_password);
    let master_before = value(&store, &master, AWSCURRENT).await;
    let old = random_password();
    db.create_user("svc", &old);
    let t = token();
    let arn = staged_secret(
        &store,
        &db.secret_at(&host, db.port(), "svc", &old, json!({"masterarn": master})),
        &[],
        &t,
    )
    .await;
    let ca = db.ca_path();
    let function = start_function_resolving(
        "rds-rotation",
        &[&host],
        &[
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", "alternating"),
            ("MASTER_SECRET_ARN", master.as_str()),
        ],
    )
    .await;
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let result = step(&function, &event(&arn, &t, name)).await;
        assert!(result.is_ok(), "{name}: {result:?}\n{}", function.output());
    }
    let new = password(&store, &arn, AWSCURRENT).await;
    assert_eq!(
        field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
        Some("svc_clone")
    );
    assert!(db.logs_in("svc_clone", &new), "the clone logs in");
    assert!(db.logs_in("svc", &old), "the previous user still logs in");
    assert!(
        same(&value(&store, &master, AWSCURRENT).await, &master_before),
        "the master secret is unchanged"
    );
}

#[tokio::test]
async fn postgres_an_rds_managed_master_secret_serves_as_masterarn() {
    an_rds_managed_master_secret_serves_as_masterarn("postgres").await;
}

#[tokio::test]
async fn mariadb_an_rds_managed_master_secret_serves_as_masterarn() {
    an_rds_managed_master_secret_serves_as_masterarn("mariadb").await;
}

/// A master user `name` as RDS makes one: it may create users and grant
/// every privilege.
fn create_master(db: &Db, name: &str, password: &SecretString) {
    let pw = password.expose_secret();
    match db.engine() {
        "postgres" => db.admin(&format!(
            "CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}",
            pg_ident(name),
            pg_literal(pw)
        )),
        _ => db.admin(&format!(
            "CREATE USER {account} IDENTIFIED BY {}; GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION",
            my_literal(pw),
            account = my_account(name)
        )),
    };
}

/// Issue 14, items 1 and 2, Aurora-style: the master secret RDS manages for a
/// DB cluster (tagged aws:rds:primaryDBClusterArn) rotates a user whose secret
/// names the cluster's reader endpoint; the master logs in at the writer
/// endpoint DescribeDBClusters reports. moto gives a cluster's endpoints a
/// random part, so the cluster comes first and the server's certificate names
/// its endpoints.
#[tokio::test]
async fn an_rds_managed_cluster_master_rotates_a_user_of_the_reader_endpoint() {
    let rds = moto_rds();
    let store = moto_store();
    let id = unique("cluster");
    let cluster = rds
        .create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-postgresql")
        .master_username("admin")
        .manage_master_user_password(true)
        .send()
        .await
        .expect("CreateDBCluster")
        .db_cluster
        .expect("the cluster");
    let writer = cluster.endpoint().expect("a writer endpoint").to_owned();
    let reader = cluster
        .reader_endpoint()
        .expect("a reader endpoint")
        .to_owned();
    let master = cluster
        .master_user_secret()
        .and_then(|s| s.secret_arn())
        .expect("a managed master secret")
        .to_owned();
    let db = Db::start_also_for("postgres", &[&writer, &reader]);
    rds.modify_db_cluster()
        .db_cluster_identifier(&id)
        .port(i32::from(db.port()))
        .apply_immediately(true)
        .send()
        .await
        .expect("ModifyDBCluster");
    create_master(&db, "admin", &password(&store, &master, AWSCURRENT).await);
    let old = random_password();
    db.create_user("svc", &old);
    let t = token();
    let arn = staged_secret(
        &store,
        &db.secret_at(
            &reader,
            db.port(),
            "svc",
            &old,
            json!({"masterarn": master}),
        ),
        &[],
        &t,
    )
    .await;
    let ca = db.ca_path();
    let function = start_function_resolving(
        "rds-rotation",
        &[&writer, &reader],
        &[
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", "alternating"),
            ("MASTER_SECRET_ARN", master.as_str()),
        ],
    )
    .await;
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let result = step(&function, &event(&arn, &t, name)).await;
        assert!(result.is_ok(), "{name}: {result:?}\n{}", function.output());
    }
    assert_eq!(
        field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
        Some("svc_clone")
    );
    assert!(db.logs_in("svc_clone", &password(&store, &arn, AWSCURRENT).await));
    assert!(db.logs_in("svc", &old), "the previous user still logs in");
}

/// Issue 14, item 1, the other side: a secret whose host is not the managed
/// master's database does not get the master password sent to it.
#[tokio::test]
async fn an_rds_managed_master_logs_in_only_to_its_own_database() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let (host, master) = managed_instance(&db).await;
    let old = random_password();
    db.create_user("svc", &old);
    let t = token();
    // The writer of this secret names a host of their choosing.
    let arn = staged_secret(
        &store,
        &db.secret("svc", &old, json!({"masterarn": master})),
        &[],
        &t,
    )
    .await;
    let ca = db.ca_path();
    let function = start_function_resolving(
        "rds-rotation",
        &[&host],
        &[
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", "alternating"),
            ("MASTER_SECRET_ARN", master.as_str()),
        ],
    )
    .await;
    step(&function, &event(&arn, &t, "createSecret"))
        .await
        .expect("createSecret");
    let (kind, message) = step(&function, &event(&arn, &t, "setSecret"))
        .await
        .expect_err("setSecret must refuse");
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(message.contains(&host), "{message}");
    let clones = db.admin("SELECT count(*) FROM pg_roles WHERE rolname = 'svc_clone'");
    assert_eq!(clones.trim(), "0", "the database changed");
}

/// Issue 14, item 2: a user secret whose host is a read replica of the
/// master's instance rotates (the master logs in to the writer, as RDS names
/// it); a host the RDS API does not report as a reader is refused before the
/// master password goes anywhere.
#[tokio::test]
async fn a_read_replica_host_rotates_through_the_writer() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let (id, host, master) = managed_instance_named(&db).await;
    let replica = other_instance(&db, Some(&id)).await;
    let stranger = other_instance(&db, None).await;
    let master_password = password(&store, &master, AWSCURRENT).await;
    db.admin(&format!(
        "CREATE ROLE admin LOGIN SUPERUSER PASSWORD {}",
        pg_literal(master_password.expose_secret())
    ));
    let ca = db.ca_path();
    let function = start_function_resolving(
        "rds-rotation",
        &[&host, &replica, &stranger],
        &[
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", "alternating"),
            ("MASTER_SECRET_ARN", master.as_str()),
        ],
    )
    .await;
    for (user, at, reader) in [
        ("on_replica", &replica, true),
        ("on_stranger", &stranger, false),
    ] {
        let old = random_password();
        db.create_user(user, &old);
        let t = token();
        let arn = staged_secret(
            &store,
            &db.secret_at(at, db.port(), user, &old, json!({"masterarn": master})),
            &[],
            &t,
        )
        .await;
        let mut outcome = Ok(String::new());
        for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            outcome = step(&function, &event(&arn, &t, name)).await;
            if outcome.is_err() {
                break;
            }
        }
        if reader {
            assert!(
                outcome.is_ok(),
                "{user}: {outcome:?}\n{}",
                function.output()
            );
            let new = password(&store, &arn, AWSCURRENT).await;
            assert!(
                db.logs_in(&format!("{user}_clone"), &new),
                "the clone logs in"
            );
        } else {
            let (kind, message) = outcome.expect_err("a stranger's host is refused");
            assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
            assert!(message.contains("reader"), "{message}");
            let clones = db.admin(&format!(
                "SELECT count(*) FROM pg_roles WHERE rolname = '{user}_clone'"
            ));
            assert_eq!(clones.trim(), "0", "the database changed");
        }
    }
}

/// Issue 14, item 4: single-user rotation through the master, for a user that
/// cannot log in with its stored passwords (expired or reset elsewhere) or
/// cannot change its own: setSecret logs in as the master and changes only
/// that user's password.
async fn single_user_rotation_through_the_master(engine: &str) {
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
    // The database has a password the secret does not know.
    db.create_user("solo", &random_password());
    let stored = random_password();
    let arn = store
        .create_secret(
            &unique("solo"),
            &SecretString::from(db.secret("solo", &stored, json!({"masterarn": master}))),
            &[],
        )
        .await
        .unwrap();
    let function = function(&db, "single", &[("MASTER_SECRET_ARN", master.as_str())]).await;
    let run = rotate(&store, &function, &options(&arn, &token()))
        .await
        .unwrap();
    assert!(
        run.succeeded(),
        "{:?}\n{}",
        run.steps.iter().map(|s| &s.result).collect::<Vec<_>>(),
        function.output()
    );
    assert_eq!(
        field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
        Some("solo")
    );
    assert!(db.logs_in("solo", &password(&store, &arn, AWSCURRENT).await));
    let users = match engine {
        "postgres" => db.admin("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'solo%'"),
        _ => db.admin("SELECT count(*) FROM mysql.user WHERE User LIKE 'solo%'"),
    };
    assert_eq!(users.trim(), "1", "no other user was created");
}

#[tokio::test]
async fn postgres_single_user_rotation_through_the_master() {
    single_user_rotation_through_the_master("postgres").await;
}

#[tokio::test]
async fn mariadb_single_user_rotation_through_the_master() {
    single_user_rotation_through_the_master("mariadb").await;
}

/// Issue 14, item 5: one deployment, both strategies: the `rotor:strategy`
/// tag chooses per secret, `ROTATION_STRATEGY` is the default.
#[tokio::test]
async fn a_tag_chooses_the_strategy() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[],
        )
        .await
        .unwrap();
    let function = function(&db, "single", &[("MASTER_SECRET_ARN", master.as_str())]).await;
    for (user, tags, expected) in [
        ("by_default", vec![], "by_default"),
        (
            "by_tag",
            vec![("rotor:strategy", "alternating")],
            "by_tag_clone",
        ),
    ] {
        let old = random_password();
        db.create_user(user, &old);
        let arn = store
            .create_secret(
                &unique(user),
                &SecretString::from(db.secret(user, &old, json!({}))),
                &tags,
            )
            .await
            .unwrap();
        let run = rotate(&store, &function, &options(&arn, &token()))
            .await
            .unwrap();
        assert!(
            run.succeeded(),
            "{user}: {:?}",
            run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
        );
        assert_eq!(
            field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
            Some(expected)
        );
        assert!(db.logs_in(expected, &password(&store, &arn, AWSCURRENT).await));
    }
    let old = random_password();
    let arn = store
        .create_secret(
            &unique("bad"),
            &SecretString::from(db.secret("by_default", &old, json!({}))),
            &[("rotor:strategy", "sometimes")],
        )
        .await
        .unwrap();
    let run = rotate(&store, &function, &options(&arn, &token()))
        .await
        .unwrap();
    let (kind, message) = run.steps.last().unwrap().result.as_ref().unwrap_err();
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(message.contains("rotor:strategy"), "{message}");
}

/// The hosts of `user`'s accounts whose password is not `password`
/// (MariaDB's mysql_native_password hashes compared by the server), one per
/// line; empty when every account has it.
fn accounts_without(db: &Db, user: &str, password: &SecretString) -> String {
    db.admin(&format!(
        "SELECT Host FROM mysql.user WHERE User = {} AND authentication_string <> PASSWORD({}) ORDER BY Host",
        my_literal(user),
        my_literal(password.expose_secret())
    ))
}

/// A master secret for `db` that serves every secret under `team`.
async fn serving_master(db: &Db, store: &rotor_core::AwsStore, team: &str) -> String {
    store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[("rotor:serves", team)],
        )
        .await
        .unwrap()
}

/// Issue 21, item 11: a MySQL/MariaDB user name with several accounts
/// (`'multi'@'127.0.0.1'` and `'multi'@'localhost'`). The user's own
/// `ALTER USER USER()` changed only the account it logged in as, and a retry
/// that logged in with the pending password from the function's address
/// declared success: the other account kept the old password. Now every
/// account of the name changes (here through the master, as the user may
/// not see or change its other accounts), and a retry after a first attempt
/// that changed one account only finishes the others.
#[tokio::test]
async fn mariadb_every_account_of_a_user_gets_the_new_password() {
    let db = Db::start("mariadb", TlsMode::Required);
    let store = moto_store();
    let team = format!("{}/", unique("team"));
    let master = serving_master(&db, &store, &team).await;
    let function = function(&db, "single", &[]).await;
    let old = random_password();
    // TCP logins from 127.0.0.1 match the first account; the second is
    // reached through the server's socket.
    db.admin(&format!(
        "CREATE USER 'multi'@'127.0.0.1' IDENTIFIED BY {pw}; CREATE USER 'multi'@'localhost' IDENTIFIED BY {pw}",
        pw = my_literal(old.expose_secret())
    ));
    let arn = store
        .create_secret(
            &format!("{team}multi"),
            &SecretString::from(db.secret("multi", &old, json!({"masterarn": master}))),
            &[],
        )
        .await
        .unwrap();
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();
    replay_steps(
        &function,
        &arn,
        &t,
        &["createSecret", "setSecret", "testSecret", "finishSecret"],
    )
    .await;
    let new = password(&store, &arn, AWSCURRENT).await;
    assert_eq!(
        accounts_without(&db, "multi", &new),
        "",
        "accounts of multi left on another password"
    );

    // A first attempt that changed only the account it logs in as.
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();
    step(&function, &event(&arn, &t, "createSecret"))
        .await
        .unwrap();
    let pending = password(&store, &arn, AWSPENDING).await;
    db.admin(&format!(
        "ALTER USER 'multi'@'127.0.0.1' IDENTIFIED BY {}",
        my_literal(pending.expose_secret())
    ));
    replay_steps(
        &function,
        &arn,
        &t,
        &["setSecret", "testSecret", "finishSecret"],
    )
    .await;
    assert_eq!(
        accounts_without(&db, "multi", &pending),
        "",
        "the retry declared success with an account of multi on the old password"
    );
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
}

/// Issue 21, item 11, without a master: a user that can see its accounts
/// (it may read mysql.user) but may change only its own is refused before
/// anything changes, naming the accounts and the fix. With a master,
/// testSecret checks what the pending user can see: an account of the name
/// whose password differs from the one it logged in with fails the step,
/// naming the account.
#[tokio::test]
async fn mariadb_several_accounts_are_refused_or_checked() {
    let db = Db::start("mariadb", TlsMode::Required);
    let store = moto_store();
    let team = format!("{}/", unique("team"));
    let master = serving_master(&db, &store, &team).await;
    let function = function(&db, "single", &[]).await;
    let old = random_password();
    for host in ["127.0.0.1", "localhost"] {
        db.admin(&format!(
            "CREATE USER 'seer'@'{host}' IDENTIFIED BY {}; GRANT SELECT ON mysql.user TO 'seer'@'{host}'",
            my_literal(old.expose_secret())
        ));
    }
    let t = token();
    let alone = staged_secret_named(
        &store,
        &format!("{team}{}", unique("seer")),
        &db.secret("seer", &old, json!({})),
        &[],
        &t,
    )
    .await;
    step(&function, &event(&alone, &t, "createSecret"))
        .await
        .unwrap();
    let (kind, message) = step(&function, &event(&alone, &t, "setSecret"))
        .await
        .expect_err("several accounts and no master");
    assert_eq!(
        accounts_without(&db, "seer", &old),
        "",
        "an account of seer changed"
    );
    assert!(
        message.contains("localhost") && message.contains("masterarn"),
        "{kind}: {message}"
    );

    let t = token();
    let served = staged_secret_named(
        &store,
        &format!("{team}{}", unique("seer")),
        &db.secret("seer", &old, json!({"masterarn": master})),
        &[],
        &t,
    )
    .await;
    for name in ["createSecret", "setSecret"] {
        step(&function, &event(&served, &t, name)).await.unwrap();
    }
    let pending = password(&store, &served, AWSPENDING).await;
    assert_eq!(accounts_without(&db, "seer", &pending), "");
    // Someone sets another password on one account before testSecret.
    db.admin(&format!(
        "ALTER USER 'seer'@'localhost' IDENTIFIED BY {}",
        my_literal(random_password().expose_secret())
    ));
    let (kind, message) = step(&function, &event(&served, &t, "testSecret"))
        .await
        .expect_err("testSecret sees the account with another password");
    assert_eq!(kind, "NotRetryable.DatabaseMismatch", "{message}");
    assert!(
        message.contains("'seer'@'localhost'") && message.contains("setSecret again"),
        "{message}"
    );
    for name in ["setSecret", "testSecret", "finishSecret"] {
        let result = step(&function, &event(&served, &t, name)).await;
        assert!(result.is_ok(), "{name}: {result:?}\n{}", function.output());
    }
    assert_eq!(accounts_without(&db, "seer", &pending), "");
    let output = format!("{message}\n{}", function.output());
    assert_no_stored_secret_in(&store, &served, &output).await;
    assert_no_stored_secret_in(&store, &alone, &output).await;
}

/// Issue 21, item 14: the function's MySQL/MariaDB sessions set a utf8mb4
/// client character set before quoting anything, whatever the server gives
/// a new session. Here the server's `init_connect` (run for every login
/// without SUPER, as an RDS master is) sets latin1; the master then changes
/// the password of a user whose name is not ASCII. Before, the name reached
/// the server as latin1 and matched no account.
#[tokio::test]
async fn mariadb_sessions_use_utf8mb4_whatever_the_server_sets() {
    let db = Db::start("mariadb", TlsMode::Required);
    let store = moto_store();
    let master_password = random_password();
    db.admin(&format!(
        "CREATE USER 'dbmaster'@'%' IDENTIFIED BY {}; GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, BINLOG MONITOR, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER ON *.* TO 'dbmaster'@'%' WITH GRANT OPTION",
        my_literal(master_password.expose_secret())
    ));
    let user = "žofie";
    db.create_user(user, &random_password());
    db.admin("SET GLOBAL init_connect = 'SET NAMES latin1'");
    let team = format!("{}/", unique("team"));
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret("dbmaster", &master_password, json!({}))),
            &[("rotor:serves", team.as_str())],
        )
        .await
        .unwrap();
    let function = function(&db, "single", &[]).await;
    let t = token();
    // A password the database does not know: the master changes it.
    let arn = staged_secret_named(
        &store,
        &format!("{team}zofie"),
        &db.secret(user, &random_password(), json!({"masterarn": master})),
        &[],
        &t,
    )
    .await;
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let result = step(&function, &event(&arn, &t, name)).await;
        assert!(result.is_ok(), "{name}: {result:?}\n{}", function.output());
    }
    assert!(db.logs_in(user, &password(&store, &arn, AWSCURRENT).await));
}

/// Issue 22: AWSPREVIOUS is the single user's last resort before the
/// master. One that does not parse cannot log in: setSecret goes on to the
/// master, which changes the password, and the log says that AWSPREVIOUS
/// was not tried and why (it named no field, never a value). Before, the
/// step failed on it and the master was never asked.
#[tokio::test]
async fn a_broken_previous_value_does_not_block_the_master() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[],
        )
        .await
        .unwrap();
    // The database has a password no stored version knows.
    db.create_user("lost", &random_password());
    let arn = store
        .create_secret(&unique("lost"), &SecretString::from("not JSON"), &[])
        .await
        .unwrap();
    let stored = SecretString::from(db.secret("lost", &random_password(), json!({})));
    store
        .put_value(
            &arn,
            rotor_core::store::NewVersion {
                version_id: &token(),
                value: &stored,
                labels: &[AWSCURRENT],
                rotation_token: None,
            },
        )
        .await
        .unwrap();
    assert!(value(&store, &arn, AWSPREVIOUS).await.is_some());
    let function = function(&db, "single", &[("MASTER_SECRET_ARN", master.as_str())]).await;
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();

    replay_steps(
        &function,
        &arn,
        &t,
        &["createSecret", "setSecret", "testSecret", "finishSecret"],
    )
    .await;

    assert!(db.logs_in("lost", &password(&store, &arn, AWSCURRENT).await));
    let output = function.output();
    assert!(
        output.contains("AWSPREVIOUS") && output.contains("not JSON"),
        "the log says why AWSPREVIOUS was not tried:\n{output}"
    );
    assert_no_stored_secret_in(&store, &arn, &output).await;
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
        let cases = [
            (
                db.secret_at("no-such-host.invalid", db.port(), "app", &old, json!({})),
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
            step(&function, &event(&arn, &t, "createSecret"))
                .await
                .unwrap();
            let (got, message) = step(&function, &event(&arn, &t, "setSecret"))
                .await
                .unwrap_err();
            assert_eq!(got, kind, "{engine}: {message}");
            assert!(message.contains(expected), "{engine}: {message}");
            assert!(
                same(
                    &value(&store, &arn, AWSCURRENT).await,
                    &Some(SecretString::from(stored))
                ),
                "{engine}: AWSCURRENT changed"
            );
        }
    }
}
