//! Throwaway database servers for the demo and the tests: PostgreSQL 15 and MariaDB 10.11 from
//! Debian's packages, each on 127.0.0.1 at a free port, in its own temp dir, with
//! password authentication enforced and TLS from a test CA made here.
//!
//! A server never outlives its test process. Each one runs under a small `sh`
//! wrapper whose standard input is a pipe from this process: dropping the handle
//! closes the pipe, and so does this process's exit, however it happens (panic,
//! abort, SIGKILL). The wrapper then stops the server (PostgreSQL: SIGQUIT, an
//! immediate shutdown that also frees its shared memory; MariaDB: SIGKILL), waits
//! for it (SIGKILL after 10 s) and removes the temp dir.
//!
//! When this process runs as root, as in CI, the servers run as the `postgres` and
//! `mysql` OS users (`initdb` and `mariadbd` refuse root); otherwise they run as the
//! current user. The temp dirs live under `std::env::temp_dir()`, which that user
//! must be able to reach (`/tmp` is fine). `scripts/setup.sh` installs the packages.
//!
//! Start-up is quick because the first server of each engine in a test process
//! makes a template datadir (PostgreSQL: `initdb`; MariaDB: the system tables),
//! removed when the process exits, and every server starts from a copy of it; a
//! server then gets its own admin password (PostgreSQL: `ALTER ROLE` over the
//! Unix socket before `start` returns; MariaDB: `CREATE USER` from `--init-file`,
//! before it accepts connections). Each server has its own [`TestCa`].
//!
//! The helpers `psql` and `sql` run the engines' own CLI clients as the admin, over
//! TCP to 127.0.0.1 with the server certificate verified against the test CA
//! (plaintext when the server runs with [`TlsMode::Off`]). `psql_with` and
//! `sql_with` log in with any [`ClientLogin`], to prove a refusal.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

pub use crate::local_server::{HOST, SERVER_NAMES, ServerCert, TestCa, process_alive};
use crate::local_server::{
    OsUser, ServerCommand, ServerProcess, TlsFiles, chown, free_port, make_dir, os_user, path_str,
    retry_on_port_clash, run_as, scrub_env, spawn_with_input, tail_lines, write_private,
};

/// Where Debian's PostgreSQL 15 server binaries live.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// MariaDB's server binary.
pub const MARIADBD: &str = "/usr/sbin/mariadbd";
/// MariaDB's CLI client.
pub const MARIADB_CLIENT: &str = "/usr/bin/mariadb";
/// The SQL that `mariadb-install-db` feeds to `mariadbd --bootstrap`.
const MARIADB_SQL_DIR: &str = "/usr/share/mysql";

/// The superuser every test server is made with.
pub const ADMIN_USER: &str = "rotor_admin";

// ---------------------------------------------------------------------------
// Shared vocabulary
// ---------------------------------------------------------------------------

/// How a server treats TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS at all: clients connect in plaintext.
    Off,
    /// TLS offered, plaintext still accepted (PostgreSQL: `host` lines in
    /// pg_hba.conf; MariaDB: certificates without `require_secure_transport`).
    Optional,
    /// TLS only (PostgreSQL: `hostssl` lines and `hostnossl ... reject`; MariaDB:
    /// `--require-secure-transport=ON`).
    Required,
}

/// How a CLI client connects.
#[derive(Clone, Debug)]
pub enum ClientTls {
    /// TLS, with the server's certificate and name verified against this CA
    /// (psql `sslmode=verify-full`; mariadb `--ssl-verify-server-cert`).
    Verify(PathBuf),
    /// TLS without verifying the server's certificate (psql `sslmode=require`;
    /// mariadb `--ssl` alone): for servers whose certificate is meant to fail.
    Unverified,
    /// Plaintext (psql `sslmode=disable`; mariadb `--skip-ssl`).
    Plaintext,
}

