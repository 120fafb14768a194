//! A rotation function binary running as a local, warm Lambda process: spawned
//! with `AWS_LAMBDA_RUNTIME_API` pointing at our embedded Runtime API, invoked as
//! many times as needed, its output captured, and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

use crate::runtime_api::{Invocation, InvokeError, RuntimeApi};

/// A function process and the Runtime API it polls.
pub struct LocalFunction {
    api: RuntimeApi,
    /// Set to the exit status once the process has ended.
    exited: watch::Receiver<Option<String>>,
    /// Dropping it (or sending) kills the process.
    kill: Option<oneshot::Sender<()>>,
    pid: Option<u32>,
    spawned_at: Instant,
    output: Arc<Mutex<Vec<u8>>>,
    name: String,
}

/// Where the function binaries are: `ROTOR_FUNCTION_DIR`, else beside this
/// executable (or its parent, for test binaries under `target/*/deps`).
pub fn function_binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("ROTOR_FUNCTION_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let candidates = exe.ancestors().skip(1).take(2).map(|dir| dir.join(name));
    let fallback = rotor_testbed::moto::workspace_root()
        .join("target/debug")
        .join(name);
    candidates
        .chain(std::iter::once(fallback.clone()))
        .find(|p| p.is_file())
        .unwrap_or(fallback)
}

/// A `--function` that names no binary.
#[derive(Debug, thiserror::Error)]
pub enum NoSuchFunction {
    /// A name, not found where rotor looks for its functions.
    #[error(
        "no function binary named {name:?} in {dir} ({where_}): rotor's functions are {known}; give one of them, or a path to a binary"
    )]
    Name {
        /// What was given.
        name: String,
        /// Where it was looked for.
        dir: String,
        /// Why there.
        where_: &'static str,
        /// The names rotor knows.
        known: String,
    },
    /// A path with no file at it.
    #[error("no function binary at {0}")]
    Path(String),
}

/// The binary `--function` names: a path as given, or a name looked up in
/// `ROTOR_FUNCTION_DIR`, else beside this executable. Unlike
/// [`function_binary`], never in the directory the binary was built in: an
/// installed rotor must not report a path of the machine that built it.
pub fn locate_function(given: &str) -> Result<PathBuf, NoSuchFunction> {
    if given.contains('/') {
        let path = PathBuf::from(given);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(NoSuchFunction::Path(given.to_owned()))
        };
    }
    let (dir, where_) = match std::env::var_os("ROTOR_FUNCTION_DIR") {
        Some(dir) => (PathBuf::from(dir), "ROTOR_FUNCTION_DIR"),
        None => {
            let exe = std::env::current_exe().unwrap_or_default();
            let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
            (dir, "beside rotor")
        }
    };
    let path = dir.join(given);
    if path.is_file() {
        return Ok(path);
    }
    let known = crate::doctor::lambda::Kind::ALL
        .iter()
        .filter(|k| k.runs_rotations())
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ");
    Err(NoSuchFunction::Name {
        name: given.to_owned(),
        dir: dir.display().to_string(),
        where_,
        known,
    })
}

impl LocalFunction {
    /// Spawns `binary` with the given extra environment and waits until it polls
    /// for its first invocation.
    pub async fn start(binary: &Path, env: &[(String, String)]) -> anyhow::Result<LocalFunction> {
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "function".into());
        let arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
        let api = RuntimeApi::start(arn)
            .await
            .context("starting the Runtime API")?;
        let spawned_at = Instant::now();
        let mut child = Command::new(binary)
            .env("AWS_LAMBDA_RUNTIME_API", api.address().to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting {} (build it with cargo build)", binary.display())
            })?;
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(capture(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(capture(err, output.clone()));
        }
        let pid = child.id();
        let (kill, killed) = oneshot::channel();
        let (exit_status, exited) = watch::channel(None);
        tokio::spawn(watch_process(child, killed, exit_status));
        let function = LocalFunction {
            api,
            exited,
            kill: Some(kill),
            pid,
            spawned_at,
            output,
            name,
        };
        function
            .api
            .wait_for_first_poll(Duration::from_secs(30))
            .await
            .with_context(|| {
                format!(
                    "{} never polled the Runtime API; its output:\n{}",
                    function.name,
                    function.output()
                )
            })?;
        Ok(function)
    }

    /// Sends one event and waits for the answer, the timeout, or the process's end.
    pub async fn invoke(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        self.invoke_raw(bytes::Bytes::from(event.to_string()), timeout)
            .await
    }

    /// Sends any payload (not JSON, not UTF-8) and waits as [`LocalFunction::invoke`] does.
    pub async fn invoke_raw(
        &self,
        payload: bytes::Bytes,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        let mut exited = self.exited.clone();
        tokio::select! {
            answer = self.api.invoke_raw(payload, timeout) => answer,
            status = exited.wait_for(Option::is_some) => Err(InvokeError::Exited {
                status: status
                    .ok()
                    .and_then(|s| s.clone())
                    .unwrap_or_else(|| "unknown status".into()),
            }),
        }
    }

    /// How the process ended, if it has.
    pub fn exit_status(&self) -> Option<String> {
        self.exited.borrow().clone()
    }

    /// From spawning the process to its first poll of the Runtime API.
    pub fn cold_start(&self) -> Option<Duration> {
        self.api
            .first_poll()
            .map(|t| t.duration_since(self.spawned_at))
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        let bytes = self.output.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The process id, for measuring it.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The binary's file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kills the process (as a crash would) and waits for it to end.
    pub async fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let _ = self.exited.wait_for(Option::is_some).await;
    }
}

/// Owns the child: reports its exit, and kills it when asked or when the
/// [`LocalFunction`] is dropped (the sender goes with it).
async fn watch_process(
    mut child: Child,
    killed: oneshot::Receiver<()>,
    exit_status: watch::Sender<Option<String>>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = killed => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let text = match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("could not wait for it: {e}"),
    };
    exit_status.send_replace(Some(text));
}

async fn capture(mut stream: impl AsyncRead + Unpin, sink: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut sink) = sink.lock() {
            sink.extend_from_slice(&buf[..n]);
        }
    }
}
