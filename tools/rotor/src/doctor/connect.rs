//! `rotor doctor --connect`: testSecret's check against AWSCURRENT, changing
//! nothing: a database login (and the query AWS's functions use), or a
//! client_credentials grant at the provider's token endpoint.

use rotor_core::{SecretString, TargetError};

use super::lambda::Kind;

/// Why AWSCURRENT's credential was not proved to work.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// generic-rotation (and the scheduler) log in nowhere themselves.
    #[error(
        "generic-rotation has no login of its own to try (its webhook validates new values during a rotation)"
    )]
    NoLogin,
    /// The value is not a secret of the function's kind: the parser's words.
    #[error("{0}")]
    Unparsable(Box<dyn std::error::Error + Send + Sync>),
    /// The database could not be reached, or refused the login.
    #[error(transparent)]
    Login(rotor_core::Error),
    /// The database took the login but not the query the functions use.
    #[error(transparent)]
    Query(TargetError),
    /// The provider's token endpoint gave the client no token.
    #[error("client {client_id} gets no token at {endpoint}: {cause}")]
    NoToken {
        /// The client.
        client_id: String,
        /// The token endpoint, as shown to people.
        endpoint: String,
        /// What the endpoint said.
        cause: TargetError,
    },
}

/// Checks the value's credential; `Ok` names what was proved.
pub async fn check(kind: Kind, value: &SecretString) -> Result<String, CheckError> {
    match kind {
        Kind::Rds => database(value).await,
        Kind::Oauth => provider(value).await,
        Kind::Generic | Kind::Scheduler => Err(CheckError::NoLogin),
    }
}

async fn database(value: &SecretString) -> Result<String, CheckError> {
    use rds_rotation::{mysql, postgres};
    let secret = rds_rotation::secret::DbSecret::parse(value)
        .map_err(|problem| CheckError::Unparsable(problem.into()))?;
    let failed = |e: rds_rotation::connect::ConnectError| {
        CheckError::Login(e.into_error(secret.engine, &secret.address(), &secret.username))
    };
    if secret.engine.is_mysql_family() {
        let mut session = mysql::connect(&secret, &secret.username, &secret.password)
            .await
            .map_err(failed)?;
        let pinged = session.ping().await;
        session.close().await;
        pinged.map_err(CheckError::Query)?;
    } else {
        let client = postgres::connect(&secret, &secret.username, &secret.password)
            .await
            .map_err(failed)?;
        postgres::ping(&client).await.map_err(CheckError::Query)?;
    }
    Ok(format!(
        "{} logs in at {} ({:?})",
        secret.username,
        secret.address(),
        secret.engine
    ))
}

async fn provider(value: &SecretString) -> Result<String, CheckError> {
    use oauth_rotation::token::{Grant, client_credentials};
    let client = oauth_rotation::client::Client::parse(value)
        .map_err(|problem| CheckError::Unparsable(problem.into()))?;
    let grant = Grant {
        endpoint: &client.token_endpoint,
        client_id: &client.client_id,
        secret: &client.client_secret,
        method: client.auth_method,
        scope: client.scope.as_deref(),
        audience: client.audience.as_deref(),
    };
    let endpoint = rotor_core::http::display_url(&client.token_endpoint);
    match client_credentials(&grant).await {
        Ok(_token) => Ok(format!(
            "client {} gets a token at {endpoint}",
            client.client_id
        )),
        Err(cause) => Err(CheckError::NoToken {
            client_id: client.client_id.clone(),
            endpoint,
            cause,
        }),
    }
}