/// Who a CLI client logs in as, and how it connects.
#[derive(Clone, Debug)]
pub struct ClientLogin {
    pub user: String,
    pub password: SecretString,
    pub tls: ClientTls,
}

impl ClientLogin {
    pub fn new(user: &str, password: SecretString, tls: ClientTls) -> ClientLogin {
        ClientLogin {
            user: user.to_owned(),
            password,
            tls,
        }
    }
}

/// A fresh random password: 32 hex digits (a v4 UUID: 122 bits from the OS RNG),
/// safe inside SQL string literals and conninfo values without escaping.
pub fn random_password() -> SecretString {
    SecretString::from(uuid::Uuid::new_v4().simple().to_string())
}

/// What a running database server holds, whatever its engine.
struct DbServer {
    server: ServerProcess,
    port: u16,
    tls: TlsMode,
    password: SecretString,
    ca: TestCa,
    ca_path: PathBuf,
}

impl DbServer {
    /// The steps that end both engines' start, once the datadir is in place: the
    /// TLS files (from a new test CA), the server itself, and the wait until
    /// `ready()` holds and the port accepts TCP connections.
    fn launch(
        mut server: ServerProcess,
        port: u16,
        tls: TlsMode,
        password: SecretString,
        cert: ServerCert,
        user: Option<&OsUser>,
        ready: impl Fn() -> bool,
    ) -> anyhow::Result<DbServer> {
        let tls_files = TlsFiles::in_dir(&server.dir);
        let ca = tls_files.write(cert, user)?;
        server.go()?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        server.wait_until(&format!("accept connections on {HOST}:{port}"), || {
            Ok(ready() && TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok())
        })?;
        Ok(DbServer {
            server,
            port,
            tls,
            password,
            ca,
            ca_path: tls_files.ca_path,
        })
    }
}

