//! The `rotor` CLI with ldap-rotation: `rotor rotate --function ldap-rotation`
//! against moto and OpenLDAP, and `rotor doctor --connect`, which knows an
//! ldap-rotation secret by its shape and binds as its account, as testSecret
//! does, changing nothing.

use rotor_cli::function::function_binary;
use rotor_core::labels::AWSCURRENT;
use rotor_core::store::RotationService;
use rotor_core::{ExposeSecret, SecretString};
use rotor_testbed::openldap::OpenLdap;
use rotor_tests::directories::{ad_password, directory_secret, password_of};
use rotor_tests::{assert_no_stored_secret_in, moto, moto_store, unique, value};
use serde_json::{Value, json};

/// Runs `rotor ARGS --endpoint MOTO` with `SSL_CERT_FILE=ca`: exit code, stdout.
async fn rotor(args: &[&str], ca: &std::path::Path) -> (i32, String) {
    let out = tokio::process::Command::new(function_binary("rotor"))
        .args(args)
        .args(["--endpoint", moto().endpoint()])
        .env("SSL_CERT_FILE", ca)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run rotor; build it first with cargo build --workspace --bins");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout)
}

#[tokio::test]
async fn rotor_rotates_and_doctor_binds_an_ldap_account() {
    let ldap = OpenLdap::start().unwrap();
    let store = moto_store();
    let dn = ldap.user_dn("cli", "people");
    let first = ad_password();
    ldap.create_user("cli", "people", &first).unwrap();
    let arn = store
        .create_secret(
            &unique("ldap-cli"),
            &SecretString::from(directory_secret(
                "ldap",
                json!(ldap.ldaps_url()),
                &dn,
                &first,
                json!({}),
            )),
            &[],
        )
        .await
        .unwrap();

    let (code, out) = rotor(
        &["rotate", &arn, "--function", "ldap-rotation"],
        ldap.ca_path(),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let current = password_of(&value(&store, &arn, AWSCURRENT).await.unwrap());
    assert!(ldap.binds(&dn, &current) && !ldap.binds(&dn, &first));

    let (code, out) = rotor(&["doctor", &arn, "--json", "--connect"], ldap.ca_path()).await;
    let doc: Value = serde_json::from_str(out.lines().last().unwrap_or_default()).expect("JSON");
    assert_eq!(doc["kind"], "ldap-rotation", "{doc}");
    let notes = doc["notes"].to_string();
    assert!(
        notes.contains("--connect: AWSCURRENT works") && notes.contains("binds at"),
        "{doc}"
    );
    // The local runner's function is not deployed in moto: the one finding, a
    // warning only while rotation is off (rotor rotate leaves it off).
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["health"], "warning", "{doc}");
    assert!(
        doc["findings"].to_string().contains("function-missing"),
        "{doc}"
    );
    assert!(
        !doc["findings"]
            .to_string()
            .contains("current-does-not-work"),
        "{doc}"
    );

    // A password the directory refuses.
    let wrong = ad_password();
    let wrong_value = directory_secret("ldap", json!(ldap.ldaps_url()), &dn, &wrong, json!({}));
    // A secret of its own: moto keeps a replaced AWSCURRENT label on both versions.
    let arn = store
        .create_secret(&unique("ldap-cli"), &SecretString::from(wrong_value), &[])
        .await
        .unwrap();
    let (code, out) = rotor(&["doctor", &arn, "--json", "--connect"], ldap.ca_path()).await;
    let doc: Value = serde_json::from_str(out.lines().last().unwrap_or_default()).expect("JSON");
    assert_eq!(code, 1, "{doc}");
    assert!(
        doc["findings"]
            .to_string()
            .contains("current-does-not-work"),
        "{doc}"
    );
    assert!(!doc.to_string().contains(wrong.expose_secret()));
    assert_no_stored_secret_in(&store, &arn, &out).await;
}
