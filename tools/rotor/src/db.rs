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
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use secrecy::{ExposeSecret, SecretString};

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
/// The only address the servers listen on.
pub const HOST: &str = "127.0.0.1";
/// The names the server certificates are issued for.
pub const SERVER_NAMES: &[&str] = &["127.0.0.1", "localhost"];

/// How long a server may take to accept connections before `start` gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often `start` retries when another process took the free port first.
const START_ATTEMPTS: usize = 4;

// ---------------------------------------------------------------------------
// Test CA
// ---------------------------------------------------------------------------

/// A certificate authority made for one test: a self-signed CA certificate and its
/// key, which issues server certificates. Every `TestCa::new()` is a different CA
/// (its own key and name), so a certificate from one fails verification against
/// any other: that is how a test proves a "wrong CA" refusal.
///
/// Keys are ECDSA P-256, which OpenSSL (both servers, both CLI clients) and
/// rustls accept.
pub struct TestCa {
    id: String,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A new CA, valid from the start of last year to the start of the year after next.
    pub fn new() -> TestCa {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("rotor test CA {id}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "rotor tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(this_year() - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(this_year() + 2, 1, 1);
        let key = KeyPair::generate().expect("generate the test CA's key");
        let cert = params.self_signed(&key).expect("self-sign the test CA");
        TestCa {
            id,
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// Writes the CA certificate into `dir` as `rotor-test-ca-<id>.pem` (a name no
    /// other `TestCa` uses) and returns its path. Panics if it cannot write.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("rotor-test-ca-{}.pem", self.id));
        fs::write(&path, &self.cert_pem)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// A server certificate and its key, PEM: `(cert_pem, key_pem)`. `names` become
    /// the subject alternative names (IP addresses where they parse as one, DNS
    /// names otherwise; the first is also the common name). Valid from the start of
    /// last year to the start of next year. Panics on a name that is neither.
    pub fn server_cert(&self, names: &[&str]) -> (String, String) {
        self.issue(names, -1, 1)
    }

    /// Like [`server_cert`](Self::server_cert), but expired: its validity ended
    /// at the start of last year.
    pub fn expired_server_cert(&self, names: &[&str]) -> (String, String) {
        self.issue(names, -3, -1)
    }

    /// Issues a certificate valid from January 1st of this year plus `from` years
    /// to January 1st of this year plus `to` years.
    fn issue(&self, names: &[&str], from: i32, to: i32) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone())
            .unwrap_or_else(|e| panic!("bad certificate names {names:?}: {e}"));
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = rcgen::date_time_ymd(this_year() + from, 1, 1);
        params.not_after = rcgen::date_time_ymd(this_year() + to, 1, 1);
        let key = KeyPair::generate().expect("generate a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign a server certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// The current year (UTC, give or take a day at New Year: certificate validity
/// here is measured in whole years).
fn this_year() -> i32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    1970 + (seconds / 31_556_952) as i32
}

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

/// Which certificate a server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCert {
    /// Issued by the server's test CA for 127.0.0.1 and localhost, valid now.
    Valid,
    /// The same, but expired (see [`TestCa::expired_server_cert`]).
    Expired,
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

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// A throwaway PostgreSQL 15 server. Host connections need the password
/// (scram-sha-256); the superuser is `rotor_admin` with a random password; fsync
/// is off. Dropping it stops the server and removes its temp dir.
pub struct Postgres {
    server: Server,
    port: u16,
    tls: TlsMode,
    password: SecretString,
    ca: TestCa,
    ca_path: PathBuf,
}

impl Postgres {
    /// Starts a server with a valid certificate. The first start in a test process
    /// also runs `initdb` into a template datadir (under a second); every server
    /// then starts from a copy of it.
    pub fn start(tls: TlsMode) -> anyhow::Result<Postgres> {
        Self::start_with(tls, ServerCert::Valid)
    }

    /// Starts a server that presents the given kind of certificate.
    pub fn start_with(tls: TlsMode, cert: ServerCert) -> anyhow::Result<Postgres> {
        retry_on_port_clash("PostgreSQL", || Self::try_start(tls, cert))
    }

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
        let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
        let ca_path = dir.join("ca.pem");
        let mut args: Vec<OsString> = vec!["-D".into(), data.clone().into()];
        let settings = [
            ("port", port.to_string()),
            ("listen_addresses", HOST.to_owned()),
            ("unix_socket_directories", path_str(&dir)?),
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
            ("ssl_cert_file", path_str(&cert_path)?),
            ("ssl_key_file", path_str(&key_path)?),
        ];
        for (name, value) in settings {
            args.push("-c".into());
            args.push(format!("{name}={value}").into());
        }
        let mut server = Server::prepare(dir, log, user.clone(), "QUIT", &postgres, &args)?;
        let dir = server.dir.clone();
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

        let ca = write_tls_files(cert, &ca_path, &cert_path, &key_path, user.as_ref())?;

        server.go()?;
        let pid_file = data.join("postmaster.pid");
        server.wait_ready(port, || {
            // The 8th line of postmaster.pid becomes "ready" once the server
            // accepts connections.
            fs::read_to_string(&pid_file)
                .map(|text| text.lines().nth(7).map(str::trim) == Some("ready"))
                .unwrap_or(false)
        })?;

        // This server's own admin password, set over the Unix socket (in the 0700
        // temp dir) with the template's, before anyone else is told the port.
        let password = random_password();
        let socket = format!(
            "host={} port={port} user={ADMIN_USER} dbname=postgres",
            conninfo_quote(&path_str(&dir)?)
        );
        run_psql(
            &socket,
            &template_password,
            &format!(
                "ALTER ROLE {ADMIN_USER} PASSWORD '{}'",
                password.expose_secret()
            ),
        )
        .with_context(|| {
            format!(
                "setting the admin password; the log ends:\n{}",
                server.log_tail()
            )
        })?;
        Ok(Postgres {
            server,
            port,
            tls,
            password,
            ca,
            ca_path,
        })
    }

    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls(&self) -> TlsMode {
        self.tls
    }

    pub fn admin_user(&self) -> &str {
        ADMIN_USER
    }

    pub fn admin_password(&self) -> SecretString {
        self.password.clone()
    }

    /// The admin's login: verified TLS, or plaintext when TLS is off.
    pub fn admin_login(&self) -> ClientLogin {
        ClientLogin::new(ADMIN_USER, self.admin_password(), self.client_tls())
    }

    /// Verified TLS against this server's CA, or plaintext when TLS is off.
    pub fn client_tls(&self) -> ClientTls {
        match self.tls {
            TlsMode::Off => ClientTls::Plaintext,
            _ => ClientTls::Verify(self.ca_path.clone()),
        }
    }

    /// The CA that issued the server's certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem()
    }

    /// The CA certificate's file, for `sslrootcert`.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The server's temp dir (removed when the server stops); tests may put files
    /// in it.
    pub fn dir(&self) -> &Path {
        &self.server.dir
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
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
                conninfo_quote(&path_str(ca)?)
            ),
            ClientTls::Unverified => "sslmode=require".to_owned(),
            ClientTls::Plaintext => "sslmode=disable".to_owned(),
        };
        let conninfo = format!(
            "host={HOST} port={} user={} dbname={} {tls}",
            self.port,
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
    server: Server,
    port: u16,
    tls: TlsMode,
    password: SecretString,
    ca: TestCa,
    ca_path: PathBuf,
}

impl MariaDb {
    /// Starts a server with a valid certificate. The first start in a test process
    /// also bootstraps the system tables into a template datadir (under a second);
    /// every server then starts from a copy of it.
    pub fn start(tls: TlsMode) -> anyhow::Result<MariaDb> {
        Self::start_with(tls, ServerCert::Valid)
    }

    /// Starts a server that presents the given kind of certificate.
    pub fn start_with(tls: TlsMode, cert: ServerCert) -> anyhow::Result<MariaDb> {
        retry_on_port_clash("MariaDB", || Self::try_start(tls, cert))
    }

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
        let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
        let ca_path = dir.join("ca.pem");
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
            args.push(format!("--ssl-ca={}", path_str(&ca_path)?).into());
            args.push(format!("--ssl-cert={}", path_str(&cert_path)?).into());
            args.push(format!("--ssl-key={}", path_str(&key_path)?).into());
        }
        if tls == TlsMode::Required {
            args.push("--require-secure-transport=ON".into());
        }
        let mut server = Server::prepare(
            dir.clone(),
            log,
            user.clone(),
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
            &format!(
                "CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n",
                password.expose_secret()
            ),
            user.as_ref(),
        )?;
        let ca = write_tls_files(cert, &ca_path, &cert_path, &key_path, user.as_ref())?;

        server.go()?;
        let log = server.log.clone();
        server.wait_ready(port, || {
            fs::read_to_string(&log)
                .map(|text| text.contains("ready for connections"))
                .unwrap_or(false)
        })?;
        // The password was only needed at start-up.
        let _ = fs::remove_file(&init);
        Ok(MariaDb {
            server,
            port,
            tls,
            password,
            ca,
            ca_path,
        })
    }

    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls(&self) -> TlsMode {
        self.tls
    }

