//! Single user: one user, whose password changes; through the master when
//! the user's own passwords are refused; every account of a MySQL/MariaDB
//! user name.

use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{ExposeSecret, SecretStore, SecretString, Step};
use rotor_tests::db::{TlsMode, random_password};
use rotor_tests::target_db::{Db, field, my_literal, password};
use rotor_tests::{
    assert_no_stored_secret_in, moto_store, same, staged_secret, staged_secret_named, steps, token,
    unique, value,
};
use serde_json::json;

use super::{function, function_with_master, master_secret, on_both_engines, rotate_ok};

/// The password changes; the old one is refused afterwards. Every step is
/// replayed, and the value staged by createSecret is the one that becomes
/// current.
async fn single_user_rotation(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let old = random_password();
    db.create_user("app", &old);
    let t = token();
    let value_before = db.secret("app", &old, json!({"dbname": null, "note": "kept"}));
    let arn = staged_secret(&store, &value_before, &[], &t).await;
    let function = function(&db, "single", &[]).await;

    steps::replay(&function, &arn, &t, &[Step::CreateSecret]).await;
    let staged = value(&store, &arn, AWSPENDING).await;
    steps::replay(
        &function,
        &arn,
        &t,
        &[Step::SetSecret, Step::TestSecret, Step::FinishSecret],
    )
    .await;

    let new = password(&store, &arn, AWSCURRENT).await;
    assert!(
        same(&value(&store, &arn, AWSCURRENT).await, &staged),
        "the staged value became current"
    );
    assert!(db.logs_in("app", &new), "the new password logs in");
    assert!(!db.logs_in("app", &old), "the old password is refused");
    let current_field = |name| field(&store, &arn, AWSCURRENT, name);
    assert_eq!(current_field("note").await.as_deref(), Some("kept"));
    assert_eq!(current_field("username").await.as_deref(), Some("app"));
    assert!(password(&store, &arn, AWSPREVIOUS).await.expose_secret() == old.expose_secret());
    // Excluded by default, as in AWS's functions.
    let excluded = if engine == "postgres" {
        ":/@\"'\\"
    } else {
        "/@\"'\\"
    };
    assert!(!new.expose_secret().chars().any(|c| excluded.contains(c)));
}

on_both_engines!(
    single_user_rotation,
    postgres_single_user_rotation,
    mariadb_single_user_rotation
);

