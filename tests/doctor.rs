//! `rotor status` and `rotor doctor` against moto (Secrets Manager, and Lambda
//! for the functions' metadata: moto stores a function it is given, it never
//! runs one), the real database servers and the OAuth test server. Each stuck
//! state the crash matrix can leave is made here the way a crash leaves it,
//! then diagnosed, repaired with `--fix`, and rotated again to prove the
//! repaired secret rotates and its credential works.

use std::io::{Read as _, Write as _};
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use rotor_cli::function::function_binary;
use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::ExposeSecret;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, SecretStore, SecretString};
use rotor_testbed::db::{TlsMode, random_password};
use rotor_testbed::redis_server::{ADMIN_USER, RedisServer};
use rotor_tests::commands::{aws_cli_available, printed_commands, run_printed};
use rotor_tests::target_db::Db;
use rotor_tests::*;
use serde_json::{Value, json};

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
        let body = "Action=CreateRole&Version=2010-05-08&RoleName=rotor-doctor-test&AssumeRolePolicyDocument=%7B%7D";
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=rotor-local/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_secret_has_no_findings_and_status_says_ok() {
    let (_store, arn, name) = generic_secret(None).await;
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(codes(&doc), Vec::<String>::new());
    assert_eq!(code, 0);
    assert_eq!(doc["kind"], "generic-rotation");

    let (code, out) = rotor(&["status", "--prefix", &name, "--json"]).await;
    let doc: Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(doc["secrets"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["secrets"][0]["health"], "ok");
    assert_eq!(code, 0);
}

/// The crash before createSecret stored a value: doctor cancels the rotation
/// (nothing was made, nothing is lost), and the next rotation completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_version_without_a_value_is_cancelled() {
    let pending = token();
    let (store, arn, name) = generic_secret(Some(&pending)).await;

    // Young: in flight, not stuck; --fix leaves a running rotation alone.
    let (code, doc) = doctor(&arn, &["--fix", "--yes"]).await;
    assert_eq!(code, 0, "{doc}");
    assert!(labels(&store, &arn).await[&pending].contains(&AWSPENDING.to_owned()));

    let (code, doc) = doctor(&arn, &["--stuck-after-minutes", "0"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["pending-without-value"]);
    assert_eq!(doc["findings"][0]["repair"]["repair"], "cancel");
    let (code, out) = rotor(&[
        "status",
        "--prefix",
        &name,
        "--json",
        "--stuck-after-minutes",
        "0",
    ])
    .await;
    assert_eq!(code, 1);
    let status: Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(status["secrets"][0]["health"], "stuck");
    assert_eq!(status["secrets"][0]["in_flight"]["has_value"], false);

    let (code, doc) = doctor(&arn, &["--stuck-after-minutes", "0", "--fix", "--yes"]).await;
    assert_eq!(codes(&doc), Vec::<String>::new());
    assert_eq!(code, 0);
    rotates(&store, &arn).await;
}

/// finishSecret moved AWSCURRENT and died before removing AWSPENDING.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_label_on_the_current_version_is_removed() {
    let (store, arn, _) = generic_secret(None).await;
    let version = token();
    store
        .put_value(
            &arn,
            NewVersion {
                version_id: &version,
                value: &SecretString::from("newer"),
                labels: &[AWSCURRENT, AWSPENDING],
                rotation_token: None,
            },
        )
        .await
        .expect("put");
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["pending-on-current"]);
    // Without --yes a repair needs a "y" on stdin; none came, nothing changed.
    let (code, doc) = doctor(&arn, &["--fix"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["pending-on-current"]);
    let (code, doc) = doctor(&arn, &["--fix", "--yes"]).await;
    assert_eq!(codes(&doc), Vec::<String>::new());
    assert_eq!(code, 0);
    let after = labels(&store, &arn).await;
    assert_eq!(after[&version], [AWSCURRENT]);
    rotates(&store, &arn).await;
}

