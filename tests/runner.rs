//! The local runner plays Secrets Manager's part by the service's rules.

use std::time::Duration;

use rotor_cli::function::function_binary;
use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretString};
use rotor_tests::*;

fn options(secret_id: &str, token: Option<String>) -> RotateOptions {
    RotateOptions {
        secret_id: secret_id.into(),
        token,
        test_only: false,
        step_timeout: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn a_repeated_token_is_a_success_with_nothing_done() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let arn = store
        .create_secret(&unique("runner"), &SecretString::from("v1"), &[])
        .await
        .unwrap();
    let t = token();
    let first = rotate(&store, &function, &options(&arn, Some(t.clone())))
        .await
        .unwrap();
    assert!(first.succeeded() && first.steps.len() == 4);
    let current = value(&store, &arn, AWSCURRENT).await;
    let again = rotate(&store, &function, &options(&arn, Some(t.clone())))
        .await
        .unwrap();
    assert!(again.steps.is_empty());
    assert!(
        again
            .nothing_to_do
            .as_deref()
            .is_some_and(|r| r.contains(&t))
    );
    assert!(same(&value(&store, &arn, AWSCURRENT).await, &current));
}

#[tokio::test]
async fn a_rotation_in_progress_elsewhere_is_not_stranded() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let first = token();
    let arn = staged_secret(&store, "v1", &[], &first).await;
    let error = rotate(&store, &function, &options(&arn, Some(token())))
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("already in progress") && message.contains(&first),
        "{message}"
    );
    assert_eq!(store.describe_versions_pending(&arn).await, Some(first));
}

#[tokio::test]
async fn test_only_runs_test_secret_and_leaves_the_secret_as_it_was() {
    let store = moto_store();
    let function = start_function("generic-rotation", &[]).await;
    let arn = store
        .create_secret(
            &unique("runner"),
            &SecretString::from(r#"{"password":"p"}"#),
            &[],
        )
        .await
        .unwrap();
    let before = value(&store, &arn, AWSCURRENT).await;
    let mut opts = options(&arn, None);
    opts.test_only = true;
    let run = rotate(&store, &function, &opts).await.unwrap();
    assert_eq!(run.steps.len(), 1);
    assert_eq!(run.steps[0].step.as_str(), "testSecret");
    assert!(run.succeeded(), "{:?}", run.steps[0].result);
    assert!(same(&value(&store, &arn, AWSCURRENT).await, &before));
    assert_eq!(store.describe_versions_pending(&arn).await, None);
}

#[tokio::test]
async fn the_rotor_command_rotates_and_prints_the_label_table() {
    let store = moto_store();
    let name = unique("cli");
    store
        .create_secret(&name, &SecretString::from("cli-initial"), &[])
        .await
        .unwrap();
    let output = tokio::process::Command::new(function_binary("rotor"))
        .args(["rotate", &name, "--endpoint", moto().endpoint()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in ["createSecret", "finishSecret", "AWSCURRENT", "AWSPREVIOUS"] {
        assert!(stdout.contains(expected), "{stdout}");
    }
    let current = value(&store, &name, AWSCURRENT).await.unwrap();
    assert!(current.expose_secret() != "cli-initial");
    assert!(!stdout.contains(current.expose_secret()) && !stdout.contains("cli-initial"));
}

trait PendingVersion {
    async fn describe_versions_pending(&self, arn: &str) -> Option<String>;
}

impl PendingVersion for rotor_core::AwsStore {
    async fn describe_versions_pending(&self, arn: &str) -> Option<String> {
        use rotor_core::SecretStore;
        let described = self.describe(arn).await.unwrap();
        described.versions.with_label(AWSPENDING).map(str::to_owned)
    }
}

#[tokio::test]
async fn steps_can_run_through_the_lambda_invoke_api() {
    let store = moto_store();
    let emulator = CargoLambda::start().await;
    let _function = emulator.run_function("generic-rotation");
    let remote =
        rotor_cli::rotate::LambdaFunction::local(&emulator.endpoint(), CargoLambda::FUNCTION);
    let arn = store
        .create_secret(&unique("invoke"), &SecretString::from("v1"), &[])
        .await
        .unwrap();
    let run = rotate(&store, &remote, &options(&arn, None)).await.unwrap();
    assert!(
        run.succeeded(),
        "{:?}",
        run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
    );
    assert_eq!(run.steps.len(), 4);
    assert_eq!(run.after.versions.current(), Some(run.token.as_str()));
    // A step's error comes back through the Invoke API with its type and message.
    let bad = store
        .create_secret(
            &unique("invoke"),
            &SecretString::from("plain"),
            &[("rotor:fields", "password")],
        )
        .await
        .unwrap();
    let failed = rotate(&store, &remote, &options(&bad, None)).await.unwrap();
    let (kind, message) = failed.steps[0].result.as_ref().unwrap_err();
    assert_eq!(kind, "NotRetryable.InvalidSecretValue", "{message}");
    assert!(message.contains("not a JSON object"), "{message}");
}