/// Names with quotes, backslashes and non-ASCII letters; passwords drawn from
/// every printable character.
async fn hostile_names_and_passwords(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let user = r#"o'bri\en"ž"#;
    let old = SecretString::from(r#"it's a \"pass\word\"#);
    db.create_user(user, &old);
    let every_character = [("EXCLUDE_CHARACTERS", ""), ("PASSWORD_LENGTH", "64")];
    let function = function(&db, "single", &every_character).await;
    let stored = SecretString::from(db.secret(user, &old, json!({})));
    let arn = store
        .create_secret(&unique("hostile"), &stored, &[])
        .await
        .unwrap();
    for round in 0..3 {
        rotate_ok(&store, &function, &arn, &format!("round {round}")).await;
        let new = password(&store, &arn, AWSCURRENT).await;
        assert!(
            db.logs_in(user, &new),
            "round {round}: the new password logs in"
        );
    }
    assert!(!db.logs_in(user, &old));
}

on_both_engines!(
    hostile_names_and_passwords,
    postgres_hostile_names_and_passwords,
    mariadb_hostile_names_and_passwords
);

/// Issue 14, item 4: single-user rotation through the master, for a user that
/// cannot log in with its stored passwords (expired or reset elsewhere) or
/// cannot change its own: setSecret logs in as the master and changes only
/// that user's password.
async fn single_user_rotation_through_the_master(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let master = master_secret(&db, &store, &[]).await;
    // The database has a password the secret does not know.
    db.create_user("solo", &random_password());
    let stored = db.secret("solo", &random_password(), json!({"masterarn": master}));
    let arn = store
        .create_secret(&unique("solo"), &SecretString::from(stored), &[])
        .await
        .unwrap();
    let function = function_with_master(&db, "single", &master).await;

    rotate_ok(&store, &function, &arn, engine).await;

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

on_both_engines!(
    single_user_rotation_through_the_master,
    postgres_single_user_rotation_through_the_master,
    mariadb_single_user_rotation_through_the_master
);

/// Issue 22: AWSPREVIOUS is the single user's last resort before the
/// master. One that does not parse cannot log in: setSecret goes on to the
/// master, which changes the password, and the log says that AWSPREVIOUS
/// was not tried and why (it named no field, never a value). Before, the
/// step failed on it and the master was never asked.
#[tokio::test]
async fn a_broken_previous_value_does_not_block_the_master() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let master = master_secret(&db, &store, &[]).await;
    // The database has a password no stored version knows.
    db.create_user("lost", &random_password());
    let arn = store
        .create_secret(&unique("lost"), &SecretString::from("not JSON"), &[])
        .await
        .unwrap();
    let stored = SecretString::from(db.secret("lost", &random_password(), json!({})));
    let version = NewVersion {
        version_id: &token(),
        value: &stored,
        labels: &[AWSCURRENT],
        rotation_token: None,
    };
    store.put_value(&arn, version).await.unwrap();
    assert!(value(&store, &arn, AWSPREVIOUS).await.is_some());
    let function = function_with_master(&db, "single", &master).await;
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();

    steps::replay(&function, &arn, &t, &Step::ALL).await;

    assert!(db.logs_in("lost", &password(&store, &arn, AWSCURRENT).await));
    let output = function.output();
    assert!(
        output.contains("AWSPREVIOUS") && output.contains("not JSON"),
        "the log says why AWSPREVIOUS was not tried:\n{output}"
    );
    assert_no_stored_secret_in(&store, &arn, &output).await;
}

/// Accounts whose host is not `%` rotate too, in both strategies; the clone gets
/// an account on the same host.
#[tokio::test]
async fn mariadb_accounts_on_a_specific_host() {
    let db = Db::start("mariadb", TlsMode::Required);
    let store = moto_store();
    let master = master_secret(&db, &store, &[]).await;
    for (user, strategy) in [("local1", "single"), ("local2", "alternating")] {
        let old = random_password();
        let account = format!("'{user}'@'127.0.0.1'");
        db.admin(&format!(
            "CREATE USER {account} IDENTIFIED BY {}; GRANT SELECT ON mysql.* TO {account}",
            my_literal(old.expose_secret())
        ));
        let function = function_with_master(&db, strategy, &master).await;
        let stored = db.secret(user, &old, json!({"masterarn": master}));
        let arn = store
            .create_secret(&unique("host"), &SecretString::from(stored), &[])
            .await
            .unwrap();

        rotate_ok(&store, &function, &arn, strategy).await;

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

/// The hosts of `user`'s accounts whose password is not `password`
/// (MariaDB's mysql_native_password hashes compared by the server), one per
/// line; empty when every account has it.
fn accounts_without(db: &Db, user: &str, password: &SecretString) -> String {
    db.admin(&format!(
        concat!(
            "SELECT Host FROM mysql.user WHERE User = {} ",
            "AND authentication_string <> PASSWORD({}) ORDER BY Host"
        ),
        my_literal(user),
        my_literal(password.expose_secret())
    ))
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
    let master = master_secret(&db, &store, &[("rotor:serves", &team)]).await;
    let function = function(&db, "single", &[]).await;
    let old = random_password();
    // TCP logins from 127.0.0.1 match the first account; the second is
    // reached through the server's socket.
    let pw = my_literal(old.expose_secret());
    for host in ["127.0.0.1", "localhost"] {
        db.admin(&format!("CREATE USER 'multi'@'{host}' IDENTIFIED BY {pw}"));
    }
    let stored = db.secret("multi", &old, json!({"masterarn": master}));
    let arn = store
        .create_secret(&format!("{team}multi"), &SecretString::from(stored), &[])
        .await
        .unwrap();
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let new = password(&store, &arn, AWSCURRENT).await;
    assert_eq!(
        accounts_without(&db, "multi", &new),
        "",
        "accounts of multi left on another password"
    );

    // A first attempt that changed only the account it logs in as.
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();
    steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap();
    let pending = password(&store, &arn, AWSPENDING).await;
    db.admin(&format!(
        "ALTER USER 'multi'@'127.0.0.1' IDENTIFIED BY {}",
        my_literal(pending.expose_secret())
    ));
    steps::replay(
        &function,
        &arn,
        &t,
        &[Step::SetSecret, Step::TestSecret, Step::FinishSecret],
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
    let master = master_secret(&db, &store, &[("rotor:serves", &team)]).await;
    let function = function(&db, "single", &[]).await;
    let old = random_password();
    for host in ["127.0.0.1", "localhost"] {
        let account = format!("'seer'@'{host}'");
        db.admin(&format!(
            "CREATE USER {account} IDENTIFIED BY {}; GRANT SELECT ON mysql.user TO {account}",
            my_literal(old.expose_secret())
        ));
    }
    let seer = |extra| db.secret("seer", &old, extra);
    let t = token();
    let name = format!("{team}{}", unique("seer"));
    let alone = staged_secret_named(&store, &name, &seer(json!({})), &[], &t).await;
    steps::run(&function, &alone, &t, Step::CreateSecret)
        .await
        .unwrap();
    let (kind, message) = steps::run(&function, &alone, &t, Step::SetSecret)
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
    let name = format!("{team}{}", unique("seer"));
    let served_value = seer(json!({"masterarn": master}));
    let served = staged_secret_named(&store, &name, &served_value, &[], &t).await;
    steps::replay(
        &function,
        &served,
        &t,
        &[Step::CreateSecret, Step::SetSecret],
    )
    .await;
    let pending = password(&store, &served, AWSPENDING).await;
    assert_eq!(accounts_without(&db, "seer", &pending), "");
    // Someone sets another password on one account before testSecret.
    db.admin(&format!(
        "ALTER USER 'seer'@'localhost' IDENTIFIED BY {}",
        my_literal(random_password().expose_secret())
    ));
    let (kind, message) = steps::run(&function, &served, &t, Step::TestSecret)
        .await
        .expect_err("testSecret sees the account with another password");
    assert_eq!(kind, "NotRetryable.DatabaseMismatch", "{message}");
    assert!(
        message.contains("'seer'@'localhost'") && message.contains("setSecret again"),
        "{message}"
    );
    steps::replay(
        &function,
        &served,
        &t,
        &[Step::SetSecret, Step::TestSecret, Step::FinishSecret],
    )
    .await;
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
    let privileges = concat!(
        "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ",
        "ALTER, SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, ",
        "REPLICATION SLAVE, BINLOG MONITOR, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ",
        "ALTER ROUTINE, CREATE USER, EVENT, TRIGGER"
    );
    let pw = my_literal(master_password.expose_secret());
    db.admin(&format!(
        "CREATE USER 'dbmaster'@'%' IDENTIFIED BY {pw}; GRANT {privileges} ON *.* TO {}",
        "'dbmaster'@'%' WITH GRANT OPTION"
    ));
    let user = "žofie";
    db.create_user(user, &random_password());
    db.admin("SET GLOBAL init_connect = 'SET NAMES latin1'");
    let team = format!("{}/", unique("team"));
    let master_login = db.secret("dbmaster", &master_password, json!({}));
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(master_login),
            &[("rotor:serves", team.as_str())],
        )
        .await
        .unwrap();
    let function = function(&db, "single", &[]).await;
    let t = token();
    // A password the database does not know: the master changes it.
    let stored = db.secret(user, &random_password(), json!({"masterarn": master}));
    let arn = staged_secret_named(&store, &format!("{team}zofie"), &stored, &[], &t).await;

    steps::replay(&function, &arn, &t, &Step::ALL).await;

    assert!(db.logs_in(user, &password(&store, &arn, AWSCURRENT).await));
}
