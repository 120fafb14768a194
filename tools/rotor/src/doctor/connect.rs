//! `rotor doctor --connect`: testSecret's check against AWSCURRENT, changing
//! nothing: a database login (and the query AWS's functions use), a Redis
//! login (`AUTH` and `PING`), a directory bind, or a client_credentials grant at the provider's
//! token endpoint. Where a function has nothing to log in to, or the secret
//! names nowhere to log in, it says so rather than pass or fail.

use rotor_core::{SecretString, TargetError};

use super::lambda::Kind;

/// What the check found, when the credential was not refused.
#[derive(Debug)]
pub enum Checked {
    /// The credential works: what was proved.
    Works(String),
    /// Nothing was tried: why.
    NotChecked(String),
}

/// Why AWSCURRENT's credential was not proved to work.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
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
    /// The directory server could not be reached, or refused the bind.
    #[error("{server}, account {user:?}: {cause}")]
    Directory {
        /// `Active Directory at host:port`, `LDAP at host:port`.
        server: String,
        /// The bind name.
        user: String,
        /// What failed.
        cause: TargetError,
    },
    /// STS refused the access key, or it signs in as someone else.
    #[error("IAM user {user:?}, access key {key}: {cause}")]
    Iam {
        /// The secret's UserName.
        user: String,
        /// The access key id (never its secret).
        key: String,
        /// What failed.
        cause: TargetError,
    },
    /// The Redis server could not be reached, refused the password, or
    /// refused the user a PING.
    #[error("Redis at {address}, user {user:?}: {cause}")]
    Redis {
        /// `host:port`.
        address: String,
        /// The ACL user.
        user: String,
        /// What failed.
        cause: TargetError,
    },
}

/// Checks the value's credential.
pub async fn check(kind: Kind, value: &SecretString) -> Result<Checked, CheckError> {
    match kind {
        Kind::Rds => database(value).await,
        Kind::Oauth => provider(value).await,
        Kind::Redis => cache(value).await,
        Kind::Ldap => directory(value).await,
        Kind::Iam => access_key(value).await,
        Kind::Generic => Ok(Checked::NotChecked(
            "generic-rotation's value has nothing to log in to: the function generates it, and whatever reads the secret uses it. A webhook, where the settings name one, validates new values during a rotation; doctor does not call it".into(),
        )),
        Kind::Scheduler => Ok(Checked::NotChecked(
            "rotation-scheduler starts rotations and holds no credential".into(),
        )),
    }
}

/// iam-rotation's secrets: the access key signs in at STS
/// (GetCallerIdentity, which needs no permission) as the secret's user.
async fn access_key(value: &SecretString) -> Result<Checked, CheckError> {
    use iam_rotation::secret::KeySecret;
    let secret =
        KeySecret::parse(value).map_err(|problem| CheckError::Unparsable(problem.into()))?;
    let config = rotor_core::store::aws::sdk_loader().load().await;
    let failed = |cause| CheckError::Iam {
        user: secret.user_name.clone(),
        key: secret.access_key_id.clone(),
        cause,
    };
    let arn = iam_rotation::api::caller(
        &config,
        &secret.access_key_id,
        &secret.secret_access_key,
        &secret.user_name,
    )
    .await
    .map_err(failed)?;
    let name = arn.rsplit('/').next().unwrap_or_default();
    if !arn.contains(":user/") || name != secret.user_name {
        let problem = format!(
            "the key signs in as {arn}, not as IAM user {:?}",
            secret.user_name
        );
        return Err(failed(TargetError::new(
            rotor_core::Cause::Mismatch,
            problem,
        )));
    }
    Ok(Checked::Works(format!(
        "access key {} signs in at STS as {arn}",
        secret.access_key_id
    )))
}

async fn database(value: &SecretString) -> Result<Checked, CheckError> {
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
    Ok(Checked::Works(format!(
        "{} logs in at {} ({:?})",
        secret.username,
        secret.address(),
        secret.engine
    )))
}

async fn provider(value: &SecretString) -> Result<Checked, CheckError> {
    use oauth_rotation::token::{Grant, client_credentials};
    let client = oauth_rotation::secret::ClientSecret::parse(value)
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
        Ok(_token) => Ok(Checked::Works(format!(
            "client {} gets a token at {endpoint}",
            client.client_id
        ))),
        Err(cause) => Err(CheckError::NoToken {
            client_id: client.client_id.clone(),
            endpoint,
            cause,
        }),
    }
}

