//! The secret writer as an attacker against rds-rotation: a master that
//! serves a writer acts only on that writer's user, at the master's own
//! server (issue 21, items 2 and 3).
//!
//! Each test plays a team that may write its own secret (value and tags) and
//! that a master secret serves (`rotor:serves` lists the team's prefix, as its
//! owner set it). The team names, in its secret, an account that is not its
//! own, or a server port of its own, and rotates. An independent client
//! (psql, mariadb) then shows that the master's password and the named
//! account's password are what they were, and the error names the refusal.

use rotor_cli::function::LocalFunction;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use rotor_tests::db::{TlsMode, random_password};
use rotor_tests::target_db::{Db, my_literal, pg_literal};
use rotor_tests::{
    assert_no_stored_secret_in, moto_store, staged_secret_named, start_function, token, unique,
    value,
};
use serde_json::json;

use super::rotate_until_refused;
use crate::rds::on_both_engines;

/// A team that a master secret serves, on a server of its own.
struct Team {
    db: Db,
    store: AwsStore,
    /// The team's name prefix, which the master's `rotor:serves` lists.
    prefix: String,
    /// The master secret's ARN.
    master: String,
    function: LocalFunction,
}

impl Team {
    /// A server of `engine`, a master secret serving the team's prefix (and
    /// managing `manages`, when given), and rds-rotation with `strategy`.
    async fn start(engine: &str, strategy: &str, manages: Option<&str>) -> Team {
        let db = Db::start(engine, TlsMode::Required);
        let store = moto_store();
        let prefix = format!("{}/", unique("team"));
        let mut tags = vec![("rotor:serves", prefix.as_str())];
        if let Some(manages) = manages {
            tags.push(("rotor:manages", manages));
        }
        let master = store
            .create_secret(
                &unique("master"),
                &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
                &tags,
            )
            .await
            .expect("the master secret");
        let function = function(&db, strategy).await;
        Team {
            db,
            store,
            prefix,
            master,
            function,
        }
    }

    /// The team's secret for `user` (with the master as its masterarn),
    /// reaching the server at `port`, staged for rotation.
    async fn secret_at(&self, port: u16, user: &str, password: &SecretString) -> (String, String) {
        let t = token();
        let value = self.db.secret_at(
            "127.0.0.1",
            port,
            user,
            password,
            json!({"masterarn": self.master}),
        );
        let arn = staged_secret_named(
            &self.store,
            &format!("{}{}", self.prefix, unique("app")),
            &value,
            &[],
            &t,
        )
        .await;
        (arn, t)
    }

    /// [`Team::secret_at`] the server's own port.
    async fn secret(&self, user: &str, password: &SecretString) -> (String, String) {
        self.secret_at(self.db.port(), user, password).await
    }

    /// Rotates `arn` until a step fails: that step's error type and
    /// message, or None when the rotation completed.
    async fn rotate(&self, arn: &str, t: &str) -> Option<(String, String)> {
        rotate_until_refused(&self.function, arn, t).await
    }

    /// The refusal `rotate` returned; fails the test (after the caller's
    /// checks of the server) when the rotation completed.
    fn refused(&self, outcome: Option<(String, String)>, what: &str) -> (String, String) {
        outcome.unwrap_or_else(|| {
            panic!(
                "{} {what}: the rotation completed\n{}",
                self.db.engine(),
                self.function.output()
            )
        })
    }

    /// Fails unless the master's password is unchanged: the deployer's
    /// master secret still logs in, checked with the engine's own client.
    async fn master_unchanged(&self, what: &str) {
        let engine = self.db.engine();
        assert!(
            self.db
                .logs_in(&self.db.admin_user(), &self.db.admin_password()),
            "{engine} {what}: the master's password changed"
        );
        let stored = value(&self.store, &self.master, AWSCURRENT).await;
        assert!(
            stored.is_some_and(|v| self.db.value_logs_in(&v)),
            "{engine} {what}: the deployer's master secret no longer logs in"
        );
    }

