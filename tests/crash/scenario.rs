//! The crash matrix's scenarios: a target, the fault proxies in front of it and
//! of Secrets Manager, and one rotation with a crash at a given call.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rotor_cli::function::LocalFunction;
use rotor_cli::rotate::{RotateOptions, rotate};
use rotor_core::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use rotor_testbed::db::random_password;
use rotor_testbed::fault_proxy::{CrashPlan, FaultProxy, When};
use rotor_testbed::oauth_server::{AuthMethod, OAuthServer};
use rotor_testbed::provider_emulator::{Provider, ProviderEmulator, TokenAuth};
use rotor_testbed::webhook_receiver::WebhookReceiver;
use rotor_tests::providers::{gets_token, setup_at};
use rotor_tests::target_db::Db;
use rotor_tests::{
    labels, moto, moto_store, rfc7592_secret, start_function_at, steps, token, unique, value,
};
use serde_json::{Value, json};

/// What a scenario rotates, and how to tell whether a stored value works there.
pub(super) enum Target {
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
pub(super) struct Scenario {
    pub(super) name: String,
    pub(super) target: Target,
    /// Between the function and its target.
    pub(super) target_proxy: FaultProxy,
    /// Between the function and Secrets Manager (moto).
    sm_proxy: FaultProxy,
    pub(super) store: AwsStore,
}

/// What a scenario survived.
#[derive(Default)]
pub(super) struct Matrix {
    /// Calls in a rotation without a crash, by where they went.
    calls: BTreeMap<&'static str, u64>,
    /// Crashes survived, before and after a call.
    survived: BTreeMap<When, u32>,
    /// Crashes after which only the registration access token could recover
    /// the client (RFC 7592's window, see the README).
    pub(super) recovered_by_registration: u32,
    /// Crashes after which no stored credential worked and no stored
    /// registration access token managed the client: the server had replaced
    /// both, and only the killed process knew the new ones.
    lost_until_administrator: u32,
    /// Retries that needed the server's administrator to issue a new
    /// registration access token, as the function's error said.
    pub(super) recovered_by_administrator: u32,
    /// Every credential the rotations stored, to search the output for.
    secrets: Vec<SecretString>,
    /// Everything the function processes wrote, and every step's result.
    pub(super) output: String,
}

impl Matrix {
    /// Remembers the credentials in a stored value (a password, a client
    /// secret, a registration access token).
    pub(super) fn saw(&mut self, stored: &Option<SecretString>) {
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
    pub(super) fn leaks(&self) -> usize {
        self.secrets
            .iter()
            .filter(|s| self.output.contains(s.expose_secret()))
            .count()
    }
}

impl Scenario {
    pub(super) async fn new(name: &str, target: Target) -> Scenario {
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

    pub(super) async fn function(&self) -> LocalFunction {
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
    pub(super) async fn secret(&self, reuse: Option<&str>) -> String {
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
    pub(super) async fn works(&self, value: &SecretString) -> bool {
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
    pub(super) async fn retry(
        &self,
        function: &LocalFunction,
        arn: &str,
        t: &str,
        point: &str,
        matrix: &mut Matrix,
    ) -> Option<String> {
        let name = &self.name;
        let mut recovered = None;
        for step in Step::ALL {
            let mut result = steps::run(function, arn, t, step).await;
            let needs_administrator = matches!(&result, Err((kind, message))
                if kind == "NotRetryable.ProviderAuth" && message.contains("administrator"));
            if step == Step::CreateSecret
                && self.replaces_registration_tokens()
                && needs_administrator
            {
                matrix.output.push_str(&format!("{result:?}"));
                recovered = Some(self.administrator_recovers(arn).await);
                matrix.recovered_by_administrator += 1;
                result = steps::run(function, arn, t, step).await;
            }
            assert!(
                result.is_ok(),
                "{name}, {point}: the retried {step} failed: {result:?}\n{}",
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

    pub(super) async fn assert_finished(
        &self,
        arn: &str,
        token: &str,
        old_current: &Option<String>,
    ) {
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
    pub(super) async fn run(&self) -> Matrix {
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
            "crash matrix {}: {} calls per rotation ({:?}), {total} crashes survived \
            (before {}, after {}), {} recovered through the registration access token, {} \
            left no working stored credential and {} needed the administrator's new \
            registration access token; {} credentials searched for in {} bytes of output \
            and errors: {leaks} found; {:.1?}",
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

pub(super) fn options(arn: &str, token: &str) -> RotateOptions {
    RotateOptions {
        secret_id: arn.into(),
        token: Some(token.into()),
        test_only: false,
        step_timeout: Duration::from_secs(60),
    }
}

/// The version that carries `label`.
pub(super) async fn labels_of(store: &AwsStore, arn: &str, label: &str) -> Option<String> {
    labels(store, arn)
        .await
        .into_iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(id, _)| id)
}
