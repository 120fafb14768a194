//! PostgreSQL: connect (verified TLS unless the secret says otherwise), change a
//! password, keep the alternate user acting as the original one.
//!
//! Passwords are sent as SCRAM-SHA-256 (or MD5, where the server's
//! `password_encryption` says so) verifiers computed here, so the plaintext
//! never reaches the server's statement log.

use std::sync::OnceLock;

use rotor_core::TargetError;
use rotor_core::tls::{self, TlsSetupError};
use rotor_core::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::{SslMode, SslNegotiation};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::connect::{
    self, CONNECT_TIMEOUT, ConnectError, ConnectFailure, WITHHELD, statement_cause,
};
use crate::secret::{DbSecret, Transport};

/// The TLS connector, built once per process (clones share the configuration).
fn connector() -> Result<MakeRustlsConnect, TlsSetupError> {
    static CONNECTOR: OnceLock<Result<MakeRustlsConnect, TlsSetupError>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            tls::client_config().map(|config| MakeRustlsConnect::new((*config).clone()))
        })
        .clone()
}

/// Logs in as `user` with `password` at the secret's host. The function
/// resolves the host, connects and asks for TLS itself, so that each of
/// those failures is known by a typed value ([`crate::connect`]); the
/// driver then makes the TLS handshake (verified against the host name, with
/// channel binding) and logs in.
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
        .application_name("rotor-rds-rotation");
    let describe = |e: tokio_postgres::Error| ConnectError::from_driver(&e, error_chain(&e));
    let stream = tcp(secret).await?;
    let client = match secret.transport {
        Transport::VerifiedTls => {
            let mut connector = connector().map_err(ConnectError::tls_setup)?;
            let tls = MakeTlsConnect::<TcpStream>::make_tls_connect(&mut connector, &secret.host)
                .map_err(|e| ConnectError {
                failure: ConnectFailure::Tls,
                detail: format!("the host name is not one TLS can verify: {e}"),
            })?;
            let stream = request_tls(stream).await?;
            // The request is answered: the driver starts the handshake at once.
            config
                .ssl_mode(SslMode::Require)
                .ssl_negotiation(SslNegotiation::Direct);
            let (client, connection) = config.connect_raw(stream, tls).await.map_err(describe)?;
            tokio::spawn(connection);
            client
        }
        Transport::Plaintext => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config.connect_raw(stream, NoTls).await.map_err(describe)?;
            tokio::spawn(connection);
            client
        }
    };
    Ok(client)
}

/// A TCP connection to one of the secret's host's addresses, in turn, each
/// attempt within [`CONNECT_TIMEOUT`]; the last failure when none answers.
async fn tcp(secret: &DbSecret) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for address in connect::resolve(&secret.host, secret.port).await? {
        let failure = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await
        {
            Ok(Ok(stream)) => {
                // Statements are small and wait for their answer.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => ConnectError::from_driver(&e, e.to_string()),
            Err(_) => ConnectError::timed_out(),
        };
        last = Some(failure);
    }
    Err(last.unwrap_or_else(ConnectError::timed_out))
}

