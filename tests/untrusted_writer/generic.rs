//! The secret writer as an attacker against generic-rotation (issue 21): a
//! `rotor:webhook` tag that names this machine, where Lambda's Runtime API and
//! extensions listen (item 8), or that hides a `/` or `\` in a path segment
//! under an allowed prefix (item 13). Each case runs the real binary against a
//! listener on 127.0.0.1 that records every connection; each refusal is shown
//! to be the control's doing by the same request reaching the listener where
//! the deployer allows it.

use rotor_cli::function::LocalFunction;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::settings::LOOPBACK_VAR;
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString, Step};
use rotor_tests::listener::RecordingListener;
use rotor_tests::{
    assert_no_stored_secret_in, moto_store, staged_secret, start_function,
    start_function_in_production, start_function_resolving, steps, token, unique, value,
};

use super::unchanged;

/// A signing key secret, and the deployer's variables that name it and
/// allow `prefixes` for `rotor:webhook` tags.
async fn deployer(store: &AwsStore, prefixes: &[String]) -> (SecretString, Vec<(String, String)>) {
    let key = SecretString::from(token());
    let key_secret = store
        .create_secret(&unique("hook-key"), &key, &[])
        .await
        .expect("the key secret");
    let env = vec![
        (
            "ROTOR_WEBHOOK_ALLOWED_PREFIXES".to_owned(),
            prefixes.join(","),
        ),
        ("ROTOR_WEBHOOK_KEY_SECRET".to_owned(), key_secret),
    ];
    (key, env)
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A new secret whose `rotor:webhook` tag is `url`, staged for rotation.
async fn tagged(store: &AwsStore, url: &str) -> (String, String, SecretString) {
    let t = token();
    let initial = SecretString::from(format!("initial-{}", token()));
    let arn = staged_secret(
        store,
        initial.expose_secret(),
        &[("rotor:webhook", url)],
        &t,
    )
    .await;
    (arn, t, initial)
}

/// A deployment where webhook tags are refused at createSecret: the store,
/// the function, the listener that must see no connection, and the signing
/// key that must not leak.
struct Refusal<'a> {
    store: &'a AwsStore,
    function: &'a LocalFunction,
    listener: &'a RecordingListener,
    key: &'a SecretString,
}

impl Refusal<'_> {
    /// A new secret whose `rotor:webhook` tag is `url` is refused at
    /// createSecret (`InvalidSettings` naming the tag, and `says`), before any
    /// connection; nothing changes and no secret leaks.
    async fn assert_refused_at_create(&self, url: &str, says: &[&str]) {
        let (arn, t, initial) = tagged(self.store, url).await;

        let refused = steps::until_refused(self.function, &arn, &t).await;

        assert_eq!(
            self.listener.connections(),
            0,
            "{url}: a request reached the listener"
        );
        let (step, (kind, message)) = refused.expect("the rotation is refused");
        assert_eq!(step, Step::CreateSecret, "{url}: {message}");
        assert_eq!(kind, "NotRetryable.InvalidSettings", "{url}: {message}");
        assert!(
            message.starts_with(step.as_str())
                && message.contains("rotor:webhook")
                && says.iter().all(|part| message.contains(part)),
            "{url}: {message}"
        );
        unchanged(self.store, &arn, &initial).await;
        let text = format!("{message}\n{}", self.function.output());
        assert_no_stored_secret_in(self.store, &arn, &text).await;
        assert!(!text.contains(self.key.expose_secret()), "the key leaked");
    }
}

/// Item 8: in production (no `ROTOR_ALLOW_LOOPBACK_URLS`), a webhook tag that
/// names this machine (a loopback or unspecified address, `localhost`, over
/// plain HTTP or TLS) is refused at createSecret, before any connection, even
/// under a prefix the deployer allowed. Before (38b8d67^), plain HTTP to a
/// loopback host was always allowed, and setSecret POSTed the new value
/// there: in Lambda, to the Runtime API's or an extension's port.
#[tokio::test]
async fn a_webhook_tag_naming_this_machine_reaches_nobody_in_production() {
    let store = moto_store();
    let listener = RecordingListener::start().await;
    let port = listener.port();
    let urls = [
        format!("http://127.0.0.1:{port}/2018-06-01/runtime/invocation/next"),
        format!("https://127.0.0.1:{port}/rotor"),
        format!("http://localhost:{port}/rotor"),
        format!("http://0.0.0.0:{port}/rotor"),
        format!("http://[::ffff:127.0.0.1]:{port}/rotor"),
    ];
    // The deployer allowed each origin: only the loopback rule stands between.
    let prefixes: Vec<String> = urls
        .iter()
        .map(|u| u.splitn(4, '/').take(3).collect::<Vec<_>>().join("/"))
        .collect();
    let (key, env) = deployer(&store, &prefixes).await;
    let function = start_function_in_production("generic-rotation", &pairs(&env)).await;
    let refusal = Refusal {
        store: &store,
        function: &function,
        listener: &listener,
        key: &key,
    };
    for url in &urls {
        refusal
            .assert_refused_at_create(url, &["names this machine", LOOPBACK_VAR])
            .await;
    }

    // The proof: where the deployer sets the variable (tests, the demo), the
    // same tags lead setSecret to the listener, carrying the new value.
    let allowed = start_function("generic-rotation", &pairs(&env)).await;
    for url in &urls[..3] {
        let before = listener.connections();
        let (arn, t, _) = tagged(&store, url).await;
        assert!(
            steps::run(&allowed, &arn, &t, Step::CreateSecret)
                .await
                .is_ok()
        );
        let failed = steps::run(&allowed, &arn, &t, Step::SetSecret).await;
        assert!(failed.is_err(), "the listener answers nothing");
        assert!(
            listener.connections() > before,
            "{url}: nothing reached the listener"
        );
        if url.starts_with("http://") {
            let pending = value(&store, &arn, AWSPENDING)
                .await
                .expect("a pending value");
            assert!(
                listener.received_contains(pending.expose_secret()),
                "{url}: the request carried the new value"
            );
        }
    }
}

