//! Through moto's RDS API: master secrets that RDS keeps (only a user name
//! and password, tagged with their instance or cluster), which log in where
//! the API says; and user secrets that name a reader of the master's
//! database. The function runs with an `/etc/hosts` of its own that maps
//! moto's endpoint names to the test server.

use rotor_cli::function::LocalFunction;
use rotor_core::labels::AWSCURRENT;
use rotor_core::{ExposeSecret, SecretString, Step};
use rotor_tests::db::{TlsMode, random_password};
use rotor_tests::target_db::{Db, field, my_account, my_literal, password, pg_ident, pg_literal};
use rotor_tests::{
    moto_rds, moto_store, same, staged_secret, start_function_resolving, steps, token, unique,
    value,
};
use serde_json::json;

use super::{on_both_engines, refusal, rotate_to};

/// rds-rotation for alternating users, trusting `db`'s test CA, with the
/// deployer's master secret `master`, resolving `names` to the test server.
async fn function_resolving(db: &Db, names: &[&str], master: &str) -> LocalFunction {
    let ca = db.ca_path();
    let env = [
        ("SSL_CERT_FILE", ca.as_str()),
        ("ROTATION_STRATEGY", "alternating"),
        ("MASTER_SECRET_ARN", master),
    ];
    start_function_resolving("rds-rotation", names, &env).await
}

/// An engine version moto accepts for the test server's engine.
fn engine_version(db: &Db) -> &'static str {
    match db.engine() {
        "postgres" => "16.3",
        _ => "10.11.8",
    }
}

/// A DB instance in moto's RDS API whose master password RDS manages, at the
/// test server's port: its identifier, its endpoint host name and its
/// master secret's ARN.
async fn instance_with_kept_master(db: &Db) -> (String, String, String) {
    let id = unique("db");
    // moto knows no default version for mariadb: each engine names one.
    let created = moto_rds()
        .create_db_instance()
        .db_instance_identifier(&id)
        .engine(db.engine())
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

/// A master user `name` as RDS makes one: it may create users and grant
/// every privilege.
fn create_master(db: &Db, name: &str, password: &SecretString) {
    let pw = password.expose_secret();
    if db.engine() == "postgres" {
        let (role, pw) = (pg_ident(name), pg_literal(pw));
        db.admin(&format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD {pw}"));
    } else {
        let (account, pw) = (my_account(name), my_literal(pw));
        db.admin(&format!(
            "CREATE USER {account} IDENTIFIED BY {pw}; {}",
            format_args!("GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION")
        ));
    }
}

/// Issue 14, item 1: the master secret RDS manages (only username and
/// password, tagged aws:rds:primaryDBInstanceArn) rotates an alternating pair
/// with no change to any secret; engine, host and port come from the RDS API,
/// and the master logs in to the host RDS names.
async fn an_rds_managed_master_secret_serves_as_masterarn(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let (_, host, master) = instance_with_kept_master(&db).await;
    // RDS's master user exists with the password RDS keeps in the secret.
    let master_password = password(&store, &master, AWSCURRENT).await;
    create_master(&db, "admin", &master_password);
    let master_before = value(&store, &master, AWSCURRENT).await;
    let old = random_password();
    db.create_user("svc", &old);
    let t = token();
    let stored = db.secret_at(&host, db.port(), "svc", &old, json!({"masterarn": master}));
    let arn = staged_secret(&store, &stored, &[], &t).await;
    let function = function_resolving(&db, &[&host], &master).await;

    steps::replay(&function, &arn, &t, &Step::ALL).await;

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

on_both_engines!(
    an_rds_managed_master_secret_serves_as_masterarn,
    postgres_an_rds_managed_master_secret_serves_as_masterarn,
    mariadb_an_rds_managed_master_secret_serves_as_masterarn
);

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
    let stored = db.secret_at(
        &reader,
        db.port(),
        "svc",
        &old,
        json!({"masterarn": master}),
    );
    let arn = staged_secret(&store, &stored, &[], &t).await;
    let function = function_resolving(&db, &[&writer, &reader], &master).await;

    steps::replay(&function, &arn, &t, &Step::ALL).await;

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
    let (_, host, master) = instance_with_kept_master(&db).await;
    let old = random_password();
    db.create_user("svc", &old);
    let t = token();
    // The writer of this secret names a host of their choosing.
    let stored = db.secret("svc", &old, json!({"masterarn": master}));
    let arn = staged_secret(&store, &stored, &[], &t).await;
    let function = function_resolving(&db, &[&host], &master).await;
    steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .expect("createSecret");

    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
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
    let (id, host, master) = instance_with_kept_master(&db).await;
    let replica = other_instance(&db, Some(&id)).await;
    let stranger = other_instance(&db, None).await;
    let master_password = password(&store, &master, AWSCURRENT).await;
    create_master(&db, "admin", &master_password);
    let function = function_resolving(&db, &[&host, &replica, &stranger], &master).await;
    for (user, at, reader) in [
        ("on_replica", &replica, true),
        ("on_stranger", &stranger, false),
    ] {
        let old = random_password();
        db.create_user(user, &old);
        let t = token();
        let stored = db.secret_at(at, db.port(), user, &old, json!({"masterarn": master}));
        let arn = staged_secret(&store, &stored, &[], &t).await;

        let run = rotate_to(&store, &function, &arn, Some(&t)).await;

        if reader {
            let results: Vec<_> = run.steps.iter().map(|s| &s.result).collect();
            assert!(
                run.succeeded(),
                "{user}: {results:?}\n{}",
                function.output()
            );
            let new = password(&store, &arn, AWSCURRENT).await;
            assert!(
                db.logs_in(&format!("{user}_clone"), &new),
                "the clone logs in"
            );
        } else {
            let (_, kind, message) = refusal(&run);
            assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
            assert!(message.contains("reader"), "{message}");
            let clones = db.admin(&format!(
                "SELECT count(*) FROM pg_roles WHERE rolname = '{user}_clone'"
            ));
            assert_eq!(clones.trim(), "0", "the database changed");
        }
    }
}