/// ldap-rotation's secrets: a self-managed account binds (a simple bind,
/// as testSecret makes) at every server its secret lists; a Managed AD
/// account binds at the directory's DNS name, which only Directory Service
/// tells, so it is not checked from here.
async fn directory(value: &SecretString) -> Result<Checked, CheckError> {
    use ldap_rotation::secret::{AccountSecret, ManagedKeys};
    let secret = AccountSecret::parse_with(value, ManagedKeys::from_env())
        .map_err(|problem| CheckError::Unparsable(problem.into()))?;
    let secret = match secret {
        AccountSecret::Directory(secret) => secret,
        AccountSecret::Managed(m) => {
            return Ok(Checked::NotChecked(format!(
                "account {:?} of AWS Managed Microsoft AD directory {} binds at the directory's DNS name, which Directory Service's DescribeDirectories gives; doctor does not call it (the function's testSecret does)",
                m.username, m.directory_id
            )));
        }
    };
    let mut bound = Vec::new();
    for server in &secret.servers {
        let failed = |cause: TargetError| CheckError::Directory {
            server: ldap_rotation::directory::target(secret.directory, server),
            user: secret.username.clone(),
            cause,
        };
        let mut conn = ldap_rotation::client::connect(server)
            .await
            .map_err(|f| failed(f.error))?;
        let result = conn.try_bind(&secret.username, &secret.password).await;
        conn.close().await;
        result.map_err(|f| failed(f.error))?;
        bound.push(server.to_string());
    }
    Ok(Checked::Works(format!(
        "{} binds at {}",
        secret.username,
        bound.join(", ")
    )))
}

/// redis-rotation's secrets: a self-managed user logs in where the secret
/// says; an ElastiCache or MemoryDB user where the secret names an endpoint
/// (as testSecret does), and otherwise cannot be checked from here.
async fn cache(value: &SecretString) -> Result<Checked, CheckError> {
    use redis_rotation::secret::UserSecret;
    let secret = <UserSecret as rotor_core::SecretValue>::parse(value)
        .map_err(|problem| CheckError::Unparsable(problem.into()))?;
    let secret = match secret {
        UserSecret::SelfManaged(secret) => {
            return redis_login(&secret.endpoint(), &secret.username, &secret.password).await;
        }
        UserSecret::Managed(secret) => secret,
    };
    let service = secret.user.service();
    match (&secret.endpoint, &secret.password) {
        (_, None) => Ok(Checked::NotChecked(format!(
            "the secret holds no password yet for {service} user {} (the first rotation sets one)",
            secret.user_arn
        ))),
        (None, Some(_)) => Ok(Checked::NotChecked(format!(
            "the secret names no host to log in at: {service} holds user {}'s passwords, and doctor does not ask {service}. Add host and port (and ssl) to the secret to have --connect, and testSecret, log in with it",
            secret.user_arn
        ))),
        (Some(endpoint), Some(password)) => redis_login(endpoint, &secret.username, password).await,
    }
}

/// `AUTH user password` then `PING` on a fresh connection, as testSecret does.
async fn redis_login(
    endpoint: &redis_rotation::secret::Endpoint,
    user: &str,
    password: &SecretString,
) -> Result<Checked, CheckError> {
    use redis_rotation::resp::Reply;
    let failed = |cause: TargetError| CheckError::Redis {
        address: endpoint.address(),
        user: user.to_owned(),
        cause,
    };
    let Some(mut conn) = redis_rotation::acl::login(endpoint, user, password)
        .await
        .map_err(failed)?
    else {
        return Err(failed(TargetError::new(
            rotor_core::Cause::Auth,
            "the server refused the password (WRONGPASS)",
        )));
    };
    match conn.call(&[b"PING"], false).await.map_err(failed)? {
        Reply::Status(s) if s == "PONG" => Ok(Checked::Works(format!(
            "user {user:?} logs in at {} and PINGs",
            endpoint.address()
        ))),
        Reply::Error(code, message) => Err(failed(TargetError::new(
            rotor_core::Cause::Permission,
            format!("PING failed: {code} {message}; the user needs +ping (or +@connection)"),
        ))),
        _ => Err(failed(TargetError::new(
            rotor_core::Cause::Protocol,
            "PING did not answer PONG",
        ))),
    }
}
