//! The real `oauth-rotation` binary's Keycloak, Okta, Entra ID and Auth0 adapters,
//! over the Lambda Runtime API, against moto and the provider emulator
//! (`rotor_testbed::provider_emulator`), which holds every call to the provider's
//! documented API and whose token endpoints accept exactly the secrets the
//! provider holds as active.

mod emulator;

use rotor_cli::function::LocalFunction;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, LabelMove};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString, Step};
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator, TokenAuth};
use rotor_tests::providers::setup;
use rotor_tests::{
    assert_no_stored_secret_in, labels, moto_store, staged_secret_named, start_function, steps,
    token, unique, value,
};
use serde_json::Value;
use sha2::Digest;

use Provider::{Auth0, Entra, Keycloak, Okta};
use TokenAuth::{Basic, Post};

/// The client secret (the `client_secret` field) stored under `label`.
async fn client_secret(store: &AwsStore, arn: &str, label: &str) -> Option<SecretString> {
    let value = value(store, arn, label).await?;
    let parsed: Value = serde_json::from_str(value.expose_secret()).ok()?;
    parsed["client_secret"].as_str().map(SecretString::from)
}

fn same_secret(a: &Option<SecretString>, b: &SecretString) -> bool {
    a.as_ref()
        .is_some_and(|a| a.expose_secret() == b.expose_secret())
}

/// Every step twice, with the same result; the old secret works exactly as
/// long as the provider documents, and is refused at the end.
async fn rotation_with_replays(provider: Provider, method: TokenAuth) {
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let store = moto_store();
    let (case, t) = setup(&emulator, &store, provider, method, true).await;
    let function = start_function("oauth-rotation", &[]).await;
    // Okta and Entra hold the old and the new secret until finishSecret.
    let overlap = matches!(provider, Okta | Entra);
    let mut staged = None;
    for step in Step::ALL {
        let first = steps::run(&function, &case.arn, &t, step).await;
        let second = steps::run(&function, &case.arn, &t, step).await;
        let replayed = match step {
            Step::CreateSecret => "pending_kept",
            Step::FinishSecret => "already_current",
            _ => "done",
        };
        assert_eq!(
            (first.as_deref().ok(), second.as_deref().ok()),
            (Some("done"), Some(replayed)),
            "{provider:?} {step}: {first:?} then {second:?}\n{}",
            function.output()
        );
        if step == Step::CreateSecret {
            staged = client_secret(&store, &case.arn, AWSPENDING).await;
        }
        let new = staged.as_ref().expect("a staged client secret");
        let (new_works, old_works) = (
            case.gets_token(&emulator, new).await,
            case.gets_token(&emulator, &case.initial).await,
        );
        let expected = match step {
            // rotor's secret is stored before the provider knows it; Entra made its own.
            Step::CreateSecret => (provider == Entra, true),
            Step::SetSecret | Step::TestSecret => (true, overlap),
            _ => (true, false),
        };
        assert_eq!(
            (new_works, old_works),
            expected,
            "{provider:?} after {step}: (new, old) get a token"
        );
    }
    let current = client_secret(&store, &case.arn, AWSCURRENT).await;
    let staged = staged.expect("staged");
    assert!(
        same_secret(&current, &staged),
        "the value staged first became current"
    );
    let previous = client_secret(&store, &case.arn, AWSPREVIOUS).await;
    assert!(
        same_secret(&previous, &case.initial),
        "AWSPREVIOUS holds the old secret"
    );
    assert_eq!(
        case.active(&emulator),
        1,
        "{:?}",
        emulator.credentials(provider, &case.admin_id)
    );
    let kept: Value = serde_json::from_str(
        value(&store, &case.arn, AWSCURRENT)
            .await
            .unwrap()
            .expose_secret(),
    )
    .unwrap();
    assert_eq!(kept["owner"], "team-payments", "other fields are kept");
    // The adapter spoke the documented API: no management call was refused.
    let refused: Vec<_> = emulator
        .seen()
        .into_iter()
        .filter(|s| !s.path.ends_with("/token") && !(200..300).contains(&s.status))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    let output = function.output();
    let leaked = [&case.initial, &staged]
        .iter()
        .filter(|s| output.contains(s.expose_secret()))
        .count();
    assert!(
        leaked == 0,
        "{leaked} client secrets in the function's logs"
    );
}

#[tokio::test]
async fn keycloak_rotation_with_replays() {
    rotation_with_replays(Keycloak, Basic).await;
}

#[tokio::test]
async fn okta_rotation_with_replays() {
    rotation_with_replays(Okta, Post).await;
}