    /// Fails if the pending value the rotation staged logs in as anyone, or
    /// if a stored credential appears in `message` or the function's output.
    async fn nothing_pending_works(&self, arn: &str, message: &str, what: &str) {
        let engine = self.db.engine();
        if let Some(pending) = value(&self.store, arn, AWSPENDING).await {
            let parsed: serde_json::Value =
                serde_json::from_str(pending.expose_secret()).expect("JSON");
            let password = SecretString::from(parsed["password"].as_str().unwrap_or_default());
            for user in [
                parsed["username"].as_str().unwrap_or_default().to_owned(),
                self.db.admin_user(),
            ] {
                assert!(
                    !self.db.logs_in(&user, &password),
                    "{engine} {what}: the pending password logs in as {user}"
                );
            }
        }
        let text = format!("{message}\n{}", self.function.output());
        assert_no_stored_secret_in(&self.store, arn, &text).await;
        assert_no_stored_secret_in(&self.store, &self.master, &text).await;
    }
}

async fn function(db: &Db, strategy: &str) -> LocalFunction {
    let ca = db.ca_path();
    start_function(
        "rds-rotation",
        &[
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", strategy),
        ],
    )
    .await
}

/// Whether a user `user` exists on `db` (any host, for MariaDB).
fn user_exists(db: &Db, user: &str) -> bool {
    let count = match db.engine() {
        "postgres" => db.admin(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = {}",
            pg_literal(user)
        )),
        _ => db.admin(&format!(
            "SELECT count(*) FROM mysql.user WHERE User = {}",
            my_literal(user)
        )),
    };
    count.trim() != "0"
}

/// Issue 21, item 2: a single-user secret that the master serves names the
/// master's own user with a password that does not log in. setSecret fell
/// back to the master, which set its own password to the writer's pending
/// value: the rotation completed and the deployer's master secret stopped
/// working. Now the master refuses its own user (NotRetryable.NotManaged),
/// its password is unchanged, and the pending value logs in nowhere.
async fn the_master_never_changes_its_own_password(engine: &str) {
    let team = Team::start(engine, "single", None).await;
    let (arn, t) = team.secret(&team.db.admin_user(), &random_password()).await;

    let outcome = team.rotate(&arn, &t).await;

    team.master_unchanged("own user").await;
    let (kind, message) = team.refused(outcome, "own user");
    assert_eq!(kind, "NotRetryable.NotManaged", "{engine}: {message}");
    assert!(
        message.contains("own user") && message.contains(&team.master),
        "{engine}: {message}"
    );
    team.nothing_pending_works(&arn, &message, "own user").await;
}

on_both_engines!(
    the_master_never_changes_its_own_password,
    postgres_the_master_never_changes_its_own_password,
    mariadb_the_master_never_changes_its_own_password
);

/// Issue 21, item 2: the master's "password only" change for a single user
/// added LOGIN to a role that had none (a group role) and created a role
/// that did not exist. Now it changes the password of an existing role that
/// logs in, and nothing else: both are refused NotManaged and the roles stay
/// as they were.
#[tokio::test]
async fn postgres_a_single_user_secret_cannot_add_login_or_create_a_role() {
    let team = Team::start("postgres", "single", None).await;
    team.db.admin("CREATE ROLE grp NOLOGIN");
    for (user, expected) in [("grp", "LOGIN"), ("ghost", "does not exist")] {
        let (arn, t) = team.secret(user, &random_password()).await;

        let outcome = team.rotate(&arn, &t).await;

        let can_login = team.db.admin(&format!(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{user}'"
        ));
        match user {
            "grp" => assert_eq!(can_login.trim(), "f", "the group role gained LOGIN"),
            _ => assert_eq!(can_login.trim(), "", "the role was created"),
        }
        let (kind, message) = team.refused(outcome, user);
        assert_eq!(kind, "NotRetryable.NotManaged", "{user}: {message}");
        assert!(message.contains(expected), "{user}: {message}");
        team.master_unchanged(user).await;
        team.nothing_pending_works(&arn, &message, user).await;
    }
}

