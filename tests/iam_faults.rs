//! iam-rotation's crash matrix and store faults (issue 23).
//!
//! The function is killed with SIGKILL before and after every call it makes
//! (to Secrets Manager, and to IAM and STS), one crash per rotation, until a
//! rotation gets through without reaching the crash point; every call goes
//! through a [`FaultProxy`] sharing one count. After each crash, checked
//! independently of the function: AWSCURRENT's key signs in at STS as the
//! user, the user holds at most two keys, and a bystander user's keys are
//! untouched. Then a fresh process retries the rotation with the same token,
//! as Secrets Manager does, and it completes: the token AWSCURRENT, its key
//! signing in, never a third key, the first key still there (the default
//! `REVOKE_PREVIOUS`), and no leftover key an attempt made.
//!
//! `cargo test -p rotor-tests --test integration -- iam_faults --nocapture`
//! prints the matrix.

use std::net::SocketAddr;
use std::time::Instant;

use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::{ExposeSecret, Step};
use rotor_testbed::fault_proxy::{CrashPlan, FaultProxy, When};
use rotor_testbed::sm_proxy::{Fault, SmProxy};
use rotor_tests::iam::{self, FUNCTION_ACTIONS};
use rotor_tests::{moto, steps, value};

use crate::iam::Case;

fn address(endpoint: &str) -> SocketAddr {
    endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("an address")
}

/// Runs the steps in order until one fails or the process dies: that
/// failure (an error type, or how the invocation ended), or None.
async fn until_killed_or_refused(
    function: &rotor_cli::function::LocalFunction,
    arn: &str,
    token: &str,
) -> Option<String> {
    use rotor_cli::runtime_api::Outcome;
    for step in Step::ALL {
        let payload = bytes::Bytes::from(steps::event(arn, token, step).to_string());
        match function
            .invoke_raw(payload, std::time::Duration::from_secs(30))
            .await
        {
            Err(e) => return Some(format!("{step}: {e}")),
            Ok(invocation) => match invocation.outcome {
                Outcome::Response(_) => {}
                Outcome::Error { error_type, .. } => return Some(format!("{step}: {error_type}")),
            },
        }
    }
    None
}

#[tokio::test]
async fn crash_matrix_iam() {
    let started = Instant::now();
    let sm = FaultProxy::start("secretsmanager", address(moto().endpoint()))
        .await
        .unwrap();
    let iam_proxy = FaultProxy::start("iam", address(iam::iam_moto().endpoint()))
        .await
        .unwrap();
    let fn_key = iam::function_user(&FUNCTION_ACTIONS).await;
    let (bystander, _) = iam::user_with_key("bystander").await;
    let bystander_keys = iam::keys(&bystander).await;
    let mut output = String::new();
    let mut secrets = Vec::new();
    let (mut survived, mut calls, mut split) = ([0u32; 2], 0, (0, 0));
    let mut at = 1;
    loop {
        let mut crashed = false;
        for (i, when) in [When::Before, When::After].into_iter().enumerate() {
            let case = Case::new().await;
            secrets.push(case.first.secret.expose_secret().to_owned());
            let allowed = iam::user_arn(&case.user);
            let env = [("IAM_USER_ARNS", allowed.as_str())];
            let function = iam::start(
                &sm.http_endpoint(),
                &iam_proxy.http_endpoint(),
                &fn_key,
                &env,
            )
            .await;
            let plan = CrashPlan::new(at, when);
            plan.set_victim(function.pid().expect("pid"));
            sm.set_plan(Some(plan.clone()));
            iam_proxy.set_plan(Some(plan.clone()));
            let before = (sm.chunks(), iam_proxy.chunks());
            let failed = until_killed_or_refused(&function, &case.arn, &case.token).await;
            sm.set_plan(None);
            iam_proxy.set_plan(None);
            output.push_str(&function.output());
            output.push_str(&format!("{failed:?}"));
            let Some(point) = plan.fired() else {
                assert!(
                    failed.is_none(),
                    "a rotation without a crash failed: {failed:?}"
                );
                calls = plan.calls();
                split = (sm.chunks() - before.0, iam_proxy.chunks() - before.1);
                case.assert_sound().await;
                continue;
            };
            crashed = true;
            // 1. A working credential is stored, and never a third key.
            case.assert_sound().await;
            assert_eq!(iam::keys(&bystander).await, bystander_keys, "{point}");
            // 2. Secrets Manager retries with the same token, in a new process.
            let retry =
                iam::start(moto().endpoint(), iam::iam_moto().endpoint(), &fn_key, &env).await;
            for step in Step::ALL {
                let result = steps::run(&retry, &case.arn, &case.token, step).await;
                assert!(
                    result.is_ok(),
                    "{point}: the retried {step} failed: {result:?}\n{}",
                    retry.output()
                );
            }
            output.push_str(&retry.output());
            // 3. Finished exactly: the token is current, its key works, the
            // first key stays (default REVOKE_PREVIOUS), no leftover key.
            let current = case.assert_sound().await;
            assert!(
                value(&case.store, &case.arn, AWSPENDING).await.is_none() || {
                    let labels = rotor_tests::labels(&case.store, &case.arn).await;
                    labels
                        .get(&case.token)
                        .is_some_and(|l| l.iter().any(|x| x == AWSCURRENT))
                }
            );
            let mut expected = vec![(case.first.id.clone(), true), (current.id.clone(), true)];
            expected.sort();
            assert_eq!(iam::keys(&case.user).await, expected, "{point}");
            secrets.push(current.secret.expose_secret().to_owned());
            survived[i] += 1;
        }
        if !crashed {
            break;
        }
        at += 1;
    }
    let total = survived[0] + survived[1];
    eprintln!(
        "crash matrix iam-rotation: {calls} calls per rotation ({} Secrets Manager + {} IAM/STS), {total} crashes survived (before {}, after {}); {} secret access keys searched for in {} bytes of output and errors; {:.1?}",
        split.0,
        split.1,
        survived[0],
        survived[1],
        secrets.len(),
        output.len(),
        started.elapsed()
    );
    assert!(total > 0, "no crash happened");
    rotor_tests::assert_none_in(&secrets, "a secret access key", &output);
}

