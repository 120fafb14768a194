//! iam-rotation against moto's IAM and STS with authentication on (a second
//! moto server, `rotor_tests::iam`) beside moto's Secrets Manager: every
//! step replayed, a resumed rotation, two rotations in a row under each
//! `REVOKE_PREVIOUS`, a user that already holds two keys, this rotation's
//! own orphan key, and IAM refusing. After each, independently of the
//! function: AWSCURRENT's key signs in at STS as the user (with its own
//! client), and ListAccessKeys (with the tests' administrator's key) shows
//! at most two keys, none of another origin touched.

use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::{AwsStore, ExposeSecret, Step};
use rotor_tests::iam::{self, FUNCTION_ACTIONS, Key};
use rotor_tests::{moto, moto_store, staged_secret, steps, token, value};

/// A user with one key, its secret staged for rotation to a new token.
pub struct Case {
    pub store: AwsStore,
    pub user: String,
    pub first: Key,
    pub arn: String,
    pub token: String,
}

impl Case {
    pub async fn new() -> Case {
        let store = moto_store();
        let (user, first) = iam::user_with_key("ci").await;
        let t = token();
        let arn = staged_secret(&store, &iam::secret_value(&user, &first), &[], &t).await;
        Case {
            store,
            user,
            first,
            arn,
            token: t,
        }
    }

    /// The function, allowed exactly this user.
    pub async fn function(&self, extra: &[(&str, &str)]) -> rotor_cli::function::LocalFunction {
        let arns = iam::user_arn(&self.user);
        let mut env = vec![("IAM_USER_ARNS", arns.as_str())];
        env.extend_from_slice(extra);
        let key = iam::function_user(&FUNCTION_ACTIONS).await;
        iam::start(moto().endpoint(), iam::iam_moto().endpoint(), &key, &env).await
    }

    /// The key under `label`.
    pub async fn key(&self, label: &str) -> Option<Key> {
        let stored = value(&self.store, &self.arn, label).await?;
        let (user, key) = iam::key_of(&stored);
        assert_eq!(user, self.user);
        Some(key)
    }

    /// The independent check: AWSCURRENT signs in as the user, at most two
    /// keys exist, and AWSCURRENT's is one of them, active.
    pub async fn assert_sound(&self) -> Key {
        let current = self.key(AWSCURRENT).await.expect("an AWSCURRENT value");
        let arn = iam::signs_in_as(&current.id, &current.secret).await;
        assert_eq!(
            arn,
            Some(iam::user_arn(&self.user)),
            "AWSCURRENT's key signs in as the user"
        );
        let keys = iam::keys(&self.user).await;
        assert!(keys.len() <= 2, "{keys:?}");
        assert!(keys.contains(&(current.id.clone(), true)), "{keys:?}");
        current
    }

    /// Stages another rotation.
    pub async fn next(&mut self) {
        use rotor_core::store::RotationService;
        self.token = token();
        self.store
            .begin_rotation(&self.arn, &self.token)
            .await
            .expect("stage");
    }
}

/// Waits for the wall clock's next whole second: Secrets Manager dates
/// versions to the second, so a key made before it is older than a rotation
/// staged after it.
async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let left = std::time::Duration::from_secs(1)
        - std::time::Duration::from_nanos(now.subsec_nanos().into());
    tokio::time::sleep(left + std::time::Duration::from_millis(20)).await;
}

/// Every stored secret access key, for the leak search.
async fn stored_keys(case: &Case) -> Vec<String> {
    let mut found = vec![case.first.secret.expose_secret().to_owned()];
    for label in [AWSCURRENT, AWSPREVIOUS, AWSPENDING] {
        if let Some(k) = case.key(label).await {
            found.push(k.secret.expose_secret().to_owned());
        }
    }
    found
}

#[tokio::test]
async fn every_step_replayed_then_a_second_rotation_deletes_the_first_key() {
    let mut case = Case::new().await;
    let function = case.function(&[]).await;
    steps::replay(&function, &case.arn, &case.token, &Step::ALL).await;
    let second = case.assert_sound().await;
    assert_ne!(second.id, case.first.id);
    // REVOKE_PREVIOUS unset: the previous key stays active until the next rotation.
    let mut expected = vec![(case.first.id.clone(), true), (second.id.clone(), true)];
    expected.sort();
    assert_eq!(iam::keys(&case.user).await, expected);
    let previous = case.key(AWSPREVIOUS).await.expect("AWSPREVIOUS");
    assert_eq!(previous.id, case.first.id);

    case.next().await;
    steps::replay(&function, &case.arn, &case.token, &Step::ALL).await;
    let third = case.assert_sound().await;
    let mut expected = vec![(second.id.clone(), true), (third.id.clone(), true)];
    expected.sort();
    assert_eq!(
        iam::keys(&case.user).await,
        expected,
        "the first key is gone, never a third"
    );
    assert!(
        iam::signs_in_as(&case.first.id, &case.first.secret)
            .await
            .is_none()
    );
    let leaks = stored_keys(&case).await;
    rotor_tests::assert_none_in(&leaks, "a secret access key", &function.output());
}

