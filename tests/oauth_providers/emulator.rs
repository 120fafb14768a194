//! The provider emulator itself, pinned: it refuses what the providers'
//! references rule out, so that the adapters tested against it speak the
//! documented APIs.

use rotor_core::{ExposeSecret, SecretString};
use rotor_testbed::provider_emulator::{
    EmulatedClient, Provider, ProviderEmulator, TokenAuth, TokenRotation,
};
use rotor_tests::providers::REALM;
use rotor_tests::unique;

use Provider::{Auth0, Entra, Keycloak, Okta};
use TokenAuth::{Basic, Post};

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

/// The emulator's RFC 7592 mode, pinned: a token is refused once the server
/// replaced it (on every read in `OnEveryUse`, on every update in both modes),
/// an update must not carry the server's fields or another secret, an unknown
/// client is a 401 (RFC 7592 §2.1), and each update issues a new secret and
/// refuses the old one.
#[tokio::test]
async fn the_emulator_replaces_registration_tokens_as_configured() {
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