/// The part of the API that [`Postgres`] and [`MariaDb`] share: the same methods
/// over the same [`DbServer`], where only a few doc lines differ. Each type
/// provides its own `try_start`.
macro_rules! db_server_api {
    (
        engine: $engine:literal,
        start: $start:literal,
        ca_path: $ca_path:literal,
        pid: $pid:literal,
        log_tail: $log_tail:literal,
    ) => {
        #[doc = $start]
        pub fn start(tls: TlsMode) -> anyhow::Result<Self> {
            Self::start_with(tls, ServerCert::Valid)
        }

        /// Starts a server that presents the given kind of certificate.
        pub fn start_with(tls: TlsMode, cert: ServerCert) -> anyhow::Result<Self> {
            retry_on_port_clash(concat!("a test ", $engine, " server"), || {
                Self::try_start(tls, cert)
            })
        }

        pub fn host(&self) -> &str {
            HOST
        }

        pub fn port(&self) -> u16 {
            self.db.port
        }

        pub fn tls(&self) -> TlsMode {
            self.db.tls
        }

        pub fn admin_user(&self) -> &str {
            ADMIN_USER
        }

        pub fn admin_password(&self) -> SecretString {
            self.db.password.clone()
        }

        /// The admin's login: verified TLS, or plaintext when TLS is off.
        pub fn admin_login(&self) -> ClientLogin {
            ClientLogin::new(ADMIN_USER, self.admin_password(), self.client_tls())
        }

        /// Verified TLS against this server's CA, or plaintext when TLS is off.
        pub fn client_tls(&self) -> ClientTls {
            match self.db.tls {
                TlsMode::Off => ClientTls::Plaintext,
                _ => ClientTls::Verify(self.db.ca_path.clone()),
            }
        }

        /// The CA that issued the server's certificate.
        pub fn ca(&self) -> &TestCa {
            &self.db.ca
        }

        pub fn ca_pem(&self) -> String {
            self.db.ca.ca_pem()
        }

        #[doc = $ca_path]
        pub fn ca_path(&self) -> &Path {
            &self.db.ca_path
        }

        /// The server's temp dir (removed when the server stops); tests may put files
        /// in it.
        pub fn dir(&self) -> &Path {
            &self.db.server.dir
        }

        #[doc = $pid]
        pub fn pid(&self) -> u32 {
            self.db.server.pid
        }

        #[doc = $log_tail]
        pub fn log_tail(&self) -> String {
            self.db.server.log_tail()
        }
    };
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// A throwaway PostgreSQL 15 server. Host connections need the password
/// (scram-sha-256); the superuser is `rotor_admin` with a random password; fsync
/// is off. Dropping it stops the server and removes its temp dir.
pub struct Postgres {
    db: DbServer,
}

impl Postgres {
    fn try_start(tls: TlsMode, cert: ServerCert) -> anyhow::Result<Postgres> {
        let user = os_user("postgres")?;
        let postgres = Path::new(PG_BIN).join("postgres");
        for tool in [&postgres, &Path::new(PG_BIN).join("psql")] {
            if !tool.exists() {
                bail!(
                    "{} is missing: install postgresql-15 and postgresql-client-15 (scripts/setup.sh does)",
                    tool.display()
                );
            }
        }
        let (template, template_password) = postgres_template(user.as_ref())?;
        let port = free_port()?;
        let dir = make_dir("pg", user.as_ref())?;
        let data = dir.join("data");
        let log = dir.join("server.log");
        let tls_files = TlsFiles::in_dir(&dir);
        let mut args: Vec<OsString> = vec!["-D".into(), data.clone().into()];
        let settings = [
            ("port", port.to_string()),
            ("listen_addresses", HOST.to_owned()),
            ("unix_socket_directories", path_str(&dir)?.to_owned()),
            ("password_encryption", "scram-sha-256".to_owned()),
            ("fsync", "off".to_owned()),
            ("full_page_writes", "off".to_owned()),
            ("synchronous_commit", "off".to_owned()),
            ("shared_buffers", "16MB".to_owned()),
            ("max_connections", "40".to_owned()),
            ("logging_collector", "off".to_owned()),
            ("log_connections", "on".to_owned()),
            (
                "ssl",
                if tls == TlsMode::Off { "off" } else { "on" }.to_owned(),
            ),
            ("ssl_cert_file", path_str(&tls_files.cert_path)?.to_owned()),
            ("ssl_key_file", path_str(&tls_files.key_path)?.to_owned()),
        ];
        for (name, value) in settings {
            args.push("-c".into());
            args.push(format!("{name}={value}").into());
        }
        let server = prepare_server(dir.clone(), log, user.as_ref(), "QUIT", &postgres, &args)?;
        copy_dir(&template, &data)?;

        // Who may connect, and how: only from 127.0.0.1 (and the socket), always
        // with the password.
        let hba = match tls {
            TlsMode::Required => {
                "hostssl   all all 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all all 127.0.0.1/32 reject\n"
            }
            TlsMode::Optional | TlsMode::Off => "host all all 127.0.0.1/32 scram-sha-256\n",
        };
        let hba = format!(
            "# written by rotor's test bed (tests/support/db.rs)\n\
             local all all scram-sha-256\n{hba}"
        );
        write_private(&data.join("pg_hba.conf"), &hba, user.as_ref())?;

        let pid_file = data.join("postmaster.pid");
        let db = DbServer::launch(
            server,
            port,
            tls,
            random_password(),
            cert,
            user.as_ref(),
            || {
                // The 8th line of postmaster.pid becomes "ready" once the server
                // accepts connections.
                fs::read_to_string(&pid_file)
                    .map(|text| text.lines().nth(7).map(str::trim) == Some("ready"))
                    .unwrap_or(false)
            },
        )?;

        // This server's own admin password (made above), set over the Unix socket
        // (in the 0700 temp dir) with the template's, before anyone else is told
        // the port.
        let socket = format!(
            "host={} port={port} user={ADMIN_USER} dbname=postgres",
            conninfo_quote(path_str(&dir)?)
        );
        run_psql(
            &socket,
            &template_password,
            &format!(
                "ALTER ROLE {ADMIN_USER} PASSWORD '{}'",
                db.password.expose_secret()
            ),
        )
        .with_context(|| {
            format!(
                "setting the admin password; the log ends:\n{}",
                db.server.log_tail()
            )
        })?;
        Ok(Postgres { db })
    }

    db_server_api! {
        engine: "PostgreSQL",
        start: "Starts a server with a valid certificate. The first start in a test \
                process also runs `initdb` into a template datadir (under a second); \
                every server then starts from a copy of it.",
        ca_path: "The CA certificate's file, for `sslrootcert`.",
        pid: "The postmaster's process id.",
        log_tail: "The last lines of the server's log.",
    }

    /// Runs SQL as the admin with psql over TCP (verified TLS unless TLS is off) in
    /// the `postgres` database; returns psql's unaligned, tuples-only output
    /// (columns separated by `|`), without the final newline.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self.psql_with(&self.admin_login(), "postgres", sql)
    }

    /// Runs SQL with psql as `login` in `database`. A refused login is an error
    /// carrying psql's message (which never contains the password).
    pub fn psql_with(
        &self,
        login: &ClientLogin,
        database: &str,
        sql: &str,
    ) -> anyhow::Result<String> {
        let tls = match &login.tls {
            ClientTls::Verify(ca) => format!(
                "sslmode=verify-full sslrootcert={}",
                conninfo_quote(path_str(ca)?)
            ),
            ClientTls::Unverified => "sslmode=require".to_owned(),
            ClientTls::Plaintext => "sslmode=disable".to_owned(),
        };
        let conninfo = format!(
            "host={HOST} port={} user={} dbname={} {tls}",
            self.db.port,
            conninfo_quote(&login.user),
            conninfo_quote(database),
        );
        run_psql(&conninfo, &login.password, sql)
    }
}