#[tokio::test]
async fn at_finish_deactivates_the_previous_key_or_deletes_it() {
    let mut case = Case::new().await;
    let function = case.function(&[("REVOKE_PREVIOUS", "at-finish")]).await;
    steps::replay(&function, &case.arn, &case.token, &Step::ALL).await;
    let second = case.assert_sound().await;
    // moto still accepts an Inactive key at STS (AWS refuses it): the status
    // is what ListAccessKeys says.
    let mut expected = vec![(case.first.id.clone(), false), (second.id.clone(), true)];
    expected.sort();
    assert_eq!(iam::keys(&case.user).await, expected);
    case.next().await;
    steps::replay(&function, &case.arn, &case.token, &Step::ALL).await;
    let third = case.assert_sound().await;
    let mut expected = vec![(second.id.clone(), false), (third.id.clone(), true)];
    expected.sort();
    assert_eq!(iam::keys(&case.user).await, expected);

    let deleting = Case::new().await;
    let function = deleting
        .function(&[
            ("REVOKE_PREVIOUS", "at-finish"),
            ("REVOKE_PREVIOUS_ACTION", "delete"),
        ])
        .await;
    steps::replay(&function, &deleting.arn, &deleting.token, &Step::ALL).await;
    let current = deleting.assert_sound().await;
    assert_eq!(iam::keys(&deleting.user).await, vec![(current.id, true)]);
}

#[tokio::test]
async fn a_rotation_resumed_by_a_new_process_after_each_step() {
    let case = Case::new().await;
    for step in Step::ALL {
        let mut function = case.function(&[]).await;
        let outcome = steps::run(&function, &case.arn, &case.token, step).await;
        assert!(
            outcome.is_ok(),
            "{step}: {outcome:?}\n{}",
            function.output()
        );
        function.kill().await;
    }
    let current = case.assert_sound().await;
    assert_eq!(iam::keys(&case.user).await.len(), 2);
    assert_ne!(current.id, case.first.id);
}

#[tokio::test]
async fn a_user_with_a_key_of_another_origin_is_refused_naming_it() {
    let case = Case::new().await;
    // A key made outside rotation, older than the rotation: the rotation is
    // staged in a later second (the dates compared are whole seconds).
    let theirs = iam::create_key(&case.user).await;
    next_second().await;
    let store = moto_store();
    let t = token();
    let arn = staged_secret(&store, &iam::secret_value(&case.user, &case.first), &[], &t).await;
    let before = iam::keys(&case.user).await;
    let function = case.function(&[]).await;
    let refused = steps::run(&function, &arn, &t, Step::CreateSecret).await;
    let Err((kind, message)) = refused else {
        panic!("createSecret passed: {}", function.output());
    };
    assert_eq!(kind, "NotRetryable.ServiceRejected", "{message}");
    assert!(
        message.contains(&theirs.id) && message.contains("delete-access-key"),
        "{message}"
    );
    assert_eq!(iam::keys(&case.user).await, before, "nothing changed");
    assert!(value(&store, &arn, AWSPENDING).await.is_none());
    assert!(!message.contains(theirs.secret.expose_secret()));
}

#[tokio::test]
async fn the_rotations_own_orphan_is_removed_and_replaced() {
    // A key made after the rotation was staged and held by no version is
    // what an attempt that died between CreateAccessKey and PutSecretValue
    // leaves behind.
    let case = Case::new().await;
    let orphan = iam::create_key(&case.user).await;
    let function = case.function(&[]).await;
    let done = steps::until_refused(&function, &case.arn, &case.token).await;
    assert!(done.is_none(), "{done:?}\n{}", function.output());
    let current = case.assert_sound().await;
    let keys = iam::keys(&case.user).await;
    assert!(!keys.iter().any(|(id, _)| *id == orphan.id), "{keys:?}");
    assert_ne!(current.id, orphan.id);
    assert!(function.output().contains("never stored"));

    // A key made after the rotation was staged that someone has used is not
    // the rotation's own (that one existed only in a process that died).
    let case = Case::new().await;
    let theirs = iam::create_key(&case.user).await;
    assert!(iam::signs_in_as(&theirs.id, &theirs.secret).await.is_some());
    let before = iam::keys(&case.user).await;
    let function = case.function(&[]).await;
    let refused = steps::run(&function, &case.arn, &case.token, Step::CreateSecret).await;
    let Err((kind, message)) = refused else {
        panic!("createSecret passed: {}", function.output());
    };
    assert_eq!(kind, "NotRetryable.ServiceRejected", "{message}");
    assert!(message.contains(&theirs.id), "{message}");
    assert_eq!(iam::keys(&case.user).await, before, "nothing changed");
}

