//! The secret writer as an attacker (issue 12): a team that may write its own
//! secret's value and tags, and nothing else, tries to make the real function
//! binaries send a credential that is not theirs to a host of their choosing,
//! or to use another team's secret. Each test plays that team against moto, the
//! provider emulator and a listener on 127.0.0.1 that records what reaches it,
//! and asserts that nothing arrives, nothing changes, the error says which
//! setting to change, and no secret value appears in the error or the output.
//!
//! The second review (issue 21) added one file per function family; this
//! file keeps the OAuth management and webhook key cases of issue 12.

mod generic;
mod iam;
mod ldap;
mod oauth;
mod rds;
mod redis;

use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator, TokenAuth};
use rotor_testbed::sm_proxy::SmProxy;
use rotor_tests::listener::RecordingListener;
use rotor_tests::providers::{Case, setup};
use rotor_tests::{
    assert_no_stored_secret_in, moto, moto_store, staged_secret, staged_secret_named,
    start_function, start_function_at, steps, token, unique, value,
};
use serde_json::{Value, json};

use Provider::{Auth0, Entra, Keycloak, Okta, Rfc7592};

/// Runs the steps in order, as Secrets Manager does, until one fails; returns
/// that failure, or None when the rotation completed.
async fn rotate_until_refused(
    function: &rotor_cli::function::LocalFunction,
    arn: &str,
    t: &str,
) -> Option<(String, String)> {
    steps::until_refused(function, arn, t)
        .await
        .map(|(_, failure)| failure)
}

/// The client secret's field that names the provider's base URL.
fn base_field(provider: Provider) -> &'static str {
    match provider {
        Keycloak => "keycloak_url",
        Okta => "okta_domain",
        Entra => "graph_url",
        Auth0 => "auth0_domain",
        // The registration URI is the client's own, managed with its own token.
        Rfc7592 => "registration_client_uri",
    }
}

/// The case's client secret, as its team may rewrite it.
async fn client_value(store: &AwsStore, case: &Case) -> Value {
    let stored = value(store, &case.arn, AWSCURRENT).await.expect("a value");
    serde_json::from_str(stored.expose_secret()).expect("JSON")
}

/// Fails unless the secret `arn` is as it was: AWSCURRENT unchanged and no
/// pending value staged.
async fn unchanged(store: &AwsStore, arn: &str, before: &SecretString) {
    let current = value(store, arn, AWSCURRENT).await;
    assert!(
        current.is_some_and(|c| c.expose_secret() == before.expose_secret()),
        "AWSCURRENT of {arn} changed"
    );
    assert!(
        value(store, arn, AWSPENDING).await.is_none(),
        "a pending value of {arn} was stored"
    );
}

/// Issue 12, path 1: a client secret names its own host as the provider's base
/// URL while naming the shared management secret, which serves it. Before the
/// management secret named its endpoint, rotor sent the admin token (Okta's
/// SSWS token, Keycloak's and Graph's bearer token, an Auth0 token from the
/// management client) to that host; this test then saw a connection carrying it.
#[tokio::test]
async fn a_client_secret_cannot_send_the_management_credential_to_its_own_host() {
    let function = start_function("oauth-rotation", &[]).await;
    for (provider, method) in [
        (Keycloak, TokenAuth::Basic),
        (Okta, TokenAuth::Post),
        (Entra, TokenAuth::Basic),
        (Auth0, TokenAuth::Post),
    ] {
        let emulator = ProviderEmulator::start().await.expect("start the emulator");
        let listener = RecordingListener::start().await;
        let store = moto_store();
        let (case, _) = setup(&emulator, &store, provider, method, true).await;
        // The team's own secret, rewritten: same client, its own host.
        let field = base_field(provider);
        let mut hostile = client_value(&store, &case).await;
        hostile[field] = json!(listener.http_url());
        let hostile = SecretString::from(hostile.to_string());
        let t = token();
        let arn = staged_secret_named(
            &store,
            &format!("{}{}", case.team, unique("hostile")),
            hostile.expose_secret(),
            &[],
            &t,
        )
        .await;
        let seen_before = emulator.seen().len();

        let refused = rotate_until_refused(&function, &arn, &t).await;

        assert_eq!(
            (listener.connections(), listener.bytes_received()),
            (0, 0),
            "{provider:?}: a request reached the client's own host (it carried the \
            management credential: {})",
            listener.received_contains(case.management_credential.expose_secret())
        );
        let (kind, message) = refused.expect("the rotation is refused");
        assert_eq!(
            kind, "NotRetryable.InvalidSettings",
            "{provider:?}: {message}"
        );
        assert!(
            message.contains(field)
                && message.contains(&case.management_arn)
                && message.contains("endpoint"),
            "{provider:?}: the error names the field, the management secret and its \
            endpoint: {message}"
        );
        assert_eq!(
            emulator.seen().len(),
            seen_before,
            "{provider:?}: no management call and no token request was made"
        );
        assert_eq!(emulator.credentials(provider, &case.admin_id).len(), 1);
        assert!(case.gets_token(&emulator, &case.initial).await);
        unchanged(&store, &arn, &hostile).await;
        let text = format!("{message}\n{}", function.output());
        assert_no_stored_secret_in(&store, &arn, &text).await;
        assert_no_stored_secret_in(&store, &case.management_arn, &text).await;
    }
}

