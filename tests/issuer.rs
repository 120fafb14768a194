//! generic-rotation's issuer mode (`rotor:mode=issue`), the real binary over
//! the Lambda Runtime API, against moto and the test bed's issuer (the
//! webhook receiver's issuer role, which keeps its own record of live keys).
//!
//! After every scenario, the issuer's record must match the secret: the key
//! AWSCURRENT holds is live, AWSPREVIOUS's per `REVOKE_PREVIOUS`, and no other
//! key the rotations had minted is.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rotor_cli::function::LocalFunction;
use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString, Step};
use rotor_testbed::fault_proxy::{CrashPlan, FaultProxy, When};
use rotor_testbed::sm_proxy::{Fault, SmProxy};
use rotor_testbed::webhook_receiver::{Behaviour, WebhookReceiver};
use rotor_tests::{
    assert_no_stored_secret_in, labels, moto, moto_store, start_function, start_function_at,
    step_within, steps, token, unique, value,
};
use serde_json::{Value, json};

/// The fields the issuer fills.
const FIELDS: &str = "api_key";

/// An issuer, its signing key's secret, and the store.
struct Bed {
    store: AwsStore,
    receiver: WebhookReceiver,
    key_secret: String,
}

impl Bed {
    async fn start() -> Bed {
        let store = moto_store();
        let key = SecretString::from(token());
        let receiver = WebhookReceiver::start(SecretString::from(key.expose_secret()))
            .await
            .unwrap();
        let key_secret = store
            .create_secret(&unique("issuer-key"), &key, &[])
            .await
            .unwrap();
        Bed {
            store,
            receiver,
            key_secret,
        }
    }

    /// The function's environment: the issuer at `url` (the receiver, or a
    /// proxy in front of it), its key, and `extra`.
    fn env<'a>(&'a self, url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("ROTOR_WEBHOOK_URL", url),
            ("ROTOR_WEBHOOK_KEY_SECRET", self.key_secret.as_str()),
        ];
        env.extend_from_slice(extra);
        env
    }

    async fn function(&self, extra: &[(&str, &str)]) -> LocalFunction {
        let url = self.receiver.url();
        start_function("generic-rotation", &self.env(&url, extra)).await
    }

    /// A secret holding a key the issuer minted by hand, tagged for issuer
    /// mode, with a rotation to `t` begun.
    async fn secret(&self, t: &str) -> String {
        let arn = self.secret_unstaged().await;
        self.store.begin_rotation(&arn, t).await.unwrap();
        arn
    }

    async fn secret_unstaged(&self) -> String {
        self.secret_tagged(&[]).await
    }

    async fn secret_tagged(&self, extra: &[(&str, &str)]) -> String {
        let (key_id, fields) = self.receiver.mint("initial", &[FIELDS]);
        let mut value = json!({"user": "svc", "key_id": key_id});
        value.as_object_mut().unwrap().extend(fields);
        let mut tags = vec![("rotor:mode", "issue"), ("rotor:fields", FIELDS)];
        tags.extend_from_slice(extra);
        self.store
            .create_secret(
                &unique("issued"),
                &SecretString::from(value.to_string()),
                &tags,
            )
            .await
            .unwrap()
    }

    /// The key id a label's value holds.
    async fn key_id(&self, arn: &str, label: &str) -> Option<String> {
        let stored = value(&self.store, arn, label).await?;
        let parsed: Value = serde_json::from_str(stored.expose_secret()).ok()?;
        parsed["key_id"].as_str().map(str::to_owned)
    }

    /// The issuer's live keys are exactly AWSCURRENT's (and AWSPREVIOUS's
    /// when it lives until the next rotation), among the keys of `arn`'s
    /// versions and of every key minted for them.
    async fn assert_issuer_matches(&self, arn: &str, previous_live: bool) {
        // Each test's issuer serves one secret at a time: every key it
        // minted is this secret's, the first (minted by hand) included.
        let mut expected = BTreeSet::new();
        expected.extend(self.key_id(arn, AWSCURRENT).await);
        if previous_live {
            expected.extend(self.key_id(arn, AWSPREVIOUS).await);
        }
        let live: BTreeSet<String> = self.receiver.live_keys().into_iter().collect();
        let seen: Vec<String> = self
            .receiver
            .seen()
            .iter()
            .map(|s| format!("{} {} {}", s.action, s.version_id, s.status))
            .collect();
        assert_eq!(
            live,
            expected,
            "the issuer's live keys of {arn} are exactly the ones its versions should hold; versions {:?}; requests {seen:?}",
            labels(&self.store, arn).await
        );
        // And the current key works at the issuer.
        let current = value(&self.store, arn, AWSCURRENT).await.unwrap();
        let parsed: Value = serde_json::from_str(current.expose_secret()).unwrap();
        assert!(
            self.receiver
                .accepts("api_key", parsed["api_key"].as_str().unwrap()),
            "the issuer accepts AWSCURRENT's key"
        );
    }

    /// How many `issue` requests the issuer answered with a key.
    fn issued(&self) -> usize {
        self.receiver
            .seen()
            .iter()
            .filter(|s| s.action == "issue" && s.status == 200)
            .count()
    }
}