/// Runs SQL with psql (no ~/.psqlrc, stop at the first error, unaligned
/// tuples-only output).
fn run_psql(conninfo: &str, password: &SecretString, sql: &str) -> anyhow::Result<String> {
    let mut command = Command::new(Path::new(PG_BIN).join("psql"));
    scrub_env(&mut command, &["PG"]);
    command
        .env("PGPASSWORD", password.expose_secret())
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
            "-d",
        ])
        .arg(conninfo);
    run_client("psql", command, sql)
}

/// Quotes a libpq conninfo value.
fn conninfo_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

// ---------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------

/// A throwaway MariaDB 10.11 server. Its only accounts are `rotor_admin'@'%'`
/// (random password, mysql_native_password, ALL PRIVILEGES WITH GRANT OPTION) and
/// the locked `mariadb.sys`; no root, no anonymous users, no test database.
/// Dropping it stops the server and removes its temp dir.
pub struct MariaDb {
    db: DbServer,
}

impl MariaDb {
    fn try_start(tls: TlsMode, cert: ServerCert) -> anyhow::Result<MariaDb> {
        let user = os_user("mysql")?;
        for tool in [MARIADBD, MARIADB_CLIENT] {
            if !Path::new(tool).exists() {
                bail!(
                    "{tool} is missing: install mariadb-server and mariadb-client (scripts/setup.sh does)"
                );
            }
        }
        let template = mariadb_template(user.as_ref())?;
        let port = free_port()?;
        let dir = make_dir("mariadb", user.as_ref())?;
        let data = dir.join("data");
        let log = dir.join("server.log");
        let init = dir.join("init.sql");
        let tls_files = TlsFiles::in_dir(&dir);
        let mut args: Vec<OsString> = vec!["--no-defaults".into()];
        args.extend(
            [
                format!("--datadir={}", path_str(&data)?),
                format!("--socket={}", path_str(&dir.join("mysqld.sock"))?),
                format!("--pid-file={}", path_str(&dir.join("mysqld.pid"))?),
                format!("--log-error={}", path_str(&log)?),
                format!("--init-file={}", path_str(&init)?),
                format!("--port={port}"),
                format!("--bind-address={HOST}"),
                "--skip-name-resolve".to_owned(),
                "--character-set-server=utf8mb4".to_owned(),
                "--collation-server=utf8mb4_general_ci".to_owned(),
                "--max-connections=50".to_owned(),
            ]
            .into_iter()
            .chain(mariadb_fast_flags())
            .map(OsString::from),
        );
        if tls != TlsMode::Off {
            args.push(format!("--ssl-ca={}", path_str(&tls_files.ca_path)?).into());
            args.push(format!("--ssl-cert={}", path_str(&tls_files.cert_path)?).into());
            args.push(format!("--ssl-key={}", path_str(&tls_files.key_path)?).into());
        }
        if tls == TlsMode::Required {
            args.push("--require-secure-transport=ON".into());
        }
        let server = prepare_server(
            dir.clone(),
            log,
            user.as_ref(),
            "KILL",
            Path::new(MARIADBD),
            &args,
        )?;

        copy_dir(&template, &data)?;

        // The admin account, made by the server itself before it accepts any
        // connection (--init-file runs before the listener's first accept).
        let password = random_password();
        write_private(
            &init,
            format!(
                "CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n",
                password.expose_secret()
            ),
            user.as_ref(),
        )?;
        let log = server.log.clone();
        let db = DbServer::launch(server, port, tls, password, cert, user.as_ref(), || {
            fs::read_to_string(&log)
                .map(|text| text.contains("ready for connections"))
                .unwrap_or(false)
        })?;
        // The password was only needed at start-up.
        let _ = fs::remove_file(&init);
        Ok(MariaDb { db })
    }