/// Accounts the master must not hand to a writer, each made with a password
/// the test keeps: `(user, SQL that makes it, a word the refusal names)`.
fn privileged_accounts(engine: &str, master: &str) -> Vec<(String, String, &'static str)> {
    let pg = |user: &str, rest: &str| format!("CREATE ROLE {user} LOGIN PASSWORD '{{pw}}' {rest}");
    let my =
        |user: &str, rest: &str| format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{{pw}}'; {rest}");
    let cases: Vec<(&str, String, &'static str)> = match engine {
        "postgres" => vec![
            ("su", pg("su", "SUPERUSER"), "SUPERUSER"),
            ("cr", pg("cr", "CREATEROLE"), "CREATEROLE"),
            ("rep", pg("rep", "REPLICATION"), "REPLICATION"),
            ("brls", pg("brls", "BYPASSRLS"), "BYPASSRLS"),
            (
                "in_ops",
                format!(
                    "CREATE ROLE ops NOLOGIN; GRANT ops TO {master} WITH ADMIN OPTION; {}; {}",
                    pg("in_ops", ""),
                    "GRANT ops TO in_ops"
                ),
                "\"ops\"",
            ),
            (
                "in_admins",
                format!(
                    "CREATE ROLE admins NOLOGIN SUPERUSER; {}; GRANT admins TO in_admins",
                    pg("in_admins", "")
                ),
                "\"admins\"",
            ),
            (
                "reads_all",
                format!(
                    "{}; GRANT pg_read_all_data TO reads_all",
                    pg("reads_all", "")
                ),
                "pg_read_all_data",
            ),
        ],
        _ => vec![
            ("sup", my("sup", "GRANT SUPER ON *.* TO 'sup'@'%'"), "SUPER"),
            (
                "gro",
                my(
                    "gro",
                    concat!(
                        "CREATE DATABASE IF NOT EXISTS shop; ",
                        "GRANT SELECT ON shop.* TO 'gro'@'%' WITH GRANT OPTION"
                    ),
                ),
                "GRANT OPTION",
            ),
            (
                "cu",
                my("cu", "GRANT CREATE USER ON *.* TO 'cu'@'%'"),
                "CREATE USER",
            ),
            (
                "like_master",
                my(
                    "like_master",
                    "GRANT ALL PRIVILEGES ON *.* TO 'like_master'@'%'",
                ),
                "every global privilege the master has",
            ),
            (
                "edits_mysql",
                my(
                    "edits_mysql",
                    "GRANT UPDATE ON mysql.* TO 'edits_mysql'@'%'",
                ),
                "mysql",
            ),
            (
                "roled",
                my(
                    "roled",
                    concat!(
                        "CREATE ROLE powerful; GRANT SUPER ON *.* TO powerful; ",
                        "GRANT powerful TO 'roled'@'%'; SET DEFAULT ROLE powerful FOR 'roled'@'%'"
                    ),
                ),
                "powerful",
            ),
            ("rdsadmin", my("rdsadmin", ""), "RDS"),
        ],
    };
    cases
        .into_iter()
        .map(|(user, sql, word)| (user.to_owned(), sql, word))
        .collect()
}

/// Issue 21, item 2: single-user secrets that name privileged accounts, with
/// a password that does not log in, so that setSecret turns to the master.
/// Before, the master set each one's password to the writer's pending value
/// (the writer then held a superuser, a role maker, ...). Now each is refused
/// NotManaged naming why, and its own password still logs in.
async fn privileged_accounts_are_refused(engine: &str) {
    let team = Team::start(engine, "single", None).await;
    for (user, sql, word) in privileged_accounts(engine, &team.db.admin_user()) {
        let own = random_password();
        team.db.admin(&sql.replace("{pw}", own.expose_secret()));
        let (arn, t) = team.secret(&user, &random_password()).await;

        let outcome = team.rotate(&arn, &t).await;

        assert!(
            team.db.logs_in(&user, &own),
            "{engine} {user}: the account's password changed ({outcome:?})"
        );
        let (kind, message) = team.refused(outcome, &user);
        assert_eq!(
            kind, "NotRetryable.NotManaged",
            "{engine} {user}: {message}"
        );
        assert!(message.contains(word), "{engine} {user}: {message}");
        team.nothing_pending_works(&arn, &message, &user).await;
    }
    team.master_unchanged("privileged accounts").await;
}

