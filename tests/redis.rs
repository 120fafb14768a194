//! The real `redis-rotation` binary, over the Lambda Runtime API, against moto
//! and a throwaway Redis 7 with an ACL file and TLS from a test CA. redis-cli,
//! an independent client, proves which passwords log in at each point.

use rotor_cli::function::LocalFunction;
use rotor_core::event::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use rotor_testbed::redis_server::{ADMIN_USER, RedisServer, Via};
use rotor_tests::db::random_password;
use rotor_tests::target_db::{field, password};
use rotor_tests::{
    assert_no_stored_secret_in, labels, moto, moto_store, staged_secret, staged_secret_named,
    start_function, start_function_at, steps, token, unique, value,
};
use serde_json::{Value, json};

/// A user secret at the server's TLS port, with `extra` fields.
pub(crate) fn secret(redis: &RedisServer, user: &str, pw: &SecretString, extra: Value) -> String {
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

/// redis-rotation, trusting the server's test CA.
pub(crate) async fn function(redis: &RedisServer, extra: &[(&str, &str)]) -> LocalFunction {
    let ca = redis.ca_path().display().to_string();
    let mut env = vec![("SSL_CERT_FILE", ca.as_str())];
    env.extend_from_slice(extra);
    start_function("redis-rotation", &env).await
}

/// An admin secret that agrees to serve secrets under a fresh prefix; returns
/// (admin ARN, prefix).
pub(crate) async fn admin_secret(
    store: &AwsStore,
    redis: &RedisServer,
    pw: &SecretString,
) -> (String, String) {
    let team = format!("{}/", unique("team"));
    let arn = store
        .create_secret(
            &unique("redis-admin"),
            &SecretString::from(secret(redis, ADMIN_USER, pw, json!({}))),
            &[("rotor:serves", team.as_str())],
        )
        .await
        .unwrap();
    (arn, team)
}

/// Two rotations of one user managed by an admin secret: the old password
/// works until finishSecret and after it (AWSPREVIOUS), the one before is
/// removed by the next rotation; every step replayed; the ACL file follows.
#[tokio::test]
async fn single_user_overlap_with_an_admin_secret() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let (admin, team) = admin_secret(&store, &redis, &redis.admin_password()).await;
    let first = random_password();
    redis.create_user("app", &first, &[]).unwrap();
    let t = token();
    let arn = staged_secret_named(
        &store,
        &format!("{team}app"),
        &secret(
            &redis,
            "app",
            &first,
            json!({"masterarn": admin, "note": "kept"}),
        ),
        &[],
        &t,
    )
    .await;
    let function = function(&redis, &[]).await;

    steps::replay(&function, &arn, &t, &[Step::CreateSecret, Step::SetSecret]).await;
    let second = password(&store, &arn, AWSPENDING).await;
    assert!(
        redis.logs_in("app", &first),
        "the current password still works after setSecret"
    );
    assert!(
        redis.logs_in("app", &second),
        "the pending password works after setSecret"
    );
    assert_eq!(redis.password_count("app").unwrap(), 2);
    steps::replay(&function, &arn, &t, &[Step::TestSecret, Step::FinishSecret]).await;
    assert!(password(&store, &arn, AWSCURRENT).await.expose_secret() == second.expose_secret());
    assert!(
        redis.logs_in("app", &first),
        "AWSPREVIOUS works until the next rotation"
    );
    assert!(redis.logs_in("app", &second));
    assert_eq!(
        field(&store, &arn, AWSCURRENT, "note").await.as_deref(),
        Some("kept")
    );
    let acl = redis.acl_file();
    let line = acl
        .lines()
        .find(|l| l.starts_with("user app "))
        .expect("app in the ACL file");
    assert_eq!(
        line.matches(" #").count(),
        2,
        "the ACL file holds both passwords"
    );

    // The next rotation removes the first password, keeps the second.
    let t2 = token();
    store.begin_rotation(&arn, &t2).await.unwrap();
    steps::replay(
        &function,
        &arn,
        &t2,
        &[Step::CreateSecret, Step::SetSecret, Step::TestSecret],
    )
    .await;
    assert_eq!(
        redis.password_count("app").unwrap(),
        3,
        "three during the rotation"
    );
    steps::replay(&function, &arn, &t2, &[Step::FinishSecret]).await;
    let third = password(&store, &arn, AWSCURRENT).await;
    assert!(password(&store, &arn, AWSPREVIOUS).await.expose_secret() == second.expose_secret());
    assert!(
        !redis.logs_in("app", &first),
        "the password before the previous is removed"
    );
    assert!(redis.logs_in("app", &second));
    assert!(redis.logs_in("app", &third));
    assert_eq!(redis.password_count("app").unwrap(), 2);
    let acl = redis.acl_file();
    let line = acl
        .lines()
        .find(|l| l.starts_with("user app "))
        .expect("app in the ACL file");
    assert_eq!(line.matches(" #").count(), 2, "the ACL file was saved");
    // The admin was not touched.
    assert!(redis.logs_in(ADMIN_USER, &redis.admin_password()));
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
    assert!(
        !function
            .output()
            .contains(redis.admin_password().expose_secret())
    );
}