/// The rotation function was deleted: reported with the command that points
/// the secret at one; the stuck rotation it left can still be cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_function_is_reported() {
    let store = moto_store();
    let arn = store
        .create_secret(&unique("doctor"), &SecretString::from("v"), &[])
        .await
        .expect("create");
    start_rotation(&arn, &function_arn(&unique("gone")), &token()).await;
    let (code, doc) = doctor(&arn, &["--stuck-after-minutes", "0"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["function-missing", "pending-without-value"]);
    // Against an emulator, the function is set by the local runner (which
    // tests it with the function's binary); RotateSecret would leave the
    // emulator's copy of the value AWSPENDING.
    let fix = doc["findings"][0]["fix"].to_string();
    assert!(
        fix.contains("--rotation-function FUNCTION_ARN --test-only"),
        "{fix}"
    );

    let (code, doc) = doctor(&arn, &["--stuck-after-minutes", "0", "--fix", "--yes"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["function-missing"]);
    rotates(&store, &arn).await;
}

/// A function Secrets Manager may not invoke, with a short timeout and a
/// setting its own parser refuses.
#[tokio::test(flavor = "multi_thread")]
async fn lambda_metadata_problems_are_findings() {
    let store = moto_store();
    let arn = store
        .create_secret(&unique("doctor"), &SecretString::from("v"), &[])
        .await
        .expect("create");
    let function = unique("fn");
    let pending = token();
    start_rotation(&arn, &function_arn(&function), &pending).await;
    store
        .move_label(
            &arn,
            &rotor_core::labels::LabelMove {
                label: AWSPENDING.into(),
                to: None,
                from: Some(pending),
            },
        )
        .await
        .expect("unstage");
    deploy(
        &function,
        "rds-rotation",
        &[("ROTATION_STRATEGY", "sideways")],
        3,
        false,
    )
    .await;
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    let mut found = codes(&doc);
    found.sort();
    assert_eq!(
        found,
        [
            "current-unparsable",
            "function-settings",
            "not-invocable",
            "short-timeout"
        ]
    );
    let (code, out) = rotor(&["status", "--prefix", &arn_name(&arn)]).await;
    assert_eq!(code, 1);
    assert!(out.contains("misconfigured"), "{out}");
}

fn arn_name(arn: &str) -> String {
    let name = arn.rsplit(':').next().unwrap_or(arn);
    // Secrets Manager appends -XXXXXX to the name in the ARN.
    name[..name.len().saturating_sub(7)].to_owned()
}

/// rds: a value the function cannot parse, and a master secret it cannot
/// read, found through rds-rotation's own parser.
#[tokio::test(flavor = "multi_thread")]
async fn unparsable_values_and_unreadable_masters_are_findings() {
    let store = moto_store();
    let broken = store
        .create_secret(
            &unique("doctor"),
            &SecretString::from(r#"{"engine":"postgres","host":"db.example","username":"u"}"#),
            &[],
        )
        .await
        .expect("create");
    let (code, doc) = doctor(&broken, &["--kind", "rds"]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["current-unparsable"]);
    assert!(
        doc["findings"][0]["what"]
            .as_str()
            .is_some_and(|w| w.contains("password")),
        "{doc}"
    );

    let orphan = store
        .create_secret(
            &unique("doctor"),
            &SecretString::from(
                json!({
                    "engine": "postgres", "host": "db.example", "username": "u",
                    "password": "p", "masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-master-AbCdEf"
                })
                .to_string(),
            ),
            &[],
        )
        .await
        .expect("create");
    let (code, doc) = doctor(&orphan, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["master-unreadable"]);
}

/// The crash after setSecret: the database already has the pending password
/// and AWSCURRENT no longer logs in. --connect shows it; --fix resumes the
/// rotation with its own token (never deletes the pending value), and the
/// secret ends rotated with a credential that logs in.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_version_with_a_value_is_resumed_and_connect_checks_logins() {
    for engine in ["postgres", "mariadb"] {
        let db = Db::start(engine, TlsMode::Required);
        let ca = db.ca_path();
        let user = format!("doc{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let password = random_password();
        db.create_user(&user, &password);
        let store = moto_store();
        let arn = store
            .create_secret(
                &unique("doctor"),
                &SecretString::from(db.secret(&user, &password, json!({}))),
                &[],
            )
            .await
            .expect("create");
        let function = unique("fn");
        let pending = token();
        start_rotation(&arn, &function_arn(&function), &pending).await;
        deploy(
            &function,
            "rds-rotation",
            &[("ROTATION_STRATEGY", "single")],
            60,
            true,
        )
        .await;

        let env = [
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", "single"),
        ];
        let local = start_function("rds-rotation", &env).await;
        for step_name in ["createSecret", "setSecret"] {
            step(&local, &event(&arn, &pending, step_name))
                .await
                .unwrap_or_else(|(kind, _)| panic!("{step_name}: {kind}"));
        }
        drop(local);

        let connect = ["--connect", "--stuck-after-minutes", "0"];
        let trust = [("SSL_CERT_FILE", ca.as_str())];
        let (code, doc) = doctor_with(&arn, &connect, &trust).await;
        assert_eq!(code, 1);
        assert_eq!(
            codes(&doc),
            ["current-does-not-work", "pending-with-value"],
            "{engine}"
        );
        assert_eq!(doc["findings"][1]["repair"]["repair"], "resume");

        let cert = format!("SSL_CERT_FILE={ca}");
        let (code, doc) = doctor_with(
            &arn,
            &[
                "--connect",
                "--stuck-after-minutes",
                "0",
                "--fix",
                "--yes",
                "--function",
                "rds-rotation",
                "--env",
                &cert,
            ],
            &trust,
        )
        .await;
        assert_eq!(codes(&doc), Vec::<String>::new(), "{engine}: {doc}");
        assert_eq!(code, 0);
        assert_eq!(labels(&store, &arn).await[&pending], [AWSCURRENT]);
        let current = value(&store, &arn, AWSCURRENT).await.expect("current");
        assert!(db.value_logs_in(&current), "{engine}");
    }
}

/// --connect against the OAuth test server: a client_credentials grant with
/// AWSCURRENT's client secret, through oauth-rotation's own parser and grant.
#[tokio::test(flavor = "multi_thread")]
async fn connect_asks_the_provider_for_a_token() {
    use rotor_testbed::oauth_server::{AuthMethod, OAuthServer};
    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    let method = AuthMethod::ClientSecretBasic;
    let client = server.register_client(method).await.expect("register");
    let good = rfc7592_secret(&server, &client, method, None);
    let mut wrong: Value = serde_json::from_str(&good).expect("json");
    wrong["client_secret"] = json!("not-the-secret");
    let store = moto_store();
    let ca = server.ca_path().display().to_string();
    let trust = [("SSL_CERT_FILE", ca.as_str())];
    for (value, works) in [(good, true), (wrong.to_string(), false)] {
        let arn = store
            .create_secret(&unique("doctor"), &SecretString::from(value), &[])
            .await
            .expect("create");
        let (code, doc) = doctor_with(&arn, &["--connect"], &trust).await;
        assert_eq!(doc["kind"], "oauth-rotation");
        if works {
            assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
            assert_eq!(code, 0);
        } else {
            assert_eq!(codes(&doc), ["current-does-not-work"]);
            assert_eq!(code, 1);
            assert!(!doc.to_string().contains("not-the-secret"));
        }
    }
}

/// rds, alternating users on MariaDB: a value the function cannot parse, then
/// a master secret that never agreed to serve the secret (the core's
/// rotor:serves rule). Neither has a safe automatic repair; each finding's own
/// fix, done by hand, leaves a secret that rotates and logs in.
#[tokio::test(flavor = "multi_thread")]
async fn unparsable_values_and_masters_that_did_not_agree_are_fixed_by_their_commands() {
    let db = Db::start("mariadb", TlsMode::Required);
    let ca = db.ca_path();
    let store = moto_store();
    let master = store
        .create_secret(
            &unique("master"),
            &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
            &[],
        )
        .await
        .expect("create master");
    let old = random_password();
    db.create_user("svc", &old);
    let name = unique("doctor");
    let arn = store
        .create_secret(
            &name,
            &SecretString::from(r#"{"engine":"mariadb","host":"127.0.0.1"}"#),
            &[],
        )
        .await
        .expect("create");
    let function = unique("fn");
    let staged = token();
    start_rotation(&arn, &function_arn(&function), &staged).await;
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
    deploy(
        &function,
        "rds-rotation",
        &[("ROTATION_STRATEGY", "alternating")],
        60,
        true,
    )
    .await;

    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["current-unparsable"]);

    // The finding's fix: put-secret-value with a value that parses.
    store
        .put_value(
            &arn,
            NewVersion {
                version_id: &token(),
                value: &SecretString::from(db.secret("svc", &old, json!({"masterarn": master}))),
                labels: &[AWSCURRENT],
                rotation_token: None,
            },
        )
        .await
        .expect("put");
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["master-unreadable"]);
    assert!(doc.to_string().contains("rotor:serves"), "{doc}");

    // The master's owner agrees to serve it.
    moto()
        .client()
        .tag_resource()
        .secret_id(&master)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("rotor:serves")
                .value(&name)
                .build(),
        )
        .send()
        .await
        .expect("tag");
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);

    let local = start_function(
        "rds-rotation",
        &[
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", "alternating"),
        ],
    )
    .await;
    let run = rotate(&store, &local, &options(&arn, &token()))
        .await
        .expect("rotate");
    assert!(run.succeeded(), "{}", rotor_cli::rotate::report(&run));
    let current = value(&store, &arn, AWSCURRENT).await.expect("current");
    assert!(db.value_logs_in(&current));
}

