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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rotor_cli::function::LocalFunction;
use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use rotor_testbed::db::{TlsMode, random_password};
use rotor_testbed::fault_proxy::{CrashPlan, FaultProxy, When};
use rotor_testbed::oauth_server::{AuthMethod, OAuthServer};
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator, TokenAuth};
use rotor_testbed::webhook_receiver::WebhookReceiver;
use rotor_tests::providers::{gets_token, setup_at};
use rotor_tests::target_db::Db;
use rotor_tests::*;
use serde_json::{Value, json};

const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

/// What a scenario rotates, and how to tell whether a stored value works there.
enum Target {
    /// generic-rotation registering each value with a webhook.
    Webhook {
        receiver: WebhookReceiver,
        key_secret: String,
    },
    /// rds-rotation against a real server, reached through `proxy`.
    Database {
        db: Db,
        strategy: &'static str,
        master: Option<String>,
    },
    /// oauth-rotation with RFC 7592 at a real glewlwyd.
    OAuth { server: OAuthServer },
    /// oauth-rotation with a cloud provider's management API, emulated.
    Provider {
        emulator: ProviderEmulator,
        provider: Provider,
    },
}

/// One scenario: a target, its proxy, and the proxy in front of moto.
struct Scenario {
    name: String,
    target: Target,
    /// Between the function and its target.
    target_proxy: FaultProxy,
    /// Between the function and Secrets Manager (moto).
    sm_proxy: FaultProxy,
    store: AwsStore,
}

/// What a scenario survived.
#[derive(Default)]
struct Matrix {
    /// Calls in a rotation without a crash, by where they went.
    calls: BTreeMap<&'static str, u64>,
    /// Crashes survived, before and after a call.
    survived: BTreeMap<When, u32>,
    /// Crashes after which only the registration access token could recover
    /// the client (RFC 7592's window, see the README).
    recovered_by_registration: u32,
    /// Crashes after which no stored credential worked and no stored
    /// registration access token managed the client: the server had replaced
    /// both, and only the killed process knew the new ones.
    lost_until_administrator: u32,
    /// Retries that needed the server's administrator to issue a new
    /// registration access token, as the function's error said.
    recovered_by_administrator: u32,
    /// Every credential the rotations stored, to search the output for.
    secrets: Vec<SecretString>,
    /// Everything the function processes wrote, and every step's result.
    output: String,
}

impl Matrix {
    /// Remembers the credentials in a stored value (a password, a client
    /// secret, a registration access token).
    fn saw(&mut self, stored: &Option<SecretString>) {
        let Some(stored) = stored else { return };
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(stored.expose_secret())
        else {
            return;
        };
        for name in ["password", "client_secret", "registration_access_token"] {
            if let Some(secret) = fields.get(name).and_then(Value::as_str) {
                self.secrets.push(SecretString::from(secret));
            }
        }
    }

    /// How many of the stored credentials appear in the output.
    fn leaks(&self) -> usize {
        self.secrets
            .iter()
            .filter(|s| self.output.contains(s.expose_secret()))
            .count()
    }
}

impl Scenario {
    async fn new(name: &str, target: Target) -> Scenario {
        let upstream = match &target {
            Target::Webhook { receiver, .. } => receiver
                .url()
                .trim_start_matches("http://")
                .trim_end_matches("/rotor")
                .parse()
                .unwrap(),
            Target::Database { db, .. } => ([127, 0, 0, 1], db.port()).into(),
            Target::OAuth { server } => ([127, 0, 0, 1], server.port()).into(),
            Target::Provider { emulator, .. } => emulator
                .url()
                .trim_start_matches("http://")
                .parse()
                .unwrap(),
        };
        let moto_address = moto()
            .endpoint()
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        Scenario {
            name: name.to_owned(),
            target_proxy: FaultProxy::start(name, upstream).await.unwrap(),
            sm_proxy: FaultProxy::start("secretsmanager", moto_address)
                .await
                .unwrap(),
            target,
            store: moto_store(),
        }
    }

