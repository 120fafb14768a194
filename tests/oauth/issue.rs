//! RFC 7592 issue-then-store: the server retires the old secret when it
//! issues a new one, so the issued secret must reach Secrets Manager. These
//! run against glewlwyd (which keeps the registration access token) and the
//! provider emulator's RFC 7592 mode, which replaces the token on use, as
//! RFC 7592 §2.1-2.2 allow.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotor_cli::function::LocalFunction;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString, Step};
use rotor_testbed::oauth_server::{AuthMethod, OAuthServer};
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator, TokenAuth, TokenRotation};
use rotor_testbed::sm_proxy::{Fault, SmProxy};
use rotor_tests::{
    assert_no_stored_secret_in, labels, moto, moto_store, providers, staged_secret,
    start_function_at, step_within, steps, token, value,
};
use serde_json::Value;

use super::{client_secret, gets_token};

/// What PutSecretValue answers: `(fault, how many more times)`.
#[derive(Clone, Default)]
struct PutFaults(Arc<Mutex<Option<(Fault, u32)>>>);

impl PutFaults {
    fn set(&self, fault: Fault, times: u32) {
        *self.0.lock().unwrap() = Some((fault, times));
    }

    fn clear(&self) {
        *self.0.lock().unwrap() = None;
    }

    fn next(&self, operation: &str) -> Option<Fault> {
        if operation != "PutSecretValue" {
            return None;
        }
        let mut plan = self.0.lock().unwrap();
        let (fault, left) = plan.as_mut()?;
        let fault = *fault;
        *left -= 1;
        if *left == 0 {
            *plan = None;
        }
        Some(fault)
    }
}

/// An RFC 7592 server.
enum Server {
    Glewlwyd(Box<OAuthServer>),
    Emulator(ProviderEmulator, TokenRotation),
}

/// A server, Secrets Manager behind a proxy that fails PutSecretValue on cue.
struct IssueBed {
    server: Server,
    faults: PutFaults,
    sm: SmProxy,
    store: AwsStore,
}

impl IssueBed {
    async fn start(server: Server) -> IssueBed {
        let faults = PutFaults::default();
        let plan = faults.clone();
        let sm = SmProxy::with_faults(moto().endpoint(), move |operation, _, _| {
            plan.next(operation)
        })
        .await
        .unwrap();
        IssueBed {
            server,
            faults,
            sm,
            store: moto_store(),
        }
    }

    async fn glewlwyd() -> IssueBed {
        let server =
            OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
        Self::start(Server::Glewlwyd(Box::new(server))).await
    }

    async fn emulator(rotation: TokenRotation) -> IssueBed {
        let emulator = ProviderEmulator::start().await.expect("start the emulator");
        Self::start(Server::Emulator(emulator, rotation)).await
    }

    fn name(&self) -> String {
        match &self.server {
            Server::Glewlwyd(_) => "glewlwyd".into(),
            Server::Emulator(_, rotation) => format!("emulator {rotation:?}"),
        }
    }

    fn replaces_tokens(&self) -> bool {
        matches!(self.server, Server::Emulator(_, rotation) if rotation != TokenRotation::Never)
    }

    async fn function(&self) -> LocalFunction {
        self.function_at(self.sm.endpoint()).await
    }

    /// A function whose Secrets Manager is at `endpoint` (a proxy of its own).
    async fn function_at(&self, endpoint: &str) -> LocalFunction {
        let ca = match &self.server {
            Server::Glewlwyd(server) => server.ca_path().display().to_string(),
            Server::Emulator(..) => String::new(),
        };
        let extra: &[(&str, &str)] = match &self.server {
            Server::Glewlwyd(_) => &[("SSL_CERT_FILE", &ca)],
            Server::Emulator(..) => &[],
        };
        start_function_at("oauth-rotation", endpoint, extra).await
    }

    /// A client with its secret staged for rotation: (ARN, token, initial secret).
    async fn client(&self) -> (String, String, SecretString) {
        match &self.server {
            Server::Glewlwyd(server) => {
                let client = server
                    .register_client(AuthMethod::ClientSecretBasic)
                    .await
                    .unwrap();
                let t = token();
                let value = client_secret(server, &client, AuthMethod::ClientSecretBasic);
                let arn = staged_secret(&self.store, &value, &[], &t).await;
                (arn, t, client.client_secret)
            }
            Server::Emulator(emulator, rotation) => {
                let (case, t) =
                    providers::setup_rfc7592(emulator, &self.store, TokenAuth::Basic, *rotation)
                        .await;
                (case.arn, t, case.initial)
            }
        }
    }

