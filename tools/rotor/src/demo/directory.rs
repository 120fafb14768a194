//! ldap-rotation in the demo: a service account of a throwaway OpenLDAP
//! server (StartTLS, the certificate verified), whose password the account
//! changes itself with RFC 3062's password modify; ldapsearch then checks
//! which password binds.

use std::fmt::Write as _;
use std::time::Duration;

use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use serde_json::Value;

use rotor_testbed::db::random_password;
use rotor_testbed::moto::{Moto, local_env};
use rotor_testbed::openldap::OpenLdap;

use super::Checked;
use super::metrics::Tally;
use super::report::summary;
use crate::function::{LocalFunction, function_binary};
use crate::rotate::{RotateOptions, rotate};

/// One OpenLDAP account, rotated by itself; ldapsearch checks who binds.
pub(super) async fn rotate_directory_account(
    moto: &Moto,
    store: &AwsStore,
    out: &mut String,
    tally: &mut Tally,
) -> anyhow::Result<Checked> {
    let ldap = OpenLdap::start()?;
    let dn = ldap.user_dn("svc-app", "people");
    let first = random_password();
    ldap.create_user("svc-app", "people", &first)?;
    let name = "demo/ldap-svc-app";
    let value = serde_json::json!({
        "directory": "ldap",
        "url": ldap.ldap_url(),
        "username": dn,
        "password": first.expose_secret(),
    });
    store
        .create_secret(name, &SecretString::from(value.to_string()), &[])
        .await?;
    let mut env = local_env(moto.endpoint());
    env.push(("SSL_CERT_FILE".into(), ldap.ca_path().display().to_string()));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
    let function = LocalFunction::start(&function_binary("ldap-rotation"), &env).await?;
    let _ = writeln!(
        out,
        "\nldap-rotation (cold start {:.1} ms)\n  {name} (OpenLDAP 2.5 on 127.0.0.1, StartTLS, the account changes its own password)",
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
    let (new_ok, old_ok) = (ldap.binds(&dn, &current), ldap.binds(&dn, &previous));
    let verdict = |ok: bool| if ok { "binds" } else { "refused" };
    let _ = writeln!(
        out,
        "    checked with ldapsearch: AWSCURRENT {}, AWSPREVIOUS {}",
        verdict(new_ok),
        verdict(old_ok)
    );
    if run.succeeded() && new_ok && !old_ok {
        checked.completed = 1;
    }
    let logs = function.output();
    tally.add("ldap-rotation", &logs);
    checked.leaked = [&current, &previous]
        .iter()
        .any(|p| logs.contains(p.expose_secret()));
    Ok(checked)
}
