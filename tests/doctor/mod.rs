//! `rotor status` and `rotor doctor` against moto (Secrets Manager, and Lambda
//! for the functions' metadata: moto stores a function it is given, it never
//! runs one), the real database servers and the OAuth test server. Each stuck
//! state the crash matrix can leave is made here the way a crash leaves it,
//! then diagnosed, repaired with `--fix`, and rotated again to prove the
//! repaired secret rotates and its credential works.

mod commands;
mod functions;
mod redis;
mod stuck;
mod values;

use std::io::{Read as _, Write as _};
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use rotor_cli::function::function_binary;
use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, SecretStore, SecretString};
use rotor_tests::{labels, moto, moto_store, same, start_function, token, unique, value};
use serde_json::Value;

/// Names and values: a function's environment, a secret's tags.
type Vars = &'static [(&'static str, &'static str)];

/// Runs the `rotor` binary against moto; returns its exit code and stdout.
async fn rotor(args: &[&str]) -> (i32, String) {
    rotor_with(args, &[]).await
}

/// [`rotor`] with extra environment.
async fn rotor_with(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = tokio::process::Command::new(function_binary("rotor"))
        .args(args)
        // The test bed's servers listen on 127.0.0.1, which rotor refuses
        // outside tests.
        .env(rotor_core::settings::LOOPBACK_VAR, "true")
        .envs(env.iter().copied())
        .args(["--endpoint", moto().endpoint()])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run rotor; build it first with cargo build --workspace --bins");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c < 2),
        "rotor {args:?} failed: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout)
}

/// `rotor doctor SECRET --json ...`: exit code and the document.
async fn doctor(arn: &str, extra: &[&str]) -> (i32, Value) {
    doctor_with(arn, extra, &[]).await
}

/// [`doctor`] with extra environment.
async fn doctor_with(arn: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut args = vec!["doctor", arn, "--json"];
    args.extend_from_slice(extra);
    let (code, out) = rotor_with(&args, env).await;
    let doc = serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("doctor's --json is not JSON ({e})"));
    (code, doc)
}

/// The findings' codes.
fn codes(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str().map(str::to_owned))
        .collect()
}

fn lambda() -> aws_sdk_lambda::Client {
    use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(rotor_core::store::aws::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto().endpoint())
        .credentials_provider(Credentials::new(
            "rotor-local",
            "rotor-local",
            None,
            None,
            "t",
        ))
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

/// The execution role moto wants a function to have: IAM's CreateRole, by
/// hand (one query-protocol POST), once per moto server.
fn role() -> &'static str {
    static ROLE: OnceLock<String> = OnceLock::new();
    ROLE.get_or_init(|| {
        let address = moto()
            .endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let body = "Action=CreateRole&Version=2010-05-08&RoleName=rotor-doctor-test&\
            AssumeRolePolicyDocument=%7B%7D";
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: \
            application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 \
            Credential=rotor-local/20260101/us-east-1/iam/aws4_request, \
            SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\
            \r\n{body}",
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(&address).expect("connect to moto");
        stream.write_all(request.as_bytes()).expect("CreateRole");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.contains("<Arn>") || answer.contains("EntityAlreadyExists"),
            "CreateRole: {answer}"
        );
        "arn:aws:iam::123456789012:role/rotor-doctor-test".to_owned()
    })
}

/// A function ARN in moto's account; the function exists once [`deploy`] ran.
fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
}

/// CreateFunction (and AddPermission for Secrets Manager when `invocable`),
/// described as the template describes rotor's function `kind`.
async fn deploy(name: &str, kind: &str, env: &[(&str, &str)], timeout: i32, invocable: bool) {
    deploy_described(
        name,
        &format!("rotor {kind}: test"),
        env,
        timeout,
        invocable,
    )
    .await;
}

/// [`deploy`] with any description.
async fn deploy_described(
    name: &str,
    description: &str,
    env: &[(&str, &str)],
    timeout: i32,
    invocable: bool,
) {
    use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
    // The smallest zip: its end-of-directory record.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend([0u8; 18]);
    let client = lambda();
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .role(role())
        .handler("bootstrap")
        .description(description)
        .timeout(timeout)
        .environment(
            Environment::builder()
                .set_variables(Some(
                    env.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ))
                .build(),
        )
        .code(
            FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction");
    if invocable {
        client
            .add_permission()
            .function_name(name)
            .statement_id("SecretsManagerInvoke")
            .action("lambda:InvokeFunction")
            .principal("secretsmanager.amazonaws.com")
            .send()
            .await
            .expect("AddPermission");
    }
}

/// RotateSecret as Secrets Manager starts it: rotation on with `function`, a
/// version `token` under AWSPENDING without a value. moto, finding no
/// function to invoke (the test deploys it afterwards), stops there: the
/// state a function that crashed before createSecret's PutSecretValue leaves.
async fn start_rotation(arn: &str, function: &str, token: &str) {
    start_rotation_every(arn, function, token, 30).await;
}

/// [`start_rotation`] with a schedule of `days`.
async fn start_rotation_every(arn: &str, function: &str, token: &str, days: i64) {
    let sent = moto()
        .client()
        .rotate_secret()
        .secret_id(arn)
        .client_request_token(token)
        .rotation_lambda_arn(function)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(days)
                .build(),
        )
        .send()
        .await;
    match sent {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceNotFoundException") => {}
        Err(e) => panic!("RotateSecret: {:?}", e.code()),
    }
}