    /// Whether a client secret gets a token.
    async fn secret_works(&self, value: &SecretString, secret: &SecretString) -> bool {
        let client: Value = serde_json::from_str(value.expose_secret()).unwrap();
        let id = client["client_id"].as_str().unwrap();
        match &self.server {
            Server::Glewlwyd(server) => {
                gets_token(server, id, secret, AuthMethod::ClientSecretBasic).await
            }
            Server::Emulator(emulator, _) => {
                let endpoint = client["token_endpoint"].as_str().unwrap();
                providers::gets_token(
                    emulator,
                    Provider::Rfc7592,
                    TokenAuth::Basic,
                    endpoint,
                    id,
                    secret,
                )
                .await
            }
        }
    }

    /// Whether the stored value under `label` gets a token, and whether its
    /// registration access token manages the client.
    async fn works_and_manages(&self, arn: &str, label: &str) -> (bool, bool) {
        let Some(value) = value(&self.store, arn, label).await else {
            return (false, false);
        };
        let client: Value = serde_json::from_str(value.expose_secret()).unwrap();
        let secret = SecretString::from(client["client_secret"].as_str().unwrap());
        let rat = SecretString::from(client["registration_access_token"].as_str().unwrap());
        let works = self.secret_works(&value, &secret).await;
        let manages = match &self.server {
            Server::Glewlwyd(server) => {
                let uri = client["registration_client_uri"].as_str().unwrap();
                server.registration_read(uri, &rat).await.unwrap().status == 200
            }
            Server::Emulator(emulator, _) => {
                emulator.registration_token_works(client["client_id"].as_str().unwrap(), &rat)
            }
        };
        (works, manages)
    }

    /// How many updates (PUTs) the emulator took; glewlwyd does not say.
    fn updates(&self) -> Option<usize> {
        match &self.server {
            Server::Glewlwyd(_) => None,
            Server::Emulator(emulator, _) => Some(
                emulator
                    .seen()
                    .iter()
                    .filter(|s| s.method == "PUT" && s.path.starts_with("/connect/register/"))
                    .count(),
            ),
        }
    }

    /// The rotation is complete: AWSCURRENT gets a token and manages the
    /// client; the initial secret is refused.
    async fn assert_rotated(&self, arn: &str, initial: &SecretString) {
        let name = self.name();
        assert_eq!(
            self.works_and_manages(arn, AWSCURRENT).await,
            (true, true),
            "{name}: AWSCURRENT (gets a token, manages the client)"
        );
        let current = value(&self.store, arn, AWSCURRENT).await.unwrap();
        assert!(
            !self.secret_works(&current, initial).await,
            "{name}: the retired secret still gets a token"
        );
    }
}

/// RFC 7592 servers under test: glewlwyd, and the emulator replacing the
/// registration access token on every update, and on every use.
async fn issue_beds() -> Vec<IssueBed> {
    vec![
        IssueBed::glewlwyd().await,
        IssueBed::emulator(TokenRotation::OnUpdate).await,
        IssueBed::emulator(TokenRotation::OnEveryUse).await,
    ]
}

/// A server that replaces the registration access token on every use: the
/// update must use the token the read returned, and the token the update
/// returned must be stored; a second rotation then works from the stored state.
#[tokio::test]
async fn rfc7592_updates_with_the_token_the_read_returned() {
    for rotation in [TokenRotation::OnEveryUse, TokenRotation::OnUpdate] {
        let bed = IssueBed::emulator(rotation).await;
        let function = bed.function().await;
        let (arn, t, initial) = bed.client().await;
        steps::replay(&function, &arn, &t, &Step::ALL).await;
        bed.assert_rotated(&arn, &initial).await;
        let previous = value(&bed.store, &arn, AWSCURRENT).await.unwrap();
        let t2 = token();
        bed.store.begin_rotation(&arn, &t2).await.unwrap();
        steps::replay(&function, &arn, &t2, &Step::ALL).await;
        let client: Value = serde_json::from_str(previous.expose_secret()).unwrap();
        let old = SecretString::from(client["client_secret"].as_str().unwrap());
        bed.assert_rotated(&arn, &old).await;
        assert_no_stored_secret_in(&bed.store, &arn, &function.output()).await;
    }
}

