//! A throwaway moto server: Secrets Manager on 127.0.0.1 at a free port, for the
//! demo and the tests. It runs `scripts/moto_server.py` in the project's venv
//! (made by `scripts/setup.sh`) and stops when this handle is dropped or this
//! process exits, whichever comes first.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command};

/// A running moto server.
pub struct Moto {
    endpoint: String,
    child: Child,
    // Commands go in on stdin (`offset N`), answers come back on stdout.
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace root, where `.venv` and `scripts/` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

impl Moto {
    /// Starts moto and waits until it listens (about a second). It blocks: moto
    /// is started with std's process API so that a handle kept in a static (one
    /// server shared by a test binary) does not depend on any async runtime.
    pub fn start() -> anyhow::Result<Moto> {
        Moto::start_with(&[])
    }

    /// Starts moto with IAM authentication on after its first
    /// `free_actions` requests (moto's `INITIAL_NO_AUTH_ACTION_COUNT`): those
    /// set up a user with a key, and from then on every request must be
    /// signed with a key moto issued and be allowed by that user's policies.
    /// For IAM and STS; a separate instance from the Secrets Manager one,
    /// whose callers sign with throwaway keys.
    pub fn start_with_auth(free_actions: u32) -> anyhow::Result<Moto> {
        Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", &free_actions.to_string())])
    }

    fn start_with(env: &[(&str, &str)]) -> anyhow::Result<Moto> {
        let root = workspace_root();
        let python = std::env::var_os("ROTOR_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".venv/bin/python"));
        if !python.exists() {
            bail!(
                "{} is missing: run scripts/setup.sh to install moto's server",
                python.display()
            );
        }
        let mut child = Command::new(&python)
            .arg(root.join("scripts/moto_server.py"))
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting moto with {}", python.display()))?;
        let stdin = child.stdin.take().context("moto's stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("moto's stdout")?);
        let mut first_line = String::new();
        // moto prints its port once it listens, or exits (EOF) if it cannot start.
        stdout
            .read_line(&mut first_line)
            .context("reading moto's port")?;
        let port: u16 = match first_line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "moto printed {first_line:?} instead of its port; run scripts/setup.sh to (re)install moto[server]"
                );
            }
        };
        Ok(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            stdin,
            stdout,
        })
    }

    /// Sets moto's clock to the real time plus `offset` seconds (negative: the
    /// past), for secrets that must look old. The clock is the whole server's.
    pub fn set_clock(&mut self, offset: i64) -> anyhow::Result<()> {
        writeln!(self.stdin, "offset {offset}").context("writing to moto")?;
        self.stdin.flush().context("writing to moto")?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .context("reading moto's answer")?;
        if line.trim() != "ok" {
            bail!("moto did not shift its clock: {line:?}");
        }
        Ok(())
    }

    /// The endpoint URL, for `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A Secrets Manager client for this server, with throwaway credentials.
    pub fn client(&self) -> aws_sdk_secretsmanager::Client {
        local_client(&self.endpoint)
    }

    /// An IAM role named `name` in moto's account, as Lambda's CreateFunction
    /// there wants one; its ARN. IAM's CreateRole by hand (one query-protocol
    /// POST: the test bed has no IAM client); a role that exists already is
    /// fine.
    pub fn lambda_role(&self, name: &str) -> anyhow::Result<String> {
        use std::io::Read;
        let address = self
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let body = format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument=%7B%7D"
        );
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=rotor-local/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(address).context("connect to moto")?;
        stream
            .write_all(request.as_bytes())
            .context("send CreateRole")?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        if !(answer.contains("<Arn>") || answer.contains("EntityAlreadyExists")) {
            bail!("moto's CreateRole answered: {answer}");
        }
        Ok(format!("arn:aws:iam::123456789012:role/{name}"))
    }
}

/// The environment a function process needs to talk to a local endpoint.
pub fn local_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "rotor-local"),
        ("AWS_SECRET_ACCESS_KEY", "rotor-local"),
        // The test bed's receivers and servers listen on 127.0.0.1.
        (rotor_core::settings::LOOPBACK_VAR, "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The SDK configuration for a local endpoint (moto, `sam local start-lambda`):
/// throwaway credentials, us-east-1, rustls on ring. Any service's client is
/// made from it.
pub fn local_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_secretsmanager::config::{Credentials, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(rotor_core::store::aws::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "rotor-local",
            "rotor-local",
            None,
            None,
            "rotor",
        )))
        .build()
}

/// A Secrets Manager client for a local endpoint ([`local_sdk_config`]).
pub fn local_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&local_sdk_config(endpoint))
}

/// Configures a secret's rotation with `function`, as a deployer would before
/// the scheduler may start it, without rotating: RotateSecret with
/// RotateImmediately false and a schedule, then the version that moto stages
/// loses its AWSPENDING label again. For emulators only, and it needs moto's
/// quirks: moto turns rotation on only when RotateSecret carries a schedule
/// (AWS turns it on for any RotateSecret), and with a function it cannot
/// invoke it stages AWSPENDING and answers ResourceNotFoundException, where
/// AWS would run the function's testSecret step.
pub async fn configure_rotation(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    function: &str,
) -> anyhow::Result<()> {
    use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
    let token = uuid::Uuid::new_v4().to_string();
    let rotated = client
        .rotate_secret()
        .secret_id(secret_id)
        .client_request_token(&token)
        .rotation_lambda_arn(function)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await;
    match rotated {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceNotFoundException") => {}
        Err(e) => bail!(
            "configuring the rotation of {secret_id}: {}",
            e.message().unwrap_or("RotateSecret failed")
        ),
    }
    client
        .update_secret_version_stage()
        .secret_id(secret_id)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&token)
        .send()
        .await
        .with_context(|| format!("unstaging the version that configured {secret_id}"))?;
    Ok(())
}