    db_server_api! {
        engine: "MariaDB",
        start: "Starts a server with a valid certificate. The first start in a test \
                process also bootstraps the system tables into a template datadir \
                (under a second); every server then starts from a copy of it.",
        ca_path: "The CA certificate's file, for `--ssl-ca`.",
        pid: "mariadbd's process id.",
        log_tail: "The last lines of the server's error log.",
    }

    /// Runs SQL as the admin with the `mariadb` client over TCP (verified TLS
    /// unless TLS is off); returns its batch output (tab-separated, no column
    /// names), without the final newline.
    pub fn sql(&self, sql: &str) -> anyhow::Result<String> {
        self.sql_with(&self.admin_login(), sql)
    }

    /// Runs SQL with the `mariadb` client as `login`. A refused login is an error
    /// carrying the client's message (which never contains the password).
    pub fn sql_with(&self, login: &ClientLogin, sql: &str) -> anyhow::Result<String> {
        let mut command = Command::new(MARIADB_CLIENT);
        scrub_env(&mut command, &["MYSQL", "MARIADB"]);
        command
            .env("MYSQL_PWD", login.password.expose_secret())
            .args([
                "--no-defaults",
                "--protocol=TCP",
                "--batch",
                "--skip-column-names",
            ])
            .arg(format!("--host={HOST}"))
            .arg(format!("--port={}", self.db.port))
            .arg(format!("--user={}", login.user))
            .arg("--connect-timeout=10");
        match &login.tls {
            ClientTls::Verify(ca) => {
                command
                    .arg("--ssl")
                    .arg(format!("--ssl-ca={}", path_str(ca)?))
                    .arg("--ssl-verify-server-cert");
            }
            ClientTls::Unverified => {
                command.arg("--ssl");
            }
            ClientTls::Plaintext => {
                command.arg("--skip-ssl");
            }
        }
        run_client("mariadb", command, sql)
    }
}

/// Settings that make a throwaway InnoDB quick to create and start: small files,
/// no durability, no background I/O it does not need.
fn mariadb_fast_flags() -> impl Iterator<Item = String> {
    [
        "--skip-log-bin",
        "--innodb-buffer-pool-size=16M",
        "--innodb-log-file-size=4M",
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-flush-method=nosync",
        "--innodb-doublewrite=0",
        "--innodb-use-native-aio=0",
        "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
        "--innodb-buffer-pool-load-at-startup=0",
        "--innodb-buffer-pool-dump-at-shutdown=0",
    ]
    .into_iter()
    .map(str::to_owned)
}

