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

use rotor_core::TargetError;

use crate::connect::{ConnectError, statement_cause};
use crate::secret::{DbSecret, Transport};
use crate::tls::{self, TlsSetupError};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS connector, built once per process (clones share the configuration).
fn connector() -> Result<MakeRustlsConnect, TlsSetupError> {
    static CONNECTOR: OnceLock<Result<MakeRustlsConnect, TlsSetupError>> = OnceLock::new();
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
    let describe = |e: tokio_postgres::Error| ConnectError::from_driver(&e, error_chain(&e));
    let client = match secret.transport {
        Transport::VerifiedTls => {
            config.ssl_mode(SslMode::Require);
            let connector = connector().map_err(ConnectError::tls_setup)?;
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
pub async fn ping(client: &Client) -> Result<(), TargetError> {
    client
        .simple_query("SELECT now()")
        .await
        .map(|_| ())
        .map_err(|e| failure(&e))
}

/// Sets `role`'s password (the session must be that role or may alter it).
pub async fn set_password(
    client: &Client,
    role: &str,
    password: &SecretString,
) -> Result<(), TargetError> {
    let verifier = verifier(client, role, password).await?;
    client
        .batch_execute(&format!(
            "ALTER ROLE {} WITH PASSWORD '{verifier}'",
            quote_ident(role)
        ))
        .await
        .map_err(|e| withheld(&e))
}

/// The role attributes a clone must not have beyond its original's: with
/// them it could `RESET ROLE` and act with more than the original.
const ATTRIBUTES: [(&str, &str); 5] = [
    ("rolsuper", "SUPERUSER"),
    ("rolcreatedb", "CREATEDB"),
    ("rolcreaterole", "CREATEROLE"),
    ("rolreplication", "REPLICATION"),
    ("rolbypassrls", "BYPASSRLS"),
];

/// Makes `clone` the alternate of `base` through a master session, whatever
/// state `clone` is in: it exists, logs in with `password`, is a member of
/// `base` and of no other role, acts as `base` from login on (`SET role`), so
/// objects either user creates belong to `base` and stay usable by both, has
/// no attribute `base` lacks, and holds no privilege of its own on the
/// tables, schemas and database of this database. When `target` is `base`
/// itself only its password changes. All of it in one transaction: the role
/// is never left half set up.
pub async fn set_alternate(
    client: &Client,
    base: &str,
    target: &str,
    password: &SecretString,
) -> Result<(), TargetError> {
    let role = quote_ident(target);
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| failure(&e))?;
    let verifier = verifier(client, target, password).await?;
    let mut script = String::new();
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&target])
        .await
        .map_err(|e| failure(&e))?
        .is_some();
    if target != base && exists {
        script.push_str(&revoke_extras(client, base, target).await?);
    }
    let mut statement = if exists {
        format!("ALTER ROLE {role} WITH LOGIN PASSWORD '{verifier}';")
    } else {
        format!("CREATE ROLE {role} WITH LOGIN PASSWORD '{verifier}';")
    };
    if target != base {
        statement.push_str(&format!(
            "GRANT {} TO {role}; ALTER ROLE {role} SET role TO {};",
            quote_ident(base),
            quote_literal(base)
        ));
    }
    client
        .batch_execute(&format!("{script}{statement} COMMIT;"))
        .await
        .map_err(|e| withheld(&e))
}