/// generic-rotation with a webhook: the signing-key secret must agree to
/// serve the secret (rotor:serves), as the function itself requires.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_key_that_did_not_agree_is_a_finding() {
    let store = moto_store();
    let key = store
        .create_secret(&unique("hook-key"), &SecretString::from("k"), &[])
        .await
        .expect("create key");
    let name = unique("doctor");
    let arn = store
        .create_secret(
            &name,
            &SecretString::from("v"),
            &[
                ("rotor:webhook", "https://hooks.example.com/rotor"),
                ("rotor:webhook-key-secret", key.as_str()),
            ],
        )
        .await
        .expect("create");
    let function = unique("fn");
    let staged = token();
    start_rotation(&arn, &function_arn(&function), &staged).await;
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
    deploy(
        &function,
        "generic-rotation",
        &[(
            "ROTOR_WEBHOOK_ALLOWED_PREFIXES",
            "https://hooks.example.com/",
        )],
        60,
        true,
    )
    .await;
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["webhook-key-unreadable"], "{doc}");
    // status --filter matches the tag's key and value together.
    let filter = format!("rotor:webhook-key-secret={key}");
    let (_, out) = rotor(&["status", "--filter", &filter, "--json"]).await;
    let status: Value = serde_json::from_str(&out).expect("status --json");
    let names: Vec<&str> = status["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, [name.as_str()]);
    moto()
        .client()
        .tag_resource()
        .secret_id(&key)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("rotor:serves")
                .value(&name)
                .build(),
        )
        .send()
        .await
        .expect("tag");
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);
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