#[tokio::test]
async fn iam_refusing_changes_nothing_and_says_what_to_grant() {
    let case = Case::new().await;
    let arns = iam::user_arn(&case.user);
    // The role may read but not create keys.
    let key = iam::function_user(&["iam:GetUser", "iam:ListAccessKeys"]).await;
    let function = iam::start(
        moto().endpoint(),
        iam::iam_moto().endpoint(),
        &key,
        &[("IAM_USER_ARNS", arns.as_str())],
    )
    .await;
    let refused = steps::run(&function, &case.arn, &case.token, Step::CreateSecret).await;
    let Err((kind, message)) = refused else {
        panic!("createSecret passed: {}", function.output());
    };
    assert_eq!(kind, "NotRetryable.ServicePermission", "{message}");
    assert!(message.contains("iam:CreateAccessKey"), "{message}");
    assert_eq!(
        iam::keys(&case.user).await,
        vec![(case.first.id.clone(), true)]
    );
    case.assert_sound().await;
    // With the grant, the same rotation completes.
    let function = case.function(&[]).await;
    assert!(
        steps::until_refused(&function, &case.arn, &case.token)
            .await
            .is_none()
    );
    case.assert_sound().await;
}

#[tokio::test]
async fn the_ses_smtp_password_follows_the_key() {
    let store = moto_store();
    let (user, first) = iam::user_with_key("ses").await;
    let mut value_json: serde_json::Value =
        serde_json::from_str(&iam::secret_value(&user, &first)).unwrap();
    value_json["ses_smtp_password"] = serde_json::Value::Null;
    let t = token();
    let arn = staged_secret(&store, &value_json.to_string(), &[], &t).await;
    let case = Case {
        store,
        user,
        first,
        arn,
        token: t,
    };
    let function = case.function(&[]).await;
    assert!(
        steps::until_refused(&function, &case.arn, &case.token)
            .await
            .is_none()
    );
    let current = case.assert_sound().await;
    let stored = value(&case.store, &case.arn, AWSCURRENT).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(stored.expose_secret()).unwrap();
    let expected = iam_rotation::ses::smtp_password(&current.secret, "us-east-1");
    assert!(v["ses_smtp_password"].as_str() == Some(expected.expose_secret()));
    let leaks = [expected.expose_secret().to_owned()];
    rotor_tests::assert_none_in(&leaks, "an SES SMTP password", &function.output());
}

/// `rotor doctor --kind iam --connect`, asking IAM with the administrator's
/// key: AWSCURRENT's key signs in; the previous key used after the switch,
/// and a key made outside rotation, are findings; nothing is changed.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_keys_outside_rotation_and_a_previous_key_in_use() {
    let case = Case::new().await;
    let function = case.function(&[]).await;
    assert!(
        steps::until_refused(&function, &case.arn, &case.token)
            .await
            .is_none()
    );
    // A consumer still signs with the first key after the switch.
    assert!(
        iam::signs_in_as(&case.first.id, &case.first.secret)
            .await
            .is_some()
    );
    let found = doctor(&case.arn).await;
    assert!(
        found.contains(&"iam-previous-key-in-use".to_owned()),
        "{found:?}"
    );
    assert!(
        !found.contains(&"current-does-not-work".to_owned()),
        "{found:?}"
    );

    let other = Case::new().await;
    let extra = iam::create_key(&other.user).await;
    let before = iam::keys(&other.user).await;
    let found = doctor(&other.arn).await;
    assert!(
        found.contains(&"iam-key-outside-rotation".to_owned()),
        "{found:?}"
    );
    assert_eq!(
        iam::keys(&other.user).await,
        before,
        "doctor changed nothing"
    );
    let _ = extra;
}

/// The finding codes of `rotor doctor SECRET --kind iam --connect --json`.
async fn doctor(arn: &str) -> Vec<String> {
    let (id, secret) = iam::admin_key();
    let endpoint = iam::iam_moto().endpoint();
    let out = tokio::process::Command::new(rotor_cli::function::function_binary("rotor"))
        .args(["doctor", arn, "--kind", "iam", "--connect", "--json"])
        .args(["--endpoint", moto().endpoint()])
        .env("AWS_ENDPOINT_URL_IAM", endpoint)
        .env("AWS_ENDPOINT_URL_STS", endpoint)
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret.expose_secret())
        .env("AWS_REGION", "us-east-1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run rotor; build it first with cargo build --workspace --bins");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("doctor's --json is not JSON ({e}): {stdout}"));
    let text = doc.to_string();
    assert!(
        !text.contains("SecretAccessKey\":\""),
        "doctor prints no value"
    );
    doc["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str().map(str::to_owned))
        .collect()
}