/// Without an admin secret the user changes its own passwords (it needs
/// +acl); with REVOKE_PREVIOUS=at-finish the old one stops at finishSecret.
/// Passwords the user held from elsewhere are removed too (convergence).
#[tokio::test]
async fn self_managed_user_revoking_at_finish() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let old = random_password();
    redis.create_user("selfie", &old, &["+acl"]).unwrap();
    let stray = random_password();
    let rule = format!(">{}", stray.expose_secret());
    redis.admin(&["ACL", "SETUSER", "selfie", &rule]).unwrap();
    let t = token();
    let arn = staged_secret(&store, &secret(&redis, "selfie", &old, json!({})), &[], &t).await;
    let function = function(&redis, &[("REVOKE_PREVIOUS", "at-finish")]).await;
    steps::replay(
        &function,
        &arn,
        &t,
        &[Step::CreateSecret, Step::SetSecret, Step::TestSecret],
    )
    .await;
    assert!(redis.logs_in("selfie", &old));
    steps::replay(&function, &arn, &t, &[Step::FinishSecret]).await;
    let new = password(&store, &arn, AWSCURRENT).await;
    assert!(redis.logs_in("selfie", &new));
    assert!(!redis.logs_in("selfie", &old), "revoked at finish");
    assert!(
        !redis.logs_in("selfie", &stray),
        "a stray password is removed"
    );
    assert_eq!(redis.password_count("selfie").unwrap(), 1);
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
}

/// A wrong admin password: a clear, non-retryable error naming the admin
/// secret; the user's passwords are unchanged; no value in the output.
#[tokio::test]
async fn a_wrong_admin_password_changes_nothing() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let wrong = random_password();
    let (admin, team) = admin_secret(&store, &redis, &wrong).await;
    let old = random_password();
    redis.create_user("app", &old, &[]).unwrap();
    let t = token();
    let arn = staged_secret_named(
        &store,
        &format!("{team}app"),
        &secret(&redis, "app", &old, json!({"masterarn": admin})),
        &[],
        &t,
    )
    .await;
    let function = function(&redis, &[]).await;
    steps::replay(&function, &arn, &t, &[Step::CreateSecret]).await;
    let err = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(err.0, "NotRetryable.CacheAuth", "{err:?}");
    assert!(
        err.1.contains(&admin) && err.1.contains("admin"),
        "{}",
        err.1
    );
    assert_eq!(redis.password_count("app").unwrap(), 1);
    assert!(redis.logs_in("app", &old));
    let output = function.output();
    assert!(!output.contains(wrong.expose_secret()));
    assert_no_stored_secret_in(&store, &arn, &output).await;
}

