//! Keycloak's admin API: rotor makes the secret and PUTs it into the client's
//! representation; the old one stops working at once.

use reqwest::Method;
use rotor_core::{Cause, Error, ExposeSecret};
use serde_json::Value;

use super::api::Api;
use super::api::Quote::CodeOnly;
use super::{Management, lacking};
use crate::secret::{ClientSecret, Provider};

/// Sets `pending`'s secret on the client, unless it holds it already; idempotent.
pub(super) async fn install(
    client: &ClientSecret,
    pending: &ClientSecret,
    auth: &Management,
) -> Result<(), Error> {
    let api = Api::new(Provider::Keycloak, auth);
    let realm = client.require("realm").map_err(lacking(client))?;
    let id = client.require("client_uuid").map_err(lacking(client))?;
    let url = api.url(&["admin", "realms", realm, "clients", id])?;
    let mut representation = api
        .call(Method::GET, &url, None, "reading the client", CodeOnly)
        .await?;
    let Some(fields) = representation.as_object_mut() else {
        let problem = concat!(
            "reading the client answered HTTP 200 with a body that is not a JSON object ",
            "(a ClientRepresentation); nothing was changed. Check that keycloak_url is ",
            "Keycloak's base URL and that nothing between rotor and Keycloak rewrites its answers"
        );
        return Err(api.fail(&url, Cause::Protocol, problem));
    };
    let secret = pending.client_secret.expose_secret();
    if fields.get("secret").and_then(Value::as_str) == Some(secret) {
        return Ok(());
    }
    fields.insert("secret".into(), Value::String(secret.to_owned()));
    let what = "setting the client secret";
    api.call(Method::PUT, &url, Some(&representation), what, CodeOnly)
        .await?;
    Ok(())
}
