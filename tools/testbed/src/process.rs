//! What the throwaway servers of [`crate::db`] (PostgreSQL, MariaDB) and
//! [`crate::oauth_server`] (glewlwyd) have in common: a server on 127.0.0.1 at a
//! free port, in a temp dir of its own, with TLS from a [`crate::ca::TestCa`] made for it,
//! running under a small `sh` wrapper that ties its life to this process.
//!
//! Each server module keeps what is its own (command line, configuration, what
//! "ready" means, its clients); this one holds the parts that must behave the
//! same for all of them, so that a fix to one (a leaked temp dir, a port clash, a
//! server that outlives its test) is a fix to all.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::ca::HOST;

/// How long a server may take to get ready before its `start` gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a `start` is tried when another process took the free port first.
const START_ATTEMPTS: usize = 4;

// ---------------------------------------------------------------------------
// The server process and its wrapper
// ---------------------------------------------------------------------------

/// The wrapper every server runs under, so that a server never outlives its test
/// process. Arguments: the temp dir, the signal that stops the server, the log
/// file, then the server's command line. It waits for a "go" line, starts the
/// server, prints its pid, and then reads its stdin to the end: when this process
/// closes it (drop or exit, however it happens: panic, abort, SIGKILL), it stops
/// the server, waits for it (SIGKILL after 10 s) and removes the temp dir. If
/// stdin closes before "go", it only removes the temp dir. The watchdog that
/// sends SIGKILL takes its `sleep` with it when it is cancelled, so nothing is
/// left behind.
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

/// What the wrapper runs, as whom, and how it stops it: the part of
/// [`ServerProcess::prepare`] that differs from one server to another.
pub(crate) struct ServerCommand<'a> {
    /// The wrapper's `$0`, which `ps` shows (`rotor-db-server`, ...).
    pub name: &'a str,
    pub program: &'a Path,
    pub args: &'a [OsString],
    /// The signal that stops the server (`QUIT`, `KILL`).
    pub stop_signal: &'a str,
    /// Who the server runs as (see [`os_user`]).
    pub user: Option<&'a OsUser>,
    /// Prefixes of inherited environment variables the server must not see.
    pub scrub_env: &'a [&'a str],
    /// Log lines that contain any of these are left out of [`ServerProcess::log_tail`].
    pub log_noise: &'static [&'static str],
}

/// A server running under [`WRAPPER`] in its own temp dir. Dropping it stops the
/// server and removes the dir.
pub(crate) struct ServerProcess {
    pub dir: PathBuf,
    pub log: PathBuf,
    /// The server's process id (0 until [`go`](Self::go)).
    pub pid: u32,
    wrapper: Child,
    log_noise: &'static [&'static str],
}

impl ServerProcess {
    /// Starts the wrapper, which waits for `go` (or removes `dir` if this handle
    /// is dropped first). From here on the wrapper owns `dir`; if it cannot start,
    /// `dir` is removed here.
    pub fn prepare(
        dir: PathBuf,
        log: PathBuf,
        server: &ServerCommand,
    ) -> anyhow::Result<ServerProcess> {
        let mut command = Command::new("sh");
        command
            .args(["-c", WRAPPER, server.name])
            .arg(&dir)
            .arg(server.stop_signal)
            .arg(&log)
            .arg(server.program)
            .args(server.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        run_as(&mut command, server.user, &dir, server.scrub_env);
        let wrapper = match command.spawn() {
            Ok(wrapper) => wrapper,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e).context("starting sh");
            }
        };
        Ok(ServerProcess {
            dir,
            log,
            pid: 0,
            wrapper,
            log_noise: server.log_noise,
        })
    }

    /// Starts the server; learns its pid.
    pub fn go(&mut self) -> anyhow::Result<()> {
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

    /// Polls `ready` until it answers true; fails with the log's tail if it fails,
    /// if the server exits, or if it does not get there within 30 s. `waiting_for`
    /// completes "the server did not ... in time".
    pub fn wait_until(
        &mut self,
        waiting_for: &str,
        mut ready: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if !self.server_alive() {
                bail!(
                    "the server exited during start-up; its log ends:\n{}",
                    self.log_tail()
                );
            }
            match ready() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("its log ends:\n{}", self.log_tail()));
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the server did not {waiting_for} within {} s; its log ends:\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server process runs (not gone, not a zombie).
    fn server_alive(&mut self) -> bool {
        if matches!(self.wrapper.try_wait(), Ok(Some(_))) {
            return false;
        }
        process_alive(self.pid)
    }

    /// The last 40 lines of the server's log, without its noise.
    pub fn log_tail(&self) -> String {
        tail_lines(&self.log, 40, self.log_noise)
    }
}