#[tokio::test]
async fn entra_rotation_with_replays() {
    rotation_with_replays(Entra, Post).await;
}

#[tokio::test]
async fn auth0_rotation_with_replays() {
    rotation_with_replays(Auth0, Basic).await;
}

#[tokio::test]
async fn revoke_previous_next_rotation_keeps_the_old_secret_one_more_rotation() {
    let function = start_function("oauth-rotation", &[("REVOKE_PREVIOUS", "next-rotation")]).await;
    for provider in [Okta, Entra] {
        let emulator = ProviderEmulator::start().await.expect("start the emulator");
        let store = moto_store();
        let (case, t1) = setup(&emulator, &store, provider, Basic, true).await;
        steps::replay(&function, &case.arn, &t1, &Step::ALL).await;
        let first = client_secret(&store, &case.arn, AWSCURRENT).await.unwrap();
        assert!(
            case.gets_token(&emulator, &case.initial).await,
            "{provider:?}: the old secret still works"
        );
        assert!(case.gets_token(&emulator, &first).await);
        let t2 = token();
        store
            .begin_rotation(&case.arn, &t2)
            .await
            .expect("stage the second rotation");
        steps::replay(&function, &case.arn, &t2, &Step::ALL).await;
        let second = client_secret(&store, &case.arn, AWSCURRENT).await.unwrap();
        assert!(
            !case.gets_token(&emulator, &case.initial).await,
            "{provider:?}: the oldest secret is retired"
        );
        assert!(
            case.gets_token(&emulator, &first).await,
            "{provider:?}: the previous secret still works"
        );
        assert!(case.gets_token(&emulator, &second).await);
        assert_eq!(
            case.active(&emulator),
            2,
            "{:?}",
            emulator.credentials(provider, &case.admin_id)
        );
    }
}

/// With REVOKE_PREVIOUS=next-rotation, the client secret to keep one more
/// rotation is the one AWSPREVIOUS holds. Someone moves AWSPREVIOUS to a
/// value that is no client secret: before, it counted as no previous value,
/// and a retried finishSecret made Entra remove the password the deployer
/// asked to keep (Okta's setSecret refused for another reason: that no
/// version held the app's other secret). Now both refuse naming AWSPREVIOUS
/// and retire nothing; once AWSPREVIOUS is back, the rotations complete.
#[tokio::test]
async fn a_previous_value_that_does_not_parse_retires_nothing() {
    let function = start_function("oauth-rotation", &[("REVOKE_PREVIOUS", "next-rotation")]).await;
    for provider in [Okta, Entra] {
        let emulator = ProviderEmulator::start().await.expect("start the emulator");
        let store = moto_store();
        let (case, t1) = setup(&emulator, &store, provider, Basic, true).await;
        let initial_version = labels(&store, &case.arn)
            .await
            .into_keys()
            .find(|id| *id != t1)
            .expect("the initial version");
        steps::replay(&function, &case.arn, &t1, &Step::ALL).await;
        let first = client_secret(&store, &case.arn, AWSCURRENT).await.unwrap();
        // By hand: AWSPREVIOUS moves to a value that is no client secret.
        let broken = token();
        let put = NewVersion {
            version_id: &broken,
            value: &SecretString::from("not a client secret"),
            labels: &[AWSPREVIOUS],
            rotation_token: None,
        };
        store.put_value(&case.arn, put).await.expect("put by hand");

        // Secrets Manager retries finishSecret.
        let retried = steps::run(&function, &case.arn, &t1, Step::FinishSecret).await;

        let works = |secret| case.gets_token(&emulator, secret);
        assert!(
            works(&case.initial).await,
            "{provider:?}: the previous client secret was retired ({retried:?})"
        );
        assert!(works(&first).await, "{provider:?}");
        let (kind, message) = retried.expect_err("finishSecret refuses");
        assert_eq!(
            kind, "NotRetryable.InvalidSecretValue",
            "{provider:?}: {message}"
        );
        assert!(
            message.contains("AWSPREVIOUS") && message.contains("retired no"),
            "{provider:?}: {message}"
        );

        // The next rotation: Okta's app is full, and which of its secrets
        // may go is what AWSPREVIOUS would say.
        let t2 = token();
        store.begin_rotation(&case.arn, &t2).await.expect("stage");
        let refused = steps::until_refused(&function, &case.arn, &t2).await;
        if provider == Okta {
            let (step, (kind, message)) = refused.expect("Okta's setSecret refuses");
            assert_eq!(step, Step::SetSecret, "{kind}: {message}");
            assert_eq!(kind, "NotRetryable.InvalidSecretValue", "{message}");
            assert!(
                message.contains("AWSPREVIOUS") && message.contains("deleted nothing"),
                "{message}"
            );
            assert!(works(&case.initial).await && works(&first).await);
            assert_eq!(case.active(&emulator), 2);
            // As the error says: AWSPREVIOUS goes back, and the rotation goes on.
            let back = LabelMove {
                label: AWSPREVIOUS.into(),
                to: Some(initial_version.clone()),
                from: Some(broken.clone()),
            };
            store.move_label(&case.arn, &back).await.expect("move back");
            let rest = steps::from(Step::SetSecret);
            steps::replay(&function, &case.arn, &t2, rest).await;
        } else {
            assert!(refused.is_none(), "{refused:?}");
        }
        let second = client_secret(&store, &case.arn, AWSCURRENT).await.unwrap();
        assert!(
            !works(&case.initial).await,
            "{provider:?}: the oldest is retired"
        );
        assert!(works(&first).await && works(&second).await, "{provider:?}");
        assert_no_stored_secret_in(&store, &case.arn, &function.output()).await;
    }
}