fn options(arn: &str, token: &str) -> RotateOptions {
    RotateOptions {
        secret_id: arn.into(),
        token: Some(token.into()),
        test_only: false,
        step_timeout: Duration::from_secs(60),
    }
}

/// A secret for generic-rotation, with a deployed function set for rotation
/// and, when `pending`, a rotation started that never got a value.
async fn generic_secret(pending: Option<&str>) -> (AwsStore, String, String) {
    let store = moto_store();
    let name = unique("doctor");
    let arn = store
        .create_secret(&name, &SecretString::from("old-value"), &[])
        .await
        .expect("create");
    let function = unique("fn");
    let token = pending.map(str::to_owned).unwrap_or_else(token);
    start_rotation(&arn, &function_arn(&function), &token).await;
    if pending.is_none() {
        store
            .move_label(
                &arn,
                &rotor_core::labels::LabelMove {
                    label: AWSPENDING.into(),
                    to: None,
                    from: Some(token),
                },
            )
            .await
            .expect("unstage");
    }
    deploy(&function, "generic-rotation", &[], 60, true).await;
    (store, arn, name)
}

/// A fresh rotation with generic-rotation completes, and changes the value.
async fn rotates(store: &AwsStore, arn: &str) {
    let before = value(store, arn, AWSCURRENT).await;
    let function = start_function("generic-rotation", &[]).await;
    let run = rotate(store, &function, &options(arn, &token()))
        .await
        .expect("rotate");
    assert!(run.succeeded(), "{}", rotor_cli::rotate::report(&run));
    assert!(!same(&before, &value(store, arn, AWSCURRENT).await));
    assert!(
        labels(store, arn)
            .await
            .values()
            .flatten()
            .all(|l| l != AWSPENDING)
    );
}

/// A secret whose rotation is on and set to a function `unique("fn")`
/// (which the caller deploys), with no rotation in flight: the state of a
/// secret a rotation function serves between rotations. Returns (ARN, function name).
async fn served_by(
    store: &AwsStore,
    name: &str,
    value: &str,
    tags: &[(&str, &str)],
) -> (String, String) {
    let function = unique("fn");
    let arn = secret_for(store, name, value, tags, &function, None).await;
    (arn, function)
}

/// A secret whose rotation is on and set to `function` (not deployed yet, so
/// moto invokes nothing), with a rotation to version `pending` staged without
/// a value, or none in flight.
async fn secret_for(
    store: &AwsStore,
    name: &str,
    value: &str,
    tags: &[(&str, &str)],
    function: &str,
    pending: Option<&str>,
) -> String {
    let arn = store
        .create_secret(name, &SecretString::from(value), tags)
        .await
        .expect("create");
    let staged = pending.map(str::to_owned).unwrap_or_else(token);
    start_rotation(&arn, &function_arn(function), &staged).await;
    if pending.is_none() {
        store
            .move_label(
                &arn,
                &rotor_core::labels::LabelMove {
                    label: AWSPENDING.into(),
                    to: None,
                    from: Some(staged),
                },
            )
            .await
            .expect("unstage");
    }
    arn
}

/// The notes doctor wrote, in one string.
fn notes(doc: &Value) -> String {
    doc["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first finding's text (what and why).
fn first_finding(doc: &Value) -> String {
    let text = |field: &str| {
        doc["findings"][0][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    format!("{} {}", text("what"), text("why"))
}

/// Takes AWSPENDING off `version`.
async fn unstage(store: &AwsStore, arn: &str, version: &str) {
    store
        .move_label(
            arn,
            &rotor_core::labels::LabelMove {
                label: AWSPENDING.into(),
                to: None,
                from: Some(version.to_owned()),
            },
        )
        .await
        .expect("unstage");
}

/// The secret's rotation settings: on or off, the function, the schedule.
async fn settings(arn: &str) -> (bool, Option<String>, Option<i64>) {
    let out = moto()
        .client()
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .expect("describe");
    (
        out.rotation_enabled().unwrap_or(false),
        out.rotation_lambda_arn()
            .filter(|f| !f.is_empty())
            .map(str::to_owned),
        out.rotation_rules()
            .and_then(|r| r.automatically_after_days())
            .filter(|days| *days > 0),
    )
}