/// The datadir every MariaDB server of this process starts from a copy of: the
/// system tables as `mariadb-install-db --skip-test-db` makes them, without the
/// help tables and the sys schema (slow to load, unused), and without any account
/// but `mariadb.sys` (mariadb-install-db's root accounts have no password over
/// TCP). Made once, on first use; removed when this process exits.
fn mariadb_template(user: Option<&OsUser>) -> anyhow::Result<PathBuf> {
    static TEMPLATE: Mutex<Option<(PathBuf, Child)>> = Mutex::new(None);
    let mut template = TEMPLATE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((dir, _)) = template.as_ref() {
        return Ok(dir.join("data"));
    }
    let (dir, janitor) = template_dir("mariadb-template", user)?;
    let data = dir.join("data");
    fs::create_dir(&data).with_context(|| format!("creating {}", data.display()))?;
    chown(&data, user)?;

    let mut sql = String::from(
        "CREATE DATABASE IF NOT EXISTS mysql;\nUSE mysql;\nSET @auth_root_socket=NULL;\n",
    );
    for file in [
        "mysql_system_tables.sql",
        "mysql_performance_tables.sql",
        "mysql_system_tables_data.sql",
    ] {
        let path = Path::new(MARIADB_SQL_DIR).join(file);
        sql.push_str(&fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {}: install mariadb-server (scripts/setup.sh does)",
                path.display()
            )
        })?);
        sql.push('\n');
    }
    sql.push_str(
        "DELETE FROM mysql.global_priv WHERE User <> 'mariadb.sys';\n\
         DELETE FROM mysql.proxies_priv;\n",
    );

    let log = dir.join("bootstrap.log");
    let log_file = fs::File::create(&log).context("creating the bootstrap log")?;
    let mut command = Command::new(MARIADBD);
    command
        .arg("--no-defaults")
        .arg("--bootstrap")
        .arg(format!("--datadir={}", path_str(&data)?))
        .args([
            "--log-warnings=0",
            "--enforce-storage-engine=",
            "--max-allowed-packet=8M",
            "--net-buffer-length=16K",
        ])
        .args(mariadb_fast_flags())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    run_as(&mut command, user, &dir, CLIENT_ENV);
    let (mut child, writer) = spawn_with_input(&mut command, "mariadbd --bootstrap", sql)?;
    let status = wait_timeout(&mut child, Duration::from_secs(60))?;
    let _ = writer.join();
    match status {
        Some(status) if status.success() => {}
        status => {
            let tail = tail_lines(&log, 30, &[]);
            bail!(
                "bootstrapping MariaDB's system tables failed ({}); its log ends:\n{tail}",
                status.map_or("timed out after 60 s".to_owned(), |s| s.to_string())
            );
        }
    }
    *template = Some((dir, janitor));
    Ok(data)
}

/// A new temp dir for a template datadir, and its janitor: a process that removes
/// the dir when this process exits (the janitor's stdin, our pipe, closes then),
/// or at once if the returned `Child` is dropped after a failure.
fn template_dir(kind: &str, user: Option<&OsUser>) -> anyhow::Result<(PathBuf, Child)> {
    let dir = make_dir(kind, user)?;
    let janitor = Command::new("sh")
        .args(["-c", r#"cat >/dev/null; rm -rf "$1""#, "rotor-db-janitor"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match janitor {
        Ok(janitor) => Ok((dir, janitor)),
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            Err(e).context("starting sh")
        }
    }
}

