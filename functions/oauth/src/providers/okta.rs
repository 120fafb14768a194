//! Okta's client secrets API: rotor makes the secret and adds it next to the
//! current one (an app holds at most two); finishSecret retires the old. Okta
//! lists each secret's value, which is how rotor tells this secret's own
//! (the values its versions hold) from the others.

use reqwest::Method;
use rotor_core::{Cause, Error, ExposeSecret, SecretStore, StepContext, TargetError, TargetKind};
use serde_json::{Value, json};
use tracing::info;

use super::api::Quote::CodeOnly;
use super::api::{Api, endpoint};
use super::{Keep, Management, previous_unreadable};
use crate::secret::{ClientSecret, Provider};

/// Adds `pending`'s secret to the app, unless it is there already; idempotent.
/// An app holds at most two: room is made only by deleting the secret this
/// one's AWSPREVIOUS version holds, never another's (an app may serve several
/// Secrets Manager secrets).
pub(super) async fn install<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    client: &ClientSecret,
    pending: &ClientSecret,
    auth: &Management,
) -> Result<(), Error> {
    let api = Api::new(Provider::Okta, auth);
    let url = secrets_url(client, &api)?;
    let secrets = list(&api, &url).await?;
    let new = pending.client_secret.expose_secret();
    if secrets.iter().any(|s| holds(s, new)) {
        return Ok(());
    }
    if secrets.len() >= LIMIT {
        require_current(client, &secrets)?;
        let stopped = concat!(
            "it deleted nothing and added nothing: the app holds two client secrets, ",
            "Okta's limit, and rotor makes room only by deleting the one AWSPREVIOUS holds"
        );
        let previous = ctx
            .previous_as::<ClientSecret>()
            .await
            .map_err(|error| previous_unreadable(error, stopped))?;
        let previous = previous.as_ref().map(|p| p.client_secret.expose_secret());
        let current = client.client_secret.expose_secret();
        let others = secrets.iter().filter(|s| !holds(s, current));
        let (ours, unknown): (Vec<&Value>, Vec<&Value>) =
            others.partition(|s| previous.is_some_and(|value| holds(s, value)));
        if secrets.len() - ours.len() >= LIMIT {
            return Err(full(client, &unknown));
        }
        for stale in ours {
            delete(&api, &url, stale).await?;
        }
    }
    let body = json!({"client_secret": new, "status": "ACTIVE"});
    let what = "adding a client secret";
    api.call(Method::POST, &url, Some(&body), what, CodeOnly)
        .await?;
    Ok(())
}

/// Deletes the app's secrets of this secret's previous version, unless `keep`
/// keeps them; the app's other secrets are not this secret's to delete.
pub(super) async fn retire(keep: &Keep<'_>, auth: &Management) -> Result<(), Error> {
    let api = Api::new(Provider::Okta, auth);
    let url = secrets_url(keep.current, &api)?;
    let listed = list(&api, &url).await?;
    require_current(keep.current, &listed)?;
    let Some(previous) = keep.previous else {
        return Ok(());
    };
    for secret in &listed {
        let value = secret["client_secret"].as_str();
        if holds(secret, previous.client_secret.expose_secret()) && !keep.keeps(value, None) {
            delete(&api, &url, secret).await?;
        }
    }
    Ok(())
}

/// How many client secrets an Okta app holds at most.
const LIMIT: usize = 2;

/// Whether a listed secret has this value.
fn holds(listed: &Value, value: &str) -> bool {
    listed["client_secret"].as_str() == Some(value)
}

/// The refusal when the app is full and making room would delete secrets
/// that no version of this secret holds (`unknown`, named by Okta's ids).
fn full(client: &ClientSecret, unknown: &[&Value]) -> Error {
    let ids: Vec<&str> = unknown
        .iter()
        .map(|s| s["id"].as_str().unwrap_or("(no id)"))
        .collect();
    let problem = format!(
        "the app holds two client secrets already, Okta's limit: AWSCURRENT's and {} (Okta's id), which no version of this secret holds. Another Secrets Manager secret or a person may use it, so rotor deleted nothing and added nothing. If nothing uses it, deactivate and delete it in Okta, then retry the rotation (the pending version is kept); otherwise give each Secrets Manager secret an app of its own",
        ids.join(" and ")
    );
    app_failure(client, Cause::Rejected, problem)
}

/// A failure of the client's Okta app, named as Okta's admin console does.
fn app_failure(client: &ClientSecret, cause: Cause, problem: impl Into<String>) -> Error {
    let app = format!("okta app {}", client.client_id);
    TargetError::new(cause, problem).at(TargetKind::Provider, app)
}

fn secrets_url(client: &ClientSecret, api: &Api<'_>) -> Result<String, Error> {
    // The path names the application's id, which is the client_id unless the
    // app was created with a client_id of its own.
    let app = client.field("okta_app_id").unwrap_or(&client.client_id);
    api.url(&["api", "v1", "apps", app, "credentials", "secrets"])
}

async fn list(api: &Api<'_>, url: &str) -> Result<Vec<Value>, Error> {
    let listed = api
        .call(Method::GET, url, None, "listing client secrets", CodeOnly)
        .await?;
    Ok(listed.as_array().cloned().unwrap_or_default())
}

/// Refuses to delete anything from a listing that does not show the current
/// secret: deleting "everything else" would then lock the client out.
fn require_current(client: &ClientSecret, listed: &[Value]) -> Result<(), Error> {
    if listed
        .iter()
        .any(|s| holds(s, client.client_secret.expose_secret()))
    {
        return Ok(());
    }
    let problem = concat!(
        "Okta lists no client secret equal to AWSCURRENT's, so rotor cannot tell which secrets ",
        "are safe to retire; it deleted nothing. Check that AWSCURRENT holds a secret the app has"
    );
    Err(app_failure(client, Cause::Mismatch, problem))
}

/// Deactivates (if active) and deletes one listed secret; `secrets` is the
/// app's secrets URL.
async fn delete(api: &Api<'_>, secrets: &str, secret: &Value) -> Result<(), Error> {
    let Some(id) = secret["id"].as_str() else {
        return Ok(());
    };
    if secret["status"] == "ACTIVE" {
        let url = endpoint(secrets, &[id, "lifecycle", "deactivate"])?;
        api.call(
            Method::POST,
            &url,
            None,
            "deactivating a client secret",
            CodeOnly,
        )
        .await?;
    }
    let url = endpoint(secrets, &[id])?;
    api.call(
        Method::DELETE,
        &url,
        None,
        "deleting a client secret",
        CodeOnly,
    )
    .await?;
    // Okta's id of the secret (`ocs…`), not its value.
    info!(okta_secret_id = id, "retired an Okta client secret");
    Ok(())
}
