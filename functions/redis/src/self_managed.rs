//! Self-managed Redis servers: the function speaks RESP to the
//! server itself (`AUTH`, `ACL GETUSER`, `ACL SETUSER`, `ACL SAVE`).
//! * setSecret adds the new password (`ACL SETUSER user >new`), keeping the old;
//! * testSecret logs in as the user with the new password on a fresh
//!   connection (`AUTH`, `PING`);
//! * finishSecret, after the labels moved, removes every password but the
//!   current and previous ones (by their SHA-256, as `ACL GETUSER` lists them),
//!   or every one but the current with `REVOKE_PREVIOUS=at-finish`.
//!
//! Changes are made by the admin secret that `masterarn` (or the deployer's
//! `MASTER_SECRET_ARN`) names, read only when it agrees to serve the secret
//! (rotor_core::linked); without one, by the user itself, which then needs
//! `+acl` (see the README for why that is rarely what you want).
//!
//! Whoever writes the user's secret is not the admin's owner, so the admin
//! acts only under the core's rules (rotor_core::admin): on its own server
//! (host *and* port of the user's secret equal the admin's; the admin logs in
//! with its own port and transport), never on its own user, only on users
//! its `rotor:manages` tag allows, and only on a user that already holds one
//! of the secret's passwords, as the admin's own `ACL GETUSER` lists their
//! hashes. Nothing is proven by a login at an endpoint the writer chose.

use std::collections::BTreeSet;

use rotor_core::admin::{self, Names};
use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::store::VersionSelector;
use rotor_core::{
    Cause, Error, ExposeSecret, SecretStore, SecretString, StepContext, TargetError, TargetKind,
};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::Config;
use crate::acl::{login, password_hashes, persist, rejected_cause, set_user};
use crate::resp::{Connection, Reply};
use crate::secret::RedisSecret;

fn parse(secret: &str, label: &str, value: &SecretString) -> Result<RedisSecret, Error> {
    RedisSecret::parse(value).map_err(|problem| Error::InvalidSecretValue {
        secret: secret.to_owned(),
        label: label.to_owned(),
        problem: problem.0,
    })
}

fn target(s: &RedisSecret) -> String {
    format!("Redis at {}", s.address())
}

fn at(s: &RedisSecret, e: TargetError) -> Error {
    e.at(TargetKind::Cache, target(s))
}

fn sha256_hex(password: &SecretString) -> String {
    hex::encode(Sha256::digest(password.expose_secret().as_bytes()))
}

fn waiting(s: &RedisSecret, doing: &str, user: &str) {
    rotor_core::progress::waiting_for(|| {
        format!("Redis at {} ({doing} user {user:?})", s.address())
    });
}

/// A connection logged in as whoever manages `user`'s ACL: the admin secret
/// if one is named, else the user itself with the first of `own` that works
/// (its own credentials at its own endpoint). The admin is used only under
/// the core's rules: the same server as the user's secret (host and port),
/// and a user it may manage.
async fn manager<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    user: &RedisSecret,
    own: &[&SecretString],
) -> Result<Connection, Error> {
    let arn = ctx.secret_arn();
    let admin = admin::read(
        ctx.store(),
        ctx.secret,
        user.masterarn.as_deref(),
        config.master_secret.as_deref(),
    )
    .await?;
    let Some(admin) = admin else {
        for password in own {
            if let Some(conn) = login(&user.endpoint(), &user.username, password)
                .await
                .map_err(|e| at(user, e))?
            {
                return Ok(conn);
            }
        }
        return Err(at(
            user,
            TargetError::new(
                Cause::Auth,
                format!(
                    "refused the pending, current and previous passwords of user {:?}; set the user's password to the AWSCURRENT value (or name an admin secret in masterarn), then rotate again",
                    user.username
                ),
            ),
        ));
    };
    let linked = &admin.secret;
    let master = parse(&linked.arn, AWSCURRENT, &linked.value)?;
    admin.require_same_endpoint(arn, &master.server(), &user.server())?;
    admin.require_manages(arn, &master.username, &user.username, Names::CaseSensitive)?;
    // The admin logs in on its own secret's port and transport: whoever
    // writes the user's secret cannot send the admin password in plaintext.
    match login(&master.endpoint(), &master.username, &master.password)
        .await
        .map_err(|e| at(&master, e))?
    {
        Some(conn) => Ok(conn),
        None => Err(at(
            &master,
            TargetError::new(
                Cause::Auth,
                format!(
                    "refused the admin credentials of user {:?} from {}; nothing was changed. Fix that secret's password, then rotate again",
                    master.username, linked.arn
                ),
            ),
        )),
    }
}

/// `value` parsed, if it names the same user on the same host as `current`:
/// such a version's password counts as the user's (to keep in finishSecret,
/// and as one the user may already hold in setSecret). The port may differ
/// (an operator moved the secret from the plaintext to the TLS port between
/// rotations): this grants nothing, since the admin changes a user only once
/// its own `ACL GETUSER` shows a hash of one of these passwords, and removing
/// a previous password early would break its clients' grace period.
fn same_user(value: &SecretString, current: &RedisSecret) -> Option<RedisSecret> {
    RedisSecret::parse(value)
        .ok()
        .filter(|p| p.username == current.username && admin::same_host(&p.host, &current.host))
}

