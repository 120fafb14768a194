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
use rotor_core::value::parse_version;
use rotor_core::{
    Cause, Error, ExposeSecret, SecretStore, SecretString, StepContext, TargetError, TargetKind,
};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::Config;
use crate::acl::{login, password_hashes, persist, rejected_cause, set_user};
use crate::resp::{Connection, Reply};
use crate::secret::{RedisSecret, UserSecret};

fn at(s: &RedisSecret, e: TargetError) -> Error {
    e.at(TargetKind::Cache, format!("Redis at {}", s.address()))
}

fn refused(s: &RedisSecret, cause: Cause, problem: String) -> Error {
    at(s, TargetError::new(cause, problem))
}

fn sha256_hex(password: &SecretString) -> String {
    hex::encode(Sha256::digest(password.expose_secret().as_bytes()))
}

fn waiting(s: &RedisSecret, doing: &str) {
    rotor_core::progress::waiting_for(|| {
        format!("Redis at {} ({doing} user {:?})", s.address(), s.username)
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
    let named = user.masterarn.as_deref();
    let deployer = config.master_secret.as_deref();
    let Some(admin) = admin::read(ctx.store(), ctx.secret, named, deployer).await? else {
        return own_login(user, own).await;
    };
    let linked = &admin.secret;
    let master: RedisSecret = parse_version(&linked.arn, AWSCURRENT, &linked.value)?;
    admin.require_same_endpoint(arn, &master.server(), &user.server())?;
    admin.require_manages(arn, &master.username, &user.username, Names::CaseSensitive)?;
    // The admin logs in on its own secret's port and transport: whoever
    // writes the user's secret cannot send the admin password in plaintext.
    let conn = login(&master.endpoint(), &master.username, &master.password)
        .await
        .map_err(|e| at(&master, e))?;
    if let Some(conn) = conn {
        return Ok(conn);
    }
    let problem = format!(
        "refused the admin credentials of user {:?} from {}; nothing was changed. Fix that secret's password, then rotate again",
        master.username, linked.arn
    );
    Err(refused(&master, Cause::Auth, problem))
}

/// The user logged in as itself, with the first of `own` that works.
async fn own_login(user: &RedisSecret, own: &[&SecretString]) -> Result<Connection, Error> {
    for password in own {
        let conn = login(&user.endpoint(), &user.username, password)
            .await
            .map_err(|e| at(user, e))?;
        if let Some(conn) = conn {
            return Ok(conn);
        }
    }
    let problem = format!(
        "refused the pending, current and previous passwords of user {:?}; set the user's password to the AWSCURRENT value (or name an admin secret in masterarn), then rotate again",
        user.username
    );
    Err(refused(user, Cause::Auth, problem))
}

/// `previous` (AWSPREVIOUS), if it names the same user on the same host as
/// `current`: such a version's password counts as the user's (to keep in
/// finishSecret, and as one the user may already hold in setSecret). The
/// port may differ (an operator moved the secret from the plaintext to the
/// TLS port between rotations): this grants nothing, since the admin changes
/// a user only once its own `ACL GETUSER` shows a hash of one of these
/// passwords, and removing a previous password early would break its
/// clients' grace period.
fn same_user(previous: Option<UserSecret>, current: &RedisSecret) -> Option<RedisSecret> {
    match previous? {
        UserSecret::SelfManaged(p)
            if p.username == current.username && admin::same_host(&p.host, &current.host) =>
        {
            Some(p)
        }
        _ => None,
    }
}

/// The password hashes of `s`'s user, as the managing connection reads them;
/// `missing` completes the error when there is no such user.
async fn hashes(
    conn: &mut Connection,
    s: &RedisSecret,
    missing: &str,
) -> Result<BTreeSet<String>, Error> {
    let found = password_hashes(conn, &s.username)
        .await
        .map_err(|e| at(s, e))?;
    found.ok_or_else(|| {
        let problem = format!("has no ACL user {:?}{missing}", s.username);
        refused(s, Cause::NotFound, problem)
    })
}

/// setSecret for a self-managed user.
pub(crate) async fn set<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    current: RedisSecret,
) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    let pending: RedisSecret = ctx.pending_as().await?;
    // AWSPREVIOUS only widens the proof below: without it, the current and
    // pending passwords still show which user is this secret's.
    let previous = match ctx.previous_as::<UserSecret>().await {
        Ok(previous) => same_user(previous, &current),
        Err(Error::InvalidSecretValue { problem, .. }) => {
            warn!(secret = %arn, %problem, "the AWSPREVIOUS value does not parse; setSecret does without its password");
            None
        }
        Err(other) => return Err(other),
    };
    let mut own = vec![&current.password];
    own.extend(previous.as_ref().map(|p| &p.password));
    own.push(&pending.password);
    let mut conn = manager(ctx, config, &current, &own).await?;
    waiting(&pending, "adding a password to");
    let missing = "; create it (ACL SETUSER) with the AWSCURRENT password, then rotate again";
    let hashes = hashes(&mut conn, &pending, missing).await?;
    // Whoever writes this secret is not the admin's owner: a password is
    // added only to a user that already holds one of the secret's own
    // (AWSCURRENT or AWSPREVIOUS; AWSPENDING once this step has run), as the
    // managing connection reads them. Naming a user whose password the
    // writer does not know gains nothing.
    if !own.iter().any(|p| hashes.contains(&sha256_hex(p))) {
        let problem = format!(
            "user {:?} holds none of this secret's passwords (AWSCURRENT, AWSPREVIOUS, AWSPENDING), so no password was added: the function adds a password only to a user that already holds one of its secret's. Set the user's password to the AWSCURRENT value (ACL SETUSER), then rotate again",
            pending.username
        );
        return Err(refused(&pending, Cause::Mismatch, problem));
    }
    if hashes.contains(&sha256_hex(&pending.password)) {
        info!(secret = %arn, user = %pending.username, "the user already holds the pending password");
    } else {
        let mut rule = format!(">{}", pending.password.expose_secret()).into_bytes();
        let what = "adding the pending password";
        let result = set_user(&mut conn, &pending.username, &[&rule], what).await;
        zeroize::Zeroize::zeroize(&mut rule);
        result.map_err(|e| at(&pending, e))?;
        info!(secret = %arn, user = %pending.username, "pending password added; the current one still works");
    }
    persist(&mut conn).await.map_err(|e| at(&pending, e))
}

