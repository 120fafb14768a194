//! The README's main job: rotate sample secrets end to end on this machine, with
//! no AWS account. moto plays Secrets Manager; the real `generic-rotation`,
//! `rds-rotation` and `oauth-rotation` binaries run as warm Lambda processes
//! behind our Runtime API; a local webhook receiver plays the external system of
//! a multi-call rotation; throwaway PostgreSQL and MariaDB servers (TLS
//! required) hold database users, and a local glewlwyd (HTTPS) an OAuth client.
//! The report shows steps, timings, labels, what changed and what an independent
//! client could log in with afterwards, never a secret value.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, ensure};
use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use serde_json::Value;

use rotor_testbed::db::{ClientLogin, ClientTls, MariaDb, Postgres, TlsMode, random_password};
use rotor_testbed::moto::{Moto, local_env};
use rotor_testbed::webhook_receiver::{Behaviour, WebhookReceiver};

use crate::function::{LocalFunction, function_binary};
use crate::rotate::{RotateOptions, RotationRun, rotate};

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
            &[("rotor:serves", "demo/partner-credential")],
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
    let generic_logs = function.output();
    let mut leaked = samples.iter().any(|s| generic_logs.contains(s.value))
        || generic_logs.contains(hook_key.expose_secret());
    let databases = rotate_databases(&moto, &store, &mut out).await?;
    let oauth = rotate_oauth_client(&moto, &store, &mut out).await?;
    completed += databases.completed + oauth.completed;
    leaked |= databases.leaked || oauth.leaked;
    let total = samples.len() + databases.total + oauth.total;
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
    Ok(out)
}

/// One line of steps and timings, then the labels.
fn summary(run: &RotationRun) -> String {
    let steps: Vec<String> = run
        .steps
        .iter()
        .map(|s| {
            let ms = s.duration.as_secs_f64() * 1000.0;
            match &s.result {
                Ok(v) => match v.get("outcome").and_then(Value::as_str) {
                    Some("done") | None => format!("{} {ms:.0} ms", s.step),
                    Some(outcome) => format!("{} {ms:.0} ms ({outcome})", s.step),
                },
                Err((kind, _)) => format!("{} FAILED ({kind})", s.step),
            }
        })
        .collect();
    let labels: Vec<String> = run
        .after
        .versions
        .iter()
        .filter(|(_, l)| !l.is_empty())
        .map(|(v, l)| format!("{} {}", l.join("+"), &v[..v.len().min(8)]))
        .collect();
    let mut line = format!(
        "    {}\n    labels: {}\n",
        steps.join(", "),
        labels.join(", ")
    );
    if let Some(Err((_, message))) = run.steps.last().map(|s| &s.result) {
        line.push_str(&format!("    why: {message}\n"));
    }
    line
}