fn options(arn: &str, t: &str) -> RotateOptions {
    RotateOptions {
        secret_id: arn.into(),
        token: Some(t.into()),
        test_only: false,
        step_timeout: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn an_issued_key_rotates_with_every_step_replayed() {
    let bed = Bed::start().await;
    let function = bed.function(&[]).await;
    let t = token();
    let arn = bed.secret(&t).await;
    let old_key = bed.key_id(&arn, AWSCURRENT).await.unwrap();
    let old_value = value(&bed.store, &arn, AWSCURRENT).await.unwrap();
    for step in Step::ALL {
        let first = steps::run(&function, &arn, &t, step).await;
        let second = steps::run(&function, &arn, &t, step).await;
        assert!(first.is_ok(), "{step}: {first:?}\n{}", function.output());
        match step {
            Step::CreateSecret => assert_eq!(second.as_deref(), Ok("pending_kept")),
            Step::FinishSecret => assert_eq!(second.as_deref(), Ok("already_current")),
            _ => assert_eq!(first, second, "{step}"),
        }
    }
    assert_eq!(bed.issued(), 1, "one key minted for one rotation");
    assert_eq!(
        labels(&bed.store, &arn).await.get(&t),
        Some(&vec![AWSCURRENT.to_owned()])
    );
    let new: Value = serde_json::from_str(
        value(&bed.store, &arn, AWSCURRENT)
            .await
            .unwrap()
            .expose_secret(),
    )
    .unwrap();
    assert_eq!(
        new["user"], "svc",
        "the fields the issuer does not own are kept"
    );
    assert_ne!(new["key_id"].as_str(), Some(old_key.as_str()));
    bed.assert_issuer_matches(&arn, false).await;
    let old: Value = serde_json::from_str(old_value.expose_secret()).unwrap();
    assert!(
        !bed.receiver
            .accepts("api_key", old["api_key"].as_str().unwrap()),
        "the previous key is revoked at finishSecret"
    );
    // The issuer saw version ids and key ids, never a value it did not issue.
    assert!(bed.receiver.seen().iter().all(|s| !s.carried_current));
    assert_no_stored_secret_in(&bed.store, &arn, &function.output()).await;
}

#[tokio::test]
async fn two_rotations_keep_the_previous_key_until_the_next_one() {
    let bed = Bed::start().await;
    let function = bed.function(&[("REVOKE_PREVIOUS", "next-rotation")]).await;
    let arn = bed.secret_unstaged().await;
    let first_key = bed.key_id(&arn, AWSCURRENT).await.unwrap();
    for round in 1..=2 {
        let t = token();
        bed.store.begin_rotation(&arn, &t).await.unwrap();
        let run = rotate(&bed.store, &function, &options(&arn, &t))
            .await
            .unwrap();
        assert!(run.succeeded(), "round {round}: {:?}", run.steps);
        bed.assert_issuer_matches(&arn, true).await;
    }
    let live = bed.receiver.live_keys();
    assert!(
        !live.contains(&first_key),
        "the first key is revoked at the second rotation"
    );
    assert_no_stored_secret_in(&bed.store, &arn, &function.output()).await;
}

#[tokio::test]
async fn a_failed_test_is_resumed_without_a_second_key() {
    let bed = Bed::start().await;
    let function = bed.function(&[]).await;
    let t = token();
    let arn = bed.secret(&t).await;
    bed.receiver.set_behaviour("test", Behaviour::Refuse(503));
    let first = rotate(&bed.store, &function, &options(&arn, &t))
        .await
        .unwrap();
    let failed = first.steps.last().unwrap();
    assert_eq!(failed.step, Step::TestSecret);
    let (kind, message) = failed.result.as_ref().unwrap_err();
    assert_eq!(kind, "Retryable.WebhookUnavailable", "{message}");
    assert!(value(&bed.store, &arn, AWSPENDING).await.is_some());

    bed.receiver.set_behaviour("test", Behaviour::Accept);
    let second = rotate(&bed.store, &function, &options(&arn, &t))
        .await
        .unwrap();
    assert!(second.succeeded(), "{:?}", second.steps);
    assert_eq!(
        second.steps[0].result.as_ref().unwrap()["outcome"],
        "pending_kept"
    );
    assert_eq!(bed.issued(), 1);
    bed.assert_issuer_matches(&arn, false).await;
}

#[tokio::test]
async fn the_current_value_reaches_the_issuer_only_if_the_deployer_allows() {
    let bed = Bed::start().await;
    let function = bed
        .function(&[("ROTOR_ISSUER_SENDS_CURRENT", "true")])
        .await;
    let t = token();
    let arn = bed.secret(&t).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;
    let seen = bed.receiver.seen();
    let issue = seen.iter().find(|s| s.action == "issue").unwrap();
    assert!(issue.carried_current);
    assert!(
        seen.iter()
            .filter(|s| s.action != "issue")
            .all(|s| !s.carried_current)
    );
}

/// A hostile or broken issuer: refused, nothing stored; the key it minted
/// before answering badly is revoked by the next rotation that gets through.
#[tokio::test]
async fn hostile_issuer_answers_are_refused_and_nothing_is_stored() {
    let bed = Bed::start().await;
    let function = bed.function(&[]).await;
    let t = token();
    let arn = bed.secret(&t).await;
    for (behaviour, kind, says) in [
        (
            Behaviour::Malformed,
            "NotRetryable.WebhookProtocol",
            "not a JSON object",
        ),
        (Behaviour::Oversized, "NotRetryable.WebhookProtocol", "KiB"),
        (
            Behaviour::ForeignField,
            "NotRetryable.WebhookProtocol",
            "\"password\"",
        ),
        (
            Behaviour::Redirect,
            "NotRetryable.WebhookRejected",
            "redirect",
        ),
        (
            Behaviour::Refuse(500),
            "Retryable.WebhookUnavailable",
            "HTTP 500",
        ),
    ] {
        bed.receiver.set_behaviour("issue", behaviour);
        let failed = steps::run(&function, &arn, &t, Step::CreateSecret).await;
        let (got, message) = failed.expect_err("refused");
        assert_eq!(got, kind, "{behaviour:?}: {message}");
        assert!(message.contains(says), "{behaviour:?}: {message}");
        assert!(message.contains(&arn), "{message}");
        assert!(!message.contains("taken-over"));
        assert!(
            value(&bed.store, &arn, AWSPENDING).await.is_none(),
            "{behaviour:?}: nothing is stored"
        );
    }
    bed.receiver.set_behaviour("issue", Behaviour::Accept);
    let run = rotate(&bed.store, &function, &options(&arn, &t))
        .await
        .unwrap();
    assert!(run.succeeded(), "{:?}", run.steps);
    bed.assert_issuer_matches(&arn, false).await;
    assert_no_stored_secret_in(&bed.store, &arn, &function.output()).await;
}

#[tokio::test]
async fn an_issuer_url_outside_the_allowed_prefixes_is_never_called() {
    let bed = Bed::start().await;
    let function = start_function(
        "generic-rotation",
        &[
            (
                "ROTOR_WEBHOOK_ALLOWED_PREFIXES",
                "https://issuer.example.com/rotor",
            ),
            ("ROTOR_WEBHOOK_KEY_SECRET", &bed.key_secret),
        ],
    )
    .await;
    let t = token();
    let url = bed.receiver.url();
    let arn = bed.secret_tagged(&[("rotor:webhook", &url)]).await;
    bed.store.begin_rotation(&arn, &t).await.unwrap();
    let (kind, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .expect_err("refused");
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(message.contains("rotor:webhook"), "{message}");
    assert!(
        bed.receiver.seen().is_empty(),
        "the issuer was never called"
    );
    assert!(value(&bed.store, &arn, AWSPENDING).await.is_none());
}

/// PutSecretValue throttled after the issuer minted: the key is stored
/// exactly once, by retries within the step and, in the same process, by a
/// retry of the step, never by asking for a second key. A process that dies
/// with the key unstored leaves one orphan, which the next attempt revokes.
#[tokio::test]
async fn a_throttled_write_after_issue_stores_the_key_once() {
    let bed = Bed::start().await;
    let throttled = Arc::new(AtomicU32::new(5));
    let plan = throttled.clone();
    let sm = SmProxy::with_faults(moto().endpoint(), move |operation, _, _| {
        (operation == "PutSecretValue"
            && plan
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok())
        .then_some(Fault::Throttled)
    })
    .await
    .unwrap();
    let url = bed.receiver.url();
    let function = start_function_at("generic-rotation", sm.endpoint(), &bed.env(&url, &[])).await;

    // A few throttled attempts: the driver's retries store the key.
    let t = token();
    let arn = bed.secret(&t).await;
    let created = steps::run(&function, &arn, &t, Step::CreateSecret).await;
    assert_eq!(created.as_deref(), Ok("done"), "{}", function.output());
    assert_eq!(bed.issued(), 1);
    steps::replay(&function, &arn, &t, steps::from(Step::SetSecret)).await;
    bed.assert_issuer_matches(&arn, false).await;

    // Throttled to the step's deadline: the key is kept, and the error says
    // which key and how to recover.
    throttled.store(u32::MAX, Ordering::SeqCst);
    let t = token();
    bed.store.begin_rotation(&arn, &t).await.unwrap();
    let create = steps::event(&arn, &t, Step::CreateSecret);
    let (kind, message) = step_within(&function, &create, Duration::from_secs(4))
        .await
        .expect_err("not stored");
    // Not retryable as it stands: the service's retry (or the operator's)
    // stores the kept value once the cause is fixed, as the message says.
    assert_eq!(kind, "NotRetryable.ValueNotStored", "{message}");
    let minted = bed.receiver.live_keys();
    let orphan = bed
        .receiver
        .keys()
        .into_iter()
        .find(|(_, k)| k.version_id == t)
        .map(|(id, _)| id)
        .unwrap();
    assert!(minted.contains(&orphan));
    assert!(
        message.contains(&orphan) && message.contains("revokes"),
        "{message}"
    );
    throttled.store(0, Ordering::SeqCst);
    let again = step_within(&function, &create, Duration::from_secs(30)).await;
    assert_eq!(again.as_deref(), Ok("done"));
    assert_eq!(bed.issued(), 2, "the kept key was stored, no other minted");
    assert_eq!(
        bed.key_id(&arn, AWSPENDING).await.as_deref(),
        Some(orphan.as_str())
    );
    steps::replay(&function, &arn, &t, steps::from(Step::SetSecret)).await;
    bed.assert_issuer_matches(&arn, false).await;

    // The process dies with the key unstored: a fresh one mints another and
    // its setSecret revokes the first.
    throttled.store(u32::MAX, Ordering::SeqCst);
    let t = token();
    bed.store.begin_rotation(&arn, &t).await.unwrap();
    let create = steps::event(&arn, &t, Step::CreateSecret);
    let failed = step_within(&function, &create, Duration::from_secs(4)).await;
    assert!(failed.is_err());
    drop(function);
    throttled.store(0, Ordering::SeqCst);
    let fresh = start_function_at("generic-rotation", sm.endpoint(), &bed.env(&url, &[])).await;
    let run = rotate(&bed.store, &fresh, &options(&arn, &t))
        .await
        .unwrap();
    assert!(run.succeeded(), "{:?}", run.steps);
    assert_eq!(bed.issued(), 4);
    bed.assert_issuer_matches(&arn, false).await;
    assert_no_stored_secret_in(&bed.store, &arn, &fresh.output()).await;
}

/// The crash matrix at the issuer boundary: the function killed before and
/// after every call (to Secrets Manager or the issuer), one crash per
/// rotation; a fresh process retries with the same token and completes, and
/// the issuer's record then matches the secret.
#[tokio::test]
async fn crash_matrix_issuer() {
    let bed = Bed::start().await;
    let upstream = bed
        .receiver
        .url()
        .trim_start_matches("http://")
        .trim_end_matches("/rotor")
        .parse()
        .unwrap();
    let issuer_proxy = FaultProxy::start("issuer", upstream).await.unwrap();
    let moto_address = moto()
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let sm_proxy = FaultProxy::start("secretsmanager", moto_address)
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}/rotor", issuer_proxy.port());
    let env = bed.env(&url, &[]);
    let sm_endpoint = sm_proxy.http_endpoint();
    let start = || start_function_at("generic-rotation", &sm_endpoint, &env);
    let arn = bed.secret_unstaged().await;
    let mut output = String::new();
    let (mut survived, mut orphans_revoked, mut at) = ([0u32; 2], 0, 1);
    loop {
        let mut crashed = false;
        for (slot, when) in [When::Before, When::After].into_iter().enumerate() {
            let t = token();
            bed.store.begin_rotation(&arn, &t).await.unwrap();
            let old_current = bed.key_id(&arn, AWSCURRENT).await;
            let plan = CrashPlan::new(at, when);
            let function = start().await;
            plan.set_victim(function.pid().expect("pid"));
            issuer_proxy.set_plan(Some(plan.clone()));
            sm_proxy.set_plan(Some(plan.clone()));
            let run = rotate(&bed.store, &function, &options(&arn, &t))
                .await
                .unwrap();
            issuer_proxy.set_plan(None);
            sm_proxy.set_plan(None);
            output.push_str(&function.output());
            output.push_str(&format!("{:?}", run.steps));
            if plan.fired().is_none() {
                assert!(run.succeeded(), "{:?}", run.steps);
                bed.assert_issuer_matches(&arn, false).await;
                continue;
            }
            crashed = true;
            // A working key is stored right now: AWSCURRENT's is live.
            let current = bed.key_id(&arn, AWSCURRENT).await.unwrap();
            let live = bed.receiver.live_keys();
            let pending = bed.key_id(&arn, AWSPENDING).await;
            assert!(
                live.contains(&current) || pending.is_some_and(|p| live.contains(&p)),
                "{at} {when:?}: no stored key is live"
            );
            let orphans_before = revoked_orphans(&bed, &t);
            let retry = start().await;
            // Secrets Manager reattempts the rotation from createSecret,
            // with the same token, in a fresh process.
            for step in Step::ALL {
                let result = steps::run(&retry, &arn, &t, step).await;
                output.push_str(&format!("{result:?}"));
                assert!(
                    result.is_ok(),
                    "{at} {when:?}: the retried {step} failed: {result:?}\n{}",
                    retry.output()
                );
            }
            output.push_str(&retry.output());
            assert_eq!(
                labels(&bed.store, &arn).await.get(&t),
                Some(&vec![AWSCURRENT.to_owned()])
            );
            assert_ne!(bed.key_id(&arn, AWSCURRENT).await, old_current);
            bed.assert_issuer_matches(&arn, false).await;
            orphans_revoked += revoked_orphans(&bed, &t) - orphans_before;
            survived[slot] += 1;
        }
        if !crashed {
            break;
        }
        at += 1;
    }
    let total = survived[0] + survived[1];
    eprintln!(
        "crash matrix issuer: {} calls per rotation, {total} crashes survived (before {}, after {}), {orphans_revoked} orphan keys revoked by the retries; {} bytes of output searched",
        at - 1,
        survived[0],
        survived[1],
        output.len()
    );
    assert!(total > 0);
    assert_no_stored_secret_in(&bed.store, &arn, &output).await;
    let minted: Vec<String> = bed
        .receiver
        .keys()
        .values()
        .flat_map(|k| k.fields.values().cloned())
        .collect();
    rotor_tests::assert_none_in(&minted, "a minted key", &output);
}

/// How many keys minted for version `t` the issuer has revoked, other than
/// the one stored there.
fn revoked_orphans(bed: &Bed, t: &str) -> u32 {
    bed.receiver
        .keys()
        .values()
        .filter(|k| k.version_id == t && k.revoked)
        .count() as u32
}
