//! The RESP conversations of a rotation: logging in (`AUTH`), reading a
//! user's password hashes (`ACL GETUSER`), changing them (`ACL SETUSER`) and
//! saving the ACL file (`ACL SAVE`). Error codes are kept, and the server's
//! text only for commands that carry no secret.

use std::collections::BTreeSet;

use rotor_core::{Cause, ExposeSecret, SecretString, TargetError};
use tracing::warn;

use crate::resp::{Connection, Reply};
use crate::secret::Endpoint;

/// Connects to the server at `to` and logs in as `user`: `Ok(None)` when the
/// server refuses the password. Public for `rotor doctor --connect`.
pub async fn login(
    to: &Endpoint,
    user: &str,
    password: &SecretString,
) -> Result<Option<Connection>, TargetError> {
    rotor_core::progress::waiting_for(|| {
        format!("Redis at {} (logging in as user {user:?})", to.address())
    });
    let mut conn = Connection::open(&to.host, to.port, to.transport).await?;
    let reply = conn
        .call(
            &[
                b"AUTH",
                user.as_bytes(),
                password.expose_secret().as_bytes(),
            ],
            true,
        )
        .await?;
    match reply {
        Reply::Status(_) => Ok(Some(conn)),
        Reply::Error(code, _) if code == "WRONGPASS" || code == "NOAUTH" => Ok(None),
        Reply::Error(code, _) => Err(TargetError::new(
            rejected_cause(&code),
            format!("AUTH as user {user:?} failed with {code}"),
        )),
        _ => Err(TargetError::new(
            Cause::Protocol,
            "AUTH answered neither OK nor an error",
        )),
    }
}

pub(crate) fn rejected_cause(code: &str) -> Cause {
    match code {
        "NOPERM" => Cause::Permission,
        "WRONGPASS" | "NOAUTH" => Cause::Auth,
        "LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" => Cause::Unavailable,
        "READONLY" => Cause::Rejected,
        _ => Cause::Rejected,
    }
}

/// The SHA-256 hashes of `user`'s passwords, or `None` if there is no such user.
pub(crate) async fn password_hashes(
    conn: &mut Connection,
    user: &str,
) -> Result<Option<BTreeSet<String>>, TargetError> {
    let reply = conn
        .call(&[b"ACL", b"GETUSER", user.as_bytes()], false)
        .await?;
    let items = match reply {
        Reply::Array(None) | Reply::Bulk(None) => return Ok(None),
        Reply::Array(Some(items)) => items,
        Reply::Error(code, message) => {
            return Err(TargetError::new(
                rejected_cause(&code),
                format!(
                    "ACL GETUSER {user:?} failed: {code} {message}; the managing user needs +acl"
                ),
            ));
        }
        _ => {
            return Err(TargetError::new(
                Cause::Protocol,
                "ACL GETUSER answered no list",
            ));
        }
    };
    let mut fields = items.iter();
    while let (Some(key), Some(value)) = (fields.next(), fields.next()) {
        if matches!(key, Reply::Bulk(Some(k)) if k == b"passwords") {
            let Reply::Array(Some(list)) = value else {
                return Err(TargetError::new(
                    Cause::Protocol,
                    "ACL GETUSER's passwords are not a list",
                ));
            };
            return Ok(Some(
                list.iter()
                    .filter_map(|h| match h {
                        Reply::Bulk(Some(h)) => String::from_utf8(h.clone()).ok(),
                        _ => None,
                    })
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
            ));
        }
    }
    Err(TargetError::new(
        Cause::Protocol,
        "ACL GETUSER listed no passwords field",
    ))
}

/// Runs `ACL SETUSER user rules...`, whose rules carry secrets.
pub(crate) async fn set_user(
    conn: &mut Connection,
    user: &str,
    rules: &[&[u8]],
    what: &str,
) -> Result<(), TargetError> {
    let mut args: Vec<&[u8]> = vec![b"ACL", b"SETUSER", user.as_bytes()];
    args.extend_from_slice(rules);
    match conn.call(&args, true).await? {
        Reply::Status(_) => Ok(()),
        Reply::Error(code, _) => Err(TargetError::new(
            rejected_cause(&code),
            format!(
                "ACL SETUSER {user:?} ({what}) failed with {code} (the server's message is not shown: it echoes the rule)"
            ),
        )),
        _ => Err(TargetError::new(
            Cause::Protocol,
            "ACL SETUSER answered neither OK nor an error",
        )),
    }
}

/// Persists the ACL where the server keeps it in an ACL file (`ACL SAVE`).
pub(crate) async fn persist(conn: &mut Connection) -> Result<(), TargetError> {
    let aclfile = match conn.call(&[b"CONFIG", b"GET", b"aclfile"], false).await? {
        Reply::Array(Some(items)) => match items.get(1) {
            Some(Reply::Bulk(Some(path))) => Some(!path.is_empty()),
            _ => Some(false),
        },
        // The managing user may not read the configuration: try to save.
        Reply::Error(_, _) => None,
        _ => {
            return Err(TargetError::new(
                Cause::Protocol,
                "CONFIG GET answered no list",
            ));
        }
    };
    if aclfile == Some(false) {
        return Ok(());
    }
    match conn.call(&[b"ACL", b"SAVE"], false).await? {
        Reply::Status(_) => Ok(()),
        Reply::Error(code, message) if aclfile == Some(true) => Err(TargetError::new(
            rejected_cause(&code),
            format!(
                "ACL SAVE failed: {code} {message}. The change is live but would be lost when the server restarts: make the ACL file writable by the server (and give the managing user +acl|save), then retry"
            ),
        )),
        Reply::Error(code, _) => {
            warn!(code = %code, "ACL SAVE failed and the managing user cannot read CONFIG aclfile; if the server uses an ACL file, the change would be lost at restart");
            Ok(())
        }
        _ => Err(TargetError::new(
            Cause::Protocol,
            "ACL SAVE answered neither OK nor an error",
        )),
    }
}