/// testSecret for a self-managed user.
pub(crate) async fn test(pending: RedisSecret) -> Result<(), Error> {
    waiting(&pending, "testing the login of");
    let conn = login(&pending.endpoint(), &pending.username, &pending.password)
        .await
        .map_err(|e| at(&pending, e))?;
    let Some(mut conn) = conn else {
        let problem = format!(
            "refused the pending password of user {:?}; run setSecret again",
            pending.username
        );
        return Err(refused(&pending, Cause::Auth, problem));
    };
    let pong = conn.call(&[b"PING"], false).await;
    match pong.map_err(|e| at(&pending, e))? {
        Reply::Status(s) if s == "PONG" => Ok(()),
        Reply::Error(code, message) => {
            let problem = format!(
                "PING as user {:?} failed: {code} {message}; the user needs +ping (or +@connection)",
                pending.username
            );
            Err(refused(&pending, rejected_cause(&code), problem))
        }
        _ => {
            let problem = "PING did not answer PONG".to_owned();
            Err(refused(&pending, Cause::Protocol, problem))
        }
    }
}

/// AWSPREVIOUS as finishSecret keeps it (`REVOKE_PREVIOUS=next-rotation`):
/// `None` when the secret has none, or one of another user. A value that
/// does not parse fails the step instead of counting as none: that would
/// remove the password its clients still use.
async fn kept_previous<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    current: &RedisSecret,
) -> Result<Option<RedisSecret>, Error> {
    match ctx.read_label_as::<UserSecret>(AWSPREVIOUS).await {
        Ok(previous) => Ok(same_user(previous, current)),
        Err(unparsable @ Error::InvalidSecretValue { .. }) => Err(unparsable.map_problem(|problem| {
            format!(
                "{problem}; no password was removed: REVOKE_PREVIOUS=next-rotation keeps AWSPREVIOUS's password, and the function cannot tell which one that is. The rotation itself is complete (AWSCURRENT holds the new password). Restore that version's value and run finishSecret again, or leave it: the next rotation makes the current value AWSPREVIOUS and removes the old passwords then"
            )
        })),
        Err(other) => Err(other),
    }
}

/// finishSecret's tidying for a self-managed user, after the labels moved.
pub(crate) async fn finish<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    current: RedisSecret,
) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    let previous = if config.revoke_at_finish {
        None
    } else {
        kept_previous(ctx, &current).await?
    };
    let mut keep = BTreeSet::from([sha256_hex(&current.password)]);
    keep.extend(previous.as_ref().map(|p| sha256_hex(&p.password)));
    let mut own = vec![&current.password];
    own.extend(previous.as_ref().map(|p| &p.password));
    let mut conn = manager(ctx, config, &current, &own).await?;
    waiting(&current, "removing old passwords of");
    let hashes = hashes(&mut conn, &current, " any more; nothing to tidy").await?;
    if !hashes.contains(&sha256_hex(&current.password)) {
        // Never remove a password while the current one is not in place.
        let problem = format!(
            "user {:?} does not hold the AWSCURRENT password, so no password was removed; run setSecret for the current version, or set the user's password to AWSCURRENT",
            current.username
        );
        return Err(refused(&current, Cause::Mismatch, problem));
    }
    let stale: Vec<Vec<u8>> = hashes
        .difference(&keep)
        .map(|h| format!("!{h}").into_bytes())
        .collect();
    if stale.is_empty() {
        info!(secret = %arn, user = %current.username, "no old password to remove");
    } else {
        let rules: Vec<&[u8]> = stale.iter().map(Vec::as_slice).collect();
        let what = "removing old passwords";
        set_user(&mut conn, &current.username, &rules, what)
            .await
            .map_err(|e| at(&current, e))?;
        info!(secret = %arn, user = %current.username, removed = stale.len(), "old passwords removed");
    }
    persist(&mut conn).await.map_err(|e| at(&current, e))
}