/// The statements that take from `clone` what `base` does not give it:
/// other roles' memberships, attributes, and privileges granted to `clone`
/// itself in this database (objects it owns are left alone: dropping data is
/// not a rotation's call).
async fn revoke_extras(client: &Client, base: &str, clone: &str) -> Result<String, TargetError> {
    let role = quote_ident(clone);
    let mut script = String::new();
    let rows = client
        .query(
            "SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
             JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 AND r.rolname <> $2",
            &[&clone, &base],
        )
        .await
        .map_err(|e| failure(&e))?;
    for row in rows {
        let other: String = row.get(0);
        script.push_str(&format!("REVOKE {} FROM {role};", quote_ident(&other)));
    }
    let columns = ATTRIBUTES.map(|(c, _)| c).join(", ");
    let attributes = client
        .query(
            &format!("SELECT rolname::text, {columns} FROM pg_roles WHERE rolname IN ($1, $2)"),
            &[&clone, &base],
        )
        .await
        .map_err(|e| failure(&e))?;
    let of = |name: &str| attributes.iter().find(|r| r.get::<_, String>(0) == name);
    if let Some(clone_row) = of(clone) {
        for (i, (_, attribute)) in ATTRIBUTES.iter().enumerate() {
            let base_has = of(base).is_some_and(|r| r.get::<_, bool>(i + 1));
            if clone_row.get::<_, bool>(i + 1) && !base_has {
                script.push_str(&format!("ALTER ROLE {role} NO{attribute};"));
            }
        }
    }
    let grants = client
        .query(
            "WITH c AS (SELECT oid FROM pg_roles WHERE rolname = $1) \
             SELECT DISTINCT CASE WHEN k.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, k.oid::regclass::text \
               FROM pg_class k, aclexplode(k.relacl) a, c WHERE a.grantee = c.oid AND k.relowner <> c.oid \
             UNION SELECT DISTINCT 'SCHEMA', quote_ident(n.nspname) \
               FROM pg_namespace n, aclexplode(n.nspacl) a, c WHERE a.grantee = c.oid AND n.nspowner <> c.oid \
             UNION SELECT DISTINCT 'DATABASE', quote_ident(d.datname) \
               FROM pg_database d, aclexplode(d.datacl) a, c \
               WHERE d.datname = current_database() AND a.grantee = c.oid AND d.datdba <> c.oid",
            &[&clone],
        )
        .await
        .map_err(|e| failure(&e))?;
    for row in grants {
        let (kind, object): (String, String) = (row.get(0), row.get(1));
        script.push_str(&format!("REVOKE ALL ON {kind} {object} FROM {role};"));
    }
    Ok(script)
}

/// What a logged-in alternate user is, as far as access goes: who it acts as
/// (`current_user` after its login `SET role`) and the roles it is a member of.
pub async fn identity(client: &Client) -> Result<(String, Vec<String>), TargetError> {
    let row = client
        .query_one(
            "SELECT current_user::text, coalesce((SELECT array_agg(r.rolname::text ORDER BY r.rolname) \
               FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
               JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = session_user), '{}')",
            &[],
        )
        .await
        .map_err(|e| failure(&e))?;
    Ok((row.get(0), row.get(1)))
}

async fn verifier(
    client: &Client,
    role: &str,
    password: &SecretString,
) -> Result<String, TargetError> {
    let row = client
        .query_one("SHOW password_encryption", &[])
        .await
        .map_err(|e| failure(&e))?;
    let encryption: String = row.get(0);
    let password = password.expose_secret().as_bytes();
    Ok(if encryption.eq_ignore_ascii_case("md5") {
        postgres_protocol::password::md5(password, role)
    } else {
        postgres_protocol::password::scram_sha_256(password)
    })
}

/// A failed statement that carries a password (verifier) in words that hold
/// no server text: the SQLSTATE and a hint, never the message, detail or
/// the server's own hint, which may quote the statement.
fn withheld(error: &tokio_postgres::Error) -> TargetError {
    TargetError::new(statement_cause(error), withheld_text(error))
}

fn withheld_text(error: &tokio_postgres::Error) -> String {
    let Some(code) = error.code() else {
        // The connection or the driver: their text holds no statement.
        return error_chain(error);
    };
    let code = code.code();
    let hint = match code {
        "42501" => {
            "; the login lacks a privilege this needs (the master user needs CREATEROLE, and ADMIN OPTION on the original role)"
        }
        "42601" => "; the server does not accept this statement's syntax",
        "42710" => "; the role already exists: run the step again",
        _ if code.starts_with("40") => "; the transaction was rolled back: run the step again",
        _ => "",
    };
    format!(
        "server error SQLSTATE {code}; the server's message is withheld because the statement carries a password{hint}"
    )
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

/// A failed statement that carries no password: its cause from the driver's
/// typed error, and the driver's account of it.
fn failure(error: &tokio_postgres::Error) -> TargetError {
    TargetError::new(statement_cause(error), error_chain(error))
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