/// User names full of ACL syntax rotate only their own user; names Redis
/// cannot hold (whitespace, newlines) are refused with a clear error.
#[tokio::test]
async fn hostile_user_names_inject_no_rules() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let (admin, team) = admin_secret(&store, &redis, &redis.admin_password()).await;
    let function = function(&redis, &[]).await;
    redis
        .create_user("victim", &random_password(), &[])
        .unwrap();
    let before = redis.admin(&["ACL", "LIST"]).unwrap();
    for name in ["a>b", "<x", "~*", "+@all", "nopass", "%RW~*", "&*"] {
        let old = random_password();
        redis.create_user(name, &old, &[]).unwrap();
        let t = token();
        let arn = staged_secret_named(
            &store,
            &format!("{team}{}", unique("h")),
            &secret(&redis, name, &old, json!({"masterarn": admin})),
            &[],
            &t,
        )
        .await;
        steps::replay(&function, &arn, &t, &Step::ALL).await;
        let new = password(&store, &arn, AWSCURRENT).await;
        assert!(redis.logs_in(name, &new), "{name:?}");
        let user = redis.admin(&["ACL", "GETUSER", name]).unwrap();
        assert!(
            !user.contains("nopass") || name == "nopass",
            "{name:?} got nopass"
        );
    }
    let after = redis.admin(&["ACL", "LIST"]).unwrap();
    let line = |list: &str, who: &str| {
        list.lines()
            .find(|l| l.starts_with(&format!("user {who} ")))
            .map(str::to_owned)
    };
    assert_eq!(
        line(&before, "victim"),
        line(&after, "victim"),
        "another user changed"
    );
    assert_eq!(line(&before, ADMIN_USER), line(&after, ADMIN_USER));
    for name in ["a b", "x\n+@all", "tab\there", ""] {
        let t = token();
        let arn = staged_secret(
            &store,
            &secret(&redis, name, &random_password(), json!({})),
            &[],
            &t,
        )
        .await;
        let err = steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap_err();
        assert_eq!(
            err.0, "NotRetryable.InvalidSecretValue",
            "{name:?}: {err:?}"
        );
        assert!(err.1.contains("username"), "{}", err.1);
    }
}

/// TLS is verified (a function that does not trust the test CA refuses the
/// server); plaintext only when the secret says "ssl": false.
#[tokio::test]
async fn tls_is_verified_and_plaintext_only_by_the_secret() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let old = random_password();
    redis.create_user("selfie", &old, &["+acl"]).unwrap();
    let untrusting = start_function("redis-rotation", &[]).await;
    let t = token();
    let arn = staged_secret(&store, &secret(&redis, "selfie", &old, json!({})), &[], &t).await;
    steps::replay(&untrusting, &arn, &t, &[Step::CreateSecret]).await;
    let err = steps::run(&untrusting, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(err.0, "NotRetryable.CacheTls", "{err:?}");
    assert_eq!(redis.password_count("selfie").unwrap(), 1);

    let t = token();
    let plain = json!({"port": redis.plain_port(), "ssl": false});
    let arn = staged_secret(&store, &secret(&redis, "selfie", &old, plain), &[], &t).await;
    steps::replay(&untrusting, &arn, &t, &Step::ALL).await;
    let new = password(&store, &arn, AWSCURRENT).await;
    assert!(
        redis
            .cli_as(Via::Plaintext, "selfie", &new, &["PING"])
            .unwrap()
            == "PONG"
    );
}

