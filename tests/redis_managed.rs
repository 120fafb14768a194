//! The real `redis-rotation` binary, over the Lambda Runtime API, rotating
//! Amazon MemoryDB users through moto's MemoryDB API (the same moto server
//! as Secrets Manager), with secrets in the shape AWS's
//! `SecretsManagerElasticacheUserRotation` reads.
//!
//! Where moto differs from AWS: a user is `active` at once and stays so (AWS
//! shows `modifying` for a while after `UpdateUser`), moto reports only the
//! `PasswordCount`, and there is no data plane (no cluster to log in to), so
//! these tests check what the API holds; the ElastiCache tests, against an
//! emulator backed by a real Redis, check logins.

use aws_sdk_memorydb::types::{AuthenticationMode, InputAuthenticationType};
use rotor_cli::function::LocalFunction;
use rotor_core::event::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretString};
use rotor_testbed::fault_proxy::FaultProxy;
use rotor_tests::db::random_password;
use rotor_tests::target_db::{field, password};
use rotor_tests::{
    assert_no_stored_secret_in, moto, moto_store, staged_secret, start_function, steps, token,
    unique, value,
};
use serde_json::{Value, json};

/// moto's account and region.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// moto's MemoryDB API.
pub(crate) fn memorydb() -> aws_sdk_memorydb::Client {
    aws_sdk_memorydb::Client::new(&rotor_testbed::moto::local_sdk_config(moto().endpoint()))
}

/// The ARN of MemoryDB user `name` in moto.
pub(crate) fn user_arn(name: &str) -> String {
    format!("arn:aws:memorydb:{REGION}:{ACCOUNT}:user/{name}")
}

/// Creates a MemoryDB user with these passwords; returns its name.
pub(crate) async fn create_user(passwords: &[&SecretString]) -> String {
    let name = unique("app");
    let mut mode = AuthenticationMode::builder().r#type(InputAuthenticationType::Password);
    for p in passwords {
        mode = mode.passwords(p.expose_secret());
    }
    memorydb()
        .create_user()
        .user_name(&name)
        .access_string("on ~app:* +@read")
        .authentication_mode(mode.build())
        .send()
        .await
        .expect("moto's CreateUser");
    name
}

/// The user's status and password count, as DescribeUsers reports them.
pub(crate) async fn user(name: &str) -> (String, i32) {
    let out = memorydb()
        .describe_users()
        .user_name(name)
        .send()
        .await
        .expect("moto's DescribeUsers");
    let user = &out.users()[0];
    (
        user.status().unwrap_or_default().to_owned(),
        user.authentication()
            .and_then(|a| a.password_count())
            .unwrap_or(-1),
    )
}

/// A secret in AWS's shape for the user `arn` named `name`.
pub(crate) fn secret(arn: &str, name: &str, pw: Option<&SecretString>) -> String {
    let mut value = json!({ "user_arn": arn, "username": name });
    if let (Some(pw), Value::Object(map)) = (pw, &mut value) {
        map.insert("password".into(), pw.expose_secret().into());
    }
    value.to_string()
}

async fn function(allowed: &str, extra: &[(&str, &str)]) -> LocalFunction {
    let mut env = vec![
        ("AWS_ENDPOINT_URL_MEMORYDB", moto().endpoint()),
        ("MANAGED_USER_ARNS", allowed),
        ("WAITING_RETRY_INTERVAL_IN_SECONDS", "1"),
    ];
    env.extend_from_slice(extra);
    start_function("redis-rotation", &env).await
}

