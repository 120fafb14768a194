//! The README's main job: rotate sample secrets end to end on this machine, with
//! no AWS account. moto plays Secrets Manager; the real `generic-rotation`,
//! `rds-rotation` and `oauth-rotation` binaries run as warm Lambda processes
//! behind our Runtime API; a local webhook receiver plays the external system of
//! a multi-call rotation; throwaway PostgreSQL and MariaDB servers (TLS
//! required) hold database users, a local glewlwyd (HTTPS) an OAuth client,
//! OpenLDAP (StartTLS) a directory service account (`ldap-rotation`),
//! Redis 7 (TLS) an ACL user (`redis-rotation`), and a second moto with IAM
//! authentication on an IAM user's access key (`iam-rotation`). A rotation
//! left stuck is diagnosed and repaired by `rotor doctor`, and the metrics
//! every function printed are read back as CloudWatch would read them.
//! The report shows steps, timings, labels, what changed and what an independent
//! client could log in with afterwards, never a secret value.
//!
//! This module runs generic-rotation's samples and sums up; `databases`,
//! `oauth`, `cache` and `directory` run the other functions, `stuck` the
//! doctor's repair, `metrics` reads the metric documents and `report` words
//! each rotation.

mod cache;
mod databases;
mod directory;
mod keys;
mod metrics;
mod oauth;
mod report;
mod stuck;

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::ensure;
use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString};

use rotor_testbed::moto::{Moto, local_env};
use rotor_testbed::webhook_receiver::{Behaviour, WebhookReceiver};

use crate::function::{LocalFunction, function_binary};
use crate::rotate::{RotateOptions, rotate};
use cache::rotate_cache_user;
use databases::rotate_databases;
use directory::rotate_directory_account;
use keys::rotate_access_key;
use metrics::Tally;
use oauth::rotate_oauth_client;
use report::{describe_change, summary};
use stuck::stuck_rotation;

/// `rotor demo`'s command line: it takes no options.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {}

impl DemoArgs {
    /// Runs the demo and prints its account.
    pub async fn run(self) -> anyhow::Result<bool> {
        print!("{}", run().await?);
        Ok(true)
    }
}

