//! IAM and STS for iam-rotation's tests: a second moto server with IAM
//! authentication on (`INITIAL_NO_AUTH_ACTION_COUNT`), so that it verifies
//! signatures against the keys it issued, refuses deleted keys, enforces the
//! callers' IAM policies and answers `LimitExceeded` for a third key. Beside
//! it, the shared Secrets Manager moto (no authentication).
//!
//! moto differs from AWS in two points the tests allow for:
//! * an Inactive key still authenticates there (AWS refuses it): a key's
//!   status is read with ListAccessKeys, never inferred from STS;
//! * policies are checked against the resource `*` for IAM's actions, so
//!   the function's test user is allowed its actions on `*`; the template's
//!   tests check that the deployed role names exactly the allowed users.

use std::sync::OnceLock;

use aws_sdk_iam::types::StatusType;
use rotor_cli::function::LocalFunction;
use rotor_core::{ExposeSecret, SecretString};
use rotor_testbed::moto::Moto;
use serde_json::json;

/// moto's account.
pub const ACCOUNT: &str = "123456789012";

/// The requests moto serves before it authenticates: CreateUser,
/// PutUserPolicy and CreateAccessKey of the tests' administrator.
const FREE_ACTIONS: u32 = 3;

/// The authenticated moto and the administrator's key.
pub struct IamMoto {
    moto: Moto,
    admin: (String, String),
}

impl IamMoto {
    /// IAM's and STS's endpoint.
    pub fn endpoint(&self) -> &str {
        self.moto.endpoint()
    }
}

/// The IAM moto of this test binary, started and set up on first use.
pub fn iam_moto() -> &'static IamMoto {
    static IAM: OnceLock<IamMoto> = OnceLock::new();
    IAM.get_or_init(|| {
        let moto = match Moto::start_with_auth(FREE_ACTIONS) {
            Ok(moto) => moto,
            Err(e) => panic!("cannot start moto with IAM authentication: {e:#}"),
        };
        let endpoint = moto.endpoint().to_owned();
        // The SDK is async; the set-up runs on a runtime of its own, so that
        // the shared server does not depend on any test's.
        let admin = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(bootstrap(&endpoint))
        })
        .join()
        .expect("the IAM set-up");
        IamMoto { moto, admin }
    })
}

async fn bootstrap(endpoint: &str) -> (String, String) {
    let iam = client(endpoint, "bootstrap", "bootstrap");
    let name = "rotor-test-admin";
    iam.create_user()
        .user_name(name)
        .send()
        .await
        .expect("CreateUser");
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    iam.put_user_policy()
        .user_name(name)
        .policy_name("admin")
        .policy_document(policy.to_string())
        .send()
        .await
        .expect("PutUserPolicy");
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .expect("CreateAccessKey");
    let key = key.access_key.expect("a key");
    (key.access_key_id, key.secret_access_key)
}

fn sdk_config(endpoint: &str, id: &str, secret: &str) -> aws_config::SdkConfig {
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(rotor_core::store::aws::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            id,
            secret,
            None,
            None,
            "rotor-tests",
        )))
        .build()
}

fn client(endpoint: &str, id: &str, secret: &str) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config(endpoint, id, secret))
}

/// IAM as the tests' administrator (its own key, never the function's).
pub fn admin() -> aws_sdk_iam::Client {
    let moto = iam_moto();
    client(moto.endpoint(), &moto.admin.0, &moto.admin.1)
}

/// The tests' administrator's key (id, secret), for a process of the test's.
pub fn admin_key() -> (String, SecretString) {
    let moto = iam_moto();
    (
        moto.admin.0.clone(),
        SecretString::from(moto.admin.1.as_str()),
    )
}

/// An access key, as the tests hold it.
pub struct Key {
    /// Its id.
    pub id: String,
    /// Its secret.
    pub secret: SecretString,
}

