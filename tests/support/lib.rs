//! What the integration tests share: one moto server per test binary, the real
//! function binaries started behind our Runtime API, and helpers that read a
//! secret's state without ever printing a value.

pub use rotor_testbed::db;

pub mod commands;
pub mod directories;
pub mod emf;
pub mod iam;
pub mod leaks;
pub mod listener;
pub mod providers;
pub mod steps;
pub mod target_db;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use rotor_cli::function::{LocalFunction, function_binary};
use rotor_cli::runtime_api::Outcome;
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use rotor_testbed::moto::{Moto, local_env};
use serde_json::{Value, json};

/// The moto server of this test binary, started on first use. It stops when the
/// binary exits (its launcher watches its stdin).
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| match Moto::start() {
        Ok(moto) => moto,
        Err(e) => panic!("cannot start moto: {e:#}"),
    })
}

/// A store on the shared moto server. A client per test: SDK clients keep
/// connections on the runtime that made them, and each test has its own.
pub fn moto_store() -> AwsStore {
    AwsStore::new(moto().client())
}

/// A secret name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Starts a function binary against moto with extra environment.
pub async fn start_function(name: &str, extra: &[(&str, &str)]) -> LocalFunction {
    start_function_at(name, moto().endpoint(), extra).await
}

/// Starts a function binary as it runs in production: without
/// `ROTOR_ALLOW_LOOPBACK_URLS`, which the test bed sets for every function it
/// starts (emptied here, so that the test process's own environment cannot
/// set it either). URLs naming this machine are then refused.
pub async fn start_function_in_production(name: &str, extra: &[(&str, &str)]) -> LocalFunction {
    let mut env = vec![(rotor_core::settings::LOOPBACK_VAR, "")];
    env.extend_from_slice(extra);
    start_function(name, &env).await
}

/// Starts a function binary whose Secrets Manager is at `endpoint` (a proxy
/// in front of moto), with extra environment.
pub async fn start_function_at(
    name: &str,
    endpoint: &str,
    extra: &[(&str, &str)],
) -> LocalFunction {
    let mut env = local_env(endpoint);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    match LocalFunction::start(&function_binary(name), &env).await {
        Ok(function) => function,
        Err(e) => panic!("cannot start {name}: {e:#}; build it first with cargo build --workspace"),
    }
}

/// Starts a function binary against moto, in a mount namespace of its own
/// whose `/etc/hosts` maps `names` to 127.0.0.1: the function resolves the
/// host names an API returns (moto's RDS endpoints) as it would on AWS, by the
/// system resolver, and reaches the test servers on 127.0.0.1 (the network
/// namespace is shared). Needs root (`unshare -m`), as CI has.
pub async fn start_function_resolving(
    name: &str,
    names: &[&str],
    extra: &[(&str, &str)],
) -> LocalFunction {
    let dir = std::env::temp_dir().join(unique("rotor-hosts"));
    std::fs::create_dir_all(&dir).expect("a temp dir for the hosts file");
    let hosts = dir.join("hosts");
    let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for host in names {
        text.push_str(&format!("127.0.0.1 {host}\n"));
    }
    std::fs::write(&hosts, text).expect("the hosts file");
    // The launcher keeps the function's name (the Runtime API's function ARN)
    // and replaces itself with the binary: the process the test stops is it.
    let launcher = dir.join(name);
    let script = format!(
        "#!/bin/sh\nexec unshare -m -- sh -c 'mount --bind \"$0\" /etc/hosts && exec \"$1\"' '{}' '{}'\n",
        hosts.display(),
        function_binary(name).display()
    );
    std::fs::write(&launcher, script).expect("the launcher");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755))
        .expect("the launcher is executable");
    let mut env = local_env(moto().endpoint());
    env.push(("AWS_ENDPOINT_URL_RDS".into(), moto().endpoint().to_owned()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    match LocalFunction::start(&launcher, &env).await {
        Ok(function) => function,
        Err(e) => panic!(
            "cannot start {name} under unshare: {e:#}; build it first with cargo build --workspace"
        ),
    }
}

/// moto's RDS API, on the shared moto server.
pub fn moto_rds() -> aws_sdk_rds::Client {
    let config = aws_sdk_rds::Config::builder()
        .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
        .http_client(rotor_core::store::aws::https_client())
        .region(aws_sdk_rds::config::Region::new("us-east-1"))
        .endpoint_url(moto().endpoint())
        .credentials_provider(aws_sdk_rds::config::Credentials::new(
            "rotor-local",
            "rotor-local",
            None,
            None,
            "rotor-tests",
        ))
        .build();
    aws_sdk_rds::Client::from_conf(config)
}

/// Invokes a step with `event` (see [`steps`] for the events of [`rotor_core::Step`]s);
/// Ok(outcome field) or Err((error type, message)).
pub async fn step(function: &LocalFunction, event: &Value) -> Result<String, (String, String)> {
    step_within(function, event, Duration::from_secs(30)).await
}

/// [`step`] with the invocation's deadline `timeout` from now. The function
/// must answer before it: a step that does not is a failed test.
pub async fn step_within(
    function: &LocalFunction,
    event: &Value,
    timeout: Duration,
) -> Result<String, (String, String)> {
    let payload = bytes::Bytes::from(event.to_string());
    answer(function, payload, timeout).await
}

/// Invokes with any payload; Ok(outcome field) or Err((error type, message)).
pub async fn answer(
    function: &LocalFunction,
    payload: bytes::Bytes,
    timeout: Duration,
) -> Result<String, (String, String)> {
    let invocation = function
        .invoke_raw(payload, timeout)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} did not answer within {timeout:?}: {e}; its output:\n{}",
                function.name(),
                function.output()
            )
        });
    match invocation.outcome {
        Outcome::Response(value) => Ok(value["outcome"].as_str().unwrap_or("").to_owned()),
        Outcome::Error {
            error_type,
            error_message,
        } => Err((error_type, error_message)),
    }
}