/// Issue 12, path 1: a client secret names, as its management secret, a secret
/// that does not serve it: another team's management secret, or another
/// team's client secret (whose client_credentials token would have become the
/// "management" token). Refused NotServed before that secret's value is read:
/// no GetSecretValue on it reaches Secrets Manager. Before, rotor read it and
/// sent its credential to the host the client secret named.
#[tokio::test]
async fn a_client_secret_cannot_borrow_a_secret_that_does_not_serve_it() {
    let proxy = SmProxy::start(moto().endpoint()).await.expect("proxy");
    let function = start_function_at("oauth-rotation", proxy.endpoint(), &[]).await;
    for (provider, borrow_client_secret) in [(Okta, false), (Keycloak, true), (Auth0, false)] {
        let emulator = ProviderEmulator::start().await.expect("start the emulator");
        let listener = RecordingListener::start().await;
        let store = moto_store();
        // Team B: a client and a management secret that serves team B only.
        let (other, _) = setup(&emulator, &store, provider, TokenAuth::Post, true).await;
        let borrowed = if borrow_client_secret {
            other.arn.clone()
        } else {
            other.management_arn.clone()
        };
        // Team A: its own client, naming team B's secret, and its own host.
        let mut hostile = client_value(&store, &other).await;
        hostile["client_id"] = json!(unique("team-a-client"));
        hostile["client_secret"] = json!(unique("team-a-secret"));
        hostile["management_secret_arn"] = json!(borrowed);
        hostile[base_field(provider)] = json!(listener.http_url());
        let hostile = SecretString::from(hostile.to_string());
        let t = token();
        let arn = staged_secret_named(
            &store,
            &format!("{}/client", unique("team-a")),
            hostile.expose_secret(),
            &[],
            &t,
        )
        .await;
        proxy.reset();

        let refused = rotate_until_refused(&function, &arn, &t).await;

        let reads = proxy.log().attempts;
        let read_borrowed = reads
            .get(&format!("GetSecretValue {borrowed}"))
            .copied()
            .unwrap_or(0);
        assert_eq!(
            read_borrowed, 0,
            "{provider:?}: the borrowed secret's value was read"
        );
        assert_eq!(
            listener.connections(),
            0,
            "{provider:?}: a request reached the client's own host"
        );
        let (kind, message) = refused.expect("the rotation is refused");
        assert_eq!(kind, "NotRetryable.NotServed", "{provider:?}: {message}");
        assert!(
            message.contains("management_secret_arn")
                && message.contains("rotor:serves")
                && message.contains(&borrowed),
            "{provider:?}: {message}"
        );
        assert!(emulator.seen().is_empty(), "{provider:?}: no provider call");
        unchanged(&store, &arn, &hostile).await;
        let text = format!("{message}\n{}", function.output());
        for secret in [&arn, &other.arn, &other.management_arn] {
            assert_no_stored_secret_in(&store, secret, &text).await;
        }
    }
}

