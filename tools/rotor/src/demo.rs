//! The README's main job: rotate sample secrets end to end on this machine, with
//! no AWS account. moto plays Secrets Manager, the real `generic-rotation` binary
//! runs as a warm Lambda process behind our Runtime API, and a local webhook
//! receiver plays the external system of a multi-call rotation. The report shows
//! steps, timings, labels and what changed, never a secret value.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, ensure};
use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use serde_json::Value;

use crate::function::{LocalFunction, function_binary};
use crate::moto::{Moto, local_env};
use crate::rotate::{RotateOptions, RotationRun, report, rotate};
use crate::webhook_receiver::{Behaviour, WebhookReceiver};

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
        .create_secret("demo/webhook-signing-key", &hook_key, &[])
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
    ];

    let mut env = local_env(moto.endpoint());
    env.push((
        "ROTOR_WEBHOOK_ALLOWED_PREFIXES".into(),
        "http://127.0.0.1:".into(),
    ));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
    let function = LocalFunction::start(&function_binary("generic-rotation"), &env).await?;
    let _ = writeln!(
        out,
        "rotor demo: {} sample secrets rotated by {} against moto at {}\n  cold start to first Runtime API poll: {:.1} ms\n",
        samples.len(),
        function.name(),
        moto.endpoint(),
        function.cold_start().unwrap_or_default().as_secs_f64() * 1000.0
    );

    let mut completed = 0;
    for sample in &samples {
        let tags: Vec<(&str, &str)> = sample.tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        store
            .create_secret(sample.name, &SecretString::from(sample.value), &tags)
            .await?;
        let _ = writeln!(out, "{} ({})", sample.name, sample.what);
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
            out.push_str(&report(&first));
            let _ = writeln!(
                out,
                "  -> the partner validates the new value; the same request is repeated"
            );
            receiver.set_behaviour("testSecret", Behaviour::Accept);
        }
        let run = rotate(&store, &function, &options).await?;
        out.push_str(&report(&run));
        let changed = describe_change(&store, &run).await?;
        let _ = writeln!(out, "  {changed}\n");
        if run.succeeded() && run.after.versions.current() == Some(run.token.as_str()) {
            completed += 1;
        }
    }
    let leaked = samples.iter().any(|s| function.output().contains(s.value))
        || function.output().contains(hook_key.expose_secret());
    let _ = writeln!(
        out,
        "{completed} of {} rotations completed; function log lines checked for the sample values: {}",
        samples.len(),
        if leaked {
            "FOUND (a bug)"
        } else {
            "none found"
        }
    );
    ensure!(
        completed == samples.len() && !leaked,
        "the demo failed:\n{out}"
    );
    Ok(out)
}

/// What changed between AWSPREVIOUS and AWSCURRENT, by field name and length only.
async fn describe_change(store: &AwsStore, run: &RotationRun) -> anyhow::Result<String> {
    let read = |label| store.get_value(&run.secret, VersionSelector::Label(label));
    let current = read(AWSCURRENT).await?.context("no AWSCURRENT value")?;
    let Some(previous) = read(AWSPREVIOUS).await? else {
        return Ok("no AWSPREVIOUS version".into());
    };
    let parse = |v: &SecretString| {
        serde_json::from_str::<Value>(v.expose_secret())
            .ok()
            .and_then(|v| v.as_object().cloned())
    };
    Ok(match (parse(&current.value), parse(&previous.value)) {
        (Some(new), Some(old)) => {
            let (mut changed, mut kept) = (Vec::new(), Vec::new());
            for (field, value) in &new {
                if old.get(field) == Some(value) {
                    kept.push(field.clone());
                } else {
                    let length = value.as_str().map(str::len).unwrap_or(0);
                    changed.push(format!("{field} ({length} chars)"));
                }
            }
            format!("new: {}; kept: {}", changed.join(", "), kept.join(", "))
        }
        _ => format!(
            "new value: {} chars, {} the previous one",
            current.value.expose_secret().len(),
            if current.value.expose_secret() == previous.value.expose_secret() {
                "SAME AS"
            } else {
                "differs from"
            }
        ),
    })
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}
