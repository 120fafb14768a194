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

use crate::ca::TlsFiles;
pub use crate::ca::{HOST, SERVER_NAMES, ServerCert, TestCa};
pub use crate::process::process_alive;
use crate::process::{
    OsUser, ServerCommand, ServerProcess, chown, free_port, make_dir, os_user, path_str,
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

// After the macros above, which the engines' modules use.
mod mariadb;
mod postgres;

pub use mariadb::MariaDb;
pub use postgres::Postgres;