    async fn function(&self) -> LocalFunction {
        let (binary, extra): (&str, Vec<(&str, String)>) = match &self.target {
            Target::Webhook {
                receiver,
                key_secret,
            } => (
                "generic-rotation",
                vec![
                    (
                        "ROTOR_WEBHOOK_URL",
                        receiver.url().replace(
                            &receiver_port(receiver),
                            &self.target_proxy.port().to_string(),
                        ),
                    ),
                    ("ROTOR_WEBHOOK_KEY_SECRET", key_secret.clone()),
                ],
            ),
            Target::Database {
                db,
                strategy,
                master,
            } => {
                let mut extra = vec![
                    ("SSL_CERT_FILE", db.ca_path()),
                    ("ROTATION_STRATEGY", strategy.to_string()),
                ];
                if let Some(master) = master {
                    extra.push(("MASTER_SECRET_ARN", master.clone()));
                }
                ("rds-rotation", extra)
            }
            Target::OAuth { server } => (
                "oauth-rotation",
                vec![("SSL_CERT_FILE", server.ca_path().display().to_string())],
            ),
            Target::Provider { .. } => ("oauth-rotation", vec![]),
        };
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        start_function_at(binary, &self.sm_proxy.http_endpoint(), &extra).await
    }

    /// A secret to rotate: one for the whole matrix, or (OAuth, whose server
    /// hands out its own URIs) one per rotation.
    async fn secret(&self, reuse: Option<&str>) -> String {
        let fresh = matches!(self.target, Target::OAuth { .. } | Target::Provider { .. });
        if let (Some(arn), false) = (reuse, fresh) {
            return arn.to_owned();
        }
        let value = match &self.target {
            Target::Webhook { .. } => json!({"user": "svc", "password": "initial"}).to_string(),
            Target::Database { db, .. } => {
                let user = format!("crash_{}", &token()[..8]);
                let password = random_password();
                db.create_user(&user, &password);
                db.secret_at(
                    "127.0.0.1",
                    self.target_proxy.port(),
                    &user,
                    &password,
                    json!({}),
                )
            }
            Target::OAuth { server } => {
                let client = server
                    .register_client(AuthMethod::ClientSecretBasic)
                    .await
                    .unwrap();
                rfc7592_secret(
                    server,
                    &client,
                    AuthMethod::ClientSecretBasic,
                    Some(("127.0.0.1", self.target_proxy.port())),
                )
            }
            Target::Provider { emulator, provider } => {
                let method = if *provider == Provider::Auth0 {
                    TokenAuth::Post
                } else {
                    TokenAuth::Basic
                };
                // The management calls go through the proxy: the management
                // secret is bound to the proxy's URL, and serves the team's secrets.
                let via = self.target_proxy.http_endpoint();
                let (case, _) =
                    setup_at(emulator, &self.store, *provider, method, true, &via).await;
                let staged = value(&self.store, &case.arn, AWSCURRENT).await.unwrap();
                let value = staged.expose_secret().replace(&emulator.url(), &via);
                return self
                    .store
                    .create_secret(
                        &format!("{}{}", case.team, unique("crash")),
                        &SecretString::from(value),
                        &[],
                    )
                    .await
                    .unwrap();
            }
        };
        self.store
            .create_secret(&unique("crash"), &SecretString::from(value), &[])
            .await
            .unwrap()
    }

    /// Whether a stored value works at the target, asked of the target itself.
    async fn works(&self, value: &SecretString) -> bool {
        match &self.target {
            // The receiver keeps every value it registered; the initial one is
            // the receiver's own.
            Target::Webhook { .. } => true,
            Target::Database { db, .. } => db.value_logs_in(value),
            Target::OAuth { server } => {
                let Ok(client) = serde_json::from_str::<Value>(value.expose_secret()) else {
                    return false;
                };
                let (Some(id), Some(secret)) = (
                    client["client_id"].as_str(),
                    client["client_secret"].as_str(),
                ) else {
                    return false;
                };
                server
                    .client_credentials(
                        id,
                        &SecretString::from(secret),
                        AuthMethod::ClientSecretBasic,
                        None,
                    )
                    .await
                    .is_ok()
            }
            Target::Provider { emulator, provider } => {
                self.provider_works(emulator, *provider, value).await
            }
        }
    }

    /// A provider client's stored value: whether its secret gets a token,
    /// asked of the emulator directly.
    async fn provider_works(
        &self,
        emulator: &ProviderEmulator,
        provider: Provider,
        value: &SecretString,
    ) -> bool {
        let Ok(client) = serde_json::from_str::<Value>(value.expose_secret()) else {
            return false;
        };
        let (Some(id), Some(secret), Some(endpoint)) = (
            client["client_id"].as_str(),
            client["client_secret"].as_str(),
            client["token_endpoint"].as_str(),
        ) else {
            return false;
        };
        let method = match client["token_endpoint_auth_method"].as_str() {
            Some("client_secret_post") => TokenAuth::Post,
            _ => TokenAuth::Basic,
        };
        let direct = endpoint.replace(&self.target_proxy.http_endpoint(), &emulator.url());
        gets_token(
            emulator,
            provider,
            method,
            &direct,
            id,
            &SecretString::from(secret),
        )
        .await
    }