/// An OAuth client registered at a local glewlwyd, its secret rotated through
/// RFC 7592; then the new secret must get a token and the old one must not.
async fn rotate_oauth_client(
    moto: &Moto,
    store: &AwsStore,
    out: &mut String,
) -> anyhow::Result<Checked> {
    use rotor_testbed::oauth_server::{AuthMethod, CLIENT_SCOPE, OAuthServer};
    let server = OAuthServer::start()?;
    let client = server
        .register_client(AuthMethod::ClientSecretBasic)
        .await?;
    let value = serde_json::json!({
        "provider": "rfc7592",
        "client_id": client.client_id,
        "client_secret": client.client_secret.expose_secret(),
        "token_endpoint": server.token_endpoint(),
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": CLIENT_SCOPE,
        "registration_client_uri": client.registration_client_uri,
        "registration_access_token": client.registration_access_token.expose_secret(),
    });
    store
        .create_secret(
            "demo/oauth-client",
            &SecretString::from(value.to_string()),
            &[],
        )
        .await?;
    let mut env = local_env(moto.endpoint());
    env.push((
        "SSL_CERT_FILE".into(),
        server.ca_path().display().to_string(),
    ));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
    let function = LocalFunction::start(&function_binary("oauth-rotation"), &env).await?;
    let _ = writeln!(
        out,
        "\noauth-rotation (cold start {:.1} ms)\n  demo/oauth-client (RFC 7592 at glewlwyd on 127.0.0.1, HTTPS)",
        function.cold_start().unwrap_or_default().as_secs_f64() * 1000.0
    );
    let options = RotateOptions {
        secret_id: "demo/oauth-client".into(),
        token: None,
        test_only: false,
        step_timeout: Duration::from_secs(60),
    };
    let run = rotate(store, &function, &options).await?;
    out.push_str(&summary(&run));
    let current = store
        .get_value("demo/oauth-client", VersionSelector::Label(AWSCURRENT))
        .await?
        .context("no AWSCURRENT")?;
    let parsed: Value = serde_json::from_str(current.value.expose_secret())?;
    let new_secret = SecretString::from(parsed["client_secret"].as_str().unwrap_or_default());
    let new_ok = server
        .client_credentials(
            &client.client_id,
            &new_secret,
            AuthMethod::ClientSecretBasic,
            None,
        )
        .await
        .is_ok();
    let old_ok = server
        .client_credentials(
            &client.client_id,
            &client.client_secret,
            AuthMethod::ClientSecretBasic,
            None,
        )
        .await
        .is_ok();
    let verdict = |ok: bool| if ok { "gets a token" } else { "refused" };
    let _ = writeln!(
        out,
        "    checked at the token endpoint: new secret {}, old secret {}",
        verdict(new_ok),
        verdict(old_ok)
    );
    let logs = function.output();
    Ok(Checked {
        completed: usize::from(run.succeeded() && new_ok && !old_ok),
        total: 1,
        leaked: [
            &new_secret,
            &client.client_secret,
            &client.registration_access_token,
        ]
        .iter()
        .any(|s| logs.contains(s.expose_secret())),
    })
}

/// Rotations checked with an independent client: how many completed and whether
/// any value reached the function's logs.
struct Checked {
    completed: usize,
    total: usize,
    leaked: bool,
}

