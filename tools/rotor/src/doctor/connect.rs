//! `rotor doctor --connect`: testSecret's check against AWSCURRENT, changing
//! nothing: a database login (and the query AWS's functions use), or a
//! client_credentials grant at the provider's token endpoint.

use rotor_core::SecretString;

use super::lambda::Kind;

/// Checks the value's credential; `Ok` names what was proved.
pub async fn check(kind: Kind, value: &SecretString) -> Result<String, String> {
    match kind {
        Kind::Rds => database(value).await,
        Kind::Oauth => provider(value).await,
        Kind::Generic | Kind::Scheduler => Err(
            "generic-rotation has no login of its own to try (its webhook validates new values during a rotation)".into(),
        ),
    }
}

async fn database(value: &SecretString) -> Result<String, String> {
    use rds_rotation::{mysql, postgres};
    let secret = rds_rotation::secret::DbSecret::parse(value).map_err(|e| e.to_string())?;
    let failed = |e: rds_rotation::connect::ConnectError| {
        e.into_error(secret.engine, &secret.address(), &secret.username)
            .to_string()
    };
    if secret.engine.is_mysql_family() {
        let mut session = mysql::connect(&secret, &secret.username, &secret.password)
            .await
            .map_err(failed)?;
        let pinged = session.ping().await;
        session.close().await;
        pinged.map_err(|e| e.problem)?;
    } else {
        let client = postgres::connect(&secret, &secret.username, &secret.password)
            .await
            .map_err(failed)?;
        postgres::ping(&client).await.map_err(|e| e.problem)?;
    }
    Ok(format!(
        "{} logs in at {} ({:?})",
        secret.username,
        secret.address(),
        secret.engine
    ))
}

async fn provider(value: &SecretString) -> Result<String, String> {
    use oauth_rotation::token::{Grant, client_credentials};
    let client = oauth_rotation::client::Client::parse(value).map_err(|e| e.to_string())?;
    let grant = Grant {
        endpoint: &client.token_endpoint,
        client_id: &client.client_id,
        secret: &client.client_secret,
        method: client.auth_method,
        scope: client.scope.as_deref(),
        audience: client.audience.as_deref(),
    };
    client_credentials(&grant)
        .await
        .map(|_token| {
            format!(
                "client {} gets a token at {}",
                client.client_id,
                rotor_core::http::display_url(&client.token_endpoint)
            )
        })
        .map_err(|e| {
            format!(
                "client {} gets no token at {}: {}",
                client.client_id,
                rotor_core::http::display_url(&client.token_endpoint),
                e.problem
            )
        })
}