/// Secrets Manager throttles PutSecretValue past the SDK's own retries, or
/// answers HTTP 500 after storing the value (the answer lost): the issued
/// secret is stored within the step all the same.
#[tokio::test]
async fn an_issued_secret_is_stored_through_a_throttled_store() {
    // The SDK makes 3 attempts per call: 7 outlast two calls.
    for (fault, times) in [(Fault::Throttled, 7), (Fault::LostAnswer, 4)] {
        for bed in issue_beds().await {
            let name = format!("{} {fault:?}", bed.name());
            let function = bed.function().await;
            let (arn, t, initial) = bed.client().await;
            bed.faults.set(fault, times);
            let created = step_within(
                &function,
                &steps::event(&arn, &t, Step::CreateSecret),
                Duration::from_secs(20),
            )
            .await;
            bed.faults.clear();
            // After a lost answer the value is stored already; a repeated
            // write may find it there.
            assert!(
                matches!(created.as_deref(), Ok("done" | "pending_kept")),
                "{name}: {created:?}\n{}",
                function.output()
            );
            assert_eq!(bed.updates().unwrap_or(1), 1, "{name}: one update");
            steps::replay(&function, &arn, &t, &Step::ALL[1..]).await;
            bed.assert_rotated(&arn, &initial).await;
            assert_no_stored_secret_in(&bed.store, &arn, &function.output()).await;
        }
    }
}

/// Secrets Manager cannot store the issued secret at all (the KMS key refuses):
/// the step fails NotRetryable, saying what to run and which registration
/// access token manages the client; the process keeps the value, a retry in it
/// stores that value without asking the server again, and the rotation completes.
#[tokio::test]
async fn an_issued_secret_that_cannot_be_stored_is_kept_for_a_retry() {
    for bed in issue_beds().await {
        let name = bed.name();
        let function = bed.function().await;
        let (arn, t, initial) = bed.client().await;
        bed.faults.set(Fault::EncryptionFailure, u32::MAX);
        let mut messages = String::new();
        for attempt in 1..=2 {
            let (kind, message) = steps::run(&function, &arn, &t, Step::CreateSecret)
                .await
                .unwrap_err();
            assert_eq!(
                kind, "NotRetryable.ValueNotStored",
                "{name}, attempt {attempt}: {message}"
            );
            let location = if bed.replaces_tokens() {
                "kept with the new secret in this function's memory"
            } else {
                "registration_access_token of AWSCURRENT (version"
            };
            for expected in [
                "EncryptionFailure",
                location,
                "rotate-secret",
                t.as_str(),
                arn.as_str(),
            ] {
                assert!(
                    message.contains(expected),
                    "{name}: {expected:?} not in {message}"
                );
            }
            assert_eq!(
                bed.updates().unwrap_or(1),
                1,
                "{name}: asked the server again"
            );
            messages.push_str(&message);
        }
        assert!(value(&bed.store, &arn, AWSPENDING).await.is_none());
        bed.faults.clear();
        assert_eq!(
            steps::run(&function, &arn, &t, Step::CreateSecret)
                .await
                .as_deref(),
            Ok("done"),
            "{name}"
        );
        assert_eq!(bed.updates().unwrap_or(1), 1, "{name}: one update in all");
        assert_eq!(
            bed.works_and_manages(&arn, AWSPENDING).await,
            (true, true),
            "{name}: the kept value was stored"
        );
        steps::replay(&function, &arn, &t, &Step::ALL[1..]).await;
        bed.assert_rotated(&arn, &initial).await;
        assert_no_stored_secret_in(
            &bed.store,
            &arn,
            &format!("{messages}{}", function.output()),
        )
        .await;
    }
}

