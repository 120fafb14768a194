//! The generic rotator through the driver, on the in-memory store.

use std::collections::BTreeMap;

use rotor_core::labels::{AWSPENDING, AWSPREVIOUS};
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{Driver, MemoryStore, Outcome, RotationEvent, Step};

use super::*;

fn rotator(env: &[(&str, &str)]) -> GenericRotator {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    GenericRotator::with_defaults(Defaults::from_lookup(|k| env.get(k).cloned()).unwrap())
}

async fn secret(store: &MemoryStore, value: &str, tags: &[(&str, &str)]) -> String {
    let arn = store
        .create_secret("s", &SecretString::from(value), tags)
        .await
        .unwrap();
    store.begin_rotation(&arn, "v2").await.unwrap();
    arn
}

fn event(arn: &str, step: Step) -> RotationEvent {
    RotationEvent {
        secret_id: arn.into(),
        version_id: "v2".into(),
        step,
        rotation_token: None,
    }
}

async fn value(store: &MemoryStore, arn: &str, label: &str) -> String {
    let stored = store
        .get_value(arn, VersionSelector::Label(label))
        .await
        .unwrap()
        .unwrap();
    stored.value.expose_secret().to_owned()
}

/// A driver over a new in-memory store with the environment `env`, and a
/// secret of value `value` tagged `tags` whose rotation to v2 is staged.
async fn staged(
    env: &[(&str, &str)],
    value: &str,
    tags: &[(&str, &str)],
) -> (Driver<MemoryStore, GenericRotator>, String) {
    let driver = Driver::new(MemoryStore::new(), rotator(env));
    let arn = secret(driver.store(), value, tags).await;
    (driver, arn)
}