    /// RFC 7592 only: whether the stored registration access token still reads
    /// the client, whose live secret then works (what a retry adopts).
    async fn recoverable_by_registration(&self, value: &SecretString) -> bool {
        let Target::OAuth { server } = &self.target else {
            return false;
        };
        let Ok(client) = serde_json::from_str::<Value>(value.expose_secret()) else {
            return false;
        };
        let (Some(id), Some(uri), Some(rat)) = (
            client["client_id"].as_str(),
            client["registration_client_uri"].as_str(),
            client["registration_access_token"].as_str(),
        ) else {
            return false;
        };
        let direct = uri.replace(
            &format!(":{}/", self.target_proxy.port()),
            &format!(":{}/", server.port()),
        );
        let Ok(read) = server
            .registration_read(&direct, &SecretString::from(rat))
            .await
            .and_then(|reply| reply.json())
        else {
            return false;
        };
        let Some(live) = read["client_secret"].as_str() else {
            return false;
        };
        server
            .client_credentials(
                id,
                &SecretString::from(live),
                AuthMethod::ClientSecretBasic,
                None,
            )
            .await
            .is_ok()
    }

    fn proxies(&self) -> [&FaultProxy; 2] {
        [&self.sm_proxy, &self.target_proxy]
    }

    /// Rotates with a crash at call `at`, `when`; returns where it crashed, or
    /// `None` if the rotation made fewer calls (and then completed).
    async fn crash_once(
        &self,
        arn: &str,
        at: u64,
        when: When,
        matrix: &mut Matrix,
    ) -> Option<String> {
        let old_current = labels_of(&self.store, arn, AWSCURRENT).await;
        let plan = CrashPlan::new(at, when);
        let function = self.function().await;
        plan.set_victim(function.pid().expect("pid"));
        for proxy in self.proxies() {
            proxy.set_plan(Some(plan.clone()));
        }
        let before: Vec<u64> = self.proxies().iter().map(|p| p.chunks()).collect();
        let t = token();
        let run = rotate(&self.store, &function, &options(arn, &t))
            .await
            .unwrap();

        for proxy in self.proxies() {
            proxy.set_plan(None);
        }
        matrix.output.push_str(&function.output());
        matrix.output.push_str(&format!("{:?}", run.steps));
        let name = &self.name;
        let Some(point) = plan.fired() else {
            assert!(
                run.succeeded(),
                "{name}: a rotation without a crash failed: {:?}\n{}",
                run.steps.iter().map(|s| &s.result).collect::<Vec<_>>(),
                function.output()
            );
            for ((proxy, before), label) in self
                .proxies()
                .iter()
                .zip(before)
                .zip(["secretsmanager", "target"])
            {
                matrix.calls.insert(label, proxy.chunks() - before);
            }
            self.assert_finished(arn, &t, &old_current).await;
            return None;
        };
        if run.succeeded() {
            // The kill landed on bytes the process sends without waiting for
            // an answer (PostgreSQL's Terminate and TLS close_notify when a
            // connection is dropped), after finishSecret had already answered:
            // nothing was cut short, so the rotation must simply be finished.
            self.assert_finished(arn, &t, &old_current).await;
            return Some(point);
        }
        let failed = run.steps.last().map(|s| s.result.is_err());
        assert_eq!(
            failed,
            Some(true),
            "{name}, {point}: the step of a killed process did not fail"
        );

        // 1. A working credential is stored at this instant.
        let current = value(&self.store, arn, AWSCURRENT).await;
        let pending = value(&self.store, arn, AWSPENDING).await;
        matrix.saw(&current);
        matrix.saw(&pending);
        let mut working = false;
        for stored in [&current, &pending].into_iter().flatten() {
            working = working || self.works(stored).await;
        }
        if !working {
            let recoverable = match &current {
                Some(current) => self.recoverable_by_registration(current).await,
                None => false,
            };
            if self.replaces_registration_tokens() && !recoverable {
                matrix.lost_until_administrator += 1;
            } else {
                assert!(
                    recoverable,
                    "{name}, {point}: neither AWSCURRENT nor AWSPENDING works at the target"
                );
                matrix.recovered_by_registration += 1;
            }
        }

        // 2. Secrets Manager retries the rotation with the same token.
        let retry = self.function().await;
        let recovered = self.retry(&retry, arn, &t, &point, matrix).await;
        matrix.output.push_str(&retry.output());
        // 3. The rotation is complete and exactly as expected.
        self.assert_finished(arn, &t, &recovered.or(old_current))
            .await;
        matrix.saw(&value(&self.store, arn, AWSCURRENT).await);
        *matrix.survived.entry(when).or_default() += 1;
        Some(point)
    }

