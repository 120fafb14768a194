//! Auth0's Management API: rotor makes the secret and PATCHes it onto the
//! client; the old one stops working at once.

use reqwest::Method;
use rotor_core::{Error, ExposeSecret};
use serde_json::json;

use super::Management;
use super::api::Api;
use super::api::Quote::CodeOnly;
use crate::secret::{ClientSecret, Provider};

/// Sets `pending`'s secret on the client; idempotent (the same PATCH again).
pub(super) async fn install(
    client: &ClientSecret,
    pending: &ClientSecret,
    auth: &Management,
) -> Result<(), Error> {
    let api = Api::new(Provider::Auth0, auth);
    let url = api.url(&["api", "v2", "clients", &client.client_id])?;
    let body = json!({"client_secret": pending.client_secret.expose_secret()});
    api.call(
        Method::PATCH,
        &url,
        Some(&body),
        "setting the client secret",
        CodeOnly,
    )
    .await?;
    Ok(())
}