on_both_engines!(
    privileged_accounts_are_refused,
    postgres_privileged_accounts_are_refused,
    mariadb_privileged_accounts_are_refused
);

/// Issue 21, item 2, alternating users: the clone's original user passes the
/// same rules. A writer who logs in as a role maker (CREATEROLE) or as a
/// member of a superuser role does not get a clone made that acts as it.
#[tokio::test]
async fn postgres_a_privileged_original_gets_no_clone() {
    let team = Team::start("postgres", "alternating", None).await;
    for (user, sql) in [
        (
            "maker",
            "CREATE ROLE maker LOGIN CREATEROLE PASSWORD '{pw}'",
        ),
        (
            "deputy",
            concat!(
                "CREATE ROLE admins NOLOGIN SUPERUSER; ",
                "CREATE ROLE deputy LOGIN PASSWORD '{pw}'; GRANT admins TO deputy"
            ),
        ),
    ] {
        let own = random_password();
        team.db.admin(&sql.replace("{pw}", own.expose_secret()));
        let (arn, t) = team.secret(user, &own).await;

        let outcome = team.rotate(&arn, &t).await;

        assert!(
            !user_exists(&team.db, &format!("{user}_clone")),
            "{user}: the clone was created ({outcome:?})"
        );
        let (kind, message) = team.refused(outcome, user);
        assert_eq!(kind, "NotRetryable.NotManaged", "{user}: {message}");
        team.nothing_pending_works(&arn, &message, user).await;
    }
}

/// What `user` may do, as the engine's own client reads it, with no
/// password or hash in it: PostgreSQL's role attributes, settings and
/// memberships; MariaDB's accounts and their `SHOW GRANTS`.
fn privileges(db: &Db, user: &str) -> String {
    if db.engine() == "postgres" {
        return db.admin(&format!(
            "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolconfig, \
             array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
                   WHERE m.member = r.oid ORDER BY 1) \
             FROM pg_roles r WHERE r.rolname = {}",
            pg_literal(user)
        ));
    }
    let hosts = db.admin(&format!(
        "SELECT Host FROM mysql.user WHERE User = {} ORDER BY 1",
        my_literal(user)
    ));
    let mut shown = hosts.clone();
    for host in hosts.lines() {
        let grants = db.admin(&format!(
            "SHOW GRANTS FOR {}@{}",
            my_literal(user),
            my_literal(host)
        ));
        for line in grants.lines() {
            // MariaDB prints the password hash after IDENTIFIED.
            shown.push('\n');
            shown.push_str(line.split(" IDENTIFIED ").next().unwrap_or(line));
        }
    }
    shown
}

/// Ways to make a privileged account `{name}` with the password `{pw}`:
/// `(SQL, a word the refusal names)`; the first is the plainest.
fn privileged_kinds(engine: &str) -> Vec<(&'static str, &'static str)> {
    match engine {
        "postgres" => vec![
            (
                "CREATE ROLE {name} LOGIN SUPERUSER PASSWORD '{pw}'",
                "SUPERUSER",
            ),
            (
                "CREATE ROLE {name} LOGIN CREATEROLE PASSWORD '{pw}'",
                "CREATEROLE",
            ),
        ],
        _ => vec![
            (
                concat!(
                    "CREATE USER '{name}'@'%' IDENTIFIED BY '{pw}'; ",
                    "GRANT SUPER ON *.* TO '{name}'@'%'"
                ),
                "SUPER",
            ),
            (
                concat!(
                    "CREATE USER '{name}'@'%' IDENTIFIED BY '{pw}'; ",
                    "GRANT SELECT ON shop.* TO '{name}'@'%' WITH GRANT OPTION"
                ),
                "GRANT OPTION",
            ),
            (
                concat!(
                    "CREATE USER '{name}'@'%' IDENTIFIED BY '{pw}'; ",
                    "GRANT ALL PRIVILEGES ON *.* TO '{name}'@'%'"
                ),
                "every global privilege the master has",
            ),
        ],
    }
}

