//! Redis secrets, self-managed and managed, read as redis-rotation reads them.

use rotor_core::ExposeSecret;
use rotor_core::labels::AWSCURRENT;
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, SecretStore, SecretString};
use rotor_testbed::db::random_password;
use rotor_testbed::redis_server::{ADMIN_USER, RedisServer};
use rotor_tests::{moto_store, token, unique};
use serde_json::{Value, json};

use super::{codes, deploy, doctor_with, first_finding, notes, served_by};

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
