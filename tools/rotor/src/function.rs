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

use crate::runtime_api::{Invocation, InvokeError, RuntimeApi};

/// A function process and the Runtime API it polls.
pub struct LocalFunction {
    api: RuntimeApi,
    child: Child,
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
    let fallback = crate::moto::workspace_root()
        .join("target/debug")
        .join(name);
    candidates
        .chain(std::iter::once(fallback.clone()))
        .find(|p| p.is_file())
        .unwrap_or(fallback)
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
        let function = LocalFunction {
            api,
            child,
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

    /// Sends one event and waits for the answer.
    pub async fn invoke(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        self.api.invoke(event, timeout).await
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
        self.child.id()
    }

    /// The binary's file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kills the process (as a crash would).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
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
