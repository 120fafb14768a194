//! The real `oauth-rotation` binary, over the Lambda Runtime API, against moto
//! and a real authorization server (glewlwyd) on 127.0.0.1: RFC 7592 end to end.

mod issue;

use rotor_cli::function::LocalFunction;
use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::{AwsStore, ExposeSecret, SecretString, Step};
use rotor_testbed::oauth_server::{AuthMethod, OAuthServer, RegisteredClient};
use rotor_tests::{moto_store, rfc7592_secret, staged_secret, start_function, steps, token, value};
use serde_json::{Value, json};

/// A field of the value stored under `label`.
async fn field(store: &AwsStore, arn: &str, label: &str, name: &str) -> Option<SecretString> {
    let value = value(store, arn, label).await?;
    let parsed: Value = serde_json::from_str(value.expose_secret()).ok()?;
    parsed[name].as_str().map(SecretString::from)
}

/// The secret of a client registered at glewlwyd, with a field of the team's
/// own that every rotation must keep.
fn client_secret(server: &OAuthServer, client: &RegisteredClient, method: AuthMethod) -> String {
    let secret = rfc7592_secret(server, client, method, None);
    let mut value: Value = serde_json::from_str(&secret).expect("JSON");
    value["owner"] = json!("team-payments");
    value.to_string()
}

/// Whether `secret` gets a token for the client at glewlwyd.
async fn gets_token(
    server: &OAuthServer,
    client_id: &str,
    secret: &SecretString,
    method: AuthMethod,
) -> bool {
    server
        .client_credentials(client_id, secret, method, None)
        .await
        .is_ok()
}

/// oauth-rotation, trusting glewlwyd's test CA.
async fn function(server: &OAuthServer) -> LocalFunction {
    let ca = server.ca_path().display().to_string();
    start_function("oauth-rotation", &[("SSL_CERT_FILE", ca.as_str())]).await
}

#[tokio::test]
async fn rfc7592_rotation_end_to_end_with_replays() {
    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let client = server.register_client(method).await.unwrap();
        let store = moto_store();
        let t = token();
        let arn = staged_secret(&store, &client_secret(&server, &client, method), &[], &t).await;
        let function = function(&server).await;
        let created = steps::run(&function, &arn, &t, Step::CreateSecret).await;
        assert_eq!(created.as_deref(), Ok("done"), "{}", function.output());
        // The server issued the new secret: it was stored at once, and the
        // replay keeps it rather than asking for another.
        let replayed = steps::run(&function, &arn, &t, Step::CreateSecret).await;
        assert_eq!(replayed.as_deref(), Ok("pending_kept"));
        let staged = field(&store, &arn, AWSPENDING, "client_secret").await;
        steps::replay(&function, &arn, &t, &Step::ALL[1..]).await;
        let new = field(&store, &arn, AWSCURRENT, "client_secret")
            .await
            .unwrap();
        assert!(
            staged
                .as_ref()
                .is_some_and(|s| s.expose_secret() == new.expose_secret())
        );
        assert!(
            gets_token(&server, &client.client_id, &new, method).await,
            "the new secret gets a token"
        );
        assert!(
            !gets_token(&server, &client.client_id, &client.client_secret, method).await,
            "the old secret is refused"
        );
        let old = field(&store, &arn, AWSPREVIOUS, "client_secret")
            .await
            .unwrap();
        assert!(old.expose_secret() == client.client_secret.expose_secret());
        // Other fields are kept; a rotated registration access token is stored.
        let rat = field(&store, &arn, AWSCURRENT, "registration_access_token")
            .await
            .unwrap();
        assert!(
            server
                .registration_read(&client.registration_client_uri, &rat)
                .await
                .unwrap()
                .status
                == 200,
            "the stored registration access token still manages the client"
        );
        assert_eq!(
            field(&store, &arn, AWSCURRENT, "owner")
                .await
                .map(|o| o.expose_secret().to_owned())
                .as_deref(),
            Some("team-payments")
        );
        // A second rotation works from the stored state alone.
        let run = rotate(
            &store,
            &function,
            &RotateOptions {
                secret_id: arn.clone(),
                token: None,
                test_only: false,
                step_timeout: std::time::Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
        assert!(
            run.succeeded(),
            "{:?}",
            run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
        );
        let newer = field(&store, &arn, AWSCURRENT, "client_secret")
            .await
            .unwrap();
        assert!(gets_token(&server, &client.client_id, &newer, method).await);
        let hits = [&client.client_secret, &new, &newer]
            .iter()
            .filter(|s| function.output().contains(s.expose_secret()))
            .count();
        assert!(
            hits == 0,
            "{hits} client secrets found in the function's logs"
        );
    }
}

#[tokio::test]
async fn a_refused_registration_token_changes_nothing() {
    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    let method = AuthMethod::ClientSecretBasic;
    let client = server.register_client(method).await.unwrap();
    let store = moto_store();
    let mut secret: Value = serde_json::from_str(&client_secret(&server, &client, method)).unwrap();
    secret["registration_access_token"] = Value::from("not-the-token");
    let t = token();
    let arn = staged_secret(&store, &secret.to_string(), &[], &t).await;
    let function = function(&server).await;
    let (kind, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.ProviderAuth", "{message}");
    assert!(
        message.contains("HTTP 401") || message.contains("HTTP 403"),
        "{message}"
    );
    assert!(value(&store, &arn, AWSPENDING).await.is_none());
    assert!(
        gets_token(&server, &client.client_id, &client.client_secret, method).await,
        "the current secret still works"
    );
}

#[tokio::test]
async fn a_provider_that_is_down_is_a_retryable_error_and_changes_nothing() {
    let store = moto_store();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = json!({
        "provider": "rfc7592", "client_id": "c1", "client_secret": "s-current-0123456789",
        "token_endpoint": format!("http://127.0.0.1:{port}/token"),
        "registration_client_uri": format!("http://127.0.0.1:{port}/register/c1"),
        "registration_access_token": "rat-0123456789",
    });
    let t = token();
    let arn = staged_secret(&store, &secret.to_string(), &[], &t).await;
    let function = start_function("oauth-rotation", &[]).await;
    let (kind, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "Retryable.ProviderUnreachable", "{message}");
    assert!(
        message.contains("could not be reached") && message.contains(&format!("127.0.0.1:{port}")),
        "{message}"
    );
    assert!(value(&store, &arn, AWSPENDING).await.is_none());
    assert!(
        !function.output().contains("s-current-0123456789")
            && !function.output().contains("rat-0123456789")
    );
}
