//! The real `oauth-rotation` binary's Keycloak, Okta, Entra ID and Auth0 adapters,
//! over the Lambda Runtime API, against moto and the provider emulator
//! (`rotor_testbed::provider_emulator`), which holds every call to the provider's
//! documented API and whose token endpoints accept exactly the secrets the
//! provider holds as active.

use rotor_cli::function::LocalFunction;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString};
use rotor_testbed::provider_emulator::{EmulatedClient, Provider, ProviderEmulator, TokenAuth};
use rotor_tests::providers::*;
use rotor_tests::*;
use serde_json::Value;
use sha2::Digest;

use Provider::{Auth0, Entra, Keycloak, Okta};
use TokenAuth::{Basic, Post};

const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
async fn client_secret(store: &AwsStore, arn: &str, label: &str) -> Option<SecretString> {
    let value = value(store, arn, label).await?;
    let parsed: Value = serde_json::from_str(value.expose_secret()).ok()?;
    parsed["client_secret"].as_str().map(SecretString::from)
}

fn same_secret(a: &Option<SecretString>, b: &SecretString) -> bool {
    a.as_ref()
        .is_some_and(|a| a.expose_secret() == b.expose_secret())
}

/// Runs the remaining steps of a rotation once each; each must succeed.
async fn complete(function: &LocalFunction, arn: &str, t: &str, steps: &[&str]) {
    for name in steps {
        let result = step(function, &event(arn, t, name)).await;
        assert!(result.is_ok(), "{name}: {result:?}\n{}", function.output());
    }
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
    for name in STEPS {
        let first = step(&function, &event(&case.arn, &t, name)).await;
        let second = step(&function, &event(&case.arn, &t, name)).await;
        let replayed = match name {
            "createSecret" => "pending_kept",
            "finishSecret" => "already_current",
            _ => "done",
        };
        assert_eq!(
            (first.as_deref().ok(), second.as_deref().ok()),
            (Some("done"), Some(replayed)),
            "{provider:?} {name}: {first:?} then {second:?}\n{}",
            function.output()
        );
        if name == "createSecret" {
            staged = client_secret(&store, &case.arn, AWSPENDING).await;
        }
        let new = staged.as_ref().expect("a staged client secret");
        let (new_works, old_works) = (
            case.gets_token(&emulator, new).await,
            case.gets_token(&emulator, &case.initial).await,
        );
        let expected = match name {
            // rotor's secret is stored before the provider knows it; Entra made its own.
            "createSecret" => (provider == Entra, true),
            "setSecret" | "testSecret" => (true, overlap),
            _ => (true, false),
        };
        assert_eq!(
            (new_works, old_works),
            expected,
            "{provider:?} after {name}: (new, old) get a token"
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
        complete(&function, &case.arn, &t1, &STEPS).await;
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
        complete(&function, &case.arn, &t2, &STEPS).await;
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
    use rotor_core::labels::LabelMove;
    use rotor_core::store::NewVersion;
    use rotor_core::{SecretStore, Step};
    use rotor_tests::steps;

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
            let rest = [Step::SetSecret, Step::TestSecret, Step::FinishSecret];
            steps::replay(&function, &case.arn, &t2, &rest).await;
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
        complete(&function, &case.arn, &t, &["createSecret"]).await;
        let staged = client_secret(&store, &case.arn, AWSPENDING).await.unwrap();
        if made {
            emulator.lose_next_response(method, path, 503);
        } else {
            emulator.fail_next(method, path, 1, 503);
        }
        let (kind, message) = step(&function, &event(&case.arn, &t, "setSecret"))
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
        complete(
            &function,
            &case.arn,
            &t,
            &["setSecret", "testSecret", "finishSecret"],
        )
        .await;
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
    let (kind, message) = step(&function, &event(&case.arn, &t, "createSecret"))
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
    complete(&function, &case.arn, &t, &STEPS).await;
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
        let created = step(&function, &event(&case.arn, &t, "createSecret")).await;
        // Entra's createSecret calls Graph; the others' first management call is setSecret's.
        let failed = match provider {
            Entra => created,
            _ => {
                assert!(created.is_ok(), "{provider:?}: {created:?}");
                step(&function, &event(&case.arn, &t, "setSecret")).await
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

/// (token endpoint, client_id, secret, method, other parameters, expected status)
type GrantCase<'a> = (
    &'a str,
    &'a str,
    &'a SecretString,
    TokenAuth,
    &'a [(&'a str, &'a str)],
    u16,
);

/// The emulator itself refuses what the providers' references rule out.
#[tokio::test]
async fn the_emulator_holds_calls_to_the_documented_shapes() {
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let secret = SecretString::from("emulator-self-test-secret");
    let add = |provider, id: &str, method| {
        let mut client = EmulatedClient::new(provider, REALM, id, id, &secret);
        client.method = method;
        emulator.add_client(client);
    };
    add(Keycloak, "kc", None);
    add(Okta, "0oa-app", Some(Post));
    add(Entra, "00000000-0000-0000-0000-00000000e0e0", None);
    add(Auth0, "a0", Some(Post));
    add(Auth0, "m2m-without-grant", Some(Post));
    for (provider, auth) in [
        (Keycloak, "Bearer kt"),
        (Okta, "SSWS ot"),
        (Entra, "Bearer gt"),
        (Auth0, "Bearer at"),
    ] {
        emulator.allow_management(provider, auth);
    }
    let json = "application/json";
    let (kc, okta, graph, auth0) = (
        format!("/admin/realms/{REALM}/clients/kc"),
        "/api/v1/apps/0oa-app/credentials/secrets".to_owned(),
        "/v1.0/applications/00000000-0000-0000-0000-00000000e0e0".to_owned(),
        "/api/v2/clients/a0".to_owned(),
    );
    let add_password = format!("{graph}/addPassword");
    let remove_password = format!("{graph}/removePassword");
    let select_unknown = format!("{graph}?$select=secrets");
    let new_secret = r#"{"client_secret":"a-second-secret-of-okta"}"#;
    // (method, target, Authorization, Content-Type, body, expected status)
    let calls: &[(&str, &str, &str, &str, &str, u16)] = &[
        ("GET", &kc, "", "", "", 401),
        ("GET", &kc, "SSWS kt", "", "", 401),
        ("GET", &kc, "Bearer kt", "", "", 200),
        (
            "PUT",
            &kc,
            "Bearer kt",
            "text/plain",
            r#"{"secret":"x"}"#,
            415,
        ),
        ("PUT", &kc, "Bearer kt", json, r#"{"secret":5}"#, 400),
        ("PUT", &kc, "Bearer kt", json, r#"{"id":"another"}"#, 400),
        ("GET", &okta, "Bearer ot", "", "", 401),
        (
            "POST",
            &okta,
            "SSWS ot",
            json,
            r#"{"client_secret":"short"}"#,
            400,
        ),
        (
            "POST",
            &okta,
            "SSWS ot",
            json,
            r#"{"status":"SUSPENDED"}"#,
            400,
        ),
        ("POST", &okta, "SSWS ot", json, new_secret, 201),
        ("POST", &okta, "SSWS ot", json, "{}", 400), // a third secret
        ("GET", &select_unknown, "Bearer gt", "", "", 400),
        ("POST", &add_password, "Bearer gt", "", "{}", 415),
        (
            "POST",
            &add_password,
            "Bearer gt",
            json,
            r#"{"passwordCredential":{"secretText":"mine"}}"#,
            400,
        ),
        (
            "POST",
            &add_password,
            "Bearer gt",
            json,
            r#"{"displayName":"x"}"#,
            400,
        ),
        ("POST", &remove_password, "Bearer gt", json, "{}", 400),
        (
            "POST",
            &remove_password,
            "Bearer gt",
            json,
            r#"{"keyId":"not-a-guid"}"#,
            400,
        ),
        ("PATCH", &auth0, "", json, r#"{"client_secret":"abc"}"#, 401),
        (
            "PATCH",
            &auth0,
            "Bearer at",
            json,
            r#"{"client_id":"other"}"#,
            400,
        ),
        (
            "PATCH",
            &auth0,
            "Bearer at",
            json,
            r#"{"client_secret":7}"#,
            400,
        ),
        (
            "PATCH",
            &auth0,
            "Bearer at",
            json,
            r#"{"client_secret":""}"#,
            400,
        ),
    ];
    for (method, target, auth, content_type, body, expected) in calls {
        let mut headers = Vec::new();
        if !auth.is_empty() {
            headers.push(("Authorization", *auth));
        }
        if !content_type.is_empty() {
            headers.push(("Content-Type", *content_type));
        }
        let (status, reply) = emulator.send(method, target, &headers, body).await;
        assert_eq!(status, *expected, "{method} {target} {body}");
        let described = [
            "error_description",
            "errorSummary",
            "message",
            "errorMessage",
            "error",
        ]
        .iter()
        .any(|k| reply[k].is_string() || reply["error"][k].is_string());
        assert!(
            status < 300 || described,
            "{method} {target}: the error says why"
        );
    }
    // Okta: an active secret is not deleted; the last active one is not deactivated.
    let (_, listed) = emulator
        .send("GET", &okta, &[("Authorization", "SSWS ot")], "")
        .await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    let auth = [("Authorization", "SSWS ot")];
    let sequence = [
        ("DELETE", format!("{okta}/{}", ids[1]), 400),
        (
            "POST",
            format!("{okta}/{}/lifecycle/deactivate", ids[1]),
            200,
        ),
        (
            "POST",
            format!("{okta}/{}/lifecycle/deactivate", ids[0]),
            400,
        ),
        ("DELETE", format!("{okta}/{}", ids[1]), 204),
    ];
    for (method, target, expected) in sequence {
        assert_eq!(
            emulator.send(method, &target, &auth, "").await.0,
            expected,
            "{method} {target}"
        );
    }
    // Token endpoints.
    let kc_token = emulator.token_endpoint(Keycloak, REALM);
    let okta_token = emulator.token_endpoint(Okta, REALM);
    let entra_token = emulator.token_endpoint(Entra, REALM);
    let auth0_token = emulator.token_endpoint(Auth0, REALM);
    let entra = "00000000-0000-0000-0000-00000000e0e0";
    let wrong = SecretString::from("not-the-secret");
    let m2m = [("audience", emulator.auth0_management_audience())];
    let m2m: Vec<(&str, &str)> = m2m.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let grants: &[GrantCase] = &[
        (&kc_token, "kc", &secret, Basic, &[], 200),
        (&kc_token, "kc", &secret, Post, &[], 200),
        (&kc_token, "kc", &wrong, Basic, &[], 401),
        (
            &kc_token,
            "kc",
            &secret,
            Basic,
            &[("client_secret", "x")],
            400,
        ), // two methods
        (
            &kc_token,
            "kc",
            &secret,
            Basic,
            &[("scope", "a"), ("scope", "b")],
            400,
        ), // repeated
        (
            &okta_token,
            "0oa-app",
            &secret,
            Post,
            &[("scope", "s")],
            200,
        ),
        (
            &okta_token,
            "0oa-app",
            &secret,
            Basic,
            &[("scope", "s")],
            401,
        ), // configured for post
        (&okta_token, "0oa-app", &secret, Post, &[], 400), // no scope
        (
            &entra_token,
            entra,
            &secret,
            Basic,
            &[("scope", "api://x/.default")],
            200,
        ),
        (
            &entra_token,
            entra,
            &secret,
            Basic,
            &[("scope", "api://x/read")],
            400,
        ),
        (
            &auth0_token,
            "a0",
            &secret,
            Post,
            &[("audience", "https://api/")],
            200,
        ),
        (&auth0_token, "a0", &secret, Post, &[], 403), // no audience
        (
            &auth0_token,
            "a0",
            &wrong,
            Post,
            &[("audience", "https://api/")],
            401,
        ),
        (
            &auth0_token,
            "m2m-without-grant",
            &secret,
            Post,
            m2m.as_slice(),
            403,
        ),
    ];
    for (endpoint, client, secret, method, extra, expected) in grants {
        let status = emulator
            .grant(endpoint, client, secret, *method, extra)
            .await;
        assert_eq!(
            status, *expected,
            "{endpoint} {client} {method:?} {extra:?}"
        );
    }
    let refused = emulator
        .send(
            "POST",
            &format!("/realms/{REALM}/protocol/openid-connect/token"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "grant_type=password&client_id=kc&client_secret=emulator-self-test-secret",
        )
        .await;
    assert_eq!(
        (refused.0, refused.1["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
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
    complete(&function, &case.arn, &t, &["createSecret"]).await;
    for body in [
        serde_json::json!([{"secret": "x"}]),
        Value::from("ok"),
        Value::from(1),
    ] {
        emulator.answer_next("GET", "/admin/realms/", 200, body);
        let (kind, message) = step(&function, &event(&case.arn, &t, "setSecret"))
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
    complete(&function, &case.arn, &t, &STEPS[1..]).await;
    let current = client_secret(&store, &case.arn, AWSCURRENT).await.unwrap();
    assert!(case.gets_token(&emulator, &current).await);
    assert!(!case.gets_token(&emulator, &case.initial).await);
}

/// The emulator's RFC 7592 mode, pinned: a token is refused once the server
/// replaced it (on every read in `OnEveryUse`, on every update in both modes),
/// an update must not carry the server's fields or another secret, an unknown
/// client is a 401 (RFC 7592 §2.1), and each update issues a new secret and
/// refuses the old one.
#[tokio::test]
async fn the_emulator_replaces_registration_tokens_as_configured() {
    use rotor_testbed::provider_emulator::TokenRotation;
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let json = ("Content-Type", "application/json");
    for rotation in [TokenRotation::OnUpdate, TokenRotation::OnEveryUse] {
        let id = unique("rfc7592-client");
        let initial = SecretString::from(unique("secret"));
        let (uri, first) = emulator.add_registered_client(&id, &initial, Basic, rotation);
        let path = uri.strip_prefix(&emulator.url()).unwrap().to_owned();
        let bearer = |t: &SecretString| format!("Bearer {}", t.expose_secret());
        let (status, read) = emulator
            .send("GET", &path, &[("Authorization", &bearer(&first))], "")
            .await;
        assert_eq!(status, 200, "{rotation:?}");
        let token = SecretString::from(read["registration_access_token"].as_str().unwrap());
        let replaced = token.expose_secret() != first.expose_secret();
        assert_eq!(replaced, rotation == TokenRotation::OnEveryUse);
        assert_eq!(
            emulator.registration_token_works(&id, &first),
            !replaced,
            "{rotation:?}: the old token after a read"
        );
        let unknown = format!("/connect/register/{}", unique("nobody"));
        let auth = bearer(&token);
        let calls: &[(&str, &str, String, u16)] = &[
            ("GET", &unknown, String::new(), 401),
            (
                "PUT",
                &path,
                format!(r#"{{"client_id":"{id}","registration_access_token":"x"}}"#),
                400,
            ),
            (
                "PUT",
                &path,
                format!(r#"{{"client_id":"{id}","client_secret":"wrong"}}"#),
                400,
            ),
            ("PUT", &path, r#"{"client_id":"another"}"#.to_owned(), 400),
            ("PUT", &path, "[]".to_owned(), 400),
        ];
        for (method, target, body, expected) in calls {
            let (status, _) = emulator
                .send(method, target, &[("Authorization", &auth), json], body)
                .await;
            assert_eq!(status, *expected, "{rotation:?} {method} {target} {body}");
        }
        let update =
            format!(r#"{{"client_id":"{id}","token_endpoint_auth_method":"client_secret_basic"}}"#);
        let (status, updated) = emulator
            .send("PUT", &path, &[("Authorization", &auth), json], &update)
            .await;
        assert_eq!(status, 200, "{rotation:?}");
        let new_token = SecretString::from(updated["registration_access_token"].as_str().unwrap());
        let new_secret = SecretString::from(updated["client_secret"].as_str().unwrap());
        assert!(new_token.expose_secret() != token.expose_secret());
        assert!(!emulator.registration_token_works(&id, &token));
        assert!(emulator.registration_token_works(&id, &new_token));
        let (status, _) = emulator
            .send("GET", &path, &[("Authorization", &auth)], "")
            .await;
        assert_eq!(status, 401, "{rotation:?}: the replaced token is refused");
        let endpoint = emulator.token_endpoint(Provider::Rfc7592, "");
        for (secret, works) in [(&initial, false), (&new_secret, true)] {
            let granted = emulator.grant(&endpoint, &id, secret, Basic, &[]).await == 200;
            assert_eq!(granted, works, "{rotation:?}");
        }
    }
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
        let mut failed = None;
        for (i, name) in STEPS.iter().enumerate() {
            if let Err(error) = step(&function, &event(&case.arn, &t, name)).await {
                failed = Some((i, error));
                break;
            }
        }
        let (at, (kind, message)) = failed.expect("the echoed call fails its step");
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
        complete(&function, &case.arn, &t, &STEPS[at..]).await;
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
    complete(&function, &case.arn, &t, &["createSecret"]).await;
    let huge = serde_json::json!({"id": case.admin_id, "padding": "x".repeat(1 << 20)});
    emulator.answer_next("GET", "/admin/realms/", 200, huge);
    let (kind, message) = step(&function, &event(&case.arn, &t, "setSecret"))
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
    complete(&function, &case.arn, &t, &STEPS[1..]).await;
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
    complete(&function, &arn, &t, &["createSecret", "setSecret"]).await;
    let (kind, message) = step(&function, &event(&arn, &t, "testSecret"))
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
