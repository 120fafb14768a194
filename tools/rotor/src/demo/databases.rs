//! rds-rotation in the demo: a PostgreSQL and a MariaDB user on throwaway
//! servers with TLS required.

use std::fmt::Write as _;
use std::time::Duration;

use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use serde_json::Value;

use rotor_testbed::db::{ClientLogin, ClientTls, MariaDb, Postgres, TlsMode, random_password};
use rotor_testbed::moto::{Moto, local_env};

use super::Checked;
use super::metrics::Tally;
use super::report::summary;
use crate::function::{LocalFunction, function_binary};
use crate::rotate::{RotateOptions, rotate};

/// A PostgreSQL user rotated single-user, a MariaDB user alternating with its
/// clone; an independent client then checks who can log in.
pub(super) async fn rotate_databases(
    moto: &Moto,
    store: &AwsStore,
    out: &mut String,
    tally: &mut Tally,
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
        tally.add("rds-rotation", &logs);
        runs.leaked |= [&new_password, &old_password]
            .iter()
            .any(|p| logs.contains(p.expose_secret()));
    }
    Ok(runs)
}