/// An RFC 7592 client secret as oauth-rotation reads it. With `via`, its
/// endpoints point at that host and port (a proxy) instead of the server.
pub fn rfc7592_secret(
    server: &rotor_testbed::oauth_server::OAuthServer,
    client: &rotor_testbed::oauth_server::RegisteredClient,
    method: rotor_testbed::oauth_server::AuthMethod,
    via: Option<(&str, u16)>,
) -> String {
    let endpoint = |url: &str| match via {
        Some((host, port)) => url.replace(
            &format!("127.0.0.1:{}/", server.port()),
            &format!("{host}:{port}/"),
        ),
        None => url.to_owned(),
    };
    json!({
        "provider": "rfc7592",
        "client_id": client.client_id,
        "client_secret": client.client_secret.expose_secret(),
        "token_endpoint": endpoint(&server.token_endpoint()),
        "token_endpoint_auth_method": method.as_str(),
        "scope": rotor_testbed::oauth_server::CLIENT_SCOPE,
        "registration_client_uri": endpoint(&client.registration_client_uri),
        "registration_access_token": client.registration_access_token.expose_secret(),
    })
    .to_string()
}

/// Creates a secret and stages a rotation to `token`, as RotateSecret does.
pub async fn staged_secret(
    store: &AwsStore,
    value: &str,
    tags: &[(&str, &str)],
    token: &str,
) -> String {
    staged_secret_named(store, &unique("it"), value, tags, token).await
}

/// [`staged_secret`] under a name of the caller's (one that a `rotor:serves`
/// tag of another secret may list).
pub async fn staged_secret_named(
    store: &AwsStore,
    name: &str,
    value: &str,
    tags: &[(&str, &str)],
    token: &str,
) -> String {
    let arn = store
        .create_secret(name, &SecretString::from(value), tags)
        .await
        .expect("create secret");
    store
        .begin_rotation(&arn, token)
        .await
        .expect("stage rotation");
    arn
}

/// The value under a label, exposed for comparison. Tests compare values with
/// `assert!(a == b)`, never `assert_eq!`, so a failure cannot print one.
pub async fn value(store: &AwsStore, arn: &str, label: &str) -> Option<SecretString> {
    store
        .get_value(arn, VersionSelector::Label(label))
        .await
        .expect("get value")
        .map(|v| v.value)
}

/// Fails the test if a credential the secret stores under AWSCURRENT,
/// AWSPENDING or AWSPREVIOUS appears in `text` (a function's output, error
/// messages), in any of the shapes [`leaks::forms`] lists. A credential is
/// any field [`leaks::is_credential_field`] names (`password`,
/// `client_secret`, `registration_access_token`, `okta_api_token`,
/// `SecretAccessKey`, ...), or the whole value when it is not JSON.
/// The failure names the label, never the value.
pub async fn assert_no_stored_secret_in(store: &AwsStore, arn: &str, text: &str) {
    for label in ["AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"] {
        let Some(stored) = value(store, arn, label).await else {
            continue;
        };
        let leaked = leaks::find_any(&leaks::credentials_in(&stored), text).is_some();
        assert!(
            !leaked,
            "the {label} credential of {arn} appears in the output"
        );
    }
}

/// Fails the test if any of `credentials` (verifiers read from a server, say)
/// appears in `text`, in any shape [`leaks::forms`] lists. `what` names them
/// in the failure, which never prints one.
pub fn assert_none_in(credentials: &[String], what: &str, text: &str) {
    if let Some(index) = leaks::find_any(credentials, text) {
        panic!("{what} #{index} appears in the output");
    }
}

/// Whether two optional secrets hold the same value.
pub fn same(a: &Option<SecretString>, b: &Option<SecretString>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        (None, None) => true,
        _ => false,
    }
}

/// The secret's labels, by version.
pub async fn labels(store: &AwsStore, arn: &str) -> BTreeMap<String, Vec<String>> {
    let described = store.describe(arn).await.expect("describe");
    described
        .versions
        .iter()
        .map(|(id, labels)| {
            let mut labels = labels.to_vec();
            labels.sort();
            (id.to_owned(), labels)
        })
        .collect()
}

/// A fresh random token (version id).
pub fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// cargo-lambda's Lambda emulator, serving the Invoke API (and a Runtime API
/// that a function process polls) on 127.0.0.1; killed when dropped.
pub struct CargoLambda {
    /// The emulator's port.
    pub port: u16,
    _child: tokio::process::Child,
}

impl CargoLambda {
    /// The function name the emulator answers to when it runs no build of its own.
    pub const FUNCTION: &'static str = "_";

    /// Starts `cargo lambda watch --only-lambda-apis`.
    pub async fn start() -> CargoLambda {
        let root = rotor_testbed::moto::workspace_root();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(root.join(".venv/bin/cargo-lambda"))
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(&root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cargo-lambda is missing: run scripts/setup.sh");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return CargoLambda {
                    port,
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cargo lambda watch did not listen on port {port} within 10 s");
    }

    /// The Invoke API endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs a function binary against the emulator's Runtime API.
    pub fn run_function(&self, name: &str) -> tokio::process::Child {
        tokio::process::Command::new(function_binary(name))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt", self.port),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", Self::FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .envs(local_env(moto().endpoint()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("function binary")
    }
}