/// Makes the privileged account `name` as `sql` says; returns its password.
fn make_privileged(db: &Db, sql: &str, name: &str) -> SecretString {
    let password = random_password();
    db.admin(
        &sql.replace("{name}", name)
            .replace("{pw}", password.expose_secret()),
    );
    password
}

/// Issue 21, item 2, the gap its fix left: with alternating users the
/// master checked only the name of the other user of the pair, since it
/// replaces that user's privileges with the original's. When an account
/// with that name already exists and is privileged (someone else's
/// superuser, an account with GRANT OPTION or the master's own global
/// privileges), the writer of the original's secret had the master strip
/// it and give it the writer's password. Now it is refused NotManaged
/// before anything changes: its password and privileges stay as they were.
/// The same holds the other way round: when AWSCURRENT names `u_clone`,
/// the user overwritten is `u`.
async fn a_privileged_account_is_never_the_other_user(engine: &str) {
    let team = Team::start(engine, "alternating", None).await;
    for (case, (sql, word)) in privileged_kinds(engine).into_iter().enumerate() {
        let user = format!("pair{case}");
        let clone = format!("{user}_clone");
        let own = random_password();
        team.db.create_user(&user, &own);
        let theirs = make_privileged(&team.db, sql, &clone);
        let before = privileges(&team.db, &clone);
        let (arn, t) = team.secret(&user, &own).await;

        let outcome = team.rotate(&arn, &t).await;

        let what = format!("{engine} {clone} ({word})");
        assert!(
            team.db.logs_in(&clone, &theirs),
            "{what}: the privileged account's password changed ({outcome:?})"
        );
        assert_eq!(
            privileges(&team.db, &clone),
            before,
            "{what}: the privileged account's privileges changed ({outcome:?})"
        );
        let (kind, message) = team.refused(outcome, &clone);
        assert_eq!(kind, "NotRetryable.NotManaged", "{what}: {message}");
        assert!(
            message.contains(&format!("{clone:?}"))
                && message.contains(word)
                && message.contains(&format!("alternate user of {user:?}"))
                && message.contains("rotate again"),
            "{what}: the error names the account, why, and the fix: {message}"
        );
        team.nothing_pending_works(&arn, &message, &what).await;
        assert!(team.db.logs_in(&user, &own), "{what}: the original changed");
    }

    // The other way round: the writer's own user is `boss_clone`, which
    // AWSCURRENT names, so the user to overwrite is `boss`, a privileged
    // account of someone else's.
    let own = random_password();
    team.db.create_user("boss_clone", &own);
    let (sql, word) = privileged_kinds(engine)[0];
    let theirs = make_privileged(&team.db, sql, "boss");
    let before = privileges(&team.db, "boss");
    let (arn, t) = team.secret("boss_clone", &own).await;

    let outcome = team.rotate(&arn, &t).await;

    assert!(
        team.db.logs_in("boss", &theirs),
        "{engine} boss: the privileged account's password changed ({outcome:?})"
    );
    assert_eq!(
        privileges(&team.db, "boss"),
        before,
        "{engine} boss: the privileged account's privileges changed ({outcome:?})"
    );
    let (kind, message) = team.refused(outcome, "boss");
    assert_eq!(kind, "NotRetryable.NotManaged", "{engine} boss: {message}");
    assert!(
        message.contains("\"boss\"") && message.contains(word),
        "{engine} boss: {message}"
    );
    team.nothing_pending_works(&arn, &message, "boss").await;
    team.master_unchanged("privileged other users").await;
}

on_both_engines!(
    a_privileged_account_is_never_the_other_user,
    postgres_a_privileged_account_is_never_the_other_user,
    mariadb_a_privileged_account_is_never_the_other_user
);