/// The crash matrix for redis-rotation: the function is killed before and
/// after each of its calls (to Secrets Manager and to Redis, counted across
/// both), one crash per rotation of the same secret, until a rotation makes
/// fewer calls. After each crash a stored password (AWSCURRENT, or AWSPENDING
/// once the user holds it) logs in; a fresh process retries the rotation with
/// the same token and finishes it; then the labels are exact, AWSCURRENT and
/// AWSPREVIOUS log in, and the user holds exactly those two passwords.
#[tokio::test]
async fn crash_matrix_at_every_call() {
    use rotor_cli::rotate::{RotateOptions, rotate};
    use rotor_testbed::fault_proxy::{CrashPlan, FaultProxy, When};

    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let target_proxy = FaultProxy::start("redis", ([127, 0, 0, 1], redis.tls_port()).into())
        .await
        .unwrap();
    let moto_address = moto()
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let sm_proxy = FaultProxy::start("secretsmanager", moto_address)
        .await
        .unwrap();
    let via_proxy = |user: &str, pw: &SecretString| {
        let mut value: Value = serde_json::from_str(&secret(&redis, user, pw, json!({}))).unwrap();
        value["port"] = json!(target_proxy.port());
        value.to_string()
    };
    let admin = store
        .create_secret(
            &unique("redis-admin"),
            &SecretString::from(via_proxy(ADMIN_USER, &redis.admin_password())),
            &[],
        )
        .await
        .unwrap();
    let old = random_password();
    redis.create_user("crash", &old, &[]).unwrap();
    let arn = store
        .create_secret(
            &unique("redis-crash"),
            &SecretString::from(via_proxy("crash", &old)),
            &[],
        )
        .await
        .unwrap();
    let ca = redis.ca_path().display().to_string();
    let env = [
        ("SSL_CERT_FILE", ca.as_str()),
        ("MASTER_SECRET_ARN", admin.as_str()),
    ];
    let logs_in = |stored: &Option<SecretString>| {
        stored.as_ref().is_some_and(|v| {
            let v: Value = serde_json::from_str(v.expose_secret()).unwrap();
            redis.logs_in(
                "crash",
                &SecretString::from(v["password"].as_str().unwrap()),
            )
        })
    };
    let options = |t: &str| RotateOptions {
        secret_id: arn.clone(),
        token: Some(t.to_owned()),
        test_only: false,
        step_timeout: std::time::Duration::from_secs(30),
    };
    let mut output = String::new();
    let mut crashes = 0;
    for when in [When::Before, When::After] {
        for at in 1.. {
            let plan = CrashPlan::new(at, when);
            let function =
                start_function_at("redis-rotation", &sm_proxy.http_endpoint(), &env).await;
            plan.set_victim(function.pid().expect("pid"));
            sm_proxy.set_plan(Some(plan.clone()));
            target_proxy.set_plan(Some(plan.clone()));
            let t = token();
            let run = rotate(&store, &function, &options(&t)).await.unwrap();
            sm_proxy.set_plan(None);
            target_proxy.set_plan(None);
            output.push_str(&function.output());
            output.push_str(&format!("{:?}", run.steps));
            let point = plan.fired();
            if let Some(point) = &point {
                crashes += 1;
                let (current, pending) = (
                    value(&store, &arn, AWSCURRENT).await,
                    value(&store, &arn, AWSPENDING).await,
                );
                assert!(
                    logs_in(&current) || logs_in(&pending),
                    "{point}: no stored password logs in"
                );
                let retry =
                    start_function_at("redis-rotation", &sm_proxy.http_endpoint(), &env).await;
                for step in Step::ALL {
                    let result = steps::run(&retry, &arn, &t, step).await;
                    assert!(
                        result.is_ok(),
                        "{point}: the retried {step} failed: {result:?}\n{}",
                        retry.output()
                    );
                }
                output.push_str(&retry.output());
            } else {
                assert!(
                    run.succeeded(),
                    "a rotation without a crash failed: {:?}\n{}",
                    run.steps.iter().map(|s| &s.result).collect::<Vec<_>>(),
                    function.output()
                );
            }
            let labels = labels(&store, &arn).await;
            assert_eq!(
                labels.get(&t).map(Vec::as_slice),
                Some(&[AWSCURRENT.to_owned()][..]),
                "{point:?}: {labels:?}"
            );
            assert!(
                labels.values().flatten().all(|l| l != AWSPENDING),
                "{point:?}: {labels:?}"
            );
            assert!(
                logs_in(&value(&store, &arn, AWSCURRENT).await),
                "{point:?}: AWSCURRENT"
            );
            assert!(
                logs_in(&value(&store, &arn, AWSPREVIOUS).await),
                "{point:?}: AWSPREVIOUS"
            );
            assert_eq!(redis.password_count("crash").unwrap(), 2, "{point:?}");
            if point.is_none() {
                break;
            }
        }
    }
    assert!(crashes > 20, "only {crashes} crash points");
    assert!(!output.contains(redis.admin_password().expose_secret()));
    assert_no_stored_secret_in(&store, &arn, &output).await;
    eprintln!("redis crash matrix: {crashes} crashes survived");
}

