//! PostgreSQL: connect (verified TLS unless the secret says otherwise), change a
//! password, keep the alternate user acting as the original one.
//!
//! Passwords are sent as SCRAM-SHA-256 (or MD5, where the server's
//! `password_encryption` says so) verifiers computed here, so the plaintext
//! never reaches the server's statement log.

use std::sync::OnceLock;
use std::time::Duration;

use rotor_core::{ExposeSecret, SecretString};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::connect::ConnectError;
use crate::secret::{DbSecret, Transport};
use crate::tls;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS connector, built once per process (clones share the configuration).
fn connector() -> Result<MakeRustlsConnect, String> {
    static CONNECTOR: OnceLock<Result<MakeRustlsConnect, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            tls::client_config().map(|config| MakeRustlsConnect::new((*config).clone()))
        })
        .clone()
}

/// Logs in as `user` with `password` at the secret's host.
pub async fn connect(
    secret: &DbSecret,
    user: &str,
    password: &SecretString,
) -> Result<Client, ConnectError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&secret.host)
        .port(secret.port)
        .user(user)
        .password(password.expose_secret())
        .dbname(secret.database().unwrap_or("postgres"))
        .application_name("rotor-rds-rotation")
        .connect_timeout(CONNECT_TIMEOUT);
    let credentials = |e: &tokio_postgres::Error| {
        e.code()
            .is_some_and(|c| c.code() == "28P01" || c.code() == "28000")
    };
    let describe = |e: tokio_postgres::Error| {
        let is_credentials = credentials(&e);
        ConnectError::classify(error_chain(&e), is_credentials)
    };
    let client = match secret.transport {
        Transport::VerifiedTls => {
            config.ssl_mode(SslMode::Require);
            let connector = connector()
                .map_err(|e| ConnectError::classify(format!("TLS setup: {e}"), false))?;
            let (client, connection) = config.connect(connector).await.map_err(describe)?;
            tokio::spawn(connection);
            client
        }
        Transport::Plaintext => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config.connect(NoTls).await.map_err(describe)?;
            tokio::spawn(connection);
            client
        }
    };
    Ok(client)
}

/// The query AWS's functions use to prove a login works.
pub async fn ping(client: &Client) -> Result<(), String> {
    client
        .simple_query("SELECT now()")
        .await
        .map(|_| ())
        .map_err(|e| error_chain(&e))
}

/// Sets `role`'s password (the session must be that role or may alter it).
pub async fn set_password(
    client: &Client,
    role: &str,
    password: &SecretString,
) -> Result<(), String> {
    let verifier = verifier(client, role, password).await?;
    client
        .batch_execute(&format!(
            "ALTER ROLE {} WITH PASSWORD '{verifier}'",
            quote_ident(role)
        ))
        .await
        .map_err(|e| error_chain(&e))
}

/// Makes `clone` the alternate of `base` through a master session: it exists,
/// logs in with `password`, is a member of `base`, and acts as `base` from
/// login on (`SET role`), so objects either user creates belong to `base` and
/// stay usable by both. When `target` is `base` itself only its password changes.
pub async fn set_alternate(
    client: &Client,
    base: &str,
    target: &str,
    password: &SecretString,
) -> Result<(), String> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&target])
        .await
        .map_err(|e| error_chain(&e))?
        .is_some();
    let verifier = verifier(client, target, password).await?;
    let role = quote_ident(target);
    let mut script = if exists {
        format!("ALTER ROLE {role} WITH LOGIN PASSWORD '{verifier}';")
    } else {
        format!("CREATE ROLE {role} WITH LOGIN PASSWORD '{verifier}';")
    };
    if target != base {
        let base_role = quote_ident(base);
        script.push_str(&format!(
            "GRANT {base_role} TO {role}; ALTER ROLE {role} SET role TO {};",
            quote_literal(base)
        ));
    }
    // One implicit transaction: the role is never left half set up.
    client
        .batch_execute(&format!("BEGIN; {script} COMMIT;"))
        .await
        .map_err(|e| error_chain(&e))
}

async fn verifier(client: &Client, role: &str, password: &SecretString) -> Result<String, String> {
    let row = client
        .query_one("SHOW password_encryption", &[])
        .await
        .map_err(|e| error_chain(&e))?;
    let encryption: String = row.get(0);
    let password = password.expose_secret().as_bytes();
    Ok(if encryption.eq_ignore_ascii_case("md5") {
        postgres_protocol::password::md5(password, role)
    } else {
        postgres_protocol::password::scram_sha_256(password)
    })
}

/// Quotes an identifier: double quotes, inner ones doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal, whatever `standard_conforming_strings` is.
pub fn quote_literal(text: &str) -> String {
    if text.contains('\\') {
        format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"back\slash'"), r"E'back\\slash'''");
    }
}