/// Issue 12, path 2: a `rotor:webhook` tag that starts with an allowed prefix
/// as text but names another host (user info before `@`). Before URLs were
/// parsed (the commit before 6ad5ea7), the prefix check compared text, and
/// rotor connected to 127.0.0.1:PORT over TLS to send the new value there.
#[tokio::test]
async fn a_webhook_tag_with_user_info_reaches_nobody() {
    let store = moto_store();
    let listener = RecordingListener::start().await;
    let key = SecretString::from(token());
    let key_secret = store
        .create_secret(&unique("hook-key"), &key, &[])
        .await
        .unwrap();
    let function = start_function(
        "generic-rotation",
        &[
            (
                "ROTOR_WEBHOOK_ALLOWED_PREFIXES",
                "https://hooks.example.com",
            ),
            ("ROTOR_WEBHOOK_KEY_SECRET", &key_secret),
        ],
    )
    .await;
    for url in [
        format!("https://hooks.example.com@127.0.0.1:{}/", listener.port()),
        format!("https://hooks.example.com:@127.0.0.1:{}/", listener.port()),
    ] {
        let t = token();
        let initial = SecretString::from(format!("initial-{}", token()));
        let arn = staged_secret(
            &store,
            initial.expose_secret(),
            &[("rotor:webhook", url.as_str())],
            &t,
        )
        .await;

        let refused = rotate_until_refused(&function, &arn, &t).await;

        assert_eq!(
            listener.connections(),
            0,
            "{url}: a request reached the listener"
        );
        let (kind, message) = refused.expect("the rotation is refused");
        assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
        assert!(
            message.contains("rotor:webhook") && message.contains("user info"),
            "{message}"
        );
        unchanged(&store, &arn, &initial).await;
        let text = format!("{message}\n{}", function.output());
        assert_no_stored_secret_in(&store, &arn, &text).await;
        assert!(!text.contains(key.expose_secret()), "the key leaked");
    }
}

/// Issue 12, path 2: a secret's tags name another team's webhook key secret,
/// which does not serve it. Refused NotServed before the key is read (no
/// GetSecretValue on it), and nothing reaches the webhook. Before, rotor read
/// the key and signed requests with it.
#[tokio::test]
async fn a_webhook_key_secret_of_another_team_is_refused() {
    let proxy = SmProxy::start(moto().endpoint()).await.expect("proxy");
    let store = moto_store();
    let listener = RecordingListener::start().await;
    let key = SecretString::from(token());
    let team_b = format!("{}/", unique("team-b"));
    let key_secret = store
        .create_secret(
            &format!("{team_b}hook-key"),
            &key,
            &[("rotor:serves", team_b.as_str())],
        )
        .await
        .unwrap();
    let allowed = listener.http_url();
    let function = start_function_at(
        "generic-rotation",
        proxy.endpoint(),
        &[("ROTOR_WEBHOOK_ALLOWED_PREFIXES", allowed.as_str())],
    )
    .await;
    // Named by ARN and by name: both are refused.
    let name = format!("{team_b}hook-key");
    for named in [key_secret.as_str(), name.as_str()] {
        let t = token();
        let initial = SecretString::from(format!("initial-{}", token()));
        let tags = [
            ("rotor:webhook", allowed.as_str()),
            ("rotor:webhook-key-secret", named),
        ];
        let arn = staged_secret_named(
            &store,
            &format!("{}/app", unique("team-a")),
            initial.expose_secret(),
            &tags,
            &t,
        )
        .await;
        proxy.reset();

        let refused = rotate_until_refused(&function, &arn, &t).await;

        let attempts = proxy.log().attempts;
        let key_reads: u32 = [key_secret.as_str(), name.as_str()]
            .iter()
            .filter_map(|id| attempts.get(&format!("GetSecretValue {id}")))
            .sum();
        assert_eq!(key_reads, 0, "{named}: the other team's key was read");
        assert_eq!(listener.connections(), 0, "{named}: the webhook was called");
        let (kind, message) = refused.expect("the rotation is refused");
        assert_eq!(kind, "NotRetryable.NotServed", "{message}");
        assert!(
            message.contains("rotor:webhook-key-secret")
                && message.contains("rotor:serves")
                && message.contains("ROTOR_WEBHOOK_KEY_SECRET"),
            "{message}"
        );
        unchanged(&store, &arn, &initial).await;
        let text = format!("{message}\n{}", function.output());
        assert_no_stored_secret_in(&store, &arn, &text).await;
        assert!(!text.contains(key.expose_secret()), "the key leaked");
    }
}