/// PostgreSQL's SSLRequest: length 8, then the code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Asks the server for TLS, as the protocol does before any login: it
/// answers one byte, `S` to go on with a TLS handshake, `N` when it has no
/// TLS (a [`ConnectFailure::Tls`] failure, which no retry fixes).
async fn request_tls(mut stream: TcpStream) -> Result<TcpStream, ConnectError> {
    let io = |e: std::io::Error| ConnectError::from_driver(&e, format!("asking for TLS: {e}"));
    stream.write_all(&SSL_REQUEST).await.map_err(io)?;
    let mut answer = [0u8];
    stream.read_exact(&mut answer).await.map_err(io)?;
    match &answer {
        b"S" => Ok(stream),
        _ => Err(ConnectError::no_tls()),
    }
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

/// The attributes that make a role an administrator: a writer handed a role
/// with one of them (its own, or a role's it is a member of) could act on
/// other roles, replicate or bypass row security. The master never changes
/// the password of such a role for another secret.
const PRIVILEGED: [(&str, &str); 4] = [
    ("rolsuper", "SUPERUSER"),
    ("rolcreaterole", "CREATEROLE"),
    ("rolreplication", "REPLICATION"),
    ("rolbypassrls", "BYPASSRLS"),
];

/// Predefined roles that carry no power over other roles or data.
const HARMLESS_PREDEFINED: [&str; 1] = ["pg_database_owner"];

/// A role as a master sees it before changing its password.
#[derive(Debug, PartialEq, Eq)]
pub struct Role {
    /// Whether it may log in (`rolcanlogin`).
    pub can_login: bool,
    /// Why it is privileged, each naming the attribute or role; empty when
    /// it is not.
    pub privileged: Vec<String>,
    /// The roles that are members of it (directly), which inherit whatever
    /// it is given: a group role's members.
    pub members: Vec<String>,
}

/// The role `name` as the master (this session's user) sees it, `None` when
/// there is no such role. It is privileged when it has SUPERUSER,
/// CREATEROLE, REPLICATION or BYPASSRLS, or is a member (directly or through
/// other roles) of a role that has one, of a predefined `pg_` role, or of a
/// role whose privileges the master itself holds (on RDS, `rds_superuser`);
/// or when the master is a member of it.
pub async fn role(client: &Client, name: &str) -> Result<Option<Role>, TargetError> {
    let columns = PRIVILEGED.map(|(c, _)| format!("r.{c}")).join(", ");
    let Some(own) = client
        .query_opt(
            &format!("SELECT r.rolcanlogin, {columns} FROM pg_roles r WHERE r.rolname = $1"),
            &[&name],
        )
        .await
        .map_err(|e| failure(&e))?
    else {
        return Ok(None);
    };
    let attributes = |row: &tokio_postgres::Row, first: usize| -> Vec<bool> {
        (0..PRIVILEGED.len()).map(|i| row.get(first + i)).collect()
    };
    // Memberships, followed through the roles they grant. PostgreSQL 16
    // grants a CREATEROLE master ADMIN OPTION alone on each role it creates:
    // such a grant gives the master none of the role's privileges.
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| failure(&e))?
        .get(0);
    let gives = if version >= 160000 {
        " AND (m.inherit_option OR m.set_option)"
    } else {
        ""
    };
    let held = |who: &str, filter: &str| {
        format!(
            concat!(
                "WITH RECURSIVE held(oid) AS (",
                " SELECT m.roleid FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member",
                " WHERE u.rolname = {who}{filter}",
                " UNION SELECT m.roleid FROM pg_auth_members m",
                " JOIN held h ON m.member = h.oid{filter})",
                " SELECT r.rolname::text, {columns}",
                " FROM held JOIN pg_roles r ON r.oid = held.oid ORDER BY 1"
            ),
            who = who,
            filter = filter,
            columns = columns,
        )
    };
    let member_of: Vec<(String, Vec<bool>)> = client
        .query(&held("$1", ""), &[&name])
        .await
        .map_err(|e| failure(&e))?
        .iter()
        .map(|row| (row.get(0), attributes(row, 1)))
        .collect();
    let master_holds: Vec<String> = client
        .query(&held("session_user", gives), &[])
        .await
        .map_err(|e| failure(&e))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let members: Vec<String> = client
        .query(
            "SELECT u.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
             JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = $1 ORDER BY 1",
            &[&name],
        )
        .await
        .map_err(|e| failure(&e))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok(Some(Role {
        can_login: own.get(0),
        privileged: why_privileged(name, &attributes(&own, 1), &member_of, &master_holds),
        members,
    }))
}