impl Drop for ServerProcess {
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

/// A port on 127.0.0.1 that was free a moment ago. Another process may take it
/// before the server binds it: see [`retry_on_port_clash`].
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((HOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `attempt` again (up to a few times) when the server could not bind its
/// port because another process took it between [`free_port`] and its bind.
/// `what` names the server in the final error: "a test PostgreSQL server".
pub(crate) fn retry_on_port_clash<T>(
    what: &str,
    attempt: impl Fn() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut n = 1;
    loop {
        match attempt() {
            Ok(server) => return Ok(server),
            Err(e) if n < START_ATTEMPTS && format!("{e:#}").contains("Address already in use") => {
                n += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("starting {what}")),
        }
    }
}

// ---------------------------------------------------------------------------
// Service users, temp dirs and files
// ---------------------------------------------------------------------------

/// The OS user a server runs as, when this process is root.
#[derive(Clone, Debug)]
pub(crate) struct OsUser {
    uid: u32,
    gid: u32,
}

/// `name`'s uid and gid when this process runs as root (some servers refuse
/// root), None otherwise (the servers then run as the current user).
pub(crate) fn os_user(name: &str) -> anyhow::Result<Option<OsUser>> {
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

/// Makes `command` run as `user` (if any) in `dir`, with a neutral environment:
/// `HOME` is `dir`, the locale is C.UTF-8, and inherited variables starting with
/// one of `scrub` are gone.
pub(crate) fn run_as(command: &mut Command, user: Option<&OsUser>, dir: &Path, scrub: &[&str]) {
    scrub_env(command, scrub);
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
pub(crate) fn scrub_env(command: &mut Command, prefixes: &[&str]) {
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if prefixes.iter().any(|p| text.starts_with(p)) {
            command.env_remove(&name);
        }
    }
}

/// A new 0700 temp dir `rotor-<kind>-<random>` owned by `user`, which that user
/// can reach under `std::env::temp_dir()` (`/tmp` is fine).
pub(crate) fn make_dir(kind: &str, user: Option<&OsUser>) -> anyhow::Result<PathBuf> {
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

/// Gives `path` to `user` (if any), so that a server that runs as that user can
/// use what this process made for it.
pub(crate) fn chown(path: &Path, user: Option<&OsUser>) -> anyhow::Result<()> {
    if let Some(user) = user {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// Writes a 0600 file owned by `user`: keys, passwords and configurations that
/// hold secrets.
pub(crate) fn write_private(
    path: &Path,
    contents: impl AsRef<[u8]>,
    user: Option<&OsUser>,
) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    chown(path, user)
}

/// Spawns `command` (`name` in the error) with `input` on its stdin, written by a
/// thread of its own so that the child cannot block on a full stdout pipe while
/// this process blocks on its stdin; the thread closes stdin when done. SQL goes
/// this way, never on the command line, so that no password shows in `ps`.
pub(crate) fn spawn_with_input(
    command: &mut Command,
    name: &str,
    input: String,
) -> anyhow::Result<(Child, JoinHandle<std::io::Result<()>>)> {
    let mut child = command
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    Ok((child, writer))
}

/// A path as text, for command lines and configuration files.
pub(crate) fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// The last `lines` lines of a log, without those that contain any of `noise`;
/// a note instead if there is no log.
pub(crate) fn tail_lines(path: &Path, lines: usize, noise: &[&str]) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text
                .lines()
                .filter(|line| !noise.iter().any(|n| line.contains(n)))
                .collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}
