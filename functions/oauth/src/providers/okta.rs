//! Okta's client secrets API: rotor makes the secret and adds it next to the
//! current one (an app holds at most two active); finishSecret retires the old.

use reqwest::Method;
use rotor_core::{Cause, Error, ExposeSecret, System, TargetError};
use serde_json::{Value, json};
use tracing::info;

use super::api::{Api, endpoint};
use super::{Keep, Management};
use crate::client::{Client, Provider};

/// Adds `pending`'s secret to the app, unless it is there already; idempotent.
pub(super) async fn install(
    client: &Client,
    pending: &Client,
    auth: &Management,
) -> Result<(), Error> {
    let api = Api::new(Provider::Okta, auth);
    let url = secrets_url(client, &api)?;
    let secrets = list(&api, &url).await?;
    let value_of = |s: &Value| s["client_secret"].as_str().map(str::to_owned);
    if secrets
        .iter()
        .any(|s| value_of(s).as_deref() == Some(pending.client_secret.expose_secret()))
    {
        return Ok(());
    }
    // Okta keeps at most two: make room, never touching the current one.
    if secrets.len() >= 2 {
        require_current(client, &secrets)?;
        for stale in secrets
            .iter()
            .filter(|s| value_of(s).as_deref() != Some(client.client_secret.expose_secret()))
        {
            delete(&api, &url, stale).await?;
        }
    }
    let body = json!({"client_secret": pending.client_secret.expose_secret(), "status": "ACTIVE"});
    api.call(Method::POST, &url, Some(&body), "adding a client secret")
        .await?;
    Ok(())
}

/// Deletes the app's secrets that `keep` does not keep.
pub(super) async fn retire(keep: &Keep<'_>, auth: &Management) -> Result<(), Error> {
    let api = Api::new(Provider::Okta, auth);
    let url = secrets_url(keep.current, &api)?;
    let listed = list(&api, &url).await?;
    require_current(keep.current, &listed)?;
    for secret in &listed {
        if !keep.keeps(secret["client_secret"].as_str(), None) {
            delete(&api, &url, secret).await?;
        }
    }
    Ok(())
}

fn secrets_url(client: &Client, api: &Api<'_>) -> Result<String, Error> {
    // The path names the application's id, which is the client_id unless the
    // app was created with a client_id of its own.
    let app = client.field("okta_app_id").unwrap_or(&client.client_id);
    api.url(&["api", "v1", "apps", app, "credentials", "secrets"])
}

async fn list(api: &Api<'_>, url: &str) -> Result<Vec<Value>, Error> {
    let listed = api
        .call(Method::GET, url, None, "listing client secrets")
        .await?;
    Ok(listed.as_array().cloned().unwrap_or_default())
}

/// Refuses to delete anything from a listing that does not show the current
/// secret: deleting "everything else" would then lock the client out.
fn require_current(client: &Client, listed: &[Value]) -> Result<(), Error> {
    let current = client.client_secret.expose_secret();
    if listed
        .iter()
        .any(|s| s["client_secret"].as_str() == Some(current))
    {
        return Ok(());
    }
    Err(TargetError::new(
        Cause::Mismatch,
        "Okta lists no client secret equal to AWSCURRENT's, so rotor cannot tell which secrets are safe to retire; it deleted nothing. Check that AWSCURRENT holds a secret the app has",
    )
    .at(System::Provider, format!("okta app {}", client.client_id)))
}

/// Deactivates (if active) and deletes one listed secret; `secrets` is the
/// app's secrets URL.
async fn delete(api: &Api<'_>, secrets: &str, secret: &Value) -> Result<(), Error> {
    let Some(id) = secret["id"].as_str() else {
        return Ok(());
    };
    if secret["status"] == "ACTIVE" {
        let url = endpoint(secrets, &[id, "lifecycle", "deactivate"])?;
        api.call(Method::POST, &url, None, "deactivating a client secret")
            .await?;
    }
    let url = endpoint(secrets, &[id])?;
    api.call(Method::DELETE, &url, None, "deleting a client secret")
        .await?;
    // Okta's id of the secret (`ocs…`), not its value.
    info!(okta_secret_id = id, "retired an Okta client secret");
    Ok(())
}