/// Stores `value` as the secret's new AWSCURRENT.
async fn put_current(store: &AwsStore, arn: &str, value: &str) {
    store
        .put_value(
            arn,
            NewVersion {
                version_id: &token(),
                value: &SecretString::from(value),
                labels: &[AWSCURRENT],
                rotation_token: None,
            },
        )
        .await
        .expect("put");
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

fn redis_user_secret(redis: &RedisServer, user: &str, pw: &SecretString, extra: Value) -> String {
    let mut value = json!({
        "host": redis.host(),
        "port": redis.tls_port(),
        "username": user,
        "password": pw.expose_secret(),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut value, extra) {
        map.extend(more);
    }
    value.to_string()
}

/// redis-rotation as the template deploys it, with the settings that made
/// doctor take it for rds-rotation (MASTER_SECRET_ARN) or oauth-rotation
/// (REVOKE_PREVIOUS): a healthy self-managed user's secret has no findings,
/// --connect logs in to the real Redis as that user, a wrong password is
/// reported, and an admin secret that never agreed to serve the secret is
/// found by the core's consent rule.
#[tokio::test(flavor = "multi_thread")]
async fn a_self_managed_redis_secret_is_read_and_logged_in_as_redis_rotation_does() {
    let redis =
        RedisServer::start().unwrap_or_else(|e| panic!("cannot start the Redis server: {e:#}"));
    let ca = redis.ca_path().display().to_string();
    let trust = [("SSL_CERT_FILE", ca.as_str())];
    let store = moto_store();
    let admin = store
        .create_secret(
            &unique("redis-admin"),
            &SecretString::from(redis_user_secret(
                &redis,
                ADMIN_USER,
                &redis.admin_password(),
                json!({}),
            )),
            &[],
        )
        .await
        .expect("create admin");
    let user = format!("app{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = random_password();
    redis
        .create_user(&user, &password, &[])
        .expect("ACL SETUSER");
    let (arn, function) = served_by(
        &store,
        &unique("doctor"),
        &redis_user_secret(&redis, &user, &password, json!({})),
        &[],
    )
    .await;
    deploy(
        &function,
        "redis-rotation",
        &[
            ("MASTER_SECRET_ARN", admin.as_str()),
            ("REVOKE_PREVIOUS", "next-rotation"),
        ],
        60,
        true,
    )
    .await;

    let (code, doc) = doctor_with(&arn, &[], &trust).await;
    assert_eq!(doc["kind"], "redis-rotation", "{doc}");
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);

    let (code, doc) = doctor_with(&arn, &["--connect"], &trust).await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);
    let said = notes(&doc);
    assert!(
        said.contains("--connect: AWSCURRENT works") && said.contains(&user),
        "{said}"
    );

    // A password the server refuses.
    let wrong = random_password();
    put_current(
        &store,
        &arn,
        &redis_user_secret(&redis, &user, &wrong, json!({})),
    )
    .await;
    let (code, doc) = doctor_with(&arn, &["--connect"], &trust).await;
    assert_eq!(codes(&doc), ["current-does-not-work"], "{doc}");
    assert_eq!(code, 1);
    let text = doc.to_string();
    assert!(text.contains(&user), "{text}");
    for secret in [&wrong, &password, &redis.admin_password()] {
        assert!(!text.contains(secret.expose_secret()));
    }

    // An admin secret named in masterarn that does not serve this secret.
    let other_admin = store
        .create_secret(
            &unique("redis-admin"),
            &SecretString::from(redis_user_secret(
                &redis,
                ADMIN_USER,
                &redis.admin_password(),
                json!({}),
            )),
            &[],
        )
        .await
        .expect("create admin");
    put_current(
        &store,
        &arn,
        &redis_user_secret(&redis, &user, &password, json!({"masterarn": other_admin})),
    )
    .await;
    let (code, doc) = doctor_with(&arn, &[], &trust).await;
    assert_eq!(codes(&doc), ["master-unreadable"], "{doc}");
    assert!(doc.to_string().contains("rotor:serves"), "{doc}");
    assert_eq!(code, 1);
}

/// An ElastiCache or MemoryDB user's secret (`user_arn`, as AWS's own
/// function reads it) is parsed by redis-rotation's managed parser: healthy,
/// it has no findings; --connect logs in where the secret names an endpoint
/// and says it cannot where it names none; a user the deployer does not list
/// in MANAGED_USER_ARNS, and a user_arn that is no cache user's, are findings.
#[tokio::test(flavor = "multi_thread")]
async fn a_managed_redis_secret_is_read_by_redis_rotations_managed_parser() {
    let redis =
        RedisServer::start().unwrap_or_else(|e| panic!("cannot start the Redis server: {e:#}"));
    let ca = redis.ca_path().display().to_string();
    let trust = [("SSL_CERT_FILE", ca.as_str())];
    let store = moto_store();
    let user = format!("app{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = random_password();
    redis
        .create_user(&user, &password, &[])
        .expect("ACL SETUSER");
    let user_arn = format!("arn:aws:memorydb:us-east-1:123456789012:user/{user}");
    let with_endpoint = redis_user_secret(&redis, &user, &password, json!({"user_arn": user_arn}));
    let (arn, function) = served_by(&store, &unique("doctor"), &with_endpoint, &[]).await;
    deploy(
        &function,
        "redis-rotation",
        &[("MANAGED_USER_ARNS", user_arn.as_str())],
        60,
        true,
    )
    .await;

    let (code, doc) = doctor_with(&arn, &["--connect"], &trust).await;
    assert_eq!(doc["kind"], "redis-rotation", "{doc}");
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);
    let said = notes(&doc);
    assert!(
        said.contains("--connect: AWSCURRENT works") && said.contains(&user),
        "{said}"
    );

    // AWS's shape without an endpoint: nothing to log in at.
    let bare =
        json!({"user_arn": user_arn, "username": user, "password": password.expose_secret()});
    put_current(&store, &arn, &bare.to_string()).await;
    let (code, doc) = doctor_with(&arn, &["--connect"], &trust).await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);
    let said = notes(&doc);
    assert!(
        said.contains("--connect: not checked") && said.contains("host"),
        "{said}"
    );

    // A user the deployer does not let the function change.
    let stranger = json!({
        "user_arn": "arn:aws:memorydb:us-east-1:123456789012:user/someone-else",
        "username": "someone-else",
    });
    put_current(&store, &arn, &stranger.to_string()).await;
    let (code, doc) = doctor_with(&arn, &[], &trust).await;
    assert_eq!(codes(&doc), ["managed-user-not-allowed"], "{doc}");
    assert!(first_finding(&doc).contains("MANAGED_USER_ARNS"), "{doc}");
    assert_eq!(code, 1);

    // A user_arn that names no cache user.
    let not_a_user = json!({
        "user_arn": "arn:aws:rds:us-east-1:123456789012:db:orders",
        "username": "app",
    });
    put_current(&store, &arn, &not_a_user.to_string()).await;
    let (code, doc) = doctor_with(&arn, &[], &trust).await;
    assert_eq!(codes(&doc), ["current-unparsable"], "{doc}");
    assert!(first_finding(&doc).contains("user_arn"), "{doc}");
    assert_eq!(code, 1);
}

