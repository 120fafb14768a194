//! Alternating users: `u` and `u_clone` take turns, the clone with exactly
//! the original's access, whatever state an earlier attempt or a person left
//! it in; and the `rotor:strategy` tag that chooses the strategy per secret.

use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{ExposeSecret, SecretStore, SecretString, Step};
use rotor_tests::db::{TlsMode, random_password};
use rotor_tests::target_db::{Db, field, my_account, my_literal, password, pg_ident, pg_literal};
use rotor_tests::{
    assert_no_stored_secret_in, moto_store, same, staged_secret, steps, token, unique, value,
};
use serde_json::json;

use super::{
    function, function_with_master, master_secret, on_both_engines, refusal, rotate_ok, rotate_to,
};

/// The clone is created with the original's privileges, takes over, and the
/// previous user still logs in; the next rotation swaps back, carrying over
/// what changed on the original since.
async fn alternating_users_rotation(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    // The master agrees to serve the application's secrets (rotor:serves), as
    // a masterarn needs.
    let team = format!("{}/", unique("team"));
    let master = master_secret(&db, &store, &[("rotor:serves", &team)]).await;
    let old = random_password();
    db.create_user("svc", &old);
    if engine == "postgres" {
        db.admin(concat!(
            "CREATE TABLE orders (id int); ALTER TABLE orders OWNER TO svc; ",
            "GRANT CREATE ON SCHEMA public TO svc"
        ));
    } else {
        // The clone must inherit the original's TLS requirement.
        db.admin("ALTER USER 'svc'@'%' REQUIRE SSL");
    }
    // PostgreSQL takes the master secret from MASTER_SECRET_ARN, MariaDB from masterarn.
    let (function, extra) = match engine {
        "postgres" => (
            function_with_master(&db, "alternating", &master).await,
            json!({}),
        ),
        _ => (
            function(&db, "alternating", &[]).await,
            json!({"masterarn": master}),
        ),
    };
    let t = token();
    let stored = SecretString::from(db.secret("svc", &old, extra));
    let arn = store
        .create_secret(&format!("{team}svc"), &stored, &[])
        .await
        .unwrap();
    store.begin_rotation(&arn, &t).await.unwrap();

    // The first rotation creates the clone; every step is replayed.
    steps::replay(&function, &arn, &t, &Step::ALL).await;

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
    let as_clone = |sql| db.query_as("svc_clone", &clone_password, sql);
    if engine == "postgres" {
        // The clone acts as the original role: it can use and create objects
        // that stay usable by both.
        as_clone("INSERT INTO orders VALUES (1); CREATE TABLE made_by_clone (x int)").unwrap();
        db.query_as("svc", &old, "SELECT count(*) FROM made_by_clone")
            .unwrap();
    } else {
        as_clone("CREATE TABLE IF NOT EXISTS shop.t (x int)").expect_err("no CREATE privilege");
        as_clone("SELECT 1 FROM information_schema.tables LIMIT 1").unwrap();
    }

    // Privileges changed on the original since: the next rotations carry them over.
    if engine == "mariadb" {
        db.admin("GRANT UPDATE ON shop.* TO 'svc'@'%'; REVOKE INSERT ON shop.* FROM 'svc'@'%'");
    }
    rotate_ok(&store, &function, &arn, "the second rotation").await;
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
    rotate_ok(&store, &function, &arn, "the third rotation").await;
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

on_both_engines!(
    alternating_users_rotation,
    postgres_alternating_users_rotation,
    mariadb_alternating_users_rotation
);

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
    let function = function_with_master(&db, "alternating", &master).await;
    let stored = SecretString::from(db.secret("svc", &old, json!({"masterarn": master})));
    let arn = store
        .create_secret(&unique("alt"), &stored, &[])
        .await
        .unwrap();
    let t = token();

    let first = rotate_to(&store, &function, &arn, Some(&t)).await;

    let (step, kind, message) = refusal(&first);
    assert_eq!(step, Step::SetSecret);
    assert_eq!(kind, "NotRetryable.DatabaseAuth");
    assert!(
        message.contains("master credentials") && message.contains(&master),
        "{message}"
    );
    let staged = value(&store, &arn, AWSPENDING).await;
    assert!(db.logs_in("svc", &old), "nothing changed in the database");

    let right = SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({})));
    let version = NewVersion {
        version_id: &token(),
        value: &right,
        labels: &[AWSCURRENT],
        rotation_token: None,
    };
    store.put_value(&master, version).await.unwrap();
    let second = rotate_to(&store, &function, &arn, Some(&t)).await;
    let results: Vec<_> = second.steps.iter().map(|s| &s.result).collect();
    assert!(second.succeeded(), "{results:?}");
    assert!(same(&value(&store, &arn, AWSCURRENT).await, &staged));
}

