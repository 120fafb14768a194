//! Every function at the most talkative log level Lambda offers
//! (`AWS_LAMBDA_LOG_LEVEL=TRACE`, in both log formats), through a whole
//! rotation with every step replayed: the output and the step errors hold no
//! password, client secret, token or management credential of any secret the
//! rotation touched, in any shape `rotor_tests::leaks::forms` knows (escaped,
//! percent-encoded, base64, hashed as servers keep it), nor a verifier read
//! back from the server (PostgreSQL's SCRAM keys, MariaDB's hash). At TRACE
//! the libraries log too: the SDK its HTTP exchanges, the drivers their
//! statements.

use rotor_cli::function::LocalFunction;
use rotor_core::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString};
use rotor_testbed::db::TlsMode;
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator, TokenAuth};
use rotor_testbed::redis_server::{ADMIN_USER, RedisServer};
use rotor_testbed::webhook_receiver::WebhookReceiver;
use rotor_tests::db::random_password;
use rotor_tests::leaks::credentials_in;
use rotor_tests::target_db::Db;
use rotor_tests::{
    assert_none_in, moto_store, providers, start_function, steps, token, unique, value,
};
use serde_json::json;

/// Both formats Lambda sets: text and JSON.
const FORMATS: [&str; 2] = ["text", "json"];