    /// The emulator's RFC 7592 mode: the server replaces the registration
    /// access token on every use.
    fn replaces_registration_tokens(&self) -> bool {
        matches!(
            self.target,
            Target::Provider {
                provider: Provider::Rfc7592,
                ..
            }
        )
    }

    /// Runs the rotation's four steps again with the same token, as Secrets
    /// Manager does. Where the server had replaced the registration access
    /// token and the new one died with the process, createSecret fails
    /// NotRetryable saying an administrator must issue a new one; that is done
    /// here as the error says, and the version it made AWSCURRENT is returned.
    async fn retry(
        &self,
        function: &LocalFunction,
        arn: &str,
        t: &str,
        point: &str,
        matrix: &mut Matrix,
    ) -> Option<String> {
        let name = &self.name;
        let mut recovered = None;
        for step_name in STEPS {
            let mut result = step(function, &event(arn, t, step_name)).await;
            let needs_administrator = matches!(&result, Err((kind, message))
                if kind == "NotRetryable.ProviderAuth" && message.contains("administrator"));
            if step_name == "createSecret"
                && self.replaces_registration_tokens()
                && needs_administrator
            {
                matrix.output.push_str(&format!("{result:?}"));
                recovered = Some(self.administrator_recovers(arn).await);
                matrix.recovered_by_administrator += 1;
                result = step(function, &event(arn, t, step_name)).await;
            }
            assert!(
                result.is_ok(),
                "{name}, {point}: the retried {step_name} failed: {result:?}\n{}",
                function.output()
            );
        }
        recovered
    }

    /// The recovery that the error names: the server's administrator issues a
    /// new registration access token and client secret, and the operator
    /// stores them as a new AWSCURRENT value. Returns that version.
    async fn administrator_recovers(&self, arn: &str) -> String {
        let Target::Provider { emulator, .. } = &self.target else {
            unreachable!("only the emulator's RFC 7592 mode replaces tokens")
        };
        let stored = value(&self.store, arn, AWSCURRENT).await.unwrap();
        let mut client: Value = serde_json::from_str(stored.expose_secret()).unwrap();
        let (rat, secret) = emulator
            .reissue_registration(client["client_id"].as_str().unwrap())
            .unwrap();
        client["registration_access_token"] = Value::from(rat.expose_secret());
        client["client_secret"] = Value::from(secret.expose_secret());
        let version = token();
        self.store
            .put_value(
                arn,
                NewVersion {
                    version_id: &version,
                    value: &SecretString::from(client.to_string()),
                    labels: &[AWSCURRENT],
                    rotation_token: None,
                },
            )
            .await
            .unwrap();
        version
    }

    async fn assert_finished(&self, arn: &str, token: &str, old_current: &Option<String>) {
        let name = &self.name;
        let labels = labels(&self.store, arn).await;
        assert_eq!(
            labels.get(token).map(Vec::as_slice),
            Some(&[AWSCURRENT.to_owned()][..]),
            "{name}: labels after the rotation: {labels:?}"
        );
        if let Some(old) = old_current {
            assert_eq!(
                labels.get(old).map(Vec::as_slice),
                Some(&[AWSPREVIOUS.to_owned()][..]),
                "{name}: labels after the rotation: {labels:?}"
            );
        }
        assert!(
            labels.values().flatten().all(|l| l != AWSPENDING),
            "{name}: AWSPENDING left behind: {labels:?}"
        );
        let current = value(&self.store, arn, AWSCURRENT).await.unwrap();
        assert!(
            self.works(&current).await,
            "{name}: AWSCURRENT does not work after the rotation"
        );
        if let Target::Database {
            strategy: "alternating",
            db,
            ..
        } = &self.target
        {
            let previous = value(&self.store, arn, AWSPREVIOUS).await.unwrap();
            assert!(
                db.value_logs_in(&previous),
                "{name}: the previous user no longer logs in"
            );
        }
    }

