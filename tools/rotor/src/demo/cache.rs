//! redis-rotation in the demo: an ACL user of a throwaway Redis 7 (TLS, the
//! certificate verified), rotated by an admin secret that agreed to serve it
//! (`rotor:serves`). Redis users hold several passwords, so the old one keeps
//! working until the next rotation; redis-cli checks both.

use std::fmt::Write as _;
use std::time::Duration;

use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use serde_json::{Value, json};

use rotor_testbed::db::random_password;
use rotor_testbed::moto::{Moto, local_env};
use rotor_testbed::redis_server::{ADMIN_USER, RedisServer};

use super::Checked;
use super::metrics::Tally;
use super::report::summary;
use crate::function::{LocalFunction, function_binary};
use crate::rotate::{RotateOptions, rotate};

/// One Redis ACL user, rotated through the admin; redis-cli checks who logs in.
pub(super) async fn rotate_cache_user(
    moto: &Moto,
    store: &AwsStore,
    out: &mut String,
    tally: &mut Tally,
) -> anyhow::Result<Checked> {
    let redis = RedisServer::start()?;
    let secret = |user: &str, password: &SecretString, extra: Value| {
        let mut value = json!({
            "host": redis.host(),
            "port": redis.tls_port(),
            "username": user,
            "password": password.expose_secret(),
        });
        if let (Value::Object(map), Value::Object(more)) = (&mut value, extra) {
            map.extend(more);
        }
        SecretString::from(value.to_string())
    };
    let admin = store
        .create_secret(
            "demo/redis-admin",
            &secret(ADMIN_USER, &redis.admin_password(), json!({})),
            &[("rotor:serves", "demo/redis/")],
        )
        .await?;
    let first = random_password();
    redis.create_user("app", &first, &[])?;
    let name = "demo/redis/app";
    store
        .create_secret(
            name,
            &secret("app", &first, json!({"masterarn": admin})),
            &[],
        )
        .await?;
    let mut env = local_env(moto.endpoint());
    env.push((
        "SSL_CERT_FILE".into(),
        redis.ca_path().display().to_string(),
    ));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
    let function = LocalFunction::start(&function_binary("redis-rotation"), &env).await?;
    let _ = writeln!(
        out,
        "\nredis-rotation (cold start {:.1} ms)\n  {name} (Redis 7 on 127.0.0.1, TLS; an admin secret that serves demo/redis/ changes the user)",
        function.cold_start().unwrap_or_default().as_secs_f64() * 1000.0
    );
    let options = RotateOptions {
        secret_id: name.into(),
        token: None,
        test_only: false,
        step_timeout: Duration::from_secs(30),
    };
    let run = rotate(store, &function, &options).await?;
    out.push_str(&summary(&run));
    let password = |stored: Option<rotor_core::store::StoredValue>| -> Option<SecretString> {
        let value: Value = serde_json::from_str(stored?.value.expose_secret()).ok()?;
        Some(SecretString::from(value["password"].as_str()?))
    };
    let read = |label| store.get_value(name, VersionSelector::Label(label));
    let mut checked = Checked {
        completed: 0,
        total: 1,
        leaked: false,
    };
    let (Some(current), Some(previous)) = (
        password(read(AWSCURRENT).await?),
        password(read(AWSPREVIOUS).await?),
    ) else {
        return Ok(checked);
    };
    let (new_ok, old_ok) = (
        redis.logs_in("app", &current),
        redis.logs_in("app", &previous),
    );
    let verdict = |ok: bool| if ok { "logs in" } else { "refused" };
    let _ = writeln!(
        out,
        "    checked with redis-cli: AWSCURRENT {}, AWSPREVIOUS {} (kept until the next rotation; REVOKE_PREVIOUS=at-finish drops it)",
        verdict(new_ok),
        verdict(old_ok)
    );
    if run.succeeded() && new_ok && old_ok {
        checked.completed = 1;
    }
    let logs = function.output();
    tally.add("redis-rotation", &logs);
    checked.leaked = [&current, &previous, &redis.admin_password()]
        .iter()
        .any(|p| logs.contains(p.expose_secret()));
    Ok(checked)
}
