//! The database test bed (tools/testbed/src/db/) itself: throwaway PostgreSQL and
//! MariaDB servers that enforce passwords and TLS as configured, run side by side,
//! and never outlive the test process. Each check logs in with the engine's own
//! CLI client (psql, mariadb).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rotor_testbed::db::{
    ClientLogin, ClientTls, MariaDb, Postgres, ServerCert, TestCa, TlsMode, process_alive,
    random_password,
};

fn timed<T>(what: &str, start: impl FnOnce() -> anyhow::Result<T>) -> T {
    let began = Instant::now();
    let server = start().unwrap_or_else(|e| panic!("cannot start {what}: {e:#}"));
    eprintln!("{what} started in {:.2?}", began.elapsed());
    server
}

/// The error of a login that must fail.
fn refused(result: anyhow::Result<String>, what: &str) -> String {
    match result {
        Ok(out) => panic!("{what} was accepted (output {out:?})"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_mentions(error: &str, expected: &str) {
    assert!(
        error.contains(expected),
        "expected an error mentioning {expected:?}, got: {error}"
    );
}

/// Waits until a stopped server's process, temp dir and port are all gone.
fn assert_gone(pid: u32, dir: &Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while process_alive(pid) || dir.exists() {
        assert!(
            Instant::now() < deadline,
            "server {pid} still alive ({}) or its dir {} still there ({})",
            process_alive(pid),
            dir.display(),
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err(),
        "port {port} still accepts connections"
    );
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

#[test]
fn postgres_with_tls_required_takes_only_the_password_over_verified_tls() {
    let pg = timed("PostgreSQL (TLS required)", || {
        Postgres::start(TlsMode::Required)
    });

    // (a) The admin logs in over TLS, the certificate verified against the test CA
    // for 127.0.0.1; the password is stored as a SCRAM verifier.
    let session = pg
        .psql(
            "SELECT current_user, ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid();\
             SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user",
        )
        .unwrap_or_else(|e| panic!("admin login: {e:#}\n{}", pg.log_tail()));
    let lines: Vec<&str> = session.lines().collect();
    assert!(
        lines[0].starts_with("rotor_admin|t|TLSv1."),
        "session: {session}"
    );
    assert_eq!(
        lines[1], "t",
        "the admin's password is not a SCRAM verifier"
    );

    // (b) A wrong password is refused.
    let wrong = ClientLogin::new("rotor_admin", random_password(), pg.client_tls());
    let error = refused(
        pg.psql_with(&wrong, "postgres", "SELECT 1"),
        "a wrong password",
    );
    assert_mentions(
        &error,
        "password authentication failed for user \"rotor_admin\"",
    );

    // (c) Plaintext is refused, even with the right password.
    let plaintext = ClientLogin::new("rotor_admin", pg.admin_password(), ClientTls::Plaintext);
    let error = refused(
        pg.psql_with(&plaintext, "postgres", "SELECT 1"),
        "plaintext",
    );
    assert_mentions(&error, "no encryption");

    // A certificate from another CA is refused by the client.
    let other_ca = TestCa::new().write_ca(pg.dir());
    let wrong_ca = ClientLogin::new(
        "rotor_admin",
        pg.admin_password(),
        ClientTls::Verify(other_ca),
    );
    let error = refused(
        pg.psql_with(&wrong_ca, "postgres", "SELECT 1"),
        "another CA",
    );
    assert_mentions(&error, "certificate verify failed");
}

#[test]
fn postgres_with_tls_optional_also_takes_plaintext() {
    let pg = timed("PostgreSQL (TLS optional)", || {
        Postgres::start(TlsMode::Optional)
    });
    let ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    assert_eq!(pg.psql(ssl).unwrap(), "t");
    let plaintext = ClientLogin::new("rotor_admin", pg.admin_password(), ClientTls::Plaintext);
    assert_eq!(pg.psql_with(&plaintext, "postgres", ssl).unwrap(), "f");
    // Still only with the password.
    let wrong = ClientLogin::new("rotor_admin", random_password(), ClientTls::Plaintext);
    let error = refused(
        pg.psql_with(&wrong, "postgres", "SELECT 1"),
        "a wrong password",
    );
    assert_mentions(&error, "password authentication failed");
}

#[test]
fn two_postgres_servers_run_at_once_and_stop_when_dropped() {
    // Started concurrently: one without TLS, one presenting an expired certificate.
    let (plain, expired) = std::thread::scope(|s| {
        let plain = s.spawn(|| timed("PostgreSQL (TLS off)", || Postgres::start(TlsMode::Off)));
        let expired = s.spawn(|| {
            timed("PostgreSQL (expired certificate)", || {
                Postgres::start_with(TlsMode::Required, ServerCert::Expired)
            })
        });
        (plain.join().unwrap(), expired.join().unwrap())
    });
    assert_ne!(plain.port(), expired.port());

    // Separate servers: separate data, separate passwords.
    plain.psql("CREATE TABLE only_here (id int)").unwrap();
    let tables = "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'";
    assert_eq!(plain.psql(tables).unwrap(), "1");
    let insecure = ClientLogin::new(
        "rotor_admin",
        expired.admin_password(),
        ClientTls::Unverified,
    );
    assert_eq!(
        expired.psql_with(&insecure, "postgres", tables).unwrap(),
        "0"
    );
    let others_password =
        ClientLogin::new("rotor_admin", plain.admin_password(), ClientTls::Unverified);
    let error = refused(
        expired.psql_with(&others_password, "postgres", "SELECT 1"),
        "the other server's password",
    );
    assert_mentions(&error, "password authentication failed");

    // The expired certificate fails verification.
    let error = refused(expired.psql(tables), "an expired certificate");
    assert_mentions(&error, "certificate verify failed");

    // Dropping a server stops it and removes its temp dir; the other runs on.
    let (pid, dir, port) = (plain.pid(), plain.dir().to_owned(), plain.port());
    drop(plain);
    assert_gone(pid, &dir, port);
    assert_eq!(
        expired
            .psql_with(&insecure, "postgres", "SELECT 1")
            .unwrap(),
        "1"
    );
}

// ---------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------

#[test]
fn mariadb_with_tls_required_takes_only_the_password_over_verified_tls() {
    let db = timed("MariaDB (TLS required)", || {
        MariaDb::start(TlsMode::Required)
    });

    // (a) The admin logs in over TLS, the certificate verified against the test CA.
    let session = db
        .sql(
            "SELECT CURRENT_USER(), VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
             WHERE VARIABLE_NAME = 'Ssl_version'",
        )
        .unwrap_or_else(|e| panic!("admin login: {e:#}\n{}", db.log_tail()));
    assert!(
        session.starts_with("rotor_admin@%\tTLSv1."),
        "session: {session}"
    );
    // No other account can log in: only the locked mariadb.sys is left.
    assert_eq!(
        db.sql("SELECT GROUP_CONCAT(CONCAT(User, '@', Host) ORDER BY User) FROM mysql.user")
            .unwrap(),
        "mariadb.sys@localhost,rotor_admin@%"
    );

    // (b) A wrong password is refused.
    let wrong = ClientLogin::new("rotor_admin", random_password(), db.client_tls());
    let error = refused(db.sql_with(&wrong, "SELECT 1"), "a wrong password");
    assert_mentions(&error, "Access denied for user 'rotor_admin'");
    let root = ClientLogin::new("root", "".into(), db.client_tls());
    let error = refused(db.sql_with(&root, "SELECT 1"), "root without a password");
    assert_mentions(&error, "Access denied for user 'root'");

    // (c) Plaintext is refused, even with the right password. MariaDB 10.11 says
    // "Access denied" here, not a transport error: (a) shows the same password
    // works over TLS, and the TLS-optional test shows it works in plaintext there.
    let plaintext = ClientLogin::new("rotor_admin", db.admin_password(), ClientTls::Plaintext);
    let error = refused(db.sql_with(&plaintext, "SELECT 1"), "plaintext");
    assert_mentions(&error, "Access denied for user 'rotor_admin'");

    // A certificate from another CA is refused by the client. (The server sends
    // its CA along with its certificate, so OpenSSL reports an untrusted
    // self-signed certificate in the chain.)
    let other_ca = TestCa::new().write_ca(db.dir());
    let wrong_ca = ClientLogin::new(
        "rotor_admin",
        db.admin_password(),
        ClientTls::Verify(other_ca),
    );
    let error = refused(db.sql_with(&wrong_ca, "SELECT 1"), "another CA");
    assert_mentions(
        &error,
        "TLS/SSL error: self-signed certificate in certificate chain",
    );
}

#[test]
fn mariadb_with_tls_optional_also_takes_plaintext() {
    let db = timed("MariaDB (TLS optional)", || {
        MariaDb::start(TlsMode::Optional)
    });
    let ssl = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
               WHERE VARIABLE_NAME = 'Ssl_version'";
    assert!(db.sql(ssl).unwrap().starts_with("TLSv1."));
    let plaintext = ClientLogin::new("rotor_admin", db.admin_password(), ClientTls::Plaintext);
    assert_eq!(db.sql_with(&plaintext, ssl).unwrap(), "");
    // Still only with the password.
    let wrong = ClientLogin::new("rotor_admin", random_password(), ClientTls::Plaintext);
    let error = refused(db.sql_with(&wrong, "SELECT 1"), "a wrong password");
    assert_mentions(&error, "Access denied for user 'rotor_admin'");
}

#[test]
fn two_mariadb_servers_run_at_once_and_stop_when_dropped() {
    let (plain, expired) = std::thread::scope(|s| {
        let plain = s.spawn(|| timed("MariaDB (TLS off)", || MariaDb::start(TlsMode::Off)));
        let expired = s.spawn(|| {
            timed("MariaDB (expired certificate)", || {
                MariaDb::start_with(TlsMode::Required, ServerCert::Expired)
            })
        });
        (plain.join().unwrap(), expired.join().unwrap())
    });
    assert_ne!(plain.port(), expired.port());

    plain.sql("CREATE DATABASE only_here").unwrap();
    let databases =
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'only_here'";
    assert_eq!(plain.sql(databases).unwrap(), "1");
    let insecure = ClientLogin::new(
        "rotor_admin",
        expired.admin_password(),
        ClientTls::Unverified,
    );
    assert_eq!(expired.sql_with(&insecure, databases).unwrap(), "0");
    let others_password =
        ClientLogin::new("rotor_admin", plain.admin_password(), ClientTls::Unverified);
    let error = refused(
        expired.sql_with(&others_password, "SELECT 1"),
        "the other server's password",
    );
    assert_mentions(&error, "Access denied");

    let error = refused(expired.sql(databases), "an expired certificate");
    assert_mentions(&error, "certificate has expired");

    let (pid, dir, port) = (plain.pid(), plain.dir().to_owned(), plain.port());
    drop(plain);
    assert_gone(pid, &dir, port);
    assert_eq!(expired.sql_with(&insecure, "SELECT 1").unwrap(), "1");
}

// ---------------------------------------------------------------------------
// No server outlives its test process
// ---------------------------------------------------------------------------

const ABANDON: &str = "ROTOR_DB_BED_ABANDON";

/// Run by `servers_die_with_their_test_process` in a child process: starts one
/// server of each engine, reports them, and kills its own process with SIGKILL,
/// so that nothing is dropped.
#[test]
#[ignore = "a helper: servers_die_with_their_test_process runs it in a child process"]
fn abandon_servers_helper() {
    if std::env::var_os(ABANDON).is_none() {
        return;
    }
    let pg = Postgres::start(TlsMode::Required).unwrap();
    let db = MariaDb::start(TlsMode::Required).unwrap();
    println!(
        "ABANDONED {} {} {} {} {} {}",
        pg.pid(),
        pg.port(),
        pg.dir().display(),
        db.pid(),
        db.port(),
        db.dir().display()
    );
    let _ = Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    std::thread::sleep(Duration::from_secs(60));
    unreachable!("still alive after SIGKILL");
}

#[test]
fn servers_die_with_their_test_process() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "db_bed::abandon_servers_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ABANDON, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let report = stdout
        .lines()
        .map_while(Result::ok)
        // libtest prints the test's name on the same line, without a newline.
        .find_map(|line| {
            line.split_once("ABANDONED ")
                .map(|(_, report)| report.to_owned())
        })
        .expect("the helper did not report its servers");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the helper was meant to die: {status}");
    let fields: Vec<&str> = report.split(' ').collect();
    for server in fields.chunks(3) {
        let pid: u32 = server[0].parse().unwrap();
        let port: u16 = server[1].parse().unwrap();
        assert_gone(pid, Path::new(server[2]), port);
    }
}