/// Item 8, by name: a host name that resolves to this machine (here through
/// the function's own /etc/hosts, as a writer's DNS name would) is refused by
/// the shared client's resolver, so no connection is made. The URL itself is
/// `https://` to a name under an allowed prefix, so it passes every check of
/// the text; before, setSecret connected to 127.0.0.1.
#[tokio::test]
async fn a_webhook_host_that_resolves_to_this_machine_reaches_nobody_in_production() {
    let store = moto_store();
    let listener = RecordingListener::start().await;
    let host = "hooks.writer.test";
    let url = format!("https://{host}:{}/rotor", listener.port());
    let (key, env) = deployer(&store, &[format!("https://{host}:{}", listener.port())]).await;
    let mut extra = pairs(&env);
    extra.push((LOOPBACK_VAR, ""));
    let function = start_function_resolving("generic-rotation", &[host], &extra).await;
    let (arn, t, initial) = tagged(&store, &url).await;

    let refused = steps::until_refused(&function, &arn, &t).await;

    assert_eq!(listener.connections(), 0, "a request reached this machine");
    let (step, (kind, message)) = refused.expect("the rotation is refused");
    assert_eq!(step, Step::SetSecret, "{kind}: {message}");
    assert!(kind.starts_with("Retryable.Webhook"), "{kind}: {message}");
    assert!(
        message.starts_with("setSecret")
            && message.contains("resolves to this machine")
            && message.contains(LOOPBACK_VAR),
        "{message}"
    );
    assert!(
        value(&store, &arn, AWSCURRENT)
            .await
            .is_some_and(|v| v.expose_secret() == initial.expose_secret()),
        "AWSCURRENT changed"
    );
    let text = format!("{message}\n{}", function.output());
    assert_no_stored_secret_in(&store, &arn, &text).await;
    assert!(!text.contains(key.expose_secret()), "the key leaked");
}

/// Item 13: a path segment under an allowed prefix that hides `/` or `\`
/// (`%2F`, `%5C`, either case), which a receiver may decode into a path
/// outside the prefix (`/rotor/..%2Fadmin` -> `/admin`), is refused at
/// createSecret, before any connection. The loopback variable is set, so only
/// this rule refuses. Before (38b8d67^), `..%2Fadmin` counted as one segment
/// under `/rotor`, and setSecret POSTed the new value to it.
#[tokio::test]
async fn a_webhook_tag_with_an_encoded_separator_reaches_nobody() {
    let store = moto_store();
    let listener = RecordingListener::start().await;
    let prefix = format!("{}/rotor", listener.http_url());
    let (key, env) = deployer(&store, std::slice::from_ref(&prefix)).await;
    let function = start_function("generic-rotation", &pairs(&env)).await;
    let refusal = Refusal {
        store: &store,
        function: &function,
        listener: &listener,
        key: &key,
    };
    for url in [
        format!("{prefix}/..%2Fadmin"),
        format!("{prefix}/..%2fadmin"),
        format!("{prefix}/..%5Cadmin"),
        format!("{prefix}/app%5c..%5c..%5cadmin"),
    ] {
        refusal
            .assert_refused_at_create(&url, &["%2F or %5C"])
            .await;
    }

    // The proof: a plain segment under the same prefix reaches the listener.
    let (arn, t, _) = tagged(&store, &format!("{prefix}/app")).await;
    assert!(
        steps::run(&function, &arn, &t, Step::CreateSecret)
            .await
            .is_ok()
    );
    assert!(
        steps::run(&function, &arn, &t, Step::SetSecret)
            .await
            .is_err()
    );
    assert!(listener.connections() > 0, "nothing reached the listener");
}