/// The datadir every PostgreSQL server of this process starts from a copy of,
/// and its admin password: `initdb --auth=scram-sha-256` with the superuser
/// `rotor_admin` and a random password from `--pwfile`. Made once, on first use
/// (about 0.7 s); removed when this process exits. Copying it takes about 0.1 s.
fn postgres_template(user: Option<&OsUser>) -> anyhow::Result<(PathBuf, SecretString)> {
    static TEMPLATE: Mutex<Option<(PathBuf, SecretString, Child)>> = Mutex::new(None);
    let mut template = TEMPLATE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((dir, password, _)) = template.as_ref() {
        return Ok((dir.join("data"), password.clone()));
    }
    let initdb = Path::new(PG_BIN).join("initdb");
    if !initdb.exists() {
        bail!(
            "{} is missing: install postgresql-15 (scripts/setup.sh does)",
            initdb.display()
        );
    }
    let (dir, janitor) = template_dir("pg-template", user)?;
    let data = dir.join("data");
    // The password comes from a file, never the command line.
    let password = random_password();
    let pwfile = dir.join("pwfile");
    write_private(&pwfile, password.expose_secret(), user)?;
    let mut command = Command::new(&initdb);
    command
        .arg("-D")
        .arg(&data)
        .arg(format!("--username={ADMIN_USER}"))
        .arg(format!("--pwfile={}", path_str(&pwfile)?))
        .args([
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        ])
        .stdin(Stdio::null());
    run_as(&mut command, user, &dir, CLIENT_ENV);
    let output = command
        .output()
        .with_context(|| format!("running {}", initdb.display()))?;
    let _ = fs::remove_file(&pwfile);
    if !output.status.success() {
        bail!(
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    *template = Some((dir, password.clone(), janitor));
    Ok((data, password))
}

/// Copies a template datadir, keeping owners and modes (`cp -a`).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let copy = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .context("running cp")?;
    if !copy.status.success() {
        bail!(
            "cannot copy {} to {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&copy.stderr)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The server process and small helpers
// ---------------------------------------------------------------------------

/// The prefixes of the environment variables that the engines' servers and
/// clients read (PGHOST, MYSQL_TCP_PORT, ...): none reaches them from this
/// process's environment, so a developer's settings cannot redirect them.
const CLIENT_ENV: &[&str] = &["PG", "MYSQL", "MARIADB"];

/// Starts the wrapper a database server runs under (see
/// [`ServerProcess::prepare`]): as the engine's OS user, with [`CLIENT_ENV`]
/// scrubbed.
fn prepare_server(
    dir: PathBuf,
    log: PathBuf,
    user: Option<&OsUser>,
    stop_signal: &str,
    program: &Path,
    args: &[OsString],
) -> anyhow::Result<ServerProcess> {
    let command = ServerCommand {
        name: "rotor-db-server",
        program,
        args,
        stop_signal,
        user,
        scrub_env: CLIENT_ENV,
        log_noise: &[],
    };
    ServerProcess::prepare(dir, log, &command)
}

fn wait_timeout(
    child: &mut Child,
    timeout: Duration,
) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a CLI client with a 60 s limit, `sql` on its stdin (so that no statement,
/// and no password in one, shows in `ps`); its stdout on success, an error with
/// its stderr otherwise.
fn run_client(name: &str, mut command: Command, sql: &str) -> anyhow::Result<String> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (mut child, writer) = spawn_with_input(&mut command, name, format!("{sql}\n"))?;
    let read_all = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = from.read_to_end(&mut buf);
            buf
        })
    };
    let out = read_all(Box::new(child.stdout.take().context("stdout")?));
    let err = read_all(Box::new(child.stderr.take().context("stderr")?));
    let status = wait_timeout(&mut child, Duration::from_secs(60))?;
    let _ = writer.join();
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let out = String::from_utf8_lossy(&out)
        .trim_end_matches('\n')
        .to_owned();
    let err = String::from_utf8_lossy(&err).trim().to_owned();
    match status {
        Some(status) if status.success() => Ok(out),
        Some(status) => bail!("{name} failed ({status}): {err}"),
        None => bail!("{name} did not finish within 60 s: {err}"),
    }
}