/// What the deployer and the management secret's owner still decide: a
/// management secret listed in `MANAGEMENT_SECRET_ARNS` serves every client
/// secret (here one outside its team's prefix, with no base URL field of its
/// own, which then uses the management secret's `endpoint`), and a
/// management secret without `endpoint` (one written before this check) is
/// refused at createSecret with the field to add, before any request.
#[tokio::test]
async fn the_deployer_allows_management_secrets_and_an_endpoint_is_required() {
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let store = moto_store();
    let (case, _) = setup(&emulator, &store, Okta, TokenAuth::Post, true).await;
    let mut outside = client_value(&store, &case).await;
    outside
        .as_object_mut()
        .expect("an object")
        .remove(base_field(Okta));
    let t = token();
    let arn = staged_secret_named(
        &store,
        &format!("{}/client", unique("elsewhere")),
        &outside.to_string(),
        &[],
        &t,
    )
    .await;
    let refused = start_function("oauth-rotation", &[]).await;
    let (kind, _) = rotate_until_refused(&refused, &arn, &t)
        .await
        .expect("not served without the deployer's variable");
    assert_eq!(kind, "NotRetryable.NotServed");
    let allowed = start_function(
        "oauth-rotation",
        &[("MANAGEMENT_SECRET_ARNS", case.management_arn.as_str())],
    )
    .await;
    let completed = rotate_until_refused(&allowed, &arn, &t).await;
    assert!(completed.is_none(), "{completed:?}\n{}", allowed.output());
    let current = value(&store, &arn, AWSCURRENT).await.expect("a value");
    let current: Value = serde_json::from_str(current.expose_secret()).expect("JSON");
    let rotated = SecretString::from(current["client_secret"].as_str().expect("a secret"));
    assert!(case.gets_token(&emulator, &rotated).await);

    // The same management secret as an earlier rotor wrote it: no endpoint.
    let (legacy, t) = setup(&emulator, &store, Okta, TokenAuth::Post, true).await;
    let stored = value(&store, &legacy.management_arn, AWSCURRENT)
        .await
        .expect("a value");
    let mut without: Value = serde_json::from_str(stored.expose_secret()).expect("JSON");
    without
        .as_object_mut()
        .expect("an object")
        .remove("endpoint");
    store
        .put_value(
            &legacy.management_arn,
            rotor_core::store::NewVersion {
                version_id: &token(),
                value: &SecretString::from(without.to_string()),
                labels: &[AWSCURRENT],
                rotation_token: None,
            },
        )
        .await
        .expect("store the legacy management secret");
    let before = value(&store, &legacy.arn, AWSCURRENT)
        .await
        .expect("a value");
    let seen = emulator.seen().len();
    let (kind, message) = rotate_until_refused(&refused, &legacy.arn, &t)
        .await
        .expect("refused");
    assert_eq!(kind, "NotRetryable.InvalidSecretValue", "{message}");
    assert!(
        message.starts_with("createSecret for secret")
            && message.contains(&legacy.management_arn)
            && message.contains(r#"add "endpoint": "<the provider base URL>""#),
        "{message}"
    );
    assert_eq!(emulator.seen().len(), seen, "no request was made");
    unchanged(&store, &legacy.arn, &before).await;
    let text = format!("{message}\n{}", refused.output());
    assert_no_stored_secret_in(&store, &legacy.arn, &text).await;
    assert_no_stored_secret_in(&store, &legacy.management_arn, &text).await;
}