/// The link to Redis breaks after each of the function's round trips in
/// setSecret and finishSecret (between AUTH, ACL GETUSER, ACL SETUSER,
/// CONFIG GET and ACL SAVE): the step fails as retryable, the current
/// password still logs in, and the step's retry converges.
#[tokio::test]
async fn a_broken_link_between_acl_commands_is_retryable() {
    use rotor_testbed::fault_proxy::FaultProxy;

    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let proxy = FaultProxy::start("redis", ([127, 0, 0, 1], redis.tls_port()).into())
        .await
        .unwrap();
    let via_proxy = |user: &str, pw: &SecretString| {
        let mut value: Value = serde_json::from_str(&secret(&redis, user, pw, json!({}))).unwrap();
        value["port"] = json!(proxy.port());
        value.to_string()
    };
    let admin = store
        .create_secret(
            &unique("redis-admin"),
            &SecretString::from(via_proxy(ADMIN_USER, &redis.admin_password())),
            &[],
        )
        .await
        .unwrap();
    let function = function(&redis, &[("MASTER_SECRET_ARN", admin.as_str())]).await;
    let mut broken = 0;
    for cut in [Step::SetSecret, Step::FinishSecret] {
        let before: &[Step] = match cut {
            Step::SetSecret => &[Step::CreateSecret],
            _ => &[Step::CreateSecret, Step::SetSecret, Step::TestSecret],
        };
        for n in 1.. {
            let user = format!("link{n}{}", &cut.as_str()[..3]);
            let old = random_password();
            redis.create_user(&user, &old, &[]).unwrap();
            let t = token();
            let arn = staged_secret(&store, &via_proxy(&user, &old), &[], &t).await;
            for &step in before {
                steps::run(&function, &arn, &t, step).await.unwrap();
            }
            let start = proxy.chunks();
            proxy.cut_after(n);
            let result = steps::run(&function, &arn, &t, cut).await;
            let reached = proxy.chunks() - start >= n;
            proxy.cancel_cut();
            if let Err((kind, message)) = &result {
                assert!(
                    kind.starts_with("Retryable.Cache"),
                    "{cut}, cut after {n}: {kind}: {message}"
                );
                broken += 1;
            }
            assert!(
                redis.logs_in(&user, &old) || cut == Step::FinishSecret,
                "{cut}, cut after {n}: the current password"
            );
            for step in [cut, Step::TestSecret, Step::FinishSecret] {
                let again = steps::run(&function, &arn, &t, step).await;
                assert!(
                    again.is_ok(),
                    "{cut}, cut after {n}: {step} again: {again:?}\n{}",
                    function.output()
                );
            }
            let new = password(&store, &arn, AWSCURRENT).await;
            assert!(
                redis.logs_in(&user, &new) && redis.logs_in(&user, &old),
                "{cut}, cut after {n}"
            );
            assert_eq!(redis.password_count(&user).unwrap(), 2);
            if result.is_ok() && !reached {
                break;
            }
        }
    }
    assert!(broken >= 8, "only {broken} broken links");
    assert!(
        !function
            .output()
            .contains(redis.admin_password().expose_secret())
    );
}

