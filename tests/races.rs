//! Races: two rotations of one secret at once, the same rotation run twice at
//! once (as overlapping retries do), and a PutSecretValue by someone else in
//! the middle of a rotation. Exactly one rotation wins, the loser fails with
//! an error that says why, and a stored credential logs in throughout.

use std::time::Duration;

use rotor_cli::function::LocalFunction;
use rotor_cli::rotate::{RotateOptions, RotationRun, rotate};
use rotor_core::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, LabelMove};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use rotor_testbed::db::{TlsMode, random_password};
use rotor_tests::target_db::Db;
use rotor_tests::{
    assert_no_stored_secret_in, labels, moto_store, start_function, steps, token, unique, value,
};
use serde_json::{Value, json};

async fn function(db: &Db) -> LocalFunction {
    let ca = db.ca_path();
    start_function(
        "rds-rotation",
        &[("SSL_CERT_FILE", &ca), ("ROTATION_STRATEGY", "single")],
    )
    .await
}

async fn user_secret(db: &Db, store: &AwsStore) -> String {
    let user = format!("race_{}", &token()[..8]);
    let password = random_password();
    db.create_user(&user, &password);
    store
        .create_secret(
            &unique("race"),
            &SecretString::from(db.secret(&user, &password, json!({}))),
            &[],
        )
        .await
        .unwrap()
}

async fn current_logs_in(db: &Db, store: &AwsStore, arn: &str) -> bool {
    let current = value(store, arn, AWSCURRENT).await.unwrap();
    db.value_logs_in(&current)
}

fn options(arn: &str) -> RotateOptions {
    RotateOptions {
        secret_id: arn.into(),
        token: Some(token()),
        test_only: false,
        step_timeout: Duration::from_secs(60),
    }
}

fn outcome(run: &anyhow::Result<RotationRun>) -> Result<(), String> {
    match run {
        Ok(run) if run.succeeded() => Ok(()),
        Ok(run) => Err(format!(
            "{:?}",
            run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
        )),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Two rotations with different tokens, started together from two
/// processes, ten times over: one completes and the other is refused.
#[tokio::test]
async fn two_rotations_started_together_one_wins() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let arn = user_secret(&db, &store).await;
    let (a, b) = (function(&db).await, function(&db).await);
    for round in 0..10 {
        let (first, second) = (options(&arn), options(&arn));
        let (x, y) = tokio::join!(rotate(&store, &a, &first), rotate(&store, &b, &second));
        let results = [outcome(&x), outcome(&y)];
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(
            loser.contains("isn't complete")
                || loser.contains("already in progress")
                || loser.contains("NotPending"),
            "round {round}: the loser's error does not say why: {loser}"
        );
        let labels = labels(&store, &arn).await;
        assert!(
            labels.values().flatten().all(|l| l != AWSPENDING),
            "round {round}: {labels:?}"
        );
        assert!(current_logs_in(&db, &store, &arn).await, "round {round}");
        let said = format!("{results:?}{}{}", a.output(), b.output());
        assert_no_stored_secret_in(&store, &arn, &said).await;
    }
}

/// One rotation whose steps two processes run at the same time, as when
/// Secrets Manager retries while the first invocation is still running:
/// the value stored for the token is the one the database gets.
#[tokio::test]
async fn the_same_rotation_run_twice_at_once_stays_consistent() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let (a, b) = (function(&db).await, function(&db).await);
    for round in 0..5 {
        let t = token();
        let arn = user_secret(&db, &store).await;
        store.begin_rotation(&arn, &t).await.unwrap();
        let (x, y) = tokio::join!(all_steps(&a, &arn, &t), all_steps(&b, &arn, &t));
        let labels = labels(&store, &arn).await;
        assert_eq!(
            labels.get(&t).map(Vec::as_slice),
            Some(&[AWSCURRENT.to_owned()][..]),
            "round {round}: {labels:?}\n{x:?}\n{y:?}"
        );
        assert!(
            current_logs_in(&db, &store, &arn).await,
            "round {round}: AWSCURRENT does not log in\n{x:?}\n{y:?}"
        );
        for failure in x.iter().chain(&y).filter_map(|r| r.as_ref().err()) {
            assert!(
                failure.0.starts_with("Retryable.") || failure.1.contains(&t),
                "round {round}: unclear failure {failure:?}"
            );
        }
    }
}

async fn all_steps(
    function: &LocalFunction,
    arn: &str,
    token: &str,
) -> Vec<Result<String, (String, String)>> {
    let mut results = Vec::new();
    for step in Step::ALL {
        results.push(steps::run(function, arn, token, step).await);
    }
    results
}

/// An operator sets a new password at the database and stores it as
/// AWSCURRENT while a rotation is between createSecret and setSecret. The
/// rotation does not undo it: setSecret refuses with the command that
/// cancels the rotation, and after that a new rotation completes.
#[tokio::test]
async fn a_put_secret_value_during_a_rotation_is_not_undone() {
    let db = Db::start("postgres", TlsMode::Required);
    let store = moto_store();
    let function = function(&db).await;
    let arn = user_secret(&db, &store).await;
    let t = token();
    store.begin_rotation(&arn, &t).await.unwrap();
    steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap();

    // moto dates versions to the second; AWS to the millisecond.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let current = value(&store, &arn, AWSCURRENT).await.unwrap();
    let mut theirs: Value = serde_json::from_str(current.expose_secret()).unwrap();
    let user = theirs["username"].as_str().unwrap().to_owned();
    let password = random_password();
    db.admin(&format!(
        "ALTER ROLE {} PASSWORD {}",
        rotor_tests::target_db::pg_ident(&user),
        rotor_tests::target_db::pg_literal(password.expose_secret())
    ));
    theirs["password"] = Value::String(password.expose_secret().to_owned());
    let operator_version = token();
    store
        .put_value(
            &arn,
            NewVersion {
                version_id: &operator_version,
                value: &SecretString::from(theirs.to_string()),
                labels: &[AWSCURRENT],
                rotation_token: None,
            },
        )
        .await
        .unwrap();

    let (kind, message) = steps::run(&function, &arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.CurrentChanged", "{message}");
    assert!(
        message.contains(&operator_version)
            && message.contains(&format!("--remove-from-version-id {t}")),
        "{message}"
    );
    assert!(
        current_logs_in(&db, &store, &arn).await,
        "the operator's password no longer logs in"
    );

    // The operator cancels as the message says, and rotates again.
    store
        .move_label(
            &arn,
            &LabelMove {
                label: AWSPENDING.into(),
                to: None,
                from: Some(t.clone()),
            },
        )
        .await
        .unwrap();
    let again = rotate(&store, &function, &options(&arn)).await;
    assert_eq!(outcome(&again), Ok(()));
    assert!(current_logs_in(&db, &store, &arn).await);
    assert_no_stored_secret_in(&store, &arn, &format!("{message}{}", function.output())).await;
}