/// Why the role `name`, with its own `attributes` (in [`PRIVILEGED`]'s
/// order), a member of `member_of` (each with its attributes), is privileged
/// for a master that holds the roles `master_holds`.
fn why_privileged(
    name: &str,
    attributes: &[bool],
    member_of: &[(String, Vec<bool>)],
    master_holds: &[String],
) -> Vec<String> {
    let named = |attributes: &[bool]| -> Vec<&str> {
        PRIVILEGED
            .iter()
            .zip(attributes)
            .filter(|(_, has)| **has)
            .map(|((_, attribute), _)| *attribute)
            .collect()
    };
    let mut why: Vec<String> = named(attributes)
        .into_iter()
        .map(|attribute| format!("it has {attribute}"))
        .collect();
    if master_holds.iter().any(|r| r == name) {
        why.push("the master is a member of it and holds its privileges".to_owned());
    }
    for (role, attributes) in member_of {
        let attributes = named(attributes);
        if !attributes.is_empty() {
            why.push(format!(
                "it is a member of role {role:?}, which has {}",
                attributes.join(", ")
            ));
        } else if master_holds.contains(role) {
            why.push(format!(
                "it is a member of role {role:?}, whose privileges the master holds"
            ));
        } else if role.starts_with("pg_") && !HARMLESS_PREDEFINED.contains(&role.as_str()) {
            why.push(format!("it is a member of the predefined role {role}"));
        }
    }
    why
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
/// itself only its password changes (never LOGIN). All of it in one
/// transaction: the role is never left half set up.
pub async fn set_alternate(
    client: &Client,
    base: &str,
    target: &str,
    password: &SecretString,
) -> Result<(), TargetError> {
    if target == base {
        return set_password(client, target, password).await;
    }
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
    if exists {
        script.push_str(&revoke_extras(client, base, target).await?);
    }
    let mut statement = if exists {
        format!("ALTER ROLE {role} WITH LOGIN PASSWORD '{verifier}';")
    } else {
        format!("CREATE ROLE {role} WITH LOGIN PASSWORD '{verifier}';")
    };
    statement.push_str(&format!(
        "GRANT {} TO {role}; ALTER ROLE {role} SET role TO {};",
        quote_ident(base),
        quote_literal(base)
    ));
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
            concat!(
                "WITH c AS (SELECT oid FROM pg_roles WHERE rolname = $1)",
                " SELECT DISTINCT CASE WHEN k.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,",
                " k.oid::regclass::text FROM pg_class k, aclexplode(k.relacl) a, c",
                " WHERE a.grantee = c.oid AND k.relowner <> c.oid",
                " UNION SELECT DISTINCT 'SCHEMA', quote_ident(n.nspname)",
                " FROM pg_namespace n, aclexplode(n.nspacl) a, c",
                " WHERE a.grantee = c.oid AND n.nspowner <> c.oid",
                " UNION SELECT DISTINCT 'DATABASE', quote_ident(d.datname)",
                " FROM pg_database d, aclexplode(d.datacl) a, c",
                " WHERE d.datname = current_database() AND a.grantee = c.oid AND d.datdba <> c.oid"
            ),
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
            concat!(
                "SELECT current_user::text,",
                " coalesce((SELECT array_agg(r.rolname::text ORDER BY r.rolname)",
                " FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid",
                " JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = session_user), '{}')"
            ),
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
        "42501" => concat!(
            "; the login lacks a privilege this needs (the master user needs CREATEROLE, ",
            "and ADMIN OPTION on the original role)"
        ),
        "42601" => "; the server does not accept this statement's syntax",
        "42710" => "; the role already exists: run the step again",
        _ if code.starts_with("40") => "; the transaction was rolled back: run the step again",
        _ => "",
    };
    format!("server error SQLSTATE {code}; {WITHHELD}{hint}")
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
    fn privileged_roles_say_why() {
        let none = [false; 4];
        let mut creates_roles = none;
        creates_roles[1] = true;
        let holds = ["ops".to_owned()];
        assert!(why_privileged("app", &none, &[], &holds).is_empty());
        assert_eq!(
            why_privileged("app", &creates_roles, &[], &[]),
            ["it has CREATEROLE"]
        );
        let member_of = [
            ("admins".to_owned(), vec![true, false, false, true]),
            ("ops".to_owned(), none.to_vec()),
            ("pg_read_all_data".to_owned(), none.to_vec()),
            ("pg_database_owner".to_owned(), none.to_vec()),
            ("readers".to_owned(), none.to_vec()),
        ];
        assert_eq!(
            why_privileged("app", &none, &member_of, &holds),
            [
                "it is a member of role \"admins\", which has SUPERUSER, BYPASSRLS",
                "it is a member of role \"ops\", whose privileges the master holds",
                "it is a member of the predefined role pg_read_all_data",
            ]
        );
        assert_eq!(
            why_privileged("ops", &none, &[], &holds),
            ["the master is a member of it and holds its privileges"]
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"back\slash'"), r"E'back\\slash'''");
    }
}
