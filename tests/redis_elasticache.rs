//! The real `redis-rotation` binary rotating Amazon ElastiCache RBAC users
//! through the testbed's ElastiCache emulator (moto has no `ModifyUser`),
//! which applies every password to a real Redis 7: redis-cli, an
//! independent client, proves which passwords log in at each point.
//!
//! Where the emulator differs from AWS: Redis changes at once, not at the end
//! of `modifying` (a user is `modifying` for the next DescribeUsers after a
//! change, then `active`), and SigV4 is not checked.

use rotor_cli::function::LocalFunction;
use rotor_core::event::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretString};
use rotor_testbed::elasticache::{ElastiCacheEmulator, EmulatedUser};
use rotor_testbed::redis_server::RedisServer;
use rotor_tests::db::random_password;
use rotor_tests::target_db::password;
use rotor_tests::{
    assert_no_stored_secret_in, moto_store, staged_secret, start_function, steps, token, unique,
};
use serde_json::json;

const ACCESS: &str = "on ~* +@connection +get +set";

struct Bed {
    redis: RedisServer,
    emulator: ElastiCacheEmulator,
    id: String,
    name: String,
    arn: String,
}

/// A Redis, the emulator over it, and a user holding `first`.
async fn bed(first: &SecretString) -> Bed {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("cannot start Redis: {e:#}"));
    let emulator = ElastiCacheEmulator::start_for(&redis).await.unwrap();
    let id = unique("orders");
    let name = unique("orders_app");
    let arn = emulator
        .add_user(EmulatedUser::new(
            &id,
            &name,
            ACCESS,
            std::slice::from_ref(first),
        ))
        .await
        .unwrap();
    Bed {
        redis,
        emulator,
        id,
        name,
        arn,
    }
}

impl Bed {
    /// AWS's secret shape, plus the endpoint testSecret logs in at.
    fn secret(&self, pw: &SecretString) -> String {
        json!({
            "user_arn": self.arn,
            "username": self.name,
            "password": pw.expose_secret(),
            "host": self.redis.host(),
            "port": self.redis.tls_port(),
        })
        .to_string()
    }

    async fn function(&self, allowed: &str, extra: &[(&str, &str)]) -> LocalFunction {
        let ca = self.redis.ca_path().display().to_string();
        let url = self.emulator.url();
        let mut env = vec![
            ("SSL_CERT_FILE", ca.as_str()),
            ("AWS_ENDPOINT_URL_ELASTICACHE", url.as_str()),
            ("MANAGED_USER_ARNS", allowed),
            ("WAITING_RETRY_INTERVAL_IN_SECONDS", "1"),
        ];
        env.extend_from_slice(extra);
        start_function("redis-rotation", &env).await
    }

    fn logs_in(&self, pw: &SecretString) -> bool {
        self.redis.logs_in(&self.name, pw)
    }

    fn modify_calls(&self) -> usize {
        self.emulator.calls_of("ModifyUser").len()
    }
}

/// A rotation with every step replayed, REVOKE_PREVIOUS=at-finish: the old
/// password logs in until finishSecret, the new one from setSecret on, and
/// after finishSecret only the new one. Then a rotation with the default
/// keeps the previous password working after finishSecret.
#[tokio::test]
async fn elasticache_user_rotates_with_no_refused_login() {
    let first = random_password();
    let bed = bed(&first).await;
    let store = moto_store();
    let t = token();
    let arn = staged_secret(&store, &bed.secret(&first), &[], &t).await;
    let function = bed
        .function(&bed.arn, &[("REVOKE_PREVIOUS", "at-finish")])
        .await;

    steps::replay(&function, &arn, &t, &[Step::CreateSecret, Step::SetSecret]).await;
    let second = password(&store, &arn, AWSPENDING).await;
    assert!(
        bed.logs_in(&first),
        "the current password works after setSecret"
    );
    assert!(
        bed.logs_in(&second),
        "the pending password works after setSecret"
    );
    steps::replay(&function, &arn, &t, &[Step::TestSecret]).await;
    assert!(bed.logs_in(&first), "and still after testSecret");
    steps::replay(&function, &arn, &t, &[Step::FinishSecret]).await;
    assert!(password(&store, &arn, AWSCURRENT).await.expose_secret() == second.expose_secret());
    assert!(bed.logs_in(&second));
    assert!(!bed.logs_in(&first), "revoked at finish");
    assert_eq!(bed.emulator.password_count(&bed.id), Some(1));
    assert_eq!(bed.redis.password_count(&bed.name).unwrap(), 1);
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
    drop(function);

    let keeping = bed.function(&bed.arn, &[]).await;
    let t2 = token();
    store.begin_rotation(&arn, &t2).await.unwrap();
    steps::replay(&keeping, &arn, &t2, &Step::ALL).await;
    let third = password(&store, &arn, AWSCURRENT).await;
    assert!(password(&store, &arn, AWSPREVIOUS).await.expose_secret() == second.expose_secret());
    assert!(bed.logs_in(&third));
    assert!(
        bed.logs_in(&second),
        "the previous password works until the next rotation"
    );
    assert_eq!(bed.redis.password_count(&bed.name).unwrap(), 2);
    assert_no_stored_secret_in(&store, &arn, &keeping.output()).await;
}