#[tokio::test]
async fn a_failed_set_secret_is_retried_on_the_same_version() {
    let function = start_function("oauth-rotation", &[]).await;
    // (provider, method, path, whether the change was made before the 503)
    let failures = [
        (Keycloak, "PUT", "/admin/realms/", false),
        (Okta, "POST", "/credentials/secrets", true),
        (Auth0, "PATCH", "/api/v2/clients/", false),
    ];
    for (provider, method, path, made) in failures {
        let emulator = ProviderEmulator::start().await.expect("start the emulator");
        let store = moto_store();
        let (case, t) = setup(&emulator, &store, provider, Basic, true).await;
        steps::replay(&function, &case.arn, &t, &[Step::CreateSecret]).await;
        let staged = client_secret(&store, &case.arn, AWSPENDING).await.unwrap();
        if made {
            emulator.lose_next_response(method, path, 503);
        } else {
            emulator.fail_next(method, path, 1, 503);
        }
        let (kind, message) = steps::run(&function, &case.arn, &t, Step::SetSecret)
            .await
            .unwrap_err();
        assert_eq!(
            kind, "Retryable.ProviderUnavailable",
            "{provider:?}: {message}"
        );
        assert!(message.contains("HTTP 503"), "{message}");
        assert!(
            case.gets_token(&emulator, &case.initial).await,
            "{provider:?}: AWSCURRENT still works"
        );
        // Secrets Manager retries the same version.
        let rest = steps::from(Step::SetSecret);
        steps::replay(&function, &case.arn, &t, rest).await;
        let current = client_secret(&store, &case.arn, AWSCURRENT).await;
        assert!(
            same_secret(&current, &staged),
            "{provider:?}: the value staged first became current"
        );
        assert!(case.gets_token(&emulator, &staged).await);
        assert!(!case.gets_token(&emulator, &case.initial).await);
        assert_eq!(
            case.active(&emulator),
            1,
            "{:?}",
            emulator.credentials(provider, &case.admin_id)
        );
    }
}

#[tokio::test]
async fn entra_removes_a_password_whose_add_response_was_lost() {
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let store = moto_store();
    let (case, t) = setup(&emulator, &store, Entra, Basic, true).await;
    let function = start_function("oauth-rotation", &[]).await;
    emulator.lose_next_response("POST", "/addPassword", 503);
    let (kind, message) = steps::run(&function, &case.arn, &t, Step::CreateSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "Retryable.ProviderUnavailable", "{message}");
    assert!(value(&store, &case.arn, AWSPENDING).await.is_none());
    let held = emulator.credentials(Entra, &case.admin_id);
    // `rotor <the first 12 hex digits of SHA-256 of the secret's ARN> <version>`
    let identity = hex::encode(sha2::Sha256::digest(case.arn.as_bytes()));
    let name = format!("rotor {} {t}", &identity[..12]);
    let stale: Vec<_> = held
        .iter()
        .filter(|c| c.display_name.as_deref() == Some(&name))
        .collect();
    assert_eq!(stale.len(), 1, "{held:?}");
    steps::replay(&function, &case.arn, &t, &Step::ALL).await;
    let held = emulator.credentials(Entra, &case.admin_id);
    assert!(held.len() == 1 && held[0].id != stale[0].id, "{held:?}");
    let current = client_secret(&store, &case.arn, AWSCURRENT).await.unwrap();
    assert!(case.gets_token(&emulator, &current).await);
    assert!(!case.gets_token(&emulator, &case.initial).await);
}