/// PutSecretValue throttled past the SDK's own retries: the key IAM issued
/// is retried into the store within the step, with a single CreateAccessKey;
/// refused for the whole step, the step fails saying what to do and a warm
/// retry stores the kept key without making another.
#[tokio::test]
async fn put_secret_value_throttled_past_the_sdks_retries() {
    for (throttled, completes_in_step) in [(5, true), (u32::MAX, false)] {
        let case = Case::new().await;
        let limit = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(throttled));
        let plan_limit = limit.clone();
        let proxy = SmProxy::with_faults(moto().endpoint(), move |op, _, attempt| {
            let limit = plan_limit.load(std::sync::atomic::Ordering::SeqCst);
            (op == "PutSecretValue" && attempt <= limit).then_some(Fault::Throttled)
        })
        .await
        .unwrap();
        let allowed = iam::user_arn(&case.user);
        let fn_key = iam::function_user(&FUNCTION_ACTIONS).await;
        let env = [("IAM_USER_ARNS", allowed.as_str())];
        let function =
            iam::start(proxy.endpoint(), iam::iam_moto().endpoint(), &fn_key, &env).await;
        let timeout = std::time::Duration::from_secs(if completes_in_step { 30 } else { 4 });
        let event = steps::event(&case.arn, &case.token, Step::CreateSecret);
        let first = rotor_tests::step_within(&function, &event, timeout).await;
        if completes_in_step {
            assert!(first.is_ok(), "{first:?}\n{}", function.output());
        } else {
            let Err((kind, message)) = &first else {
                panic!("createSecret passed while every write was refused");
            };
            assert_eq!(kind, "NotRetryable.ValueNotStored", "{message}");
            assert!(message.contains("exists only at IAM"), "{message}");
            assert!(value(&case.store, &case.arn, AWSPENDING).await.is_none());
            case.assert_sound().await;
            limit.store(0, std::sync::atomic::Ordering::SeqCst);
            let kept = steps::run(&function, &case.arn, &case.token, Step::CreateSecret).await;
            assert!(kept.is_ok(), "{kept:?}\n{}", function.output());
        }
        assert_eq!(
            iam::keys(&case.user).await.len(),
            2,
            "exactly one key was made"
        );
        for step in steps::from(Step::SetSecret) {
            let result = steps::run(&function, &case.arn, &case.token, *step).await;
            assert!(result.is_ok(), "{step}: {result:?}");
        }
        case.assert_sound().await;
        let secrets = [case.first.secret.expose_secret().to_owned()];
        rotor_tests::assert_none_in(&secrets, "a secret access key", &function.output());
    }
}