/// A secret that names a user whose password it does not hold (another
/// application's user, or the admin itself) gets nothing from the admin
/// secret that serves it: setSecret refuses (the admin's own user before any
/// login, another user once the admin's ACL GETUSER shows it holds none of
/// the secret's passwords), no password is added.
#[tokio::test]
async fn a_secret_cannot_borrow_the_admin_for_another_user() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let (admin, team) = admin_secret(&store, &redis, &redis.admin_password()).await;
    redis
        .create_user("victim", &random_password(), &[])
        .unwrap();
    let function = function(&redis, &[]).await;
    for (user, refusal) in [
        ("victim", "NotRetryable.CacheMismatch"),
        (ADMIN_USER, "NotRetryable.NotManaged"),
    ] {
        let before = redis.password_count(user).unwrap();
        let t = token();
        let guess = random_password();
        let arn = staged_secret_named(
            &store,
            &format!("{team}{}", unique("borrow")),
            &secret(&redis, user, &guess, json!({"masterarn": admin})),
            &[],
            &t,
        )
        .await;
        steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .unwrap();
        let err = steps::run(&function, &arn, &t, Step::SetSecret)
            .await
            .unwrap_err();
        assert_eq!(err.0, refusal, "{user}: {err:?}");
        assert_eq!(
            redis.password_count(user).unwrap(),
            before,
            "{user}: a password was added"
        );
        let pending = password(&store, &arn, AWSPENDING).await;
        assert!(!redis.logs_in(user, &pending));
    }
    assert!(redis.logs_in(ADMIN_USER, &redis.admin_password()));
}

/// AWSPREVIOUS overwritten by hand with a value that does not parse, under
/// the default REVOKE_PREVIOUS=next-rotation: finishSecret (replayed) cannot
/// tell which password AWSPREVIOUS holds, so it removes none and says so
/// (InvalidSecretValue naming AWSPREVIOUS; the labels had moved already);
/// the previous password still logs in. The next rotation's setSecret does
/// without it (a warning names it), and its finishSecret, which makes the
/// last AWSCURRENT the AWSPREVIOUS, tidies as usual.
#[tokio::test]
async fn a_broken_previous_value_removes_no_password() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let first = random_password();
    redis.create_user("selfie", &first, &["+acl"]).unwrap();
    let t = token();
    let arn = staged_secret(
        &store,
        &secret(&redis, "selfie", &first, json!({})),
        &[],
        &t,
    )
    .await;
    let function = function(&redis, &[]).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let second = password(&store, &arn, AWSCURRENT).await;
    assert_eq!(redis.password_count("selfie").unwrap(), 2);

    let broken = NewVersion {
        version_id: &token(),
        value: &SecretString::from("{not json"),
        labels: &[AWSPREVIOUS],
        rotation_token: None,
    };
    store.put_value(&arn, broken).await.unwrap();
    let (kind, message) = steps::run(&function, &arn, &t, Step::FinishSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.InvalidSecretValue", "{message}");
    assert!(
        message.contains(AWSPREVIOUS) && message.contains("no password was removed"),
        "{message}"
    );
    assert!(redis.logs_in("selfie", &first), "AWSPREVIOUS's password");
    assert!(redis.logs_in("selfie", &second));
    assert_eq!(redis.password_count("selfie").unwrap(), 2);

    let t2 = token();
    store.begin_rotation(&arn, &t2).await.unwrap();
    steps::replay(&function, &arn, &t2, &Step::ALL).await;
    let third = password(&store, &arn, AWSCURRENT).await;
    assert!(
        !redis.logs_in("selfie", &first),
        "removed by the next rotation"
    );
    assert!(redis.logs_in("selfie", &second) && redis.logs_in("selfie", &third));
    assert_eq!(redis.password_count("selfie").unwrap(), 2);
    let output = function.output();
    assert!(
        output.contains("WARN") && output.contains(AWSPREVIOUS),
        "setSecret's warning names AWSPREVIOUS"
    );
    assert_no_stored_secret_in(&store, &arn, &output).await;
}
