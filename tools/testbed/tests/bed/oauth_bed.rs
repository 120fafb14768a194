//! The OAuth test bed (rotor_testbed::oauth_server) itself: a throwaway glewlwyd over
//! HTTPS that registers clients (RFC 7591), lets them manage their registration
//! (RFC 7592), issues `client_credentials` tokens, and never outlives the test
//! process. These tests also pin how glewlwyd 2.7 behaves where `oauth-rotation`
//! depends on it: what an RFC 7592 PUT changes, and how the token endpoint
//! refuses a secret that is no longer valid.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rotor_testbed::db::process_alive;
use rotor_testbed::oauth_server::{
    AuthMethod, CLIENT_SCOPE, OAuthServer, REDIRECT_URI, RegisteredClient, TokenError,
    TokenResponse,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use AuthMethod::{ClientSecretBasic as Basic, ClientSecretPost as Post};

fn start() -> OAuthServer {
    let began = Instant::now();
    let server = OAuthServer::start().unwrap_or_else(|e| panic!("cannot start glewlwyd: {e:#}"));
    eprintln!("glewlwyd started in {:.2?}", began.elapsed());
    server
}

async fn token(
    server: &OAuthServer,
    client_id: &str,
    secret: &SecretString,
    method: AuthMethod,
) -> Result<TokenResponse, TokenError> {
    // None asks for CLIENT_SCOPE.
    server
        .client_credentials(client_id, secret, method, None)
        .await
}

/// A token must be issued.
fn issued(result: Result<TokenResponse, TokenError>, what: &str) -> TokenResponse {
    result.unwrap_or_else(|e| panic!("{what}: no token: {e}"))
}

/// glewlwyd's refusal of client credentials: HTTP 403 with an empty body.
fn assert_forbidden(result: Result<TokenResponse, TokenError>, what: &str) {
    match result {
        Err(TokenError::Refused {
            status: 403,
            error: None,
            error_description: None,
        }) => {}
        Err(other) => panic!("{what}: expected a bare 403, got {other}"),
        Ok(_) => panic!("{what}: a token was issued"),
    }
}

/// The RFC 7592 GET document, with `token_endpoint_auth_method` made the single
/// string that a PUT requires (the GET returns it as an array).
fn normalized(mut document: Value) -> Value {
    let method = document["token_endpoint_auth_method"][0].clone();
    assert!(
        method.is_string(),
        "no method in {:?}",
        document.get("token_endpoint_auth_method")
    );
    document["token_endpoint_auth_method"] = method;
    document
}

fn secret_in(document: &Value) -> SecretString {
    SecretString::from(
        document["client_secret"]
            .as_str()
            .expect("a client_secret in the document")
            .to_owned(),
    )
}

fn same(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret() == b.expose_secret()
}

async fn read(server: &OAuthServer, client: &RegisteredClient) -> Value {
    let reply = server
        .registration_read(
            &client.registration_client_uri,
            &client.registration_access_token,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "RFC 7592 GET: {reply:?}");
    reply.json().unwrap()
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn registered_clients_get_tokens_with_their_own_method_only() {
    let server = start();
    let discovery = server.discovery().await.unwrap();
    assert_eq!(discovery["issuer"], server.issuer());
    assert!(server.issuer().starts_with("https://127.0.0.1:"));
    assert_eq!(discovery["token_endpoint"], server.token_endpoint());
    assert_eq!(
        discovery["registration_endpoint"],
        server.registration_endpoint()
    );
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );

    for (method, other) in [(Basic, Post), (Post, Basic)] {
        let client = server.register_client(method).await.unwrap();
        assert_eq!(
            client.metadata["token_endpoint_auth_method"],
            method.as_str()
        );
        assert_eq!(client.metadata["client_secret_expires_at"], 0);
        assert!(client.metadata.get("client_secret").is_none());
        assert!(
            client
                .registration_client_uri
                .starts_with(&format!("{}/register/", server.issuer())),
            "{}",
            client.registration_client_uri
        );

        let granted = issued(
            token(&server, &client.client_id, &client.client_secret, method).await,
            method.as_str(),
        );
        assert!(granted.token_type.eq_ignore_ascii_case("bearer"));
        assert_eq!(granted.scope.as_deref(), Some(CLIENT_SCOPE));
        assert_eq!(granted.expires_in, Some(3600));
        assert_eq!(granted.access_token.expose_secret().split('.').count(), 3);

        // Only the registered method is accepted.
        assert_forbidden(
            token(&server, &client.client_id, &client.client_secret, other).await,
            "the method the client was not registered with",
        );
        let wrong = SecretString::from("not-the-secret".to_owned());
        assert_forbidden(
            token(&server, &client.client_id, &wrong, method).await,
            "a wrong secret",
        );
        assert_forbidden(
            token(&server, "no-such-client", &client.client_secret, method).await,
            "an unknown client",
        );
        // A scope is required, and must be one the client has.
        assert_forbidden(
            server
                .client_credentials(&client.client_id, &client.client_secret, method, Some(""))
                .await,
            "no scope",
        );
        let error = server
            .client_credentials(
                &client.client_id,
                &client.client_secret,
                method,
                Some("other"),
            )
            .await
            .expect_err("another scope was granted");
        assert_eq!(
            (error.status(), error.error_code()),
            (Some(400), Some("scope_invalid"))
        );
    }

    // Registration insists on redirect_uris, even for client_credentials only.
    let error = server
        .register_client_with(json!({
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
        }))
        .await
        .expect_err("a registration without redirect_uris");
    let error = format!("{error:#}");
    assert!(
        error.contains("HTTP 400") && error.contains("invalid_redirect_uri"),
        "{error}"
    );
}

#[tokio::test]
async fn rfc7592_put_issues_a_new_secret_and_the_old_one_is_refused_at_once() {
    let server = start();
    let client = server.register_client(Basic).await.unwrap();
    let old = client.client_secret.clone();
    issued(
        token(&server, &client.client_id, &old, Basic).await,
        "the first secret",
    );

    // GET: the client's metadata, its current secret included, without the
    // registration fields, and the method as an array.
    let document = read(&server, &client).await;
    assert_eq!(document["client_id"], client.client_id);
    assert!(same(&secret_in(&document), &old));
    assert!(document.get("registration_access_token").is_none());
    assert!(document.get("registration_client_uri").is_none());
    assert_eq!(
        document["token_endpoint_auth_method"],
        json!(["client_secret_basic"])
    );
    assert_eq!(document["redirect_uris"], json!([REDIRECT_URI]));
    // glewlwyd adds response_types ["code"], hence authorization_code.
    assert_eq!(
        document["grant_types"],
        json!(["authorization_code", "client_credentials"])
    );

    // The document as it came cannot be PUT back.
    let uri = &client.registration_client_uri;
    let rat = &client.registration_access_token;
    let refused = server
        .registration_update(uri, rat, &document)
        .await
        .unwrap();
    assert_eq!(refused.status, 400, "{refused:?}");
    let body = refused.json().unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("token_endpoint_auth_method")
    );
    issued(
        token(&server, &client.client_id, &old, Basic).await,
        "after the refused PUT",
    );

    // PUT with the method as a string: a new secret, the same token.
    let began = Instant::now();
    let updated = server
        .registration_update(uri, rat, &normalized(document.clone()))
        .await
        .unwrap();
    let put_took = began.elapsed();
    assert_eq!(updated.status, 200, "{updated:?}");
    let answer = updated.json().unwrap();
    let new = secret_in(&answer);
    assert!(!same(&new, &old), "the PUT kept the secret");
    assert_eq!(answer["client_id"], client.client_id);
    assert_eq!(answer["token_endpoint_auth_method"], "client_secret_basic");
    assert!(
        answer.get("registration_access_token").is_none(),
        "the PUT rotated the token"
    );

    // The very next request with the old secret is refused; the new one works.
    let began = Instant::now();
    assert_forbidden(
        token(&server, &client.client_id, &old, Basic).await,
        "the old secret",
    );
    let refused_after = began.elapsed();
    issued(
        token(&server, &client.client_id, &new, Basic).await,
        "the new secret",
    );
    eprintln!(
        "RFC 7592 PUT took {put_took:.2?}; the old secret was refused by the first request after it ({refused_after:.2?})"
    );

    // The registration access token still works, and shows the new secret.
    assert!(same(&secret_in(&read(&server, &client).await), &new));

    // A client_secret in the PUT is ignored, even a wrong one: a new secret again.
    let mut with_wrong_secret = normalized(read(&server, &client).await);
    with_wrong_secret["client_secret"] = json!("not-the-current-secret");
    let updated = server
        .registration_update(uri, rat, &with_wrong_secret)
        .await
        .unwrap();
    assert_eq!(updated.status, 200, "{updated:?}");
    let newest = secret_in(&updated.json().unwrap());
    assert!(!same(&newest, &new) && newest.expose_secret() != "not-the-current-secret");
    assert_forbidden(
        token(&server, &client.client_id, &new, Basic).await,
        "the replaced secret",
    );
    issued(
        token(&server, &client.client_id, &newest, Basic).await,
        "the newest secret",
    );
}