/// Secrets Manager is down for the whole step and the function then restarts:
/// the restarted one says which registration access token manages the client.
/// glewlwyd kept the stored token, so the restarted function issues and stores
/// a new secret once the store is back. The emulator replaced it, so the client
/// is recovered as the error says: the server's administrator issues a new
/// token and secret, the operator stores them as AWSCURRENT, and the rotation
/// completes.
#[tokio::test]
async fn a_restarted_function_says_which_token_manages_the_client() {
    for bed in issue_beds().await {
        let name = bed.name();
        let (arn, t, initial) = bed.client().await;
        {
            let first = bed.function().await;
            bed.faults.set(Fault::Unavailable, u32::MAX);
            let (kind, message) = step_within(
                &first,
                &steps::event(&arn, &t, Step::CreateSecret),
                Duration::from_secs(4),
            )
            .await
            .unwrap_err();
            assert_eq!(kind, "NotRetryable.ValueNotStored", "{name}: {message}");
        }
        let restarted = bed.function().await;
        let (kind, message) = step_within(
            &restarted,
            &steps::event(&arn, &t, Step::CreateSecret),
            Duration::from_secs(4),
        )
        .await
        .unwrap_err();
        let current = labels(&bed.store, &arn)
            .await
            .into_iter()
            .find(|(_, l)| l.iter().any(|l| l == AWSCURRENT))
            .map(|(id, _)| id)
            .unwrap();
        let location = format!("registration_access_token of AWSCURRENT (version {current})");
        assert!(message.contains(&location), "{name}: {message}");
        assert!(
            kind.starts_with("NotRetryable."),
            "{name}: {kind}: {message}"
        );
        bed.faults.clear();
        if !bed.replaces_tokens() {
            assert_eq!(kind, "NotRetryable.ValueNotStored", "{name}: {message}");
            assert!(message.contains("still manages the client"), "{message}");
            steps::replay(&restarted, &arn, &t, &Step::ALL).await;
            bed.assert_rotated(&arn, &initial).await;
            continue;
        }
        assert_eq!(kind, "NotRetryable.ProviderAuth", "{name}: {message}");
        assert!(
            message.contains("administrator") && message.contains("put-secret-value"),
            "{message}"
        );
        // The recovery, as the error says.
        let Server::Emulator(emulator, _) = &bed.server else {
            unreachable!()
        };
        let stored = value(&bed.store, &arn, AWSCURRENT).await.unwrap();
        let mut client: Value = serde_json::from_str(stored.expose_secret()).unwrap();
        let (rat, secret) = emulator
            .reissue_registration(client["client_id"].as_str().unwrap())
            .unwrap();
        client["registration_access_token"] = Value::from(rat.expose_secret());
        client["client_secret"] = Value::from(secret.expose_secret());
        bed.store
            .put_value(
                &arn,
                NewVersion {
                    version_id: &token(),
                    value: &SecretString::from(client.to_string()),
                    labels: &[AWSCURRENT],
                    rotation_token: None,
                },
            )
            .await
            .unwrap();
        steps::replay(&restarted, &arn, &t, &Step::ALL).await;
        bed.assert_rotated(&arn, &secret).await;
        assert_no_stored_secret_in(
            &bed.store,
            &arn,
            &format!("{message}{}", restarted.output()),
        )
        .await;
    }
}

/// Two processes each issued a secret that could not be stored (the second
/// one restarted); the first then retries. At glewlwyd, which kept the token,
/// the restarted process's secret retired the first one's: the first process
/// reads the client before storing what it kept, finds it retired, and asks
/// for a new secret instead of storing a dead one. At the emulator, the
/// restarted process could not use the replaced token, and the first stores
/// what it kept (with the token its read was given).
#[tokio::test]
async fn a_kept_secret_that_another_process_replaced_is_not_stored() {
    for bed in issue_beds().await {
        let name = bed.name();
        let (arn, t, initial) = bed.client().await;
        bed.faults.set(Fault::EncryptionFailure, u32::MAX);
        let first = bed.function().await;
        let second = bed.function().await;
        for function in [&first, &second] {
            let failed = steps::run(function, &arn, &t, Step::CreateSecret).await;
            assert!(
                matches!(&failed, Err((kind, _)) if kind.starts_with("NotRetryable.")),
                "{name}: {failed:?}"
            );
        }
        bed.faults.clear();
        steps::replay(&first, &arn, &t, &Step::ALL).await;
        bed.assert_rotated(&arn, &initial).await;
        let output = format!("{}{}", first.output(), second.output());
        assert_no_stored_secret_in(&bed.store, &arn, &output).await;
    }
}