/// Which function a secret is for comes from its rotation function: the
/// template's description, else the function's name, else its settings, the
/// value's shape deciding only between the functions those settings fit.
#[tokio::test(flavor = "multi_thread")]
async fn the_function_and_the_value_say_which_function_a_secret_is_for() {
    let store = moto_store();
    let redis_value = r#"{"host":"cache.example","username":"app","password":"pw"}"#;
    let oauth_value = json!({
        "provider": "keycloak", "client_id": "app", "client_secret": "s",
        "token_endpoint": "https://idp.example/realms/r/protocol/openid-connect/token",
        "admin_url": "https://idp.example/admin/realms/r", "management_secret_arn": "m"
    })
    .to_string();
    // (description, name suffix, settings, value, kind)
    let cases: [(&str, &str, Vars, &str, &str); 5] = [
        (
            "caches",
            "-redis-rotation",
            &[],
            redis_value,
            "redis-rotation",
        ),
        (
            "caches",
            "",
            &[("MASTER_SECRET_ARN", "admin")],
            redis_value,
            "redis-rotation",
        ),
        (
            "caches",
            "",
            &[("REVOKE_PREVIOUS", "at-finish")],
            redis_value,
            "redis-rotation",
        ),
        (
            "clients",
            "",
            &[("REVOKE_PREVIOUS", "at-finish")],
            &oauth_value,
            "oauth-rotation",
        ),
        (
            "caches",
            "",
            &[("MANAGED_USER_ARNS", "")],
            redis_value,
            "redis-rotation",
        ),
    ];
    for (description, suffix, env, value, kind) in cases {
        let name = format!("{}{suffix}", unique("fn"));
        let arn = secret_for(&store, &unique("doctor"), value, &[], &name, None).await;
        deploy_described(&name, description, env, 60, true).await;
        let (_, doc) = doctor(&arn, &[]).await;
        assert_eq!(doc["kind"], kind, "{description} {suffix} {env:?}: {doc}");
        assert!(
            !codes(&doc).contains(&"current-unparsable".to_owned()),
            "{kind}: {doc}"
        );
    }
}

/// generic-rotation logs in nowhere: --connect on a healthy generic secret
/// says there is nothing to log in to, and is no finding.
#[tokio::test(flavor = "multi_thread")]
async fn connect_on_a_generic_secret_has_nothing_to_log_in_to() {
    let (_store, arn, _) = generic_secret(None).await;
    let (code, doc) = doctor(&arn, &["--connect"]).await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);
    assert!(notes(&doc).contains("nothing to log in to"), "{doc}");
}