/// The other user of an alternating pair already exists, in each state a
/// real deployment can leave it in; the next rotation converges it to the
/// original's access, proved by an independent client reading one table the
/// original can read and failing on one it cannot. Its extras are ordinary
/// ones: an existing clone that is privileged (GRANT OPTION, SUPERUSER, ...)
/// is refused instead
/// (untrusted_writer::rds::*_a_privileged_account_is_never_the_other_user).
async fn a_pre_existing_other_user_is_converged(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let master = master_secret(&db, &store, &[]).await;
    let function = function_with_master(&db, "alternating", &master).await;
    let postgres = engine == "postgres";
    for state in ["no grants", "extra grants", "the pending password"] {
        let user = format!("conv_{}", &token()[..8]);
        let clone = format!("{user}_clone");
        let old = random_password();
        db.create_user(&user, &old);
        db.grant_items_not_vault(&user);
        if !postgres {
            // A role and a default role, which the clone must get too.
            let (r, u) = (my_literal(&format!("{user}_r")), my_account(&user));
            db.admin(&format!(
                "CREATE ROLE {r}; GRANT SELECT ON mysql.db TO {r}; {}",
                format_args!("GRANT {r} TO {u}; SET DEFAULT ROLE {r} FOR {u}")
            ));
        }
        let t = token();
        let arn = staged_secret(&store, &db.secret(&user, &old, json!({})), &[], &t).await;
        steps::run(&function, &arn, &t, Step::CreateSecret)
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
            let (role, pw) = (pg_ident(&clone), pg_literal(pw));
            db.admin(&format!("CREATE ROLE {role} LOGIN PASSWORD {pw}"));
        } else {
            let (account, pw) = (my_account(&clone), my_literal(pw));
            db.admin(&format!("CREATE USER {account} IDENTIFIED BY {pw}"));
        }
        if state == "extra grants" {
            add_extra_grants(&db, &user, &clone);
        }

        steps::replay(
            &function,
            &arn,
            &t,
            &[Step::SetSecret, Step::TestSecret, Step::FinishSecret],
        )
        .await;

        let what = format!("{engine}, {state}");
        assert_eq!(
            field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
            Some(clone.as_str())
        );
        let current = password(&store, &arn, AWSCURRENT).await;
        if let Err(problem) = db.has_access_of_original(&clone, &current) {
            panic!("{what}: {problem}");
        }
        let as_clone = |sql| db.query_as(&clone, &current, sql);
        if postgres {
            let acts_as = as_clone("SELECT current_user").unwrap();
            assert!(acts_as.contains(&user), "{what}: {acts_as}");
            // Acting as itself, the clone must not reach more either.
            assert!(
                as_clone("RESET ROLE; SELECT count(*) FROM vault").is_err(),
                "{what}: the clone kept a way to read vault"
            );
            let createdb = db.admin(&format!(
                "SELECT rolcreatedb FROM pg_roles WHERE rolname = '{clone}'"
            ));
            assert_eq!(createdb.trim(), "f", "{what}: the clone kept CREATEDB");
        } else {
            let grants = db.admin(&format!("SHOW GRANTS FOR {}", my_account(&clone)));
            assert!(
                !grants.contains("UPDATE") && !grants.contains("_extra"),
                "{what}: extra grants kept: {grants}"
            );
            let hosts = db.admin(&format!(
                "SELECT Host FROM mysql.user WHERE User = '{clone}'"
            ));
            assert_eq!(hosts.trim(), "%", "{what}: the clone's hosts");
            assert!(
                grants.contains(&format!("SET DEFAULT ROLE `{user}_r`")),
                "{what}: the default role was not copied: {grants}"
            );
            as_clone("SELECT count(*) FROM mysql.db")
                .unwrap_or_else(|e| panic!("{what}: the role is not active: {e}"));
        }
        assert!(db.logs_in(&user, &old), "the previous user still logs in");
        assert_no_stored_secret_in(&store, &arn, &function.output()).await;
    }
}