struct Sample {
    name: &'static str,
    what: &'static str,
    value: &'static str,
    tags: Vec<(&'static str, String)>,
}

/// Runs the demo and returns its report; fails if any rotation did not complete.
pub async fn run() -> anyhow::Result<String> {
    let mut out = String::new();
    let moto = Moto::start()?;
    let store = AwsStore::new(moto.client());
    let hook_key = SecretString::from(random_hex());
    let receiver = WebhookReceiver::start(SecretString::from(hook_key.expose_secret())).await?;
    store
        // The key secret agrees to serve the one secret that names it.
        .create_secret(
            "demo/webhook-signing-key",
            &hook_key,
            &[(
                "rotor:serves",
                "demo/partner-credential demo/partner-stuck demo/issued-api-key demo/deploy-ssh-key",
            )],
        )
        .await?;

    let samples = [
        Sample {
            name: "demo/plain-password",
            what: "plain string, replaced whole",
            value: "initial-password",
            tags: vec![],
        },
        Sample {
            name: "demo/app-database",
            what: "JSON, new password, other fields kept",
            value: r#"{"engine":"postgres","host":"db.internal","port":5432,"username":"app","password":"initial","dbname":"orders"}"#,
            tags: vec![(
                "rotor:generate",
                "password length=40 punctuation=false".into(),
            )],
        },
        Sample {
            name: "demo/api-keys",
            what: "JSON, two tokens (hex, base64url) per tags",
            value: r#"{"client_id":"svc-42","api_key":"old","signing_key":"old"}"#,
            tags: vec![
                ("rotor:fields", "api_key signing_key".into()),
                ("rotor:generate:api_key", "hex bytes=32".into()),
                ("rotor:generate:signing_key", "base64url bytes=48".into()),
            ],
        },
        Sample {
            name: "demo/partner-credential",
            what: "multi-call: registered by webhook, promoted once validated",
            value: r#"{"partner":"acme","password":"initial"}"#,
            tags: vec![
                ("rotor:mode", "multi".into()),
                ("rotor:webhook", receiver.url()),
                (
                    "rotor:webhook-key-secret",
                    "demo/webhook-signing-key".into(),
                ),
            ],
        },
        Sample {
            name: "demo/issued-api-key",
            what: "issuer mode: the issuer mints the key, revokes the old one",
            value: r#"{"service":"billing","api_key":"initial"}"#,
            tags: vec![
                ("rotor:mode", "issue".into()),
                ("rotor:fields", "api_key".into()),
                ("rotor:webhook", receiver.url()),
                (
                    "rotor:webhook-key-secret",
                    "demo/webhook-signing-key".into(),
                ),
            ],
        },
        Sample {
            name: "demo/deploy-ssh-key",
            what: "Ed25519 key pair (OpenSSH); the webhook registers the public key",
            value: r#"{"user":"deploy","private_key":"(none yet)"}"#,
            tags: vec![
                ("rotor:fields", "private_key".into()),
                (
                    "rotor:generate:private_key",
                    "ed25519 format=openssh public=public_key".into(),
                ),
                ("rotor:webhook", receiver.url()),
                (
                    "rotor:webhook-key-secret",
                    "demo/webhook-signing-key".into(),
                ),
            ],
        },
    ];

    let mut env = local_env(moto.endpoint());
    env.push(("ROTOR_WEBHOOK_ALLOWED_PREFIXES".into(), receiver.url()));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
    let function = LocalFunction::start(&function_binary("generic-rotation"), &env).await?;
    let _ = writeln!(
        out,
        "rotor demo: rotations against moto at {}, functions run as local Lambda processes\n\ngeneric-rotation (cold start to first Runtime API poll: {:.1} ms)",
        moto.endpoint(),
        function.cold_start().unwrap_or_default().as_secs_f64() * 1000.0
    );
    let mut completed = 0;
    for sample in &samples {
        let tags: Vec<(&str, &str)> = sample.tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        store
            .create_secret(sample.name, &SecretString::from(sample.value), &tags)
            .await?;
        let _ = writeln!(out, "  {} ({})", sample.name, sample.what);
        let options = RotateOptions {
            secret_id: sample.name.into(),
            token: Some(uuid::Uuid::new_v4().to_string()),
            test_only: false,
            step_timeout: Duration::from_secs(30),
        };
        let multi = sample
            .tags
            .iter()
            .any(|(k, v)| *k == "rotor:mode" && v == "multi");
        if multi {
            // First call: the partner has the value but has not validated it yet.
            receiver.set_behaviour("testSecret", Behaviour::Defer);
            let first = rotate(&store, &function, &options).await?;
            out.push_str(&summary(&first));
            let _ = writeln!(
                out,
                "    the partner validates the new value; the same request is repeated:"
            );
            receiver.set_behaviour("testSecret", Behaviour::Accept);
        }
        let run = rotate(&store, &function, &options).await?;
        out.push_str(&summary(&run));
        let changed = describe_change(&store, &run).await?;
        let _ = writeln!(out, "    {changed}");
        if run.succeeded() && run.after.versions.current() == Some(run.token.as_str()) {
            completed += 1;
        }
    }
    let mut tally = Tally::default();
    let others = [
        rotate_databases(&moto, &store, &mut out, &mut tally).await?,
        rotate_oauth_client(&moto, &store, &mut out, &mut tally).await?,
        rotate_cache_user(&moto, &store, &mut out, &mut tally).await?,
        rotate_directory_account(&moto, &store, &mut out, &mut tally).await?,
        rotate_access_key(&moto, &store, &mut out, &mut tally).await?,
        stuck_rotation(&moto, &store, &receiver, &function, &mut out).await?,
    ];
    let generic_logs = function.output();
    tally.add("generic-rotation", &generic_logs);
    let mut leaked = samples.iter().any(|s| generic_logs.contains(s.value))
        || generic_logs.contains(hook_key.expose_secret());
    let mut total = samples.len();
    for checked in &others {
        completed += checked.completed;
        total += checked.total;
        leaked |= checked.leaked;
    }
    out.push_str(&tally.report());
    let _ = writeln!(
        out,
        "\n{completed} of {total} rotations completed; function logs searched for every value used: {}",
        if leaked {
            "FOUND (a bug)"
        } else {
            "none found"
        }
    );
    ensure!(completed == total && !leaked, "the demo failed:\n{out}");
    ensure!(
        !tally.is_empty(),
        "no function printed a metric document:\n{out}"
    );
    Ok(out)
}

/// Rotations checked with an independent client: how many completed and whether
/// any value reached the function's logs.
struct Checked {
    pub(super) completed: usize,
    pub(super) total: usize,
    pub(super) leaked: bool,
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}