/// generic-rotation refuses a JSON value without the fields its settings
/// regenerate (`password` by default, rotor:fields otherwise), and a value
/// that is not JSON when fields are named: doctor reads the value through the
/// same rule, and so does a value that starts like JSON but is none (with no
/// fields named the function refuses it rather than replace it whole).
#[tokio::test(flavor = "multi_thread")]
async fn a_generic_value_without_the_fields_its_settings_name_is_a_finding() {
    let store = moto_store();
    let broken = r#"{"username":"app","password":"x""#;
    let cases: [(&str, Vars, &[&str], &str); 5] = [
        (r#"{"username":"app","password":"x"}"#, &[], &[], ""),
        (
            r#"{"username":"app"}"#,
            &[],
            &["current-unparsable"],
            "\"password\"",
        ),
        (
            r#"{"username":"app","password":"x"}"#,
            &[("rotor:fields", "password api_key")],
            &["current-unparsable"],
            "\"api_key\"",
        ),
        (
            broken,
            &[("rotor:fields", "password")],
            &["current-unparsable"],
            "not a JSON object",
        ),
        (broken, &[], &["current-unparsable"], "rotor:format"),
    ];
    for (value, tags, expected, words) in cases {
        let (arn, function) = served_by(&store, &unique("doctor"), value, tags).await;
        deploy(&function, "generic-rotation", &[], 60, true).await;
        let (code, doc) = doctor(&arn, &[]).await;
        assert_eq!(doc["kind"], "generic-rotation");
        assert_eq!(codes(&doc), expected, "{value} {tags:?}: {doc}");
        assert!(first_finding(&doc).contains(words), "{doc}");
        let needs_attention = expected.contains(&"current-unparsable");
        assert_eq!(code, i32::from(needs_attention), "{doc}");
    }
}

/// `rotor status` names the rotor function behind every secret (each one the
/// template deploys) and calls a secret misconfigured when its function's
/// own settings parser refuses the settings, or when it is the scheduler.
#[tokio::test(flavor = "multi_thread")]
async fn status_knows_every_function_the_template_deploys() {
    let store = moto_store();
    let prefix = unique("status");
    let cases: [(&str, Vars, &str); 6] = [
        ("generic-rotation", &[], "ok"),
        ("rds-rotation", &[("ROTATION_STRATEGY", "single")], "ok"),
        ("oauth-rotation", &[], "ok"),
        ("redis-rotation", &[], "ok"),
        (
            "redis-rotation",
            &[("REVOKE_PREVIOUS", "sometimes")],
            "misconfigured",
        ),
        ("rotation-scheduler", &[], "misconfigured"),
    ];
    let mut expected = Vec::new();
    for (n, (kind, env, health)) in cases.iter().enumerate() {
        let name = format!("{prefix}/{n}");
        let (_, function) = served_by(&store, &name, "v", &[]).await;
        deploy(&function, kind, env, 600, true).await;
        expected.push((name, kind.to_string(), health.to_string()));
    }
    let (code, out) = rotor(&["status", "--prefix", &prefix, "--json"]).await;
    assert_eq!(code, 1);
    let doc: Value = serde_json::from_str(&out).expect("status --json");
    let mut seen: Vec<(String, String, String)> = doc["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["kind"].as_str().unwrap_or_default().to_owned(),
                s["health"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, expected, "{doc}");
    let reasons = doc.to_string();
    assert!(reasons.contains("REVOKE_PREVIOUS"), "{reasons}");
    assert!(reasons.contains("rotation-scheduler"), "{reasons}");
}

/// oauth-rotation against an RFC 7592 server: the server issued the new
/// secret (and retired the old one), and Secrets Manager refused to store it
/// (ValueNotStored). The pending version has no value, yet cancelling it would
/// throw away the only recovery path the function's error names: retrying the
/// rotation with that version. doctor offers Resume there, never Cancel, and
/// --fix completes the rotation.
#[tokio::test(flavor = "multi_thread")]
async fn an_rfc7592_value_that_was_not_stored_is_resumed_never_cancelled() {
    use rotor_testbed::oauth_server::{AuthMethod, OAuthServer};
    use rotor_testbed::sm_proxy::{Fault, SmProxy};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    let method = AuthMethod::ClientSecretBasic;
    let client = server.register_client(method).await.expect("register");
    let ca = server.ca_path().display().to_string();
    let trust = [("SSL_CERT_FILE", ca.as_str())];
    let store = moto_store();
    let function = unique("fn");
    let pending = token();
    let arn = secret_for(
        &store,
        &unique("doctor"),
        &rfc7592_secret(&server, &client, method, None),
        &[],
        &function,
        Some(&pending),
    )
    .await;
    deploy(&function, "oauth-rotation", &[], 120, true).await;

    // Every PutSecretValue fails as a KMS key that refuses does.
    let refuse = Arc::new(AtomicBool::new(true));
    let plan = refuse.clone();
    let sm = SmProxy::with_faults(moto().endpoint(), move |operation, _, _| {
        (operation == "PutSecretValue" && plan.load(Ordering::SeqCst))
            .then_some(Fault::EncryptionFailure)
    })
    .await
    .expect("proxy");
    let local = start_function_at("oauth-rotation", sm.endpoint(), &trust).await;
    let (kind, message) = step(&local, &event(&arn, &pending, "createSecret"))
        .await
        .expect_err("the value cannot be stored");
    assert_eq!(kind, "NotRetryable.ValueNotStored", "{message}");
    refuse.store(false, Ordering::SeqCst);
    drop(local);

    let (code, doc) = doctor_with(&arn, &["--stuck-after-minutes", "0"], &trust).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&doc), ["pending-without-value"], "{doc}");
    assert_eq!(doc["findings"][0]["repair"]["repair"], "resume", "{doc}");
    let fix = doc["findings"][0]["fix"].to_string();
    assert!(
        !fix.contains("cancel") && !fix.contains("--remove-from-version-id"),
        "{fix}"
    );

    let cert = format!("SSL_CERT_FILE={ca}");
    let (code, doc) = doctor_with(
        &arn,
        &[
            "--connect",
            "--stuck-after-minutes",
            "0",
            "--fix",
            "--yes",
            "--function",
            "oauth-rotation",
            "--env",
            &cert,
        ],
        &trust,
    )
    .await;
    assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
    assert_eq!(code, 0);
    assert_eq!(labels(&store, &arn).await[&pending], [AWSCURRENT]);
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

/// `rotor rotate` (a rotation, and --test-only) leaves the secret's rotation
/// settings as it found them: the function, deployed in the emulator or not,
/// the schedule, on or off; status and doctor still find nothing wrong. A
/// secret without rotation keeps rotation off, and the runner says what the
/// emulator records of its staging.
#[tokio::test(flavor = "multi_thread")]
async fn rotate_keeps_the_rotation_settings_it_found() {
    let store = moto_store();
    for deployed in [true, false] {
        for extra in [&["--test-only"][..], &[]] {
            let name = unique("keep");
            let arn = store
                .create_secret(&name, &SecretString::from("v1"), &[])
                .await
                .expect("create");
            let function = unique("fn");
            let staged = token();
            start_rotation_every(&arn, &function_arn(&function), &staged, 7).await;
            unstage(&store, &arn, &staged).await;
            if deployed {
                deploy(&function, "generic-rotation", &[], 60, true).await;
            }
            let before = settings(&arn).await;
            assert_eq!(before, (true, Some(function_arn(&function)), Some(7)));
            let mut args = vec!["rotate", name.as_str()];
            args.extend_from_slice(extra);
            let (code, out) = rotor(&args).await;
            assert_eq!(code, 0, "{out}");
            assert_eq!(
                settings(&arn).await,
                before,
                "deployed {deployed}, {extra:?}: {out}"
            );
            assert!(out.contains("rotation settings unchanged"), "{out}");
            if deployed {
                let (code, doc) = doctor(&arn, &[]).await;
                assert_eq!(codes(&doc), Vec::<String>::new(), "{doc}");
                assert_eq!(code, 0);
                let (code, out) = rotor(&["status", "--prefix", &name]).await;
                assert_eq!(code, 0, "{out}");
            }
        }
    }
    for extra in [&["--test-only"][..], &[]] {
        let name = unique("off");
        let arn = store
            .create_secret(&name, &SecretString::from("v1"), &[])
            .await
            .expect("create");
        let mut args = vec!["rotate", name.as_str()];
        args.extend_from_slice(extra);
        let (code, out) = rotor(&args).await;
        assert_eq!(code, 0, "{out}");
        let (enabled, _, _) = settings(&arn).await;
        assert!(!enabled, "{extra:?}: {out}");
        assert!(out.contains("rotation stays off"), "{out}");
        let (code, out) = rotor(&["status", "--prefix", &name]).await;
        assert_eq!(code, 0, "{out}");
        let (code, doc) = doctor(&arn, &[]).await;
        assert_eq!(code, 0, "{doc}");
    }
}

/// A rotation in flight for less than --stuck-after-minutes may still be
/// running: doctor says when --fix may touch it and how to override, and
/// --fix says why it did not act, rather than "nothing to repair".
#[tokio::test(flavor = "multi_thread")]
async fn a_young_rotation_says_when_fix_may_touch_it() {
    let pending = token();
    let (store, arn, _) = generic_secret(Some(&pending)).await;
    let (code, doc) = doctor(&arn, &[]).await;
    assert_eq!(code, 0, "{doc}");
    assert_eq!(codes(&doc), ["pending-without-value"]);
    assert_eq!(doc["findings"][0]["health"], "warning", "{doc}");
    let finding = doc["findings"][0].to_string();
    assert!(
        finding.contains("60 minutes") && finding.contains("UTC"),
        "{finding}"
    );
    assert!(finding.contains("--stuck-after-minutes 0"), "{finding}");

    let (code, out) = rotor(&["doctor", &arn, "--fix", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("not repaired") && out.contains("--stuck-after-minutes 0"),
        "{out}"
    );
    assert!(labels(&store, &arn).await[&pending].contains(&AWSPENDING.to_owned()));
}

/// The findings in `status --json`'s one secret.
fn status_codes(status: &Value) -> Vec<String> {
    status["secrets"][0]["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str().map(str::to_owned))
        .collect()
}

/// status and doctor describe a secret in the same terms: the same finding
/// codes, `attention` a boolean in both, and a warning is "warning", never
/// "ok".
#[tokio::test(flavor = "multi_thread")]
async fn status_and_doctor_json_use_the_same_terms() {
    let stuck = ["--stuck-after-minutes", "0"];
    // A stuck rotation, a missing function, and nothing wrong.
    let pending = token();
    let (_, in_flight, in_flight_name) = generic_secret(Some(&pending)).await;
    let store = moto_store();
    let missing_name = unique("doctor");
    let missing = store
        .create_secret(&missing_name, &SecretString::from("v"), &[])
        .await
        .expect("create");
    let staged = token();
    start_rotation(&missing, &function_arn(&unique("gone")), &staged).await;
    unstage(&store, &missing, &staged).await;
    let (_, healthy, healthy_name) = generic_secret(None).await;
    for (arn, name, attention) in [
        (&in_flight, &in_flight_name, true),
        (&missing, &missing_name, true),
        (&healthy, &healthy_name, false),
    ] {
        let (_, doc) = doctor(arn, &stuck).await;
        let mut args = vec!["status", "--prefix", name.as_str(), "--json"];
        args.extend_from_slice(&stuck);
        let (_, out) = rotor(&args).await;
        let status: Value = serde_json::from_str(&out).expect("status --json");
        assert_eq!(status_codes(&status), codes(&doc), "{status}\n{doc}");
        assert_eq!(doc["attention"], json!(attention), "{doc}");
        assert_eq!(status["attention"], json!(attention), "{status}");
    }
    // Young: a warning in doctor, in its JSON too.
    let (_, doc) = doctor(&in_flight, &[]).await;
    assert_eq!(doc["findings"][0]["health"], "warning", "{doc}");
    assert_eq!(doc["attention"], json!(false), "{doc}");
}

/// A stuck or misconfigured state to make afresh for each command tried.
#[derive(Clone, Copy, Debug)]
enum Situation {
    /// A rotation without a value, younger than --stuck-after-minutes.
    YoungWithoutValue,
    /// The same, stuck.
    StuckWithoutValue,
    /// createSecret stored a value, then the rotation stopped.
    StuckWithValue,
    /// AWSPENDING left on the AWSCURRENT version.
    PendingOnCurrent,
    /// The rotation function does not exist.
    FunctionMissing,
    /// rds-rotation that Secrets Manager may not invoke, with a short
    /// timeout, settings it refuses and a value it cannot parse.
    BrokenFunctionAndValue,
}

impl Situation {
    const ALL: [Situation; 6] = [
        Situation::YoungWithoutValue,
        Situation::StuckWithoutValue,
        Situation::StuckWithValue,
        Situation::PendingOnCurrent,
        Situation::FunctionMissing,
        Situation::BrokenFunctionAndValue,
    ];

    /// Whether a rotation is in flight (which each repair must end).
    fn in_flight(self) -> bool {
        matches!(
            self,
            Situation::YoungWithoutValue
                | Situation::StuckWithoutValue
                | Situation::StuckWithValue
                | Situation::PendingOnCurrent
        )
    }

    /// The doctor (and status) options that find it.
    fn options(self) -> &'static [&'static str] {
        match self {
            Situation::YoungWithoutValue => &[],
            _ => &["--stuck-after-minutes", "0"],
        }
    }

    /// Makes it; the secret's ARN and name.
    async fn make(self) -> (String, String) {
        let store = moto_store();
        match self {
            Situation::YoungWithoutValue | Situation::StuckWithoutValue => {
                let (_, arn, name) = generic_secret(Some(&token())).await;
                (arn, name)
            }
            Situation::StuckWithValue => {
                let pending = token();
                let (_, arn, name) = generic_secret(Some(&pending)).await;
                let local = start_function("generic-rotation", &[]).await;
                step(&local, &event(&arn, &pending, "createSecret"))
                    .await
                    .unwrap_or_else(|(kind, _)| panic!("createSecret: {kind}"));
                (arn, name)
            }
            Situation::PendingOnCurrent => {
                let (_, arn, name) = generic_secret(None).await;
                store
                    .put_value(
                        &arn,
                        NewVersion {
                            version_id: &token(),
                            value: &SecretString::from("newer"),
                            labels: &[AWSCURRENT, AWSPENDING],
                            rotation_token: None,
                        },
                    )
                    .await
                    .expect("put");
                (arn, name)
            }
            Situation::FunctionMissing => {
                let name = unique("doctor");
                let arn = secret_for(&store, &name, "v", &[], &unique("gone"), None).await;
                (arn, name)
            }
            Situation::BrokenFunctionAndValue => {
                let name = unique("doctor");
                let function = unique("fn");
                let arn = secret_for(&store, &name, "v", &[], &function, None).await;
                let env = [("ROTATION_STRATEGY", "sideways")];
                deploy(&function, "rds-rotation", &env, 3, false).await;
                (arn, name)
            }
        }
    }

    /// The commands doctor (its JSON, checked against its text) and status
    /// print for it.
    async fn commands(self, arn: &str, name: &str) -> Vec<String> {
        let (_, doc) = doctor(arn, self.options()).await;
        let from_json: Vec<String> = doc["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["fix"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c.as_str().map(printed_commands))
            .flatten()
            .collect();
        let mut args = vec!["doctor", arn];
        args.extend_from_slice(self.options());
        let (_, text) = rotor(&args).await;
        assert_eq!(printed_commands(&text), from_json, "{text}");
        let mut args = vec!["status", "--prefix", name];
        args.extend_from_slice(self.options());
        let (_, table) = rotor(&args).await;
        let mut all = from_json;
        all.extend(printed_commands(&table));
        all
    }
}

/// Every `rotor` and `aws` command doctor and status suggest runs as printed
/// against moto (in `sh`, a "y" on stdin for --fix's question), each on a
/// fresh copy of the state it was suggested for: it carries --endpoint (or
/// --endpoint-url and --region), the function binary and its settings where
/// it resumes, and the options that made doctor call the rotation stuck. A
/// repair leaves the rotation finished or cancelled. Placeholders that a
/// person fills in (FUNCTION_ARN, file://fixed.json) are filled in the same
/// way here.
#[tokio::test(flavor = "multi_thread")]
async fn every_suggested_command_runs_as_printed() {
    let dir = std::env::temp_dir().join(unique("suggested"));
    std::fs::create_dir_all(&dir).expect("a working directory");
    let fixed =
        json!({"engine": "postgres", "host": "db.example", "username": "u", "password": "p"});
    std::fs::write(dir.join("fixed.json"), fixed.to_string()).expect("fixed.json");
    std::fs::write(dir.join("value.json"), fixed.to_string()).expect("value.json");
    let some_function = unique("fn");
    deploy(&some_function, "generic-rotation", &[], 60, true).await;
    let aws = aws_cli_available();
    for situation in Situation::ALL {
        let (arn, name) = situation.make().await;
        let suggested = situation.commands(&arn, &name).await;
        let count = suggested.len();
        assert!(count > 0, "{situation:?}: no command suggested");
        if situation.in_flight() {
            assert!(
                suggested.iter().any(|c| c.contains(" --fix")),
                "{situation:?}: no --fix among {suggested:?}"
            );
        }
        for index in 0..count {
            let (arn, name) = situation.make().await;
            let command = situation.commands(&arn, &name).await[index]
                .replace("ROTATION_FUNCTION_ARN", &function_arn(&some_function))
                .replace("FUNCTION_ARN", &function_arn(&some_function));
            if command.starts_with("aws ") {
                assert!(
                    command.contains(&format!("--endpoint-url {}", moto().endpoint()))
                        && command.contains("--region us-east-1"),
                    "{situation:?}: {command}"
                );
                if !aws {
                    continue;
                }
            } else {
                assert!(
                    command.contains(&format!("--endpoint {}", moto().endpoint())),
                    "{situation:?}: {command}"
                );
            }
            let out = run_printed(&command, &dir, "y\ny\ny\n").await;
            let code = out.status.code().unwrap_or(-1);
            let acts = command.starts_with("aws ")
                || command.contains(" --fix")
                || command.contains(" rotate ");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            if acts {
                assert_eq!(code, 0, "{situation:?}: {command}\n{stdout}\n{stderr}");
            } else {
                assert!(code == 0 || code == 1, "{situation:?}: {command}\n{stderr}");
            }
            if acts && situation.in_flight() {
                let (_, doc) = doctor(&arn, &["--stuck-after-minutes", "0"]).await;
                assert!(
                    codes(&doc).iter().all(|c| !c.starts_with("pending-")),
                    "{situation:?}: after {command}: {doc}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
