//! The secret writer as an attacker against oauth-rotation: clean-up that reaches other secrets' credentials (issue 21, item 5).
//!
//! One application at the provider often serves several services, each with
//! its own Secrets Manager secret and its own credential at the provider. A
//! rotation of one secret may retire only what that secret made or recorded:
//! before, Entra's finishSecret removed every password whose display name
//! started with `rotor `, and Okta's setSecret and finishSecret deleted every
//! client secret but the current (and previous) one, so rotating one secret
//! locked the other service out.

use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString, Step};
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator, TokenAuth};
use rotor_tests::providers::{Case, setup};
use rotor_tests::{
    assert_no_stored_secret_in, moto_store, start_function, steps, token, unique, value,
};
use serde_json::{Value, json};

use super::client_value;

/// The client secret stored under `label`.
async fn client_secret(store: &AwsStore, arn: &str, label: &str) -> SecretString {
    let stored = value(store, arn, label).await.expect("a value");
    let client: Value = serde_json::from_str(stored.expose_secret()).expect("JSON");
    SecretString::from(client["client_secret"].as_str().expect("a client secret"))
}

/// A second secret of `case`'s team for the same application, holding a
/// credential the application's administrator added through the provider's
/// API (`secret`, with Entra's `key_id`). The management secret serves it
/// (the team's name prefix). Returns its ARN.
async fn second_secret(
    store: &AwsStore,
    case: &Case,
    secret: &SecretString,
    key_id: Option<&str>,
) -> String {
    let mut value = client_value(store, case).await;
    value["client_secret"] = json!(secret.expose_secret());
    if let Some(key_id) = key_id {
        value["key_id"] = json!(key_id);
    }
    store
        .create_secret(
            &format!("{}{}", case.team, unique("batch")),
            &SecretString::from(value.to_string()),
            &[],
        )
        .await
        .expect("create the second secret")
}

/// Two secrets for one Entra application, both rotated by rotor. The second
/// one's password is rotor's (`rotor …` display name). Rotating the first
/// secret twice retires its own passwords and leaves the second's working.
#[tokio::test]
async fn rotating_one_secret_of_an_entra_app_leaves_another_secrets_password() {
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let store = moto_store();
    let function = start_function("oauth-rotation", &[]).await;
    let (first, t) = setup(&emulator, &store, Provider::Entra, TokenAuth::Basic, true).await;
    // The administrator adds the batch job's password (Graph addPassword).
    let add = format!("/v1.0/applications/{}/addPassword", first.admin_id);
    let bearer = format!("Bearer {}", first.management_credential.expose_secret());
    let (status, added) = emulator
        .send(
            "POST",
            &add,
            &[
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ],
            r#"{"passwordCredential":{"displayName":"batch job"}}"#,
        )
        .await;
    assert_eq!(status, 200, "addPassword");
    let batch_initial = SecretString::from(added["secretText"].as_str().unwrap());
    let batch = second_secret(&store, &first, &batch_initial, added["keyId"].as_str()).await;
    // The batch job's secret is rotated by rotor: its password is now rotor's.
    let tb = token();
    store.begin_rotation(&batch, &tb).await.expect("stage");
    steps::replay(&function, &batch, &tb, &Step::ALL).await;
    let batch_current = client_secret(&store, &batch, AWSCURRENT).await;
    assert!(first.gets_token(&emulator, &batch_current).await);
    assert!(!first.gets_token(&emulator, &batch_initial).await);

    // The first secret rotates, twice.
    let mut previous = SecretString::from(first.initial.expose_secret());
    for (round, t) in [t, token()].into_iter().enumerate() {
        if round > 0 {
            store.begin_rotation(&first.arn, &t).await.expect("stage");
        }
        steps::replay(&function, &first.arn, &t, &Step::ALL).await;
        let current = client_secret(&store, &first.arn, AWSCURRENT).await;
        assert!(
            first.gets_token(&emulator, &batch_current).await,
            "round {round}: the other secret's AWSCURRENT no longer gets a token: the rotation removed its password ({:?})",
            emulator.credentials(Provider::Entra, &first.admin_id)
        );
        assert!(first.gets_token(&emulator, &current).await, "round {round}");
        assert!(
            !first.gets_token(&emulator, &previous).await,
            "round {round}: the rotated secret's old password was not retired"
        );
        previous = current;
    }
    assert_eq!(
        first.active(&emulator),
        2,
        "one password each: {:?}",
        emulator.credentials(Provider::Entra, &first.admin_id)
    );
    let output = function.output();
    assert_no_stored_secret_in(&store, &first.arn, &output).await;
    assert_no_stored_secret_in(&store, &batch, &output).await;
}

/// Two secrets for one Okta app, which holds at most two client secrets: the
/// first secret's and the second's. Making room for a new one would mean
/// deleting the second secret's: setSecret refuses, naming that client
/// secret's id, and deletes nothing; both services keep working.
#[tokio::test]
async fn rotating_one_secret_of_a_full_okta_app_refuses_to_delete_another_secrets() {
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let store = moto_store();
    let function = start_function("oauth-rotation", &[]).await;
    let (first, t) = setup(&emulator, &store, Provider::Okta, TokenAuth::Basic, true).await;
    // The administrator adds the batch job's client secret (Okta's API).
    let secrets = format!("/api/v1/apps/{}/credentials/secrets", first.admin_id);
    let ssws = format!("SSWS {}", first.management_credential.expose_secret());
    let batch_secret = SecretString::from(unique("batch-secret"));
    let body = json!({"client_secret": batch_secret.expose_secret(), "status": "ACTIVE"});
    let (status, added) = emulator
        .send(
            "POST",
            &secrets,
            &[
                ("Authorization", ssws.as_str()),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        )
        .await;
    assert_eq!(status, 201, "adding the batch job's secret");
    let batch_id = added["id"].as_str().unwrap().to_owned();
    let batch = second_secret(&store, &first, &batch_secret, None).await;

    let refused = steps::until_refused(&function, &first.arn, &t).await;

    assert!(
        first.gets_token(&emulator, &batch_secret).await,
        "the other secret's AWSCURRENT no longer gets a token: the rotation deleted its client secret ({:?})",
        emulator.credentials(Provider::Okta, &first.admin_id)
    );
    let (step, (kind, message)) = refused.expect("the rotation is refused");
    assert_eq!(step, Step::SetSecret, "{kind}: {message}");
    assert!(kind.starts_with("NotRetryable."), "{kind}: {message}");
    assert!(
        message.contains(&batch_id) && message.contains("two"),
        "the error names the client secret that would have to go: {message}"
    );
    assert!(first.gets_token(&emulator, &first.initial).await);
    let current = client_secret(&store, &first.arn, AWSCURRENT).await;
    assert!(current.expose_secret() == first.initial.expose_secret());
    let pending = client_secret(&store, &first.arn, AWSPENDING).await;
    assert!(!first.gets_token(&emulator, &pending).await);
    let text = format!("{message}\n{}", function.output());
    assert_no_stored_secret_in(&store, &first.arn, &text).await;
    assert_no_stored_secret_in(&store, &batch, &text).await;
}