#[tokio::test]
async fn refused_management_credentials_are_not_retryable_and_change_nothing() {
    let function = start_function("oauth-rotation", &[]).await;
    for provider in [Keycloak, Okta, Entra, Auth0] {
        let emulator = ProviderEmulator::start().await.expect("start the emulator");
        let store = moto_store();
        let (case, t) = setup(&emulator, &store, provider, Basic, false).await;
        let created = steps::run(&function, &case.arn, &t, Step::CreateSecret).await;
        // Entra's createSecret calls Graph; the others' first management call is setSecret's.
        let failed = match provider {
            Entra => created,
            _ => {
                assert!(created.is_ok(), "{provider:?}: {created:?}");
                steps::run(&function, &case.arn, &t, Step::SetSecret).await
            }
        };
        let (kind, message) = failed.unwrap_err();
        assert_eq!(kind, "NotRetryable.ProviderAuth", "{provider:?}: {message}");
        assert!(
            message.contains("HTTP 401") && message.contains("management credentials were refused"),
            "{provider:?}: {message}"
        );
        let current = client_secret(&store, &case.arn, AWSCURRENT).await;
        assert!(
            same_secret(&current, &case.initial),
            "{provider:?}: AWSCURRENT is unchanged"
        );
        assert!(
            case.gets_token(&emulator, &case.initial).await,
            "{provider:?}: and still works"
        );
        assert_eq!(emulator.credentials(provider, &case.admin_id).len(), 1);
    }
}

/// Keycloak answers the client read with a 200 whose body is not a
/// ClientRepresentation (an array, a string, a number): setSecret fails with
/// an error that says so, the process keeps serving, nothing changes, and the
/// rotation completes once Keycloak answers properly.
#[tokio::test]
async fn keycloak_read_that_is_not_an_object_is_a_clear_error() {
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let store = moto_store();
    let function = start_function("oauth-rotation", &[]).await;
    let (case, t) = setup(&emulator, &store, Keycloak, Basic, true).await;
    steps::replay(&function, &case.arn, &t, &[Step::CreateSecret]).await;
    for body in [
        serde_json::json!([{"secret": "x"}]),
        Value::from("ok"),
        Value::from(1),
    ] {
        emulator.answer_next("GET", "/admin/realms/", 200, body);
        let (kind, message) = steps::run(&function, &case.arn, &t, Step::SetSecret)
            .await
            .unwrap_err();
        assert!(kind.starts_with("NotRetryable."), "{kind}: {message}");
        assert!(
            message.contains("not a JSON object") && message.contains("keycloak"),
            "{message}"
        );
        assert!(
            case.gets_token(&emulator, &case.initial).await,
            "the current secret changed"
        );
    }
    steps::replay(&function, &case.arn, &t, steps::from(Step::SetSecret)).await;
    let current = client_secret(&store, &case.arn, AWSCURRENT).await.unwrap();
    assert!(case.gets_token(&emulator, &current).await);
    assert!(!case.gets_token(&emulator, &case.initial).await);
}

/// Issue 21, item 6: a provider error that quotes the request, or the answer
/// the change got (a validation error, a gateway that echoes bodies), holds
/// the new client secret. For every call that carries one (Keycloak's PUT,
/// Okta's POST, Auth0's PATCH, and Entra's addPassword, whose answer holds
/// the password), the step's error gives the status and the error code only:
/// neither it nor the function's output holds the secret. The retried
/// rotation then completes.
#[tokio::test]
async fn a_provider_error_that_quotes_the_secret_is_not_repeated() {
    let function = start_function("oauth-rotation", &[]).await;
    let calls = [
        (Keycloak, "PUT", "/admin/realms/", "invalid_request"),
        (Okta, "POST", "/credentials/secrets", "E0000001"),
        (Auth0, "PATCH", "/api/v2/clients/", "invalid_request"),
        (Entra, "POST", "/addPassword", "Request_BadRequest"),
    ];
    for (provider, method, path, code) in calls {
        let emulator = ProviderEmulator::start().await.expect("start the emulator");
        let store = moto_store();
        let (case, t) = setup(&emulator, &store, provider, Basic, true).await;
        emulator.echo_next(method, path, 400);
        let refused = steps::until_refused(&function, &case.arn, &t).await;
        let (at, (kind, message)) = refused.expect("the echoed call fails its step");
        assert_eq!(
            kind, "NotRetryable.ProviderRejected",
            "{provider:?}: {message}"
        );
        assert!(
            message.contains("HTTP 400") && message.contains(code),
            "{provider:?}: the error gives the status and the code: {message}"
        );
        // The emulator's quote, and Entra's passwords (`…8Q~…`), stay out.
        let quoted = |text: &str| text.contains("the request was") || text.contains("8Q~");
        assert!(
            !quoted(&message),
            "{provider:?}: the error quotes the provider: {message}"
        );
        // The operator retries: the rotation completes.
        steps::replay(&function, &case.arn, &t, steps::from(at)).await;
        let current = client_secret(&store, &case.arn, AWSCURRENT).await.unwrap();
        assert!(case.gets_token(&emulator, &current).await, "{provider:?}");
        let output = function.output();
        assert!(
            !quoted(&output),
            "{provider:?}: the output quotes the provider"
        );
        assert_no_stored_secret_in(&store, &case.arn, &format!("{message}\n{output}")).await;
    }
}