/// Gives the existing `clone` of `user` ordinary extras its original lacks:
/// a grant of its own, a role with a grant and, on PostgreSQL, CREATEDB; on
/// MariaDB also an account on a host the original lacks, which a login from
/// 127.0.0.1 would match before `%`.
fn add_extra_grants(db: &Db, user: &str, clone: &str) {
    let role = format!("{user}_extra");
    if db.engine() == "postgres" {
        let (c, r) = (pg_ident(clone), pg_ident(&role));
        db.admin(&format!(
            "GRANT SELECT ON vault TO {c}; CREATE ROLE {r}; GRANT SELECT ON vault TO {r}; {}",
            format_args!("GRANT {r} TO {c}; ALTER ROLE {c} CREATEDB")
        ));
        return;
    }
    let local = format!("{}@'127.0.0.1'", my_literal(clone));
    let pw = my_literal(random_password().expose_secret());
    db.admin(&format!(
        "CREATE USER {local} IDENTIFIED BY {pw}; GRANT SELECT ON vault.* TO {local}"
    ));
    let (c, r) = (my_account(clone), my_literal(&role));
    db.admin(&format!(
        "GRANT SELECT ON vault.* TO {c}; CREATE ROLE {r}; GRANT SELECT ON vault.* TO {r}; {}",
        format_args!(
            "GRANT {r} TO {c}; SET DEFAULT ROLE {r} FOR {c}; GRANT UPDATE ON shop.* TO {c}"
        )
    ));
}

on_both_engines!(
    a_pre_existing_other_user_is_converged,
    postgres_a_pre_existing_other_user_is_converged,
    mariadb_a_pre_existing_other_user_is_converged
);

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
        let account = format!("'{weak}'@'%'");
        db.admin(&format!(
            "CREATE USER {account} IDENTIFIED BY '{pw}'; GRANT SELECT ON mysql.* TO {account}"
        ));
    }
    let weak_login = SecretString::from(db.secret(&weak, &weak_password, json!({})));
    let master = store
        .create_secret(&unique("weak-master"), &weak_login, &[])
        .await
        .unwrap();
    let function = function_with_master(&db, "alternating", &master).await;
    let old = random_password();
    db.create_user("svc", &old);
    db.grant_items_not_vault("svc");
    let t = token();
    let arn = staged_secret(&store, &db.secret("svc", &old, json!({})), &[], &t).await;
    steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap();

    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
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
    let clones = if postgres {
        "SELECT count(*) FROM pg_roles WHERE rolname = 'svc_clone'"
    } else {
        "SELECT count(*) FROM mysql.user WHERE User = 'svc_clone'"
    };
    assert_eq!(db.admin(clones).trim(), "0", "nothing was created");

    if !postgres {
        // May create users, may not grant: the user is created, the grant fails.
        db.admin(&format!("GRANT CREATE USER ON *.* TO '{weak}'@'%'"));
        let (_, message) = steps::run(&function, &arn, &t, Step::SetSecret)
            .await
            .unwrap_err();
        assert!(message.contains("svc_clone"), "{message}");
        assert_eq!(
            db.admin(clones).trim(),
            "1",
            "the first attempt created the user"
        );
    }
    // The master gets what it needs; the retried rotation converges.
    if postgres {
        db.admin(&format!("ALTER ROLE {weak} SUPERUSER"));
    } else {
        db.admin(&format!(
            "GRANT ALL PRIVILEGES ON *.* TO '{weak}'@'%' WITH GRANT OPTION"
        ));
    }
    steps::replay(
        &function,
        &arn,
        &t,
        &[Step::SetSecret, Step::TestSecret, Step::FinishSecret],
    )
    .await;
    let current = password(&store, &arn, AWSCURRENT).await;
    if let Err(problem) = db.has_access_of_original("svc_clone", &current) {
        panic!("{engine}: {problem}");
    }
}

