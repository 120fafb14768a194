//! The directory servers of ldap-rotation's tests: one Samba AD domain
//! controller per test binary (its ports are fixed), started on first use,
//! and helpers that make accounts and secrets for it and for OpenLDAP.

use std::sync::{Arc, OnceLock};

use rotor_core::{ExposeSecret, SecretString};
use rotor_testbed::samba_dc::SambaDc;
use serde_json::{Value, json};
use tokio::sync::RwLock;

/// The domain controller of this test binary, with the minimum password age
/// at 0 so that accounts may change their own passwords more than once a
/// day. It stops when the binary exits.
pub fn samba() -> Arc<SambaDc> {
    static DC: OnceLock<Arc<SambaDc>> = OnceLock::new();
    DC.get_or_init(|| {
        let dc = SambaDc::start().unwrap_or_else(|e| panic!("cannot start a Samba DC: {e:#}"));
        dc.set_min_age(0).expect("minimum password age 0");
        Arc::new(dc)
    })
    .clone()
}

/// The domain's password policy is shared by every test of the binary:
/// tests take it for reading, the one that changes it for writing.
pub fn domain_policy() -> &'static RwLock<()> {
    static POLICY: RwLock<()> = RwLock::const_new(());
    &POLICY
}

/// A password that meets AD's complexity (four classes), never reused.
pub fn ad_password() -> SecretString {
    let id = uuid::Uuid::new_v4().simple().to_string();
    SecretString::from(format!("Rt-{}-{}x9", &id[..12], &id[12..24]))
}

/// A name for a new account: `prefix` and a random part (20 characters at most, as sAMAccountName).
pub fn account(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A self-managed directory secret (`directory`, `url`, `username`,
/// `password`) with `extra` fields.
pub fn directory_secret(
    directory: &str,
    url: Value,
    username: &str,
    password: &SecretString,
    extra: Value,
) -> String {
    let mut value = json!({
        "directory": directory,
        "url": url,
        "username": username,
        "password": password.expose_secret(),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut value, extra) {
        map.extend(more);
    }
    value.to_string()
}

/// The `password` of a stored secret value (AWS's Managed AD field names
/// too), exposed for a bind check.
pub fn password_of(value: &SecretString) -> SecretString {
    let parsed: Value = serde_json::from_str(value.expose_secret()).expect("a JSON secret");
    let field = ["password", "awsSeamlessDomainPassword", "Password"]
        .into_iter()
        .find_map(|f| parsed[f].as_str())
        .expect("a password field");
    SecretString::from(field)
}
