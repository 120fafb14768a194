//! Keycloak's admin API: rotor makes the secret and PUTs it into the client's
//! representation; the old one stops working at once.

use reqwest::Method;
use rotor_core::{Cause, Error, ExposeSecret, TargetError, TargetKind};
use serde_json::Value;

use super::Management;
use super::api::Api;
use crate::client::{Client, ClientError, Provider};

/// Sets `pending`'s secret on the client, unless it holds it already; idempotent.
pub(super) async fn install(
    client: &Client,
    pending: &Client,
    auth: &Management,
) -> Result<(), Error> {
    let api = Api::new(Provider::Keycloak, auth);
    let bad = |p: ClientError| {
        TargetError::new(Cause::Rejected, p.to_string()).at(TargetKind::Provider, "keycloak")
    };
    let realm = client.require("realm").map_err(bad)?;
    let id = client.require("client_uuid").map_err(bad)?;
    let url = api.url(&["admin", "realms", realm, "clients", id])?;
    let mut representation = api
        .call_with_secret(Method::GET, &url, None, "reading the client")
        .await?;
    let Some(fields) = representation.as_object_mut() else {
        return Err(api.fail(
            &url,
            Cause::Protocol,
            "reading the client answered HTTP 200 with a body that is not a JSON object (a ClientRepresentation); nothing was changed. Check that keycloak_url is Keycloak's base URL and that nothing between rotor and Keycloak rewrites its answers",
        ));
    };
    if fields.get("secret").and_then(Value::as_str) == Some(pending.client_secret.expose_secret()) {
        return Ok(());
    }
    fields.insert(
        "secret".into(),
        Value::String(pending.client_secret.expose_secret().to_owned()),
    );
    api.call_with_secret(
        Method::PUT,
        &url,
        Some(&representation),
        "setting the client secret",
    )
    .await?;
    Ok(())
}