async fn rotate(driver: &Driver<MemoryStore, GenericRotator>, arn: &str) -> Result<(), Error> {
    for step in Step::ALL {
        driver.run(&event(arn, step)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn plain_secret_is_replaced_whole_with_the_environment_policy() {
    let (driver, arn) = staged(&[("PASSWORD_LENGTH", "40")], "old-password", &[]).await;
    rotate(&driver, &arn).await.unwrap();
    let new = value(driver.store(), &arn, AWSCURRENT).await;
    assert_eq!(new.len(), 40);
    assert_eq!(
        value(driver.store(), &arn, AWSPREVIOUS).await,
        "old-password"
    );
}

/// Someone stores a new current value between createSecret and setSecret:
/// setSecret refuses to apply the older rotation's value, and says how to
/// cancel it.
#[tokio::test]
async fn a_current_value_stored_during_the_rotation_is_not_undone() {
    let (driver, arn) = staged(&[], "old-password", &[]).await;
    driver.run(&event(&arn, Step::CreateSecret)).await.unwrap();
    let theirs = SecretString::from("set-by-an-operator");
    let put = rotor_core::store::NewVersion {
        version_id: "v3",
        value: &theirs,
        labels: &[AWSCURRENT],
        rotation_token: None,
    };
    driver.store().put_value(&arn, put).await.unwrap();
    let error = driver.run(&event(&arn, Step::SetSecret)).await.unwrap_err();
    assert_eq!(error.error_type(), "NotRetryable.CurrentChanged");
    let message = error.to_string();
    assert!(
        message.contains("version v3") && message.contains("--remove-from-version-id v2"),
        "{message}"
    );
    assert_eq!(
        value(driver.store(), &arn, AWSCURRENT).await,
        "set-by-an-operator"
    );
}

#[tokio::test]
async fn json_secret_keeps_every_other_field_exactly() {
    let old = concat!(
        r#"{"username":"app","password":"x","port":123456789012345678901234567890,"#,
        r#""nested":{"b":1,"a":[true,null]},"zeta":1.50}"#
    );
    let tags = [
        ("rotor:fields", "password api_key"),
        ("rotor:generate:api_key", "hex bytes=16"),
    ];
    let (driver, arn) = staged(&[], old, &tags).await;
    let error = rotate(&driver, &arn).await.unwrap_err();
    assert!(error.to_string().contains("\"api_key\""), "{error}");

    let (driver, arn) = staged(&[], old, &[]).await;
    rotate(&driver, &arn).await.unwrap();
    let new: Value = serde_json::from_str(&value(driver.store(), &arn, AWSCURRENT).await).unwrap();
    let mut expected: Value = serde_json::from_str(old).unwrap();
    assert_ne!(new["password"], expected["password"]);
    expected["password"] = new["password"].clone();
    assert_eq!(
        new.to_string(),
        expected.to_string(),
        "field order, numbers and nesting are kept"
    );
}

#[tokio::test]
async fn tokens_per_field() {
    let (driver, arn) = staged(
        &[],
        r#"{"key":"a","sig":"b","keep":"c"}"#,
        &[
            ("rotor:fields", "key sig"),
            ("rotor:generate:key", "hex bytes=16"),
            ("rotor:generate:sig", "base64url bytes=30"),
        ],
    )
    .await;
    rotate(&driver, &arn).await.unwrap();
    let new: Value = serde_json::from_str(&value(driver.store(), &arn, AWSCURRENT).await).unwrap();
    let key = new["key"].as_str().unwrap();
    assert!(key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(new["sig"].as_str().unwrap().len(), 40);
    assert_eq!(new["keep"], "c");
}

#[tokio::test]
async fn every_step_replayed_gives_the_same_result() {
    let (driver, arn) = staged(&[], "old", &[]).await;
    let mut staged = None;
    for step in Step::ALL {
        let first = driver.run(&event(&arn, step)).await.unwrap();
        let second = driver.run(&event(&arn, step)).await.unwrap();
        if step == Step::CreateSecret {
            assert_eq!(
                (first.outcome, second.outcome),
                (Outcome::Done, Outcome::PendingKept)
            );
            staged = Some(value(driver.store(), &arn, AWSPENDING).await);
        }
        if step == Step::FinishSecret {
            assert_eq!(second.outcome, Outcome::AlreadyCurrent);
        }
    }
    assert_eq!(Some(value(driver.store(), &arn, AWSCURRENT).await), staged);
    let described = driver.store().describe(&arn).await.unwrap();
    assert_eq!(
        described.versions.with_label(AWSPENDING),
        None,
        "no stale AWSPENDING"
    );
    assert_eq!(described.versions.current(), Some("v2"));
}

/// The error of createSecret for a secret of value `old` tagged `tags`,
/// which must change nothing: no pending value, the same current one.
async fn refused_at_create(old: &str, tags: &[(&str, &str)]) -> Error {
    let (driver, arn) = staged(&[], old, tags).await;
    let create = driver.run(&event(&arn, Step::CreateSecret)).await;
    let pending = driver
        .store()
        .get_value(&arn, VersionSelector::Label(AWSPENDING));
    assert!(pending.await.unwrap().is_none(), "a pending value");
    assert_eq!(value(driver.store(), &arn, AWSCURRENT).await, old);
    let described = driver.store().describe(&arn).await.unwrap();
    assert_eq!(described.versions.with_label(AWSPENDING), Some("v2"));
    create.expect_err("createSecret refuses")
}

#[tokio::test]
async fn bad_secrets_are_refused_and_nothing_changes() {
    type Tags = &'static [(&'static str, &'static str)];
    let cases: [(&str, Tags, &str); 4] = [
        (
            "plain",
            &[("rotor:fields", "password")],
            "not a JSON object",
        ),
        (r#"{"user":"u"}"#, &[], "no field \"password\""),
        (r#"{"password":5}"#, &[], "not a string"),
        (
            "plain",
            &[("rotor:generate", "password length=2 numbers=true")],
            "rotor:generate",
        ),
    ];
    for (old, tags, expected) in cases {
        let error = refused_at_create(old, tags).await;
        assert!(error.to_string().contains(expected), "{error}");
        assert!(!error.is_retryable());
    }
}

/// Issue 21, item 19: a value that looks like JSON but does not parse (a
/// syntax error, a value cut short), or JSON that is not an object, is
/// refused, never rotated as a plain string that would replace every field.
/// The message says where the JSON breaks, never what it holds.
#[tokio::test]
async fn values_that_look_like_json_but_are_no_object_are_refused() {
    let cases = [
        (
            r#"{"username":"app","password":"hunter2-hunter2","host":"db.internal","#,
            "line 1, column 68",
        ),
        (
            "  {\"password\":\"hunter2-hunter2\" \"x\":1}",
            "line 1, column 33",
        ),
        ("[\"hunter2-hunter2\", 1", "line 1, column 21"),
        (r#"["hunter2-hunter2"]"#, "a JSON array"),
        (
            "\u{feff}{\"password\":\"hunter2-hunter2\"}",
            "line 1, column 1",
        ),
    ];
    for (old, position) in cases {
        let error = refused_at_create(old, &[]).await;
        let message = error.to_string();
        assert_eq!(error.error_type(), "NotRetryable.InvalidSecretValue");
        assert!(
            message.contains(position)
                && message.contains("rotor:format=plain")
                && !message.contains("hunter2"),
            "{message}"
        );
    }
}

/// A plain string that merely starts with `{` or `[` is rotated whole when
/// the secret says it is plain, and rotor's own whole-value passwords
/// never start with either, so they never need that tag.
#[tokio::test]
async fn plain_values_that_start_like_json() {
    let (driver, arn) = staged(&[], "{not-json", &[("rotor:format", "plain")]).await;
    rotate(&driver, &arn).await.unwrap();
    assert_eq!(value(driver.store(), &arn, AWSCURRENT).await.len(), 32);

    // Only `{` and `[`: every draw starts like JSON, so none can be used.
    let braces = [
        ("PASSWORD_LENGTH", "4"),
        ("EXCLUDE_UPPERCASE", "true"),
        ("EXCLUDE_LOWERCASE", "true"),
        ("EXCLUDE_NUMBERS", "true"),
        ("EXCLUDE_CHARACTERS", "!\"#$%&'()*+,-./:;<=>?@\\]^_`|}~"),
    ];
    let (driver, arn) = staged(&braces, "old", &[]).await;
    let error = rotate(&driver, &arn).await.unwrap_err();
    assert!(error.to_string().contains("rotor:format=plain"), "{error}");

    // Two characters, one lowercase and one of `{` `[`: half of all
    // draws start like JSON.
    let policy = [
        ("PASSWORD_LENGTH", "2"),
        ("EXCLUDE_UPPERCASE", "true"),
        ("EXCLUDE_NUMBERS", "true"),
        ("EXCLUDE_CHARACTERS", "!\"#$%&'()*+,-./:;<=>?@\\]^_`|}~"),
    ];
    for _ in 0..20 {
        let (driver, arn) = staged(&policy, "old", &[]).await;
        rotate(&driver, &arn).await.unwrap();
        let new = value(driver.store(), &arn, AWSCURRENT).await;
        assert!(!new.starts_with(['{', '[']));
    }

    // The secret may insist on JSON: a plain value is then refused.
    let (driver, arn) = staged(&[], "plain", &[("rotor:format", "json")]).await;
    let error = rotate(&driver, &arn).await.unwrap_err();
    assert!(error.to_string().contains("rotor:format"), "{error}");
}

#[tokio::test]
async fn a_warm_process_does_not_read_what_it_already_holds() {
    let (driver, arn) = staged(&[], "old", &[]).await;
    driver.run(&event(&arn, Step::CreateSecret)).await.unwrap();
    let after_create = driver.store().reads();
    for step in [Step::SetSecret, Step::TestSecret, Step::FinishSecret] {
        driver.run(&event(&arn, step)).await.unwrap();
    }
    assert_eq!(
        driver.store().reads(),
        after_create,
        "the pending value stored by createSecret is not read again"
    );
    // A second rotation knows the (new) current value already.
    driver.store().begin_rotation(&arn, "v3").await.unwrap();
    let before = driver.store().reads();
    let mut e = event(&arn, Step::CreateSecret);
    e.version_id = "v3".into();
    driver.run(&e).await.unwrap();
    // Only the pending check (a miss) reaches the store: the new current and
    // the previous value were written or read by this process before.
    assert_eq!(
        driver.store().reads() - before,
        1,
        "current and previous come from the cache"
    );
}

#[tokio::test]
async fn impossible_environment_policy_fails_every_step_clearly() {
    let (driver, arn) = staged(&[("PASSWORD_LENGTH", "2")], "old", &[]).await;
    let error = driver
        .run(&event(&arn, Step::CreateSecret))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("PASSWORD_LENGTH"), "{error}");
}

#[tokio::test]
async fn a_tiny_password_space_still_yields_a_new_value() {
    // One digit: ten possible values, two of them taken by current and previous.
    let (driver, arn) = staged(
        &[
            ("PASSWORD_LENGTH", "1"),
            ("EXCLUDE_PUNCTUATION", "y"),
            ("EXCLUDE_UPPERCASE", "yes"),
            ("EXCLUDE_LOWERCASE", "1"),
        ],
        "7",
        &[],
    )
    .await;
    for round in 0..5 {
        // The first rotation was staged by `secret`; stage the later ones.
        let token = if round == 0 {
            "v2".to_owned()
        } else {
            format!("r{round}")
        };
        if round > 0 {
            driver.store().begin_rotation(&arn, &token).await.unwrap();
        }
        let before = value(driver.store(), &arn, AWSCURRENT).await;
        for step in Step::ALL {
            let mut e = event(&arn, step);
            e.version_id = token.clone();
            match driver.run(&e).await {
                Ok(_) => {}
                // Ten values, two excluded: eight draws fail together with
                // probability (2/10)^8; tolerate it rather than flake.
                Err(Error::NoDistinctValue { .. }) => return,
                Err(other) => panic!("{other}"),
            }
        }
        assert_ne!(value(driver.store(), &arn, AWSCURRENT).await, before);
    }
}

/// Rotations staged under a label of the deployer's (`ROTOR_PENDING_LABEL`).
mod custom_labels {
    use rotor_core::labels::LabelMove;
    use rotor_core::store::NewVersion;

    use super::*;

    /// With a custom label, a version staged as AWSPENDING (as RotateSecret
    /// stages every rotation) is refused at every step, saying why.
    #[tokio::test]
    async fn a_rotation_secrets_manager_staged_is_refused_with_the_reason() {
        let (driver, arn) = staged(&[], "v1", &[]).await;
        let driver = driver.with_pending_label("MyPendingLabel");
        for step in Step::ALL {
            let error = driver.run(&event(&arn, step)).await.unwrap_err();
            assert_eq!(error.error_type(), "NotRetryable.PendingLabelMismatch");
            let message = error.to_string();
            assert!(
                message.contains("ROTOR_PENDING_LABEL=MyPendingLabel"),
                "{message}"
            );
        }
        let versions = driver.store().describe(&arn).await.unwrap().versions;
        assert_eq!(versions.current(), versions.with_label(AWSCURRENT));
        assert_eq!(versions.with_label(AWSPENDING), Some("v2"));
        assert_eq!(versions.with_label("MyPendingLabel"), None);
    }

    /// A value staged under a custom label (as Alibaba's multi-call rotation
    /// does) is kept by createSecret and promoted by finishSecret, which also
    /// takes the custom label off.
    #[tokio::test]
    async fn a_value_staged_under_a_custom_label_is_promoted_later() {
        let store = MemoryStore::new();
        let arn = store
            .create_secret("s", &SecretString::from("v1"), &[])
            .await
            .unwrap();
        // Turn rotation on the way the service does, then clear its pending label.
        store.begin_rotation(&arn, "ignored").await.unwrap();
        let clear = LabelMove {
            label: AWSPENDING.into(),
            to: None,
            from: Some("ignored".into()),
        };
        store.move_label(&arn, &clear).await.unwrap();
        let staged = SecretString::from("staged-by-someone-else");
        let put = NewVersion {
            version_id: "v2",
            value: &staged,
            labels: &["MyPendingLabel"],
            rotation_token: None,
        };
        store.put_value(&arn, put).await.unwrap();

        let driver = Driver::new(store, rotator(&[])).with_pending_label("MyPendingLabel");
        let mut outcomes = Vec::new();
        for step in Step::ALL {
            outcomes.push(driver.run(&event(&arn, step)).await.unwrap().outcome);
        }
        let [create, set, test, finish] = outcomes[..] else {
            panic!("{outcomes:?}")
        };
        assert_eq!(create, Outcome::PendingKept);
        assert_eq!([set, test, finish], [Outcome::Done; 3]);
        let versions = driver.store().describe(&arn).await.unwrap().versions;
        assert_eq!(versions.current(), Some("v2"));
        assert_eq!(versions.with_label("MyPendingLabel"), None);
        let current = value(driver.store(), &arn, AWSCURRENT).await;
        assert_eq!(current, "staged-by-someone-else");
    }
}