/// A new user with one key.
pub async fn user_with_key(prefix: &str) -> (String, Key) {
    let name = crate::unique(prefix);
    let iam = admin();
    iam.create_user()
        .user_name(&name)
        .send()
        .await
        .expect("CreateUser");
    (name.clone(), create_key(&name).await)
}

/// A new key for `user`, made by the administrator.
pub async fn create_key(user: &str) -> Key {
    let out = admin()
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .expect("CreateAccessKey");
    let key = out.access_key.expect("a key");
    Key {
        id: key.access_key_id,
        secret: SecretString::from(key.secret_access_key),
    }
}

/// The user's keys (id, active), read with the administrator's key.
pub async fn keys(user: &str) -> Vec<(String, bool)> {
    let out = admin()
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .expect("ListAccessKeys");
    let mut keys: Vec<(String, bool)> = out
        .access_key_metadata()
        .iter()
        .map(|k| {
            let id = k.access_key_id().unwrap_or_default().to_owned();
            (id, k.status() == Some(&StatusType::Active))
        })
        .collect();
    keys.sort();
    keys
}

/// The ARN `key` signs in as at STS (`None`: refused), checked independently
/// of the function.
pub async fn signs_in_as(id: &str, secret: &SecretString) -> Option<String> {
    let config = sdk_config(iam_moto().endpoint(), id, secret.expose_secret());
    let sts = aws_sdk_sts::Client::new(&config);
    let out = sts.get_caller_identity().send().await.ok()?;
    out.arn().map(str::to_owned)
}

/// The user's ARN in moto.
pub fn user_arn(user: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{user}")
}

/// The function's own IAM user, allowed `actions` (on `*`: moto checks
/// policies against `*`), and its key.
pub async fn function_user(actions: &[&str]) -> Key {
    let (name, key) = user_with_key("rotor-fn").await;
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": "*"}]});
    admin()
        .put_user_policy()
        .user_name(&name)
        .policy_name("rotation")
        .policy_document(policy.to_string())
        .send()
        .await
        .expect("PutUserPolicy");
    key
}

/// The actions the template grants the function on the allowed users.
pub const FUNCTION_ACTIONS: [&str; 6] = [
    "iam:GetUser",
    "iam:ListAccessKeys",
    "iam:CreateAccessKey",
    "iam:DeleteAccessKey",
    "iam:UpdateAccessKey",
    "iam:GetAccessKeyLastUsed",
];

/// A secret's value for `user`'s `key`.
pub fn secret_value(user: &str, key: &Key) -> String {
    json!({"Version": 1, "UserName": user, "AccessKeyId": key.id,
        "SecretAccessKey": key.secret.expose_secret()})
    .to_string()
}

/// The stored value's key: (UserName, AccessKeyId, SecretAccessKey).
pub fn key_of(value: &SecretString) -> (String, Key) {
    let v: serde_json::Value = serde_json::from_str(value.expose_secret()).expect("JSON");
    let text = |f: &str| v[f].as_str().unwrap_or_default().to_owned();
    let key = Key {
        id: text("AccessKeyId"),
        secret: SecretString::from(text("SecretAccessKey")),
    };
    (text("UserName"), key)
}

/// Starts iam-rotation against Secrets Manager at `sm` (moto or a proxy)
/// and IAM and STS at `iam` (the IAM moto or a proxy), signing with `key`.
pub async fn start(sm: &str, iam: &str, key: &Key, extra: &[(&str, &str)]) -> LocalFunction {
    let secret = key.secret.expose_secret().to_owned();
    let mut env: Vec<(&str, &str)> = vec![
        ("AWS_ENDPOINT_URL_IAM", iam),
        ("AWS_ENDPOINT_URL_STS", iam),
        ("AWS_ACCESS_KEY_ID", &key.id),
        ("AWS_SECRET_ACCESS_KEY", &secret),
    ];
    env.extend_from_slice(extra);
    crate::start_function_at("iam-rotation", sm, &env).await
}