/// A PostgreSQL user rotated single-user, a MariaDB user alternating with its
/// clone; an independent client then checks who can log in.
async fn rotate_databases(
    moto: &Moto,
    store: &AwsStore,
    out: &mut String,
) -> anyhow::Result<Checked> {
    let postgres = Postgres::start(TlsMode::Required)?;
    let mariadb = MariaDb::start(TlsMode::Required)?;
    // One bundle holding both test CAs, as SSL_CERT_FILE would hold RDS's.
    let bundle = postgres.dir().join("demo-ca-bundle.pem");
    std::fs::write(&bundle, postgres.ca_pem() + &mariadb.ca_pem())?;
    let bundle_text = bundle.display().to_string();

    let app_password = random_password();
    postgres.psql(&format!(
        "CREATE ROLE app LOGIN PASSWORD '{}'",
        app_password.expose_secret()
    ))?;
    let svc_password = random_password();
    mariadb.sql(&format!(
        "CREATE DATABASE shop; CREATE USER 'svc'@'%' IDENTIFIED BY '{}'; GRANT SELECT, INSERT ON shop.* TO 'svc'@'%'",
        svc_password.expose_secret()
    ))?;
    let secret = |engine: &str, port: u16, user: &str, password: &SecretString, extra: Value| {
        let mut value = serde_json::json!({"engine": engine, "host": "127.0.0.1", "port": port, "username": user, "password": password.expose_secret()});
        if let (Some(object), Value::Object(extra)) = (value.as_object_mut(), extra) {
            object.extend(extra);
        }
        SecretString::from(value.to_string())
    };
    let master = store
        .create_secret(
            "demo/mariadb-master",
            &secret(
                "mariadb",
                mariadb.port(),
                mariadb.admin_user(),
                &mariadb.admin_password(),
                Value::Null,
            ),
            // The master agrees to serve the application's secret, which names it.
            &[("rotor:serves", "demo/mariadb-svc")],
        )
        .await?;
    store
        .create_secret(
            "demo/postgres-app",
            &secret(
                "postgres",
                postgres.port(),
                "app",
                &app_password,
                serde_json::json!({"dbname": "postgres"}),
            ),
            &[],
        )
        .await?;
    store
        .create_secret(
            "demo/mariadb-svc",
            &secret(
                "mariadb",
                mariadb.port(),
                "svc",
                &svc_password,
                serde_json::json!({"masterarn": master}),
            ),
            &[],
        )
        .await?;

    let mut runs = Checked {
        completed: 0,
        total: 2,
        leaked: false,
    };
    for (name, strategy) in [
        ("demo/postgres-app", "single"),
        ("demo/mariadb-svc", "alternating"),
    ] {
        let mut env = local_env(moto.endpoint());
        env.push(("SSL_CERT_FILE".into(), bundle_text.clone()));
        env.push(("ROTATION_STRATEGY".into(), strategy.into()));
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
        let function = LocalFunction::start(&function_binary("rds-rotation"), &env).await?;
        let engine = if name.contains("postgres") {
            "PostgreSQL 15"
        } else {
            "MariaDB 10.11"
        };
        let _ = writeln!(
            out,
            "\nrds-rotation, {strategy} (cold start {:.1} ms)\n  {name} ({engine} on 127.0.0.1, TLS required and verified)",
            function.cold_start().unwrap_or_default().as_secs_f64() * 1000.0
        );
        let options = RotateOptions {
            secret_id: name.into(),
            token: None,
            test_only: false,
            step_timeout: Duration::from_secs(60),
        };
        let run = rotate(store, &function, &options).await?;
        out.push_str(&summary(&run));
        let read = |label| store.get_value(name, VersionSelector::Label(label));
        let (Some(current), Some(previous)) = (read(AWSCURRENT).await?, read(AWSPREVIOUS).await?)
        else {
            continue;
        };
        let credentials = |v: &SecretString| -> Option<(String, SecretString)> {
            let value: Value = serde_json::from_str(v.expose_secret()).ok()?;
            Some((
                value["username"].as_str()?.to_owned(),
                SecretString::from(value["password"].as_str()?),
            ))
        };
        let (Some((new_user, new_password)), Some((old_user, old_password))) =
            (credentials(&current.value), credentials(&previous.value))
        else {
            continue;
        };
        let logs_in = |user: &str, password: &SecretString| {
            let ca = if engine.starts_with("PostgreSQL") {
                postgres.ca_path()
            } else {
                mariadb.ca_path()
            };
            let login = ClientLogin::new(
                user,
                SecretString::from(password.expose_secret()),
                ClientTls::Verify(ca.to_path_buf()),
            );
            if engine.starts_with("PostgreSQL") {
                postgres.psql_with(&login, "postgres", "SELECT 1").is_ok()
            } else {
                mariadb.sql_with(&login, "SELECT 1").is_ok()
            }
        };
        let new_ok = logs_in(&new_user, &new_password);
        let old_ok = logs_in(&old_user, &old_password);
        let verdict = |ok: bool| if ok { "logs in" } else { "refused" };
        let _ = writeln!(
            out,
            "    checked with {}: AWSCURRENT ({new_user}) {}, AWSPREVIOUS ({old_user}) {}",
            if engine.starts_with("PostgreSQL") {
                "psql"
            } else {
                "the mariadb client"
            },
            verdict(new_ok),
            verdict(old_ok)
        );
        // Single user: only the new password works. Alternating: both users do.
        let expected_old = strategy == "alternating";
        if run.succeeded() && new_ok && old_ok == expected_old {
            runs.completed += 1;
        }
        let logs = function.output();
        runs.leaked |= [&new_password, &old_password]
            .iter()
            .any(|p| logs.contains(p.expose_secret()));
    }
    Ok(runs)
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