/// Issue 22, the group role: an existing NOLOGIN role named `lead_clone`
/// that other roles are members of (here `crew`) is no privileged account,
/// so the master made it the alternate user of `lead`: it gave it LOGIN and
/// made it a member of `lead`, and every member of it then inherited
/// `lead`'s privileges. Now it is refused NotManaged, naming the members,
/// before anything changes: the role keeps its attributes and memberships,
/// and `crew` still cannot read `lead`'s table.
#[tokio::test]
async fn postgres_a_group_role_with_members_is_never_the_other_user() {
    let team = Team::start("postgres", "alternating", None).await;
    let own = random_password();
    team.db.create_user("lead", &own);
    team.db
        .admin("CREATE TABLE lead_data (x int); GRANT SELECT ON lead_data TO lead");
    let crew = random_password();
    team.db.admin(&format!(
        "CREATE ROLE lead_clone NOLOGIN; CREATE ROLE crew LOGIN PASSWORD {}; {}",
        pg_literal(crew.expose_secret()),
        "GRANT lead_clone TO crew"
    ));
    let before = privileges(&team.db, "lead_clone");
    let (arn, t) = team.secret("lead", &own).await;

    let outcome = team.rotate(&arn, &t).await;

    let crew_reads = team
        .db
        .query_as("crew", &crew, "SELECT count(*) FROM lead_data");
    assert!(
        crew_reads.is_err(),
        "crew inherits lead's privileges through lead_clone ({outcome:?})"
    );
    assert_eq!(
        privileges(&team.db, "lead_clone"),
        before,
        "the group role changed ({outcome:?})"
    );
    let (kind, message) = team.refused(outcome, "lead_clone");
    assert_eq!(kind, "NotRetryable.NotManaged", "{message}");
    assert!(
        message.contains("\"lead_clone\"") && message.contains("\"crew\""),
        "the error names the role and its members: {message}"
    );
    team.nothing_pending_works(&arn, &message, "lead_clone")
        .await;
    assert!(team.db.logs_in("lead", &own), "the original changed");
}

/// Issue 21, item 2: the master's owner bounds whom it manages with
/// `rotor:manages` (names, or prefixes ending in `...`). A served secret
/// naming a user outside it is refused NotManaged, naming the tag; a user
/// inside it rotates through the master as before.
async fn a_user_outside_the_manages_tag_is_refused(engine: &str) {
    let team = Team::start(engine, "single", Some("app_...")).await;
    let billing = random_password();
    team.db.create_user("billing", &billing);
    team.db.create_user("app_orders", &random_password());

    let (arn, t) = team.secret("billing", &random_password()).await;
    let outcome = team.rotate(&arn, &t).await;
    assert!(
        team.db.logs_in("billing", &billing),
        "{engine}: billing's password changed ({outcome:?})"
    );
    let (kind, message) = team.refused(outcome, "billing");
    assert_eq!(kind, "NotRetryable.NotManaged", "{engine}: {message}");
    assert!(message.contains("rotor:manages"), "{engine}: {message}");
    team.nothing_pending_works(&arn, &message, "billing").await;

    let (arn, t) = team.secret("app_orders", &random_password()).await;
    let completed = rotate_until_refused(&team.function, &arn, &t).await;
    assert!(
        completed.is_none(),
        "{engine}: {completed:?}\n{}",
        team.function.output()
    );
    assert!(
        team.db
            .value_logs_in(&value(&team.store, &arn, AWSCURRENT).await.expect("current")),
        "{engine}: app_orders rotated through the master"
    );
}

on_both_engines!(
    a_user_outside_the_manages_tag_is_refused,
    postgres_a_user_outside_the_manages_tag_is_refused,
    mariadb_a_user_outside_the_manages_tag_is_refused
);