/// A user that stays `modifying` longer than the function may wait: setSecret
/// fails as retryable (naming the user and its status) and changes nothing;
/// once the user is active the retry completes. `InvalidUserState` from
/// ModifyUser and an answer lost after the change are retryable too, and the
/// retries converge.
#[tokio::test]
async fn a_user_being_modified_is_retryable_then_completes() {
    let first = random_password();
    let bed = bed(&first).await;
    let store = moto_store();
    let t = token();
    let arn = staged_secret(&store, &bed.secret(&first), &[], &t).await;
    let function = bed
        .function(&bed.arn, &[("MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS", "0")])
        .await;
    steps::replay(&function, &arn, &t, &[Step::CreateSecret]).await;
    let second = password(&store, &arn, AWSPENDING).await;

    assert!(bed.emulator.stay_modifying(&bed.id, 1000));
    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "Retryable.CachePending", "{message}");
    assert!(
        message.contains(&bed.arn) && message.contains("modifying"),
        "{message}"
    );
    assert_eq!(bed.modify_calls(), 0, "nothing was changed");
    assert!(bed.logs_in(&first) && !bed.logs_in(&second));

    assert!(bed.emulator.stay_modifying(&bed.id, 0));
    bed.emulator
        .fail_next("ModifyUser", "InvalidUserState", 400);
    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "Retryable.CachePending", "{message}");
    assert!(bed.logs_in(&first) && !bed.logs_in(&second));

    // The change is made, the answer lost: the SDK's retry finds the user
    // modifying (or the step fails as retryable); either way a retry of the
    // step, once the user is active, converges.
    bed.emulator
        .lose_next_answer("ModifyUser", "InternalFailure", 500);
    let lost = steps::run(&function, &arn, &t, Step::SetSecret).await;
    if let Err((kind, message)) = &lost {
        assert!(kind.starts_with("Retryable."), "{kind}: {message}");
    }
    assert!(bed.logs_in(&first) && bed.logs_in(&second));
    let mut tries = 0;
    loop {
        tries += 1;
        match steps::run(&function, &arn, &t, Step::SetSecret).await {
            Ok(_) => break,
            Err((kind, message)) => {
                assert_eq!(kind, "Retryable.CachePending", "{message}");
                assert!(tries < 5, "{message}");
            }
        }
    }
    let relaxed = bed.function(&bed.arn, &[]).await;
    steps::replay(&relaxed, &arn, &t, &[Step::TestSecret, Step::FinishSecret]).await;
    assert!(bed.logs_in(&first) && bed.logs_in(&second));
    assert_eq!(bed.emulator.password_count(&bed.id), Some(2));
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
}

/// A user the deployer did not list is never changed: createSecret,
/// setSecret and testSecret are refused, no ModifyUser reaches the service,
/// and the user's password still logs in.
#[tokio::test]
async fn elasticache_user_not_on_the_allow_list_is_never_changed() {
    let first = random_password();
    let bed = bed(&first).await;
    let store = moto_store();
    let t = token();
    let arn = staged_secret(&store, &bed.secret(&first), &[], &t).await;
    let other = "arn:aws:elasticache:us-east-1:123456789012:user:someone-else";
    let refusing = bed.function(other, &[]).await;
    let (kind, message) = steps::run(&refusing, &arn, &t, Step::CreateSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(
        message.contains(&bed.arn) && message.contains("MANAGED_USER_ARNS"),
        "{message}"
    );

    let allowed = bed.function(&bed.arn, &[]).await;
    steps::replay(&allowed, &arn, &t, &[Step::CreateSecret]).await;
    for step in [Step::SetSecret, Step::TestSecret] {
        let refused = steps::run(&refusing, &arn, &t, step).await;
        let (kind, message) = refused.unwrap_err();
        assert_eq!(kind, "NotRetryable.InvalidSettings", "{step}: {message}");
    }
    assert_eq!(bed.emulator.calls().len(), 0, "no call reached ElastiCache");
    assert!(bed.logs_in(&first));
    assert_eq!(bed.emulator.password_count(&bed.id), Some(1));
}

/// ElastiCache answers throttling with HTTP 400 and the code `Throttling`:
/// after the SDK's three attempts the step fails as retryable
/// (`CacheUnavailable`), naming the code; an `AccessDenied` is not retryable
/// and names the permission to grant. Nothing changes until a retry passes.
#[tokio::test]
async fn elasticache_throttling_and_access_denied_are_classified() {
    let first = random_password();
    let bed = bed(&first).await;
    let store = moto_store();
    let t = token();
    let arn = staged_secret(&store, &bed.secret(&first), &[], &t).await;
    let function = bed.function(&bed.arn, &[]).await;
    steps::replay(&function, &arn, &t, &[Step::CreateSecret]).await;
    for _ in 0..3 {
        bed.emulator.fail_next("DescribeUsers", "Throttling", 400);
    }
    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "Retryable.CacheUnavailable", "{message}");
    assert!(message.contains("Throttling"), "{message}");
    bed.emulator.fail_next("ModifyUser", "AccessDenied", 403);
    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.CachePermission", "{message}");
    assert!(message.contains("elasticache:ModifyUser"), "{message}");
    assert_eq!(bed.emulator.password_count(&bed.id), Some(1));
    assert!(bed.logs_in(&first));
    steps::replay(&function, &arn, &t, &[Step::SetSecret, Step::TestSecret]).await;
    assert_eq!(bed.emulator.password_count(&bed.id), Some(2));
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
}