on_both_engines!(
    a_master_without_privileges,
    postgres_a_master_without_privileges,
    mariadb_a_master_without_privileges
);

/// testSecret of an alternate user proves access, not just login: privileges
/// taken from the clone between setSecret and testSecret fail it with an
/// error naming the difference.
async fn test_secret_checks_the_clones_access(engine: &str) {
    let db = Db::start(engine, TlsMode::Required);
    let store = moto_store();
    let master = master_secret(&db, &store, &[]).await;
    let function = function_with_master(&db, "alternating", &master).await;
    let old = random_password();
    db.create_user("svc", &old);
    db.grant_items_not_vault("svc");
    let t = token();
    let arn = staged_secret(&store, &db.secret("svc", &old, json!({})), &[], &t).await;
    steps::replay(&function, &arn, &t, &[Step::CreateSecret, Step::SetSecret]).await;
    let expected = if engine == "postgres" {
        db.admin("REVOKE svc FROM svc_clone; ALTER ROLE svc_clone RESET role");
        "acts as \"svc_clone\""
    } else {
        db.admin("REVOKE INSERT ON shop.* FROM 'svc_clone'@'%'");
        "lacks"
    };

    let (kind, message) = steps::run(&function, &arn, &t, Step::TestSecret)
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
    steps::replay(
        &function,
        &arn,
        &t,
        &[Step::SetSecret, Step::TestSecret, Step::FinishSecret],
    )
    .await;
}

on_both_engines!(
    test_secret_checks_the_clones_access,
    postgres_test_secret_checks_the_clones_access,
    mariadb_test_secret_checks_the_clones_access
);

/// Issue 14, item 5: one deployment, both strategies: the `rotor:strategy`
/// tag chooses per secret, `ROTATION_STRATEGY` is the default.
#[tokio::test]
async fn a_tag_chooses_the_strategy() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let master = master_secret(&db, &store, &[]).await;
    let function = function_with_master(&db, "single", &master).await;
    let by_tag = [("rotor:strategy", "alternating")];
    for (user, tags, expected) in [
        ("by_default", &[][..], "by_default"),
        ("by_tag", &by_tag[..], "by_tag_clone"),
    ] {
        let old = random_password();
        db.create_user(user, &old);
        let stored = SecretString::from(db.secret(user, &old, json!({})));
        let arn = store
            .create_secret(&unique(user), &stored, tags)
            .await
            .unwrap();

        rotate_ok(&store, &function, &arn, user).await;

        assert_eq!(
            field(&store, &arn, AWSCURRENT, "username").await.as_deref(),
            Some(expected)
        );
        assert!(db.logs_in(expected, &password(&store, &arn, AWSCURRENT).await));
    }
    let stored = SecretString::from(db.secret("by_default", &random_password(), json!({})));
    let unknown = [("rotor:strategy", "sometimes")];
    let arn = store
        .create_secret(&unique("bad"), &stored, &unknown)
        .await
        .unwrap();

    let run = rotate_to(&store, &function, &arn, None).await;

    let (_, kind, message) = refusal(&run);
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(message.contains("rotor:strategy"), "{message}");
}