fn trace(format: &str) -> [(&'static str, &str); 2] {
    [
        ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        ("AWS_LAMBDA_LOG_FORMAT", format),
    ]
}

/// Runs two rotations of `arn` with every step replayed, the first under
/// `staged` when a rotation is staged already; returns the step errors seen
/// (a replay may fail on its own, but the rotation must finish).
async fn two_rotations(
    store: &AwsStore,
    function: &LocalFunction,
    arn: &str,
    mut staged: Option<String>,
) -> String {
    let mut errors = String::new();
    for _ in 0..2 {
        let t = match staged.take() {
            Some(t) => t,
            None => {
                let t = token();
                store.begin_rotation(arn, &t).await.expect("stage");
                t
            }
        };
        for step in Step::ALL {
            for attempt in 0..2 {
                match steps::run(function, arn, &t, step).await {
                    Ok(_) => {}
                    Err((kind, message)) if attempt > 0 => {
                        errors.push_str(&format!("{kind}: {message}\n"))
                    }
                    Err((kind, message)) => {
                        panic!("{step} failed: {kind}: {message}\n{}", function.output())
                    }
                }
            }
        }
    }
    errors
}

/// Every credential of every labelled version of `arns`.
async fn credentials_of(store: &AwsStore, arns: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for arn in arns {
        for label in [AWSCURRENT, AWSPENDING, AWSPREVIOUS] {
            if let Some(stored) = value(store, arn, label).await {
                found.extend(credentials_in(&stored));
            }
        }
    }
    found
}

/// Fails if the function's output or `errors` hold any of `arns`'
/// credentials or `verifiers`; also checks that the output is TRACE's (the
/// libraries did log), so the test cannot pass on a quiet function.
async fn check(
    store: &AwsStore,
    function: &LocalFunction,
    errors: &str,
    arns: &[&str],
    verifiers: &[String],
) {
    let output = function.output();
    if let Ok(dir) = std::env::var("ROTOR_KEEP_TRACE") {
        let path = std::path::Path::new(&dir).join(format!("{}.log", unique("trace")));
        std::fs::write(path, &output).expect("keep the trace");
    }
    assert!(
        output.contains("TRACE") || output.contains("\"level\":\"TRACE\""),
        "the function did not log at TRACE"
    );
    let text = format!("{output}\n{errors}");
    let credentials = credentials_of(store, arns).await;
    assert!(!credentials.is_empty(), "no credential to look for");
    assert_none_in(&credentials, "a stored credential", &text);
    assert_none_in(verifiers, "a verifier read from the server", &text);
}

#[tokio::test]
async fn generic_rotation_with_a_webhook_logs_no_value_at_trace() {
    for format in FORMATS {
        let store = moto_store();
        let key = SecretString::from(token());
        let receiver = WebhookReceiver::start(SecretString::from(key.expose_secret()))
            .await
            .unwrap();
        let key_secret = store
            .create_secret(&unique("hook-key"), &key, &[])
            .await
            .unwrap();
        let mut env = vec![
            ("ROTOR_WEBHOOK_URL", receiver.url()),
            ("ROTOR_WEBHOOK_KEY_SECRET", key_secret.clone()),
        ];
        env.extend(trace(format).map(|(k, v)| (k, v.to_owned())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let function = start_function("generic-rotation", &env).await;
        let initial = json!({"username": "svc", "password": random_password().expose_secret()});
        let arn = store
            .create_secret(
                &unique("generic"),
                &SecretString::from(initial.to_string()),
                &[],
            )
            .await
            .unwrap();
        let errors = two_rotations(&store, &function, &arn, None).await;
        check(&store, &function, &errors, &[&arn, &key_secret], &[]).await;
    }
}

/// PostgreSQL's SCRAM verifiers of `users`, split into their parts.
fn scram_verifiers(db: &Db, users: &[&str]) -> Vec<String> {
    let list = users
        .iter()
        .map(|u| format!("'{u}'"))
        .collect::<Vec<_>>()
        .join(",");
    let out = db.admin(&format!(
        "SELECT rolpassword FROM pg_authid WHERE rolname IN ({list})"
    ));
    let mut parts = Vec::new();
    for line in out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("SCRAM-"))
    {
        parts.push(line.to_owned());
        // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
        if let Some((_, keys)) = line.rsplit_once('$') {
            parts.extend(keys.split(':').map(str::to_owned));
        }
    }
    parts
}

#[tokio::test]
async fn rds_rotation_logs_no_value_at_trace() {
    for (engine, format) in [("postgres", "text"), ("mariadb", "json")] {
        let db = Db::start(engine, TlsMode::Required);
        let store = moto_store();
        let team = format!("{}/", unique("team"));
        let master = store
            .create_secret(
                &unique("master"),
                &SecretString::from(db.secret(&db.admin_user(), &db.admin_password(), json!({}))),
                &[("rotor:serves", team.as_str())],
            )
            .await
            .unwrap();
        let first = random_password();
        db.create_user("svc", &first);
        let ca = db.ca_path();
        let mut env = vec![
            ("SSL_CERT_FILE", ca.as_str()),
            ("ROTATION_STRATEGY", "alternating"),
        ];
        env.extend(trace(format));
        let function = start_function("rds-rotation", &env).await;
        let arn = store
            .create_secret(
                &format!("{team}svc"),
                &SecretString::from(db.secret("svc", &first, json!({"masterarn": master}))),
                &[],
            )
            .await
            .unwrap();
        let errors = two_rotations(&store, &function, &arn, None).await;
        let verifiers = match engine {
            "postgres" => {
                let found = scram_verifiers(&db, &["svc", "svc_clone", &db.admin_user()]);
                assert!(
                    found.len() >= 9,
                    "three SCRAM verifiers, each in three parts"
                );
                found
            }
            _ => Vec::new(),
        };
        check(&store, &function, &errors, &[&arn, &master], &verifiers).await;
    }
}

#[tokio::test]
async fn oauth_rotation_logs_no_value_at_trace() {
    for (provider, format) in [(Provider::Okta, "text"), (Provider::Keycloak, "json")] {
        let emulator = ProviderEmulator::start().await.expect("the emulator");
        let store = moto_store();
        let (case, t) = providers::setup(&emulator, &store, provider, TokenAuth::Basic, true).await;
        let function = start_function("oauth-rotation", &trace(format)).await;
        let errors = two_rotations(&store, &function, &case.arn, Some(t)).await;
        check(
            &store,
            &function,
            &errors,
            &[&case.arn, &case.management_arn],
            &[],
        )
        .await;
    }
}

#[tokio::test]
async fn redis_rotation_logs_no_value_at_trace() {
    for format in FORMATS {
        let redis = RedisServer::start().unwrap();
        let store = moto_store();
        let team = format!("{}/", unique("team"));
        let secret = |user: &str, pw: &SecretString, extra: serde_json::Value| {
            let mut value = json!({
                "host": redis.host(),
                "port": redis.tls_port(),
                "username": user,
                "password": pw.expose_secret(),
            });
            if let (Some(map), serde_json::Value::Object(more)) = (value.as_object_mut(), extra) {
                map.extend(more);
            }
            SecretString::from(value.to_string())
        };
        let admin = store
            .create_secret(
                &unique("redis-admin"),
                &secret(ADMIN_USER, &redis.admin_password(), json!({})),
                &[("rotor:serves", team.as_str())],
            )
            .await
            .unwrap();
        let first = random_password();
        redis.create_user("app", &first, &[]).unwrap();
        let ca = redis.ca_path().display().to_string();
        let mut env = vec![("SSL_CERT_FILE", ca.as_str())];
        env.extend(trace(format));
        let function = start_function("redis-rotation", &env).await;
        let arn = store
            .create_secret(
                &format!("{team}app"),
                &secret("app", &first, json!({"masterarn": admin})),
                &[],
            )
            .await
            .unwrap();
        let errors = two_rotations(&store, &function, &arn, None).await;
        check(&store, &function, &errors, &[&arn, &admin], &[]).await;
    }
}