/// Two rotations of a MemoryDB user, every step replayed: setSecret leaves
/// the user two passwords (pending and current), finishSecret moves the
/// labels and keeps both; the next rotation with REVOKE_PREVIOUS=at-finish
/// leaves only the new one. Other fields are kept; no value in the output.
#[tokio::test]
async fn memorydb_user_rotates_with_two_passwords() {
    let store = moto_store();
    let first = random_password();
    let name = create_user(&[&first]).await;
    let arn_user = user_arn(&name);
    let t = token();
    let mut value: Value = serde_json::from_str(&secret(&arn_user, &name, Some(&first))).unwrap();
    value["note"] = "kept".into();
    let arn = staged_secret(&store, &value.to_string(), &[], &t).await;
    let function = function(&arn_user, &[]).await;

    steps::replay(&function, &arn, &t, &[Step::CreateSecret, Step::SetSecret]).await;
    assert_eq!(
        user(&name).await,
        ("active".into(), 2),
        "pending and current"
    );
    steps::replay(&function, &arn, &t, &[Step::TestSecret, Step::FinishSecret]).await;
    let second = password(&store, &arn, AWSCURRENT).await;
    assert!(second.expose_secret() != first.expose_secret());
    assert!(password(&store, &arn, AWSPREVIOUS).await.expose_secret() == first.expose_secret());
    assert_eq!(user(&name).await.1, 2, "the previous password is kept");
    assert_eq!(
        field(&store, &arn, AWSCURRENT, "note").await.as_deref(),
        Some("kept")
    );
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
    drop(function);

    let revoking = self::function(&arn_user, &[("REVOKE_PREVIOUS", "at-finish")]).await;
    let t2 = token();
    store.begin_rotation(&arn, &t2).await.unwrap();
    steps::replay(
        &revoking,
        &arn,
        &t2,
        &[Step::CreateSecret, Step::SetSecret, Step::TestSecret],
    )
    .await;
    assert_eq!(user(&name).await.1, 2);
    steps::replay(&revoking, &arn, &t2, &[Step::FinishSecret]).await;
    assert_eq!(user(&name).await.1, 1, "only the new password stays");
    assert!(password(&store, &arn, AWSPREVIOUS).await.expose_secret() == second.expose_secret());
    assert_no_stored_secret_in(&store, &arn, &revoking.output()).await;
}

/// A secret from before the first rotation, as AWS's function allows: no
/// password yet. setSecret gives the user the new one only.
#[tokio::test]
async fn memorydb_secret_without_a_password_yet() {
    let store = moto_store();
    let name = create_user(&[&random_password()]).await;
    let arn_user = user_arn(&name);
    let t = token();
    let arn = staged_secret(&store, &secret(&arn_user, &name, None), &[], &t).await;
    let function = function(&arn_user, &[]).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    assert_eq!(user(&name).await.1, 1);
    assert!(value(&store, &arn, AWSCURRENT).await.is_some());
}

