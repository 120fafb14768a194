//! Microsoft Entra ID, through Microsoft Graph: the provider makes each new
//! password (`addPassword`); old and new overlap until finishSecret calls
//! `removePassword` for the ones rotor made.

use reqwest::Method;
use rotor_core::{Cause, Error, SecretString, System, TargetError};
use serde_json::{Value, json};
use tracing::warn;

use super::api::Api;
use super::{Issued, Keep, Management};
use crate::client::{Client, Provider};

/// Removes what an earlier, unrecorded attempt for this version left, then
/// `addPassword` (the provider makes the secret).
pub async fn issue(client: &Client, auth: &Management, version: &str) -> Result<Issued, Error> {
    let api = Api::new(Provider::Entra, auth);
    let app = application(client)?;
    let display_name = format!("rotor {version}");
    for stale in &passwords(&api, app).await? {
        if stale["displayName"] == display_name.as_str()
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
    let added = api
        .call(Method::POST, &url, Some(&body), "adding a password")
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

/// Removes the passwords rotor made, or the previous versions used, that
/// `keep` does not keep.
pub(super) async fn retire(keep: &Keep<'_>, auth: &Management) -> Result<(), Error> {
    let api = Api::new(Provider::Entra, auth);
    let (current, previous) = (keep.current, keep.previous);
    let app = application(current)?;
    for credential in &passwords(&api, app).await? {
        let key = credential["keyId"].as_str();
        // Only passwords rotor made, or ones the previous versions used.
        let recorded = |c: &Client| {
            key.is_some() && (key == c.field("key_id") || key == c.field("previous_key_id"))
        };
        let ours = credential["displayName"]
            .as_str()
            .is_some_and(|n| n.starts_with("rotor "))
            || previous.is_some_and(recorded)
            || (key.is_some() && key == current.field("previous_key_id"));
        if let Some(key) = key
            && ours
            && !keep.keeps(None, Some(key))
        {
            remove(&api, app, key).await?;
        }
    }
    Ok(())
}

/// The application's object id, from the client's secret.
fn application(client: &Client) -> Result<&str, Error> {
    client
        .require("application_object_id")
        .map_err(|p| TargetError::new(Cause::Rejected, p.to_string()).at(System::Provider, "entra"))
}

/// The application's password credentials, as Graph lists them.
async fn passwords(api: &Api<'_>, app: &str) -> Result<Vec<Value>, Error> {
    let url = format!(
        "{}?$select=passwordCredentials",
        api.url(&["v1.0", "applications", app])?
    );
    let listed = api
        .call(Method::GET, &url, None, "listing passwords")
        .await?;
    Ok(listed["passwordCredentials"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

async fn remove(api: &Api<'_>, app: &str, key: &str) -> Result<(), Error> {
    let url = api.url(&["v1.0", "applications", app, "removePassword"])?;
    api.call(
        Method::POST,
        &url,
        Some(&json!({"keyId": key})),
        "removing a password",
    )
    .await?;
    Ok(())
}