/// Issue 21, item 2, alternating users: the writer's secret names the
/// master's host with another port, where a listener of the writer's relays
/// to the database (it could as well accept any login). Before, only the
/// hosts were compared: the "current credentials log in" check passed
/// through the relay and the master made the clone. Now host and port must
/// be the master's: refused InvalidSettings before any connection, and
/// nothing changes.
async fn another_port_of_the_masters_host_is_refused(engine: &str) {
    let team = Team::start(engine, "alternating", None).await;
    let (port, seen) = crate::rds::recording_relay(([127, 0, 0, 1], team.db.port()).into()).await;
    let own = random_password();
    team.db.create_user("svc", &own);
    let (arn, t) = team.secret_at(port, "svc", &own).await;

    let outcome = team.rotate(&arn, &t).await;

    let relayed = seen.lock().expect("the relay's record").len();
    let cloned = user_exists(&team.db, "svc_clone");
    assert!(
        relayed == 0 && !cloned,
        "{engine}: {relayed} bytes reached the writer's port; clone created: {cloned} ({outcome:?})"
    );
    let (kind, message) = team.refused(outcome, "another port");
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{engine}: {message}");
    let (master_at, user_at) = (
        format!("127.0.0.1:{}", team.db.port()),
        format!("127.0.0.1:{port}"),
    );
    assert!(
        message.contains(&master_at) && message.contains(&user_at),
        "{engine}: the error names both endpoints: {message}"
    );
    assert!(team.db.logs_in("svc", &own));
    team.nothing_pending_works(&arn, &message, "another port")
        .await;
}

on_both_engines!(
    another_port_of_the_masters_host_is_refused,
    postgres_another_port_of_the_masters_host_is_refused,
    mariadb_another_port_of_the_masters_host_is_refused
);

/// Issue 21, item 3: the master's `rotor:serves` holds team A's full ARN,
/// `...:secret:<team-a>/app-AbCdEf`. Another writer creates a secret *named*
/// `<team-a>/app-AbCdEf` (its ARN is `...-AbCdEf-Zz9Yy8`) and rotates it with
/// alternating users. Before, every id was read as a possible partial ARN:
/// the look-alike was served and the master made a clone for its user. Now a
/// full ARN names only itself: NotServed, no clone; team A's secret still
/// rotates.
#[tokio::test]
async fn a_full_arn_in_rotor_serves_does_not_serve_a_look_alike() {
    let db = Db::start("mariadb", TlsMode::Required);
    let store = moto_store();
    let team_a = format!("{}/app", unique("team-a"));
    let a_password = random_password();
    db.create_user("app_a", &a_password);
    let a_arn = store
        .create_secret(
            &team_a,
            &SecretString::from(db.secret("app_a", &a_password, json!({}))),
            &[],
        )
        .await
        .expect("team A's secret");
    let suffix = a_arn.rsplit('-').next().expect("a suffix").to_owned();
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[("rotor:serves", a_arn.as_str())],
        )
        .await
        .expect("the master secret");
    // Team A names its master after the master agreed to serve it.
    store
        .put_value(
            &a_arn,
            rotor_core::store::NewVersion {
                version_id: &token(),
                value: &SecretString::from(db.secret(
                    "app_a",
                    &a_password,
                    json!({"masterarn": master}),
                )),
                labels: &[AWSCURRENT],
                rotation_token: None,
            },
        )
        .await
        .expect("team A's masterarn");
    let function = function(&db, "alternating").await;

    let intruder = random_password();
    db.create_user("intruder", &intruder);
    let t = token();
    let look_alike = staged_secret_named(
        &store,
        &format!("{team_a}-{suffix}"),
        &db.secret("intruder", &intruder, json!({"masterarn": master})),
        &[],
        &t,
    )
    .await;
    assert!(look_alike.starts_with(&a_arn) && look_alike != a_arn);

    let refused = rotate_until_refused(&function, &look_alike, &t).await;

    assert!(
        !user_exists(&db, "intruder_clone"),
        "the master made a clone for the look-alike ({refused:?})"
    );
    let (kind, message) = refused.expect("the look-alike is refused");
    assert_eq!(kind, "NotRetryable.NotServed", "{message}");
    assert!(
        message.contains("rotor:serves") && message.contains(&master),
        "{message}"
    );
    let text = format!("{message}\n{}", function.output());
    assert_no_stored_secret_in(&store, &look_alike, &text).await;
    assert_no_stored_secret_in(&store, &master, &text).await;

    let t = token();
    store.begin_rotation(&a_arn, &t).await.expect("stage");
    let completed = rotate_until_refused(&function, &a_arn, &t).await;
    assert!(completed.is_none(), "{completed:?}\n{}", function.output());
    assert!(user_exists(&db, "app_a_clone"), "team A's clone was made");
}