/// Issue 21, item 7: a management answer of 1 MiB (Keycloak's client read)
/// is refused by its length, unread: setSecret fails with a Protocol error
/// that says so, nothing changes, and the rotation completes once the
/// provider answers normally.
#[tokio::test]
async fn a_management_answer_over_64_kib_is_not_read() {
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let store = moto_store();
    let function = start_function("oauth-rotation", &[]).await;
    let (case, t) = setup(&emulator, &store, Keycloak, Basic, true).await;
    steps::replay(&function, &case.arn, &t, &[Step::CreateSecret]).await;
    let huge = serde_json::json!({"id": case.admin_id, "padding": "x".repeat(1 << 20)});
    emulator.answer_next("GET", "/admin/realms/", 200, huge);
    let (kind, message) = steps::run(&function, &case.arn, &t, Step::SetSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.ProviderProtocol", "{message}");
    assert!(
        message.contains("reading the client") && message.contains("over 64 KiB"),
        "{message}"
    );
    assert!(message.len() < 2000, "the error repeats the answer");
    assert!(
        case.gets_token(&emulator, &case.initial).await,
        "nothing changed"
    );
    steps::replay(&function, &case.arn, &t, steps::from(Step::SetSecret)).await;
    let current = client_secret(&store, &case.arn, AWSCURRENT).await.unwrap();
    assert!(case.gets_token(&emulator, &current).await);
}

/// Issue 21, item 7: a token endpoint that answers 200 with a body that does
/// not end (chunked, no length; 96 MiB here, so that the code before the fix
/// finishes too). testSecret stops reading at 64 KiB and fails with a
/// Protocol error; the process's peak memory stays far below the body.
#[tokio::test]
async fn a_token_answer_that_does_not_end_is_cut_at_64_kib() {
    const BODY: usize = 96 << 20;
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let store = moto_store();
    let function = start_function("oauth-rotation", &[]).await;
    let (case, _) = setup(&emulator, &store, Keycloak, Basic, true).await;
    let (endpoint, sent) = endless_token_endpoint(BODY).await;
    // The team's client, whose token endpoint is that server.
    let stored = value(&store, &case.arn, AWSCURRENT).await.unwrap();
    let mut client: Value = serde_json::from_str(stored.expose_secret()).unwrap();
    client["token_endpoint"] = Value::from(endpoint.as_str());
    let t = token();
    let arn = staged_secret_named(
        &store,
        &format!("{}{}", case.team, unique("streamed")),
        &client.to_string(),
        &[],
        &t,
    )
    .await;
    steps::replay(&function, &arn, &t, &[Step::CreateSecret, Step::SetSecret]).await;
    let (kind, message) = steps::run(&function, &arn, &t, Step::TestSecret)
        .await
        .unwrap_err();
    let peak = peak_memory_kib(&function);
    assert_eq!(kind, "NotRetryable.ProviderProtocol", "{message}");
    assert!(message.contains("over 64 KiB"), "{message}");
    assert!(
        peak < 48 * 1024,
        "the function's peak memory is {peak} KiB while the server sent {} KiB",
        sent.load(std::sync::atomic::Ordering::Relaxed) / 1024
    );
    assert!(function.exit_status().is_none(), "the function died");
    assert_no_stored_secret_in(&store, &arn, &format!("{message}\n{}", function.output())).await;
}

/// A server on 127.0.0.1 that answers every request with HTTP 200 and a JSON
/// body of `total` bytes, chunked, with no length. Returns its URL and how
/// many bytes it has sent.
async fn endless_token_endpoint(
    total: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(n) if n > 0 => request.extend_from_slice(&buffer[..n]),
                        _ => return,
                    }
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut written = 0;
                while written < total {
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    written += 0x10000;
                    counter.fetch_add(0x10000, Ordering::Relaxed);
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    (url, sent)
}

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_memory_kib(function: &LocalFunction) -> u64 {
    let pid = function.pid().expect("a running function");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}