/// setSecret for a self-managed user.
pub(crate) async fn set<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
    let current = parse(arn, AWSCURRENT, &ctx.current().await?.value)?;
    let previous = match ctx.previous().await? {
        Some(p) => same_user(&p.value, &current),
        None => None,
    };
    let mut own = vec![&current.password];
    if let Some(p) = &previous {
        own.push(&p.password);
    }
    own.push(&pending.password);
    let mut conn = manager(ctx, config, &current, &own).await?;
    waiting(&pending, "adding a password to", &pending.username);
    let Some(hashes) = password_hashes(&mut conn, &pending.username)
        .await
        .map_err(|e| at(&pending, e))?
    else {
        return Err(at(
            &pending,
            TargetError::new(
                Cause::NotFound,
                format!(
                    "has no ACL user {:?}; create it (ACL SETUSER) with the AWSCURRENT password, then rotate again",
                    pending.username
                ),
            ),
        ));
    };
    // Whoever writes this secret is not the admin's owner: a password is
    // added only to a user that already holds one of the secret's own
    // (AWSCURRENT or AWSPREVIOUS; AWSPENDING once this step has run), as the
    // managing connection reads them. Naming a user whose password the
    // writer does not know gains nothing.
    if !own.iter().any(|p| hashes.contains(&sha256_hex(p))) {
        return Err(at(
            &pending,
            TargetError::new(
                Cause::Mismatch,
                format!(
                    "user {:?} holds none of this secret's passwords (AWSCURRENT, AWSPREVIOUS, AWSPENDING), so no password was added: the function adds a password only to a user that already holds one of its secret's. Set the user's password to the AWSCURRENT value (ACL SETUSER), then rotate again",
                    pending.username
                ),
            ),
        ));
    }
    if hashes.contains(&sha256_hex(&pending.password)) {
        info!(secret = %arn, user = %pending.username, "the user already holds the pending password");
    } else {
        let mut rule = format!(">{}", pending.password.expose_secret()).into_bytes();
        let result = set_user(
            &mut conn,
            &pending.username,
            &[&rule],
            "adding the pending password",
        )
        .await;
        zeroize::Zeroize::zeroize(&mut rule);
        result.map_err(|e| at(&pending, e))?;
        info!(secret = %arn, user = %pending.username, "pending password added; the current one still works");
    }
    persist(&mut conn).await.map_err(|e| at(&pending, e))?;
    Ok(())
}

/// testSecret for a self-managed user.
pub(crate) async fn test<S: SecretStore>(ctx: &StepContext<'_, S>) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
    waiting(&pending, "testing the login of", &pending.username);
    let Some(mut conn) = login(&pending.endpoint(), &pending.username, &pending.password)
        .await
        .map_err(|e| at(&pending, e))?
    else {
        return Err(at(
            &pending,
            TargetError::new(
                Cause::Auth,
                format!(
                    "refused the pending password of user {:?}; run setSecret again",
                    pending.username
                ),
            ),
        ));
    };
    match conn
        .call(&[b"PING"], false)
        .await
        .map_err(|e| at(&pending, e))?
    {
        Reply::Status(s) if s == "PONG" => Ok(()),
        Reply::Error(code, message) => Err(at(
            &pending,
            TargetError::new(
                rejected_cause(&code),
                format!(
                    "PING as user {:?} failed: {code} {message}; the user needs +ping (or +@connection)",
                    pending.username
                ),
            ),
        )),
        _ => Err(at(
            &pending,
            TargetError::new(Cause::Protocol, "PING did not answer PONG"),
        )),
    }
}

/// finishSecret's tidying for a self-managed user, after the labels moved.
pub(crate) async fn finish<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    current: &SecretString,
) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    let current = parse(arn, AWSCURRENT, current)?;
    let previous = ctx
        .store()
        .get_value(arn, VersionSelector::Label(AWSPREVIOUS))
        .await
        .map_err(|source| Error::Store {
            secret: arn.to_owned(),
            operation: "GetSecretValue",
            source,
        })?
        .and_then(|p| same_user(&p.value, &current));
    let mut keep = BTreeSet::from([sha256_hex(&current.password)]);
    let mut own = vec![&current.password];
    if let Some(p) = &previous {
        own.push(&p.password);
        if !config.revoke_at_finish {
            keep.insert(sha256_hex(&p.password));
        }
    }
    let mut conn = manager(ctx, config, &current, &own).await?;
    waiting(&current, "removing old passwords of", &current.username);
    let Some(hashes) = password_hashes(&mut conn, &current.username)
        .await
        .map_err(|e| at(&current, e))?
    else {
        return Err(at(
            &current,
            TargetError::new(
                Cause::NotFound,
                format!(
                    "has no ACL user {:?} any more; nothing to tidy",
                    current.username
                ),
            ),
        ));
    };
    if !hashes.contains(&sha256_hex(&current.password)) {
        // Never remove a password while the current one is not in place.
        return Err(at(
            &current,
            TargetError::new(
                Cause::Mismatch,
                format!(
                    "user {:?} does not hold the AWSCURRENT password, so no password was removed; run setSecret for the current version, or set the user's password to AWSCURRENT",
                    current.username
                ),
            ),
        ));
    }
    let stale: Vec<Vec<u8>> = hashes
        .difference(&keep)
        .map(|h| format!("!{h}").into_bytes())
        .collect();
    if stale.is_empty() {
        info!(secret = %arn, user = %current.username, "no old password to remove");
    } else {
        let rules: Vec<&[u8]> = stale.iter().map(Vec::as_slice).collect();
        set_user(
            &mut conn,
            &current.username,
            &rules,
            "removing old passwords",
        )
        .await
        .map_err(|e| at(&current, e))?;
        info!(secret = %arn, user = %current.username, removed = stale.len(), "old passwords removed");
    }
    persist(&mut conn).await.map_err(|e| at(&current, e))?;
    Ok(())
}