#[tokio::test]
async fn the_admin_api_sets_a_known_secret_and_both_methods() {
    let server = start();
    let client = server.register_client(Post).await.unwrap();

    // A secret of our choosing, with characters that form encoding changes.
    let known = SecretString::from("rotor known+old%secret: 1".to_owned());
    server
        .admin_set_secret(&client.client_id, &known)
        .await
        .unwrap();
    server
        .admin_set_auth_methods(&client.client_id, &[Basic, Post])
        .await
        .unwrap();
    let admin_view = server.admin_get_client(&client.client_id).await.unwrap();
    assert_eq!(admin_view["scope"], json!([CLIENT_SCOPE]));
    assert_eq!(
        admin_view["authorization_type"],
        json!(["code", "client_credentials"])
    );
    assert_eq!(admin_view["redirect_uri"], json!([REDIRECT_URI]));

    for method in [Basic, Post] {
        issued(
            token(&server, &client.client_id, &known, method).await,
            "the known secret",
        );
        assert_forbidden(
            token(&server, &client.client_id, &client.client_secret, method).await,
            "the registration's secret",
        );
    }
    // client_secret_basic credentials are not form-url-decoded: the encoded form
    // that RFC 6749 section 2.3.1 describes is refused.
    let encoded = server
        .http_client()
        .post(server.token_endpoint())
        .basic_auth(&client.client_id, Some("rotor+known%2Bold%25secret%3A+1"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&scope={CLIENT_SCOPE}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(encoded.status().as_u16(), 403);

    // RFC 7592 sees the known secret and both methods; a PUT replaces the secret.
    let document = read(&server, &client).await;
    assert!(same(&secret_in(&document), &known));
    assert_eq!(
        document["token_endpoint_auth_method"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    let updated = server
        .registration_update(
            &client.registration_client_uri,
            &client.registration_access_token,
            &normalized(document),
        )
        .await
        .unwrap();
    assert_eq!(updated.status, 200, "{updated:?}");
    let new = secret_in(&updated.json().unwrap());
    for method in [Basic, Post] {
        assert_forbidden(
            token(&server, &client.client_id, &known, method).await,
            "the known secret after the PUT",
        );
    }
    issued(
        token(&server, &client.client_id, &new, Basic).await,
        "the new secret",
    );
    // The PUT stored one method, the first.
    assert_forbidden(
        token(&server, &client.client_id, &new, Post).await,
        "the method the PUT dropped",
    );
    let admin_view = server.admin_get_client(&client.client_id).await.unwrap();
    assert!(same(&secret_in(&admin_view), &new));
}

#[tokio::test]
async fn registration_access_tokens_are_checked_and_bound_to_their_client() {
    let server = start();
    let a = server.register_client(Basic).await.unwrap();
    let b = server.register_client(Basic).await.unwrap();

    let wrong = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
    let reply = server
        .registration_read(&a.registration_client_uri, &wrong)
        .await
        .unwrap();
    assert_eq!(reply.status, 401, "{reply:?}");

    // B's token at A's URI: refused, and B's token is disabled for good.
    let reply = server
        .registration_read(&a.registration_client_uri, &b.registration_access_token)
        .await
        .unwrap();
    assert_eq!(reply.status, 401, "{reply:?}");
    let reply = server
        .registration_read(&b.registration_client_uri, &b.registration_access_token)
        .await
        .unwrap();
    assert_eq!(reply.status, 401, "B's token still works at B: {reply:?}");
    read(&server, &a).await;

    // A PUT without token_endpoint_auth_method makes the client public: no
    // secret issued, the old one gone.
    let mut document = read(&server, &a).await;
    let object = document.as_object_mut().unwrap();
    object.remove("token_endpoint_auth_method");
    object.remove("client_secret");
    let reply = server
        .registration_update(
            &a.registration_client_uri,
            &a.registration_access_token,
            &document,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.json().unwrap().get("client_secret").is_none());
    assert_forbidden(
        token(&server, &a.client_id, &a.client_secret, Basic).await,
        "the secret of a client made public",
    );
    assert!(read(&server, &a).await.get("client_secret").is_none());
}

// ---------------------------------------------------------------------------
// No server outlives its handle or its test process
// ---------------------------------------------------------------------------

/// Waits until a stopped server's process, temp dir and port are all gone.
fn assert_gone(pid: u32, dir: &Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while process_alive(pid) || dir.exists() {
        assert!(
            Instant::now() < deadline,
            "server {pid} still alive ({}) or its dir {} still there ({})",
            process_alive(pid),
            dir.display(),
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err(),
        "port {port} still accepts connections"
    );
}

#[tokio::test]
async fn two_servers_run_at_once_and_stop_when_dropped() {
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(start);
        let second = s.spawn(start);
        (first.join().unwrap(), second.join().unwrap())
    });
    assert_ne!(first.port(), second.port());
    // Each trusts only its own CA.
    let crossed = first.http_client().get(second.discovery_url()).send().await;
    assert!(
        crossed.is_err(),
        "the other server's certificate was accepted"
    );

    let client = first.register_client(Basic).await.unwrap();
    assert_forbidden(
        token(&second, &client.client_id, &client.client_secret, Basic).await,
        "a client of the other server",
    );

    let (pid, dir, port) = (first.pid(), first.dir().to_owned(), first.port());
    assert!(dir.join("glewlwyd.db").exists());
    drop(first);
    assert_gone(pid, &dir, port);
    second.discovery().await.unwrap();
}

const ABANDON: &str = "ROTOR_OAUTH_BED_ABANDON";

/// Run by `servers_die_with_their_test_process` in a child process: starts a
/// server, reports it, and kills its own process with SIGKILL, so that nothing
/// is dropped.
#[test]
#[ignore = "a helper: servers_die_with_their_test_process runs it in a child process"]
fn abandon_server_helper() {
    if std::env::var_os(ABANDON).is_none() {
        return;
    }
    let server = OAuthServer::start().unwrap();
    println!(
        "ABANDONED {} {} {}",
        server.pid(),
        server.port(),
        server.dir().display()
    );
    let _ = Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    std::thread::sleep(Duration::from_secs(60));
    unreachable!("still alive after SIGKILL");
}

#[test]
fn servers_die_with_their_test_process() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "oauth_bed::abandon_server_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ABANDON, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let report = stdout
        .lines()
        .map_while(Result::ok)
        // libtest prints the test's name on the same line, without a newline.
        .find_map(|line| {
            line.split_once("ABANDONED ")
                .map(|(_, report)| report.to_owned())
        })
        .expect("the helper did not report its server");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the helper was meant to die: {status}");
    let fields: Vec<&str> = report.split(' ').collect();
    assert_gone(
        fields[0].parse().unwrap(),
        Path::new(fields[2]),
        fields[1].parse().unwrap(),
    );
}