    pub fn admin_user(&self) -> &str {
        ADMIN_USER
    }

    pub fn admin_password(&self) -> SecretString {
        self.password.clone()
    }

    /// The admin's login: verified TLS, or plaintext when TLS is off.
    pub fn admin_login(&self) -> ClientLogin {
        ClientLogin::new(ADMIN_USER, self.admin_password(), self.client_tls())
    }

    /// Verified TLS against this server's CA, or plaintext when TLS is off.
    pub fn client_tls(&self) -> ClientTls {
        match self.tls {
            TlsMode::Off => ClientTls::Plaintext,
            _ => ClientTls::Verify(self.ca_path.clone()),
        }
    }

    /// The CA that issued the server's certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem()
    }

    /// The CA certificate's file, for `--ssl-ca`.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The server's temp dir (removed when the server stops); tests may put files
    /// in it.
    pub fn dir(&self) -> &Path {
        &self.server.dir
    }

    /// mariadbd's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid
    }

    /// The last lines of the server's error log.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
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
            .arg(format!("--port={}", self.port))
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
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    run_as(&mut command, user, &dir);
    let mut child = command.spawn().context("starting mariadbd --bootstrap")?;
    let mut stdin = child.stdin.take().context("mariadbd's stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(sql.as_bytes()));
    let status = wait_timeout(&mut child, Duration::from_secs(60))?;
    let _ = writer.join();
    match status {
        Some(status) if status.success() => {}
        status => {
            let tail = tail_lines(&log, 30);
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
    run_as(&mut command, user, &dir);
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

/// Makes a test CA and writes its certificate, and a server certificate and key
/// it issued, for the server's user (the key 0600, as PostgreSQL insists).
fn write_tls_files(
    cert: ServerCert,
    ca_path: &Path,
    cert_path: &Path,
    key_path: &Path,
    user: Option<&OsUser>,
) -> anyhow::Result<TestCa> {
    let ca = TestCa::new();
    let (cert_pem, key_pem) = match cert {
        ServerCert::Valid => ca.server_cert(SERVER_NAMES),
        ServerCert::Expired => ca.expired_server_cert(SERVER_NAMES),
    };
    write_private(ca_path, &ca.ca_pem(), user)?;
    fs::set_permissions(ca_path, fs::Permissions::from_mode(0o644))?;
    write_private(cert_path, &cert_pem, user)?;
    write_private(key_path, &key_pem, user)?;
    Ok(ca)
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
// The server process and its wrapper
// ---------------------------------------------------------------------------

/// The wrapper every server runs under. Arguments: the temp dir, the signal that
/// stops the server, the log file, then the server's command line. It waits for a
/// "go" line, starts the server, prints its pid, and then reads its stdin to the
/// end: when this process closes it (drop or exit), it stops the server, waits
/// for it (SIGKILL after 10 s), and removes the temp dir. If stdin closes before
/// "go", it only removes the temp dir. The watchdog that sends SIGKILL takes its
/// `sleep` with it when it is cancelled, so nothing is left behind.
const WRAPPER: &str = r#"
dir=$1 sig=$2 log=$3
shift 3
if ! read -r _go; then rm -rf "$dir"; exit 0; fi
"$@" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid"
exec >/dev/null 2>&1
cat
kill -"$sig" "$pid"
(
  sleep 10 &
  nap=$!
  trap 'kill "$nap"; wait "$nap"; exit 0' TERM
  wait "$nap"
  kill -KILL "$pid"
) </dev/null &
watchdog=$!
wait "$pid"
kill "$watchdog"
wait "$watchdog"
rm -rf "$dir"
"#;

struct Server {
    dir: PathBuf,
    log: PathBuf,
    wrapper: Child,
    pid: u32,
}

impl Server {
    /// Starts the wrapper, which waits for `go` (or removes `dir` if this handle
    /// is dropped first).
    fn prepare(
        dir: PathBuf,
        log: PathBuf,
        user: Option<OsUser>,
        stop_signal: &str,
        program: &Path,
        args: &[OsString],
    ) -> anyhow::Result<Server> {
        let mut command = Command::new("sh");
        command
            .args(["-c", WRAPPER, "rotor-db-server"])
            .arg(&dir)
            .arg(stop_signal)
            .arg(&log)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        run_as(&mut command, user.as_ref(), &dir);
        let wrapper = match command.spawn() {
            Ok(wrapper) => wrapper,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e).context("starting sh");
            }
        };
        Ok(Server {
            dir,
            log,
            wrapper,
            pid: 0,
        })
    }

    /// Starts the server; learns its pid.
    fn go(&mut self) -> anyhow::Result<()> {
        let stdin = self.wrapper.stdin.as_mut().context("the wrapper's stdin")?;
        stdin
            .write_all(b"go\n")
            .and_then(|()| stdin.flush())
            .context("starting the server")?;
        let stdout = self.wrapper.stdout.take().context("the wrapper's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the server's pid")?;
        self.pid = line
            .trim()
            .parse()
            .with_context(|| format!("the wrapper printed {line:?} instead of a pid"))?;
        Ok(())
    }

    /// Waits until `ready()` holds and the port accepts TCP connections; fails
    /// with the log's tail if the server exits or does not get there in time.
    fn wait_ready(&mut self, port: u16, ready: impl Fn() -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if !self.server_alive() {
                bail!(
                    "the server exited during start-up; its log ends:\n{}",
                    self.log_tail()
                );
            }
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            if ready() && TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the server did not accept connections on {HOST}:{port} within {} s; its log ends:\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    /// Whether the server process runs (not gone, not a zombie).
    fn server_alive(&mut self) -> bool {
        if matches!(self.wrapper.try_wait(), Ok(Some(_))) {
            return false;
        }
        process_alive(self.pid)
    }

    fn log_tail(&self) -> String {
        tail_lines(&self.log, 40)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing the wrapper's stdin stops the server and removes the temp dir.
        drop(self.wrapper.stdin.take());
        let _ = self.wrapper.wait();
        if self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether `pid` is a live process (Linux: /proc; a zombie counts as dead).
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => match stat.rfind(')') {
            Some(end) => !matches!(stat[end + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// Runs `attempt` again (up to a few times) when the server could not bind its
/// port because another process took it between our check and its bind.
fn retry_on_port_clash<T>(
    engine: &str,
    attempt: impl Fn() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut n = 1;
    loop {
        match attempt() {
            Ok(server) => return Ok(server),
            Err(e) if n < START_ATTEMPTS && format!("{e:#}").contains("Address already in use") => {
                n += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("starting a test {engine} server")),
        }
    }
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// The OS user a server runs as, when this process is root.
#[derive(Clone, Debug)]
struct OsUser {
    uid: u32,
    gid: u32,
}

/// `name`'s uid and gid when this process runs as root (the servers refuse root),
/// None otherwise (the servers then run as the current user).
fn os_user(name: &str) -> anyhow::Result<Option<OsUser>> {
    static ROOT: OnceLock<bool> = OnceLock::new();
    let root = *ROOT.get_or_init(|| {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            })
            .unwrap_or(false)
    });
    if !root {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == name {
            return Ok(Some(OsUser {
                uid: fields[2].parse().context("a uid in /etc/passwd")?,
                gid: fields[3].parse().context("a gid in /etc/passwd")?,
            }));
        }
    }
    bail!(
        "this process runs as root and there is no `{name}` OS user to run the server as; install the server package (scripts/setup.sh does)"
    )
}

/// Makes `command` run as `user` (if any) in `dir`, with a neutral environment.
fn run_as(command: &mut Command, user: Option<&OsUser>, dir: &Path) {
    scrub_env(command, &["PG", "MYSQL", "MARIADB"]);
    command
        .current_dir(dir)
        .env("HOME", dir)
        .env("LC_ALL", "C.UTF-8");
    if let Some(user) = user {
        // std clears the supplementary groups when a root process sets the uid.
        command.uid(user.uid).gid(user.gid);
    }
}

/// Removes inherited environment variables with these prefixes (PGHOST,
/// MYSQL_TCP_PORT, ...) so a developer's settings cannot redirect a client.
fn scrub_env(command: &mut Command, prefixes: &[&str]) {
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if prefixes.iter().any(|p| text.starts_with(p)) {
            command.env_remove(&name);
        }
    }
}

/// A new 0700 temp dir owned by `user`.
fn make_dir(kind: &str, user: Option<&OsUser>) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "rotor-{kind}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    ));
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    if let Err(e) = chown(&dir, user) {
        let _ = fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

fn chown(path: &Path, user: Option<&OsUser>) -> anyhow::Result<()> {
    if let Some(user) = user {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// Writes a 0600 file owned by `user`.
fn write_private(path: &Path, contents: &str, user: Option<&OsUser>) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    chown(path, user)
}

fn path_str(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((HOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn tail_lines(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
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
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input = format!("{sql}\n");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
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