/// Issue 21, item 9: two createSecret runs for one version overlap (a retry
/// while the first is still running, or doctor's resume racing Secrets
/// Manager), at a server that keeps the registration access token (glewlwyd,
/// and the emulator in that mode). Both have the server issue a secret, and
/// the second issue retires the first's; but the first run's PutSecretValue
/// lands first. The second run's is refused, as the version exists with
/// another value: that is not success. It reads the client, finds that the
/// server holds its secret, and stores it as a new version that takes
/// AWSPENDING; the error names that version, and its rotation completes.
/// Before, the refusal passed for "another run stored it", and AWSPENDING
/// held a secret the server had retired. At a server that replaces the token
/// on update, the second run's call is refused instead, and its error says
/// to look for the first run's AWSPENDING, which works.
#[tokio::test]
async fn overlapping_create_secret_runs_store_the_secret_the_server_holds() {
    // PutSecretValue is held on its way to moto: the first run's for 1.5 s,
    // the second's for 3 s, so that the first one's lands first.
    let held = |pause: Duration| {
        move |operation: &str, _: &str, attempt: u32| {
            (operation == "PutSecretValue" && attempt == 1).then_some(Fault::SlowRequest(pause))
        }
    };
    for bed in [
        IssueBed::emulator(TokenRotation::Never).await,
        IssueBed::glewlwyd().await,
        IssueBed::emulator(TokenRotation::OnUpdate).await,
    ] {
        let name = bed.name();
        let first_sm = SmProxy::with_faults(moto().endpoint(), held(Duration::from_millis(1500)))
            .await
            .unwrap();
        let second_sm = SmProxy::with_faults(moto().endpoint(), held(Duration::from_secs(3)))
            .await
            .unwrap();
        let first = bed.function_at(first_sm.endpoint()).await;
        let second = bed.function_at(second_sm.endpoint()).await;
        let (arn, t, initial) = bed.client().await;
        let first_run = steps::run(&first, &arn, &t, Step::CreateSecret);
        let second_run = async {
            // Once the first run has its secret and is storing it.
            while !first_sm.log().calls.contains_key("PutSecretValue") {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            steps::run(&second, &arn, &t, Step::CreateSecret).await
        };
        let (first_result, second_result) = tokio::join!(first_run, second_run);
        assert_eq!(first_result.as_deref(), Ok("done"), "{name}");
        if bed.replaces_tokens() {
            let (kind, message) = second_result.expect_err("the second run's call is refused");
            assert_eq!(kind, "NotRetryable.ProviderAuth", "{name}: {message}");
            assert!(
                message.contains("overlapping retry") && message.contains(&t),
                "{name}: {message}"
            );
            assert_eq!(
                bed.works_and_manages(&arn, AWSPENDING).await,
                (true, true),
                "{name}: the first run's AWSPENDING"
            );
            steps::replay(&first, &arn, &t, &Step::ALL[1..]).await;
            bed.assert_rotated(&arn, &initial).await;
            let output = format!("{message}{}{}", first.output(), second.output());
            assert_no_stored_secret_in(&bed.store, &arn, &output).await;
            continue;
        }
        if let Some(updates) = bed.updates() {
            assert_eq!(updates, 2, "{name}: the two runs did not overlap");
        }

        let labels = labels(&bed.store, &arn).await;
        let pending = labels
            .iter()
            .find(|(_, l)| l.iter().any(|l| l == AWSPENDING))
            .map(|(id, _)| id.clone())
            .unwrap_or_default();
        assert_eq!(
            bed.works_and_manages(&arn, AWSPENDING).await,
            (true, true),
            "{name}: AWSPENDING (version {pending}) holds a secret the server retired: {second_result:?}\n{}",
            second.output()
        );
        let (kind, message) = second_result.expect_err("the second run says what happened");
        assert_eq!(kind, "NotRetryable.PendingReplaced", "{name}: {message}");
        assert!(
            pending != t && message.contains(&pending) && message.contains(&t),
            "{name}: the error names both versions: {message}"
        );
        // The first run's version is no longer pending: its next step says so.
        let (kind, _) = steps::run(&first, &arn, &t, Step::SetSecret)
            .await
            .unwrap_err();
        assert_eq!(kind, "NotRetryable.NotPending", "{name}");
        // The rotation to the new version completes, as the error says.
        steps::replay(&second, &arn, &pending, &Step::ALL).await;
        bed.assert_rotated(&arn, &initial).await;
        let output = format!("{message}{}{}", first.output(), second.output());
        assert_no_stored_secret_in(&bed.store, &arn, &output).await;
    }
}
