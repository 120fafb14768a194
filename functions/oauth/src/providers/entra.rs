//! Microsoft Entra ID, through Microsoft Graph: the provider makes each new
//! password (`addPassword`); old and new overlap until finishSecret calls
//! `removePassword` for this secret's old ones.
//!
//! An application may serve several Secrets Manager secrets, each with its
//! own password. A secret's passwords are the ones its versions record
//! (`key_id`, `previous_key_id`) and the ones rotor made for it, whose display
//! name carries the secret's identity ([`display_name`]); no other password
//! is ever removed.

use reqwest::Method;
use rotor_core::{Cause, Error, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::api::Api;
use super::api::Quote::{CodeOnly, Message};
use super::{Issued, Keep, Management, lacking};
use crate::secret::{ClientSecret, Provider};

/// The display name of the password rotor adds for version `version` of the
/// secret `secret` (its ARN): `rotor <identity> <version>`, where the identity
/// is the first 12 hex digits of the ARN's SHA-256. A hash, so that the name
/// stays short and says nothing of the account; the version id, so that an
/// administrator can find the version that holds the password.
pub fn display_name(secret: &str, version: &str) -> String {
    format!("{} {version}", name_prefix(secret))
}

/// `rotor <identity>`: what every password rotor made for `secret` is named
/// with, and no other secret's.
fn name_prefix(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let identity: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("rotor {identity}")
}

/// Removes what an earlier, unrecorded attempt for this version left, then
/// `addPassword` (the provider makes the secret). `secret` is the ARN of the
/// secret being rotated.
pub async fn issue(
    client: &ClientSecret,
    auth: &Management,
    secret: &str,
    version: &str,
) -> Result<Issued, Error> {
    let api = Api::new(Provider::Entra, auth);
    let app = application(client)?;
    let display_name = display_name(secret, version);
    // Before this secret's identity was in the name, rotor named a password
    // `rotor <version>`; the version id is this rotation's own.
    let earlier_name = format!("rotor {version}");
    for stale in &passwords(&api, app).await? {
        let name = stale["displayName"].as_str();
        if (name == Some(&display_name) || name == Some(&earlier_name))
            && let Some(key) = stale["keyId"].as_str()
        {
            warn!(
                key_id = key,
                "removing a password left by an earlier attempt at this version"
            );
            remove(&api, app, key).await?;
        }
    }
    let url = api.url(&["v1.0", "applications", app, "addPassword"])?;
    let body = json!({"passwordCredential": {"displayName": display_name}});
    // The answer carries the new password: a failure reports status and code only.
    let added = api
        .call(
            Method::POST,
            &url,
            Some(&body),
            "adding a password",
            CodeOnly,
        )
        .await?;
    let (Some(secret), Some(key)) = (added["secretText"].as_str(), added["keyId"].as_str()) else {
        return Err(api.fail(
            &url,
            Cause::Protocol,
            "addPassword answered without secretText and keyId",
        ));
    };
    // The password this one replaces, so that it can still be retired one
    // rotation later (REVOKE_PREVIOUS=next-rotation), after its own value is gone.
    let replaced = client.field("key_id").map_or(Value::Null, Value::from);
    Ok(Issued {
        secret: SecretString::from(secret),
        fields: vec![
            ("key_id", Value::String(key.to_owned())),
            ("previous_key_id", replaced),
        ],
        registration_access_token: None,
    })
}

/// Removes this secret's passwords that `keep` does not keep: those its
/// current and previous versions record, and those rotor made for it.
pub(super) async fn retire(keep: &Keep<'_>, auth: &Management) -> Result<(), Error> {
    let api = Api::new(Provider::Entra, auth);
    let app = application(keep.current)?;
    let recorded: Vec<&str> = [Some(keep.current), keep.previous]
        .into_iter()
        .flatten()
        .flat_map(|c| [c.field("key_id"), c.field("previous_key_id")])
        .flatten()
        .collect();
    let prefix = format!("{} ", name_prefix(keep.secret));
    for credential in &passwords(&api, app).await? {
        let Some(key) = credential["keyId"].as_str() else {
            continue;
        };
        let made_for_it = credential["displayName"]
            .as_str()
            .is_some_and(|n| n.starts_with(&prefix));
        if (recorded.contains(&key) || made_for_it) && !keep.keeps(None, Some(key)) {
            remove(&api, app, key).await?;
        }
    }
    Ok(())
}

/// The application's object id, from the client's secret.
fn application(client: &ClientSecret) -> Result<&str, Error> {
    client
        .require("application_object_id")
        .map_err(lacking(client))
}

/// The application's password credentials, as Graph lists them.
async fn passwords(api: &Api<'_>, app: &str) -> Result<Vec<Value>, Error> {
    let url = format!(
        "{}?$select=passwordCredentials",
        api.url(&["v1.0", "applications", app])?
    );
    let listed = api
        .call(Method::GET, &url, None, "listing passwords", Message)
        .await?;
    Ok(listed["passwordCredentials"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

async fn remove(api: &Api<'_>, app: &str, key: &str) -> Result<(), Error> {
    let url = api.url(&["v1.0", "applications", app, "removePassword"])?;
    let body = json!({"keyId": key});
    api.call(
        Method::POST,
        &url,
        Some(&body),
        "removing a password",
        Message,
    )
    .await?;
    Ok(())
}