    /// Sweeps every call, before and after, until a rotation completes
    /// without reaching the crash point either way.
    async fn run(&self) -> Matrix {
        let started = Instant::now();
        let mut matrix = Matrix::default();
        let first = self.secret(None).await;
        let mut at = 1;
        loop {
            let mut crashed = false;
            for when in [When::Before, When::After] {
                let arn = self.secret(Some(&first)).await;
                crashed |= self.crash_once(&arn, at, when, &mut matrix).await.is_some();
            }
            if !crashed {
                break;
            }
            at += 1;
        }
        let total: u32 = matrix.survived.values().sum();
        let leaks = matrix.leaks();
        eprintln!(
            "crash matrix {}: {} calls per rotation ({:?}), {total} crashes survived (before {}, after {}), {} recovered through the registration access token, {} left no working stored credential and {} needed the administrator's new registration access token; {} credentials searched for in {} bytes of output and errors: {leaks} found; {:.1?}",
            self.name,
            matrix.calls.values().sum::<u64>(),
            matrix.calls,
            matrix.survived.get(&When::Before).unwrap_or(&0),
            matrix.survived.get(&When::After).unwrap_or(&0),
            matrix.recovered_by_registration,
            matrix.lost_until_administrator,
            matrix.recovered_by_administrator,
            matrix.secrets.len(),
            matrix.output.len(),
            started.elapsed(),
        );
        assert!(total > 0, "{}: no crash happened", self.name);
        assert_eq!(
            leaks, 0,
            "{}: stored credentials appear in the functions' output or errors",
            self.name
        );
        matrix
    }
}

fn receiver_port(receiver: &WebhookReceiver) -> String {
    receiver
        .url()
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/rotor")
        .to_owned()
}

fn options(arn: &str, token: &str) -> RotateOptions {
    RotateOptions {
        secret_id: arn.into(),
        token: Some(token.into()),
        test_only: false,
        step_timeout: Duration::from_secs(60),
    }
}

/// The version that carries `label`.
async fn labels_of(store: &AwsStore, arn: &str, label: &str) -> Option<String> {
    labels(store, arn)
        .await
        .into_iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(id, _)| id)
}

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

// --- Faults at the provider boundary ---------------------------------------
//
// For each OAuth adapter, a fault right after each of its calls to the
// provider: the provider acted and its answer is an error (emulator only:
// glewlwyd's answers travel inside TLS), the connection is cut as the answer
// comes back, or the process is killed then. The rotation is then retried with
// the same token (in the same process after an error or a cut, in a new one
// after a kill). Afterwards an independent client gets a token with
// AWSCURRENT's client secret, and the initial secret, which every adapter
// retires by the end of a rotation, gets none.

/// What happens right after a provider call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TargetFault {
    /// The provider acted, then answered 503.
    ErrorAnswer,
    /// The connection is reset as the answer comes back.
    Cut,
    /// The process is killed (SIGKILL) as the answer comes back.
    Kill,
}

/// What a sweep of provider faults found.
#[derive(Default)]
struct FaultTally {
    /// Fault points: provider calls a fault was injected after.
    points: u64,
    /// Faults injected, by kind.
    injected: BTreeMap<TargetFault, u32>,
    /// Rotations that were complete and correct after the retry.
    completed: u32,
    /// Of those, how many needed the administrator's new registration token.
    by_administrator: u32,
}

impl Scenario {
    fn emulator(&self) -> Option<&ProviderEmulator> {
        match &self.target {
            Target::Provider { emulator, .. } => Some(emulator),
            _ => None,
        }
    }

    /// Injects each fault after each provider call, until a rotation makes
    /// fewer calls than the fault point.
    async fn target_faults(&self) -> FaultTally {
        let started = Instant::now();
        let kinds: &[TargetFault] = match self.emulator() {
            Some(_) => &[
                TargetFault::ErrorAnswer,
                TargetFault::Cut,
                TargetFault::Kill,
            ],
            None => &[TargetFault::Cut, TargetFault::Kill],
        };
        let mut tally = FaultTally::default();
        let mut output = String::new();
        for at in 1.. {
            let mut fired = false;
            for &kind in kinds {
                fired |= self.fault_once(at, kind, &mut tally, &mut output).await;
            }
            if !fired {
                break;
            }
            tally.points = at;
        }
        let total: u32 = tally.injected.values().sum();
        eprintln!(
            "provider faults {}: {} fault points, {total} faults ({:?}); {} rotations complete after the retry, {} of them after the administrator's new registration access token; {:.1?}",
            self.name,
            tally.points,
            tally.injected,
            tally.completed,
            tally.by_administrator,
            started.elapsed(),
        );
        assert!(total > 0, "{}: no fault was injected", self.name);
        assert_eq!(tally.completed, total, "{}", self.name);
        tally
    }

