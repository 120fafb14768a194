//! The crash matrix: each function is killed with SIGKILL before and after
//! every call it makes (to Secrets Manager, and to the database, identity
//! provider or webhook it rotates at), one crash per rotation, until a
//! rotation gets through without reaching the crash point.
//!
//! Every call goes through a [`FaultProxy`] that counts it and kills the
//! process on cue; all proxies of a scenario share one count, so "call 7" is
//! the seventh call of the rotation wherever it went. After each crash:
//! 1. a credential stored in the secret (AWSCURRENT, or AWSPENDING while the
//!    target has already moved to it) still works at the target, checked by
//!    an independent client (psql, mariadb, a token request);
//! 2. the rotation is re-attempted as Secrets Manager does, by a fresh
//!    process, from createSecret with the same token, and completes;
//! 3. it leaves exactly: the token AWSCURRENT, the old current AWSPREVIOUS, no
//!    AWSPENDING anywhere, and AWSCURRENT logs in.
//!
//! `cargo test -p rotor-tests crash -- --nocapture` prints the matrix.

mod provider_faults;
mod scenario;

use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretString};
use rotor_testbed::db::TlsMode;
use rotor_testbed::oauth_server::OAuthServer;
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator};
use rotor_testbed::webhook_receiver::WebhookReceiver;
use rotor_tests::target_db::Db;
use rotor_tests::{moto_store, token, unique};
use serde_json::json;

use scenario::{Matrix, Scenario, Target};

async fn database(engine: &str, strategy: &'static str) -> Matrix {
    let db = Db::start(engine, TlsMode::Required);
    let name = format!("{engine} {strategy}");
    let mut scenario = Scenario::new(
        &name,
        Target::Database {
            db,
            strategy,
            master: None,
        },
    )
    .await;
    // The master logs in on its own secret's port: through the proxy too, so
    // that its calls are crash points as well.
    if let Target::Database { db, master, .. } = &mut scenario.target
        && strategy == "alternating"
    {
        let value = db.secret_at(
            "127.0.0.1",
            scenario.target_proxy.port(),
            &db.admin_user(),
            &db.admin_password(),
            json!({}),
        );
        *master = Some(
            scenario
                .store
                .create_secret(&unique("crash-master"), &SecretString::from(value), &[])
                .await
                .unwrap(),
        );
    }
    scenario.run().await
}

#[tokio::test]
async fn crash_matrix_postgres_single_user() {
    database("postgres", "single").await;
}

#[tokio::test]
async fn crash_matrix_postgres_alternating_users() {
    database("postgres", "alternating").await;
}

#[tokio::test]
async fn crash_matrix_mariadb_single_user() {
    database("mariadb", "single").await;
}

#[tokio::test]
async fn crash_matrix_mariadb_alternating_users() {
    database("mariadb", "alternating").await;
}

#[tokio::test]
async fn crash_matrix_generic_with_webhook() {
    let store = moto_store();
    let key = SecretString::from(token());
    let receiver = WebhookReceiver::start(SecretString::from(key.expose_secret()))
        .await
        .unwrap();
    let key_secret = store
        .create_secret(&unique("crash-hook-key"), &key, &[])
        .await
        .unwrap();
    Scenario::new(
        "generic webhook",
        Target::Webhook {
            receiver,
            key_secret,
        },
    )
    .await
    .run()
    .await;
}

#[tokio::test]
async fn crash_matrix_oauth_rfc7592() {
    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    let matrix = Scenario::new("oauth rfc7592", Target::OAuth { server })
        .await
        .run()
        .await;
    // Keep the figure honest: the window exists (the old secret is retired on
    // the PUT), and every crash in it was recovered.
    eprintln!(
        "oauth rfc7592: {} crash(es) fell between the server's PUT and PutSecretValue",
        matrix.recovered_by_registration
    );
}

/// A scenario for `provider` at a fresh emulator.
async fn emulated(provider: Provider) -> Scenario {
    let emulator = ProviderEmulator::start().await.expect("start the emulator");
    let name = match provider {
        Provider::Rfc7592 => "oauth rfc7592 emulator (replaces tokens)".to_owned(),
        _ => format!("oauth {}", rotor_tests::providers::name(provider)),
    };
    Scenario::new(&name, Target::Provider { emulator, provider }).await
}

async fn provider(provider: Provider) -> Matrix {
    emulated(provider).await.run().await
}

/// RFC 7592 at a server that replaces the registration access token on every
/// use (the emulator): a crash between the server's answer and
/// PutSecretValue loses the only token that manages the client, and the
/// retry's error says how to recover.
#[tokio::test]
async fn crash_matrix_oauth_rfc7592_replacing_tokens() {
    let matrix = provider(Provider::Rfc7592).await;
    assert!(
        matrix.recovered_by_administrator > 0,
        "the window exists: some crash must lose the replaced token"
    );
}

#[tokio::test]
async fn crash_matrix_oauth_keycloak() {
    provider(Provider::Keycloak).await;
}

#[tokio::test]
async fn crash_matrix_oauth_okta() {
    provider(Provider::Okta).await;
}

#[tokio::test]
async fn crash_matrix_oauth_entra() {
    provider(Provider::Entra).await;
}

#[tokio::test]
async fn crash_matrix_oauth_auth0() {
    provider(Provider::Auth0).await;
}