/// A user the deployer did not list: every step that could change it is
/// refused (NotRetryable, naming the ARN and MANAGED_USER_ARNS), and the user
/// keeps its password. With an empty list, no user at all.
#[tokio::test]
async fn a_user_not_on_the_allow_list_is_never_changed() {
    let store = moto_store();
    let first = random_password();
    let name = create_user(&[&first]).await;
    let listed = create_user(&[&random_password()]).await;
    let arn_user = user_arn(&name);
    let t = token();
    let arn = staged_secret(&store, &secret(&arn_user, &name, Some(&first)), &[], &t).await;

    for allowed in [user_arn(&listed), String::new()] {
        let function = function(&allowed, &[]).await;
        let (kind, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap_err();
        assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
        assert!(
            message.contains(&arn_user) && message.contains("MANAGED_USER_ARNS"),
            "{message}"
        );
    }

    // A pending value stored by a function that may (the writer's secret is
    // the same): another deployment that may not still refuses setSecret.
    let allowed = function(&arn_user, &[]).await;
    steps::replay(&allowed, &arn, &t, &[Step::CreateSecret]).await;
    let refusing = function(
        &format!("{},{}", user_arn(&listed), user_arn("app-*-x")),
        &[],
    )
    .await;
    for step in [Step::SetSecret, Step::TestSecret] {
        let refused = steps::run(&refusing, &arn, &t, step).await;
        let (kind, message) = refused.unwrap_err();
        assert_eq!(kind, "NotRetryable.InvalidSettings", "{step}: {message}");
        assert!(message.contains(&arn_user), "{message}");
    }
    assert_eq!(
        user(&name).await,
        ("active".into(), 1),
        "nothing was changed"
    );
    assert!(value(&store, &arn, AWSPENDING).await.is_some());
    assert_no_stored_secret_in(&store, &arn, &refusing.output()).await;
}

/// A user ARN of another account or region, even one the deployer listed (a
/// wildcard too wide): refused before any call that changes a user, since
/// the API would act on this account's user of the same name.
#[tokio::test]
async fn a_user_of_another_account_or_region_is_refused() {
    let store = moto_store();
    let first = random_password();
    let name = create_user(&[&first]).await;
    let function = function("arn:aws:memorydb:*:*:user/*", &[]).await;
    for (other, says) in [
        (
            format!("arn:aws:memorydb:{REGION}:111122223333:user/{name}"),
            "111122223333",
        ),
        (
            format!("arn:aws:memorydb:eu-west-1:{ACCOUNT}:user/{name}"),
            "eu-west-1",
        ),
    ] {
        let t = token();
        let arn = staged_secret(&store, &secret(&other, &name, Some(&first)), &[], &t).await;
        let outcome = steps::run(&function, &arn, &t, Step::CreateSecret).await;
        let (kind, message) = match outcome {
            Err(e) => e,
            // The region is checked once the client knows its own.
            Ok(_) => steps::run(&function, &arn, &t, Step::SetSecret)
                .await
                .unwrap_err(),
        };
        assert_eq!(kind, "NotRetryable.InvalidSecretValue", "{message}");
        assert!(
            message.contains(says) && message.contains("user_arn"),
            "{message}"
        );
    }
    assert_eq!(user(&name).await.1, 1, "nothing was changed");
}

/// A listed user that does not exist: a clear NotFound naming the ARN.
#[tokio::test]
async fn a_missing_user_is_a_clear_not_found() {
    let store = moto_store();
    let arn_user = user_arn(&unique("gone"));
    let t = token();
    let arn = staged_secret(
        &store,
        &secret(&arn_user, "gone", Some(&random_password())),
        &[],
        &t,
    )
    .await;
    let function = function(&arn_user, &[]).await;
    steps::replay(&function, &arn, &t, &[Step::CreateSecret]).await;
    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.CacheNotFound", "{message}");
    assert!(message.contains(&arn_user), "{message}");
}

fn aws_error(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// MemoryDB throttling the function (a proxy answers for moto): a passing
/// burst is absorbed by the SDK's retries; one that lasts fails the step as
/// retryable, and the user is unchanged until the retry succeeds.
#[tokio::test]
async fn throttling_is_retryable() {
    let store = moto_store();
    let first = random_password();
    let name = create_user(&[&first]).await;
    let arn_user = user_arn(&name);
    let upstream = moto()
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("moto listens on an address");
    let proxy = FaultProxy::start("memorydb", upstream).await.unwrap();
    let endpoint = proxy.http_endpoint();
    let function = start_function(
        "redis-rotation",
        &[
            ("AWS_ENDPOINT_URL_MEMORYDB", endpoint.as_str()),
            ("MANAGED_USER_ARNS", arn_user.as_str()),
        ],
    )
    .await;
    let t = token();
    let arn = staged_secret(&store, &secret(&arn_user, &name, Some(&first)), &[], &t).await;
    steps::replay(&function, &arn, &t, &[Step::CreateSecret]).await;
    let throttled = aws_error(
        "400 Bad Request",
        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
    );
    proxy.answer_next(1000, &throttled);
    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    proxy.answer_next(0, b"");
    assert_eq!(kind, "Retryable.CacheUnavailable", "{message}");
    assert!(message.contains("ThrottlingException"), "{message}");
    assert_eq!(user(&name).await.1, 1, "nothing was changed");
    proxy.answer_next(1, &throttled);
    steps::replay(&function, &arn, &t, &[Step::SetSecret]).await;
    assert_eq!(user(&name).await.1, 2);
}