    /// One rotation with `kind` after provider call `at`, then the retry;
    /// false if the rotation made fewer provider calls.
    async fn fault_once(
        &self,
        at: u64,
        kind: TargetFault,
        tally: &mut FaultTally,
        output: &mut String,
    ) -> bool {
        let name = &self.name;
        let arn = self.secret(None).await;
        let initial = value(&self.store, &arn, AWSCURRENT).await.unwrap();
        let old_current = labels_of(&self.store, &arn, AWSCURRENT).await;
        let function = self.function().await;
        let plan = CrashPlan::new(at, When::After);
        let seen_before = self.emulator().map_or(0, |e| e.seen().len() as u64);
        match kind {
            TargetFault::ErrorAnswer => {
                if let Some(emulator) = self.emulator() {
                    emulator.lose_answer_of(Some(at), 503);
                }
            }
            TargetFault::Cut => self.target_proxy.set_plan(Some(plan.clone())),
            TargetFault::Kill => {
                plan.set_victim(function.pid().expect("pid"));
                self.target_proxy.set_plan(Some(plan.clone()));
            }
        }
        let t = token();
        let run = rotate(&self.store, &function, &options(&arn, &t))
            .await
            .unwrap();
        self.target_proxy.set_plan(None);
        let fired = match (kind, self.emulator()) {
            (TargetFault::ErrorAnswer, Some(emulator)) => {
                emulator.lose_answer_of(None, 0);
                emulator.seen().len() as u64 - seen_before >= at
            }
            _ => plan.fired().is_some(),
        };
        output.push_str(&function.output());
        output.push_str(&format!("{:?}", run.steps));
        if !fired {
            assert!(
                run.succeeded(),
                "{name}: a rotation without a fault failed: {:?}",
                run.steps.iter().map(|s| &s.result).collect::<Vec<_>>()
            );
            return false;
        }
        *tally.injected.entry(kind).or_default() += 1;
        let point = format!("{kind:?} after provider call {at}");
        let retry = match kind {
            TargetFault::Kill => self.function().await,
            _ => function,
        };
        let mut scratch = Matrix::default();
        let recovered = self.retry(&retry, &arn, &t, &point, &mut scratch).await;
        output.push_str(&retry.output());
        output.push_str(&scratch.output);
        self.assert_finished(&arn, &t, &recovered.or(old_current))
            .await;
        assert!(
            !self.works(&initial).await,
            "{name}, {point}: the retired initial secret still gets a token"
        );
        tally.completed += 1;
        tally.by_administrator += scratch.recovered_by_administrator;
        let mut seen = Matrix::default();
        seen.saw(&Some(initial));
        seen.saw(&value(&self.store, &arn, AWSCURRENT).await);
        seen.output = std::mem::take(output);
        assert_eq!(
            seen.leaks(),
            0,
            "{name}, {point}: a credential in the output"
        );
        true
    }
}

#[tokio::test]
async fn provider_faults_oauth_rfc7592_glewlwyd() {
    let server =
        OAuthServer::start().unwrap_or_else(|e| panic!("cannot start the OAuth server: {e:#}"));
    Scenario::new("oauth rfc7592 at glewlwyd", Target::OAuth { server })
        .await
        .target_faults()
        .await;
}

async fn provider_faults(provider: Provider) -> FaultTally {
    emulated(provider).await.target_faults().await
}

#[tokio::test]
async fn provider_faults_oauth_rfc7592_replacing_tokens() {
    provider_faults(Provider::Rfc7592).await;
}

#[tokio::test]
async fn provider_faults_oauth_keycloak() {
    provider_faults(Provider::Keycloak).await;
}

#[tokio::test]
async fn provider_faults_oauth_okta() {
    provider_faults(Provider::Okta).await;
}

#[tokio::test]
async fn provider_faults_oauth_entra() {
    provider_faults(Provider::Entra).await;
}

#[tokio::test]
async fn provider_faults_oauth_auth0() {
    provider_faults(Provider::Auth0).await;
}
