//! Single user: one user, whose password changes. The user changes its own
//! password when it can log in (with the pending password of an attempt
//! that got that far, else the current one, else the previous one) and may;
//! otherwise the master, when the secret has one, changes that user's
//! password and nothing else, if it may act on that user at all
//! ([`Master::admit`]).
//!
//! A MySQL or MariaDB user name can have several accounts (`app@10.0.0.%`,
//! `app@localhost`): all of them get the password. The user's own
//! `ALTER USER USER()` changes only the account it logged in as, so when the
//! name has several, the user changes the others itself if it may, else the
//! master changes them all; a login with the pending password proves the
//! work done only when the name has one account.

use rotor_core::admin::ADMIN_VAR;
use rotor_core::{Cause, Error, SecretStore, TargetError, TargetKind};
use tracing::{info, warn};

use super::Rotation;
use crate::master::Act;
use crate::mysql;
use crate::secret::DbSecret;
use crate::session::{Change, Session, failed, login, refused, target};

/// Which stored password logged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Login {
    /// The pending one: an earlier attempt changed the password.
    Pending,
    /// AWSCURRENT's, or AWSPREVIOUS's (a rotation that changed the
    /// database but did not finish).
    Stored,
}

/// setSecret: gives the pending user (AWSCURRENT's) the pending password.
pub(crate) async fn set_secret<S: SecretStore>(rotation: &Rotation<'_, S>) -> Result<(), Error> {
    let (arn, pending) = (rotation.arn(), rotation.pending);
    let Some((session, with)) = own_login(rotation).await? else {
        if !rotation.has_master() {
            let problem = format!(
                concat!(
                    "refused the pending, current and previous passwords of user {:?}; set the ",
                    "user's password to the AWSCURRENT value, or give the secret a masterarn, ",
                    "then rotate again"
                ),
                pending.username
            );
            return Err(refused(pending, problem));
        }
        info!(secret = %arn, user = %pending.username, "the user's passwords are refused; the master changes it");
        return through_master(rotation).await;
    };
    match session {
        Session::MySql(session) => mysql_accounts(rotation, session, with).await,
        session if with == Login::Pending => {
            session.close().await;
            info!(secret = %arn, user = %pending.username, "the pending password already works");
            Ok(())
        }
        session => own_change(rotation, session).await,
    }
}

/// Logs in as the user with the pending password, else the current one, else
/// the previous one (only if it names the same user at the same server).
async fn own_login<S: SecretStore>(
    rotation: &Rotation<'_, S>,
) -> Result<Option<(Session, Login)>, Error> {
    let pending = rotation.pending;
    if let Some(session) = login(pending).await? {
        return Ok(Some((session, Login::Pending)));
    }
    if let Some(session) = login(rotation.current).await? {
        return Ok(Some((session, Login::Stored)));
    }
    // AWSPREVIOUS is the last resort before the master. A value that does
    // not parse cannot log in, and failing the step on it would keep the
    // master from changing the password: it is not tried, and the log says
    // why (the error names the label and the field, never a value).
    let previous = match rotation.ctx.previous_as::<DbSecret>().await {
        Ok(Some(previous)) => previous,
        Ok(None) => return Ok(None),
        Err(broken) => {
            warn!(secret = %rotation.arn(), error = %broken, "AWSPREVIOUS is not tried");
            return Ok(None);
        }
    };
    if previous.username != pending.username || !previous.endpoint().is(&pending.endpoint()) {
        return Ok(None);
    }
    Ok(login(&previous).await?.map(|s| (s, Login::Stored)))
}

/// The user changes its own password through `session`. A user that may not
/// (an expired password, MySQL's `password_require_current`, a restricted
/// role) has it changed by the master, when the secret has one.
async fn own_change<S: SecretStore>(
    rotation: &Rotation<'_, S>,
    session: Session,
) -> Result<(), Error> {
    let (arn, pending) = (rotation.arn(), rotation.pending);
    match session.apply(Change::OwnPassword, pending).await {
        Ok(()) => {
            info!(secret = %arn, user = %pending.username, "password changed");
            Ok(())
        }
        Err(e) if !rotation.has_master() || e.is_retryable() => Err(e),
        Err(e) => {
            warn!(secret = %arn, user = %pending.username, error = %e, "the user cannot change its own password; the master changes it");
            through_master(rotation).await
        }
    }
}

/// The master changes the password of the pending user, and nothing else,
/// once it has agreed to act on that user.
async fn through_master<S: SecretStore>(rotation: &Rotation<'_, S>) -> Result<(), Error> {
    let pending = rotation.pending;
    let mut master = rotation.master().await?;
    if let Err(refusal) = master.admit(&pending.username, Act::SetPassword).await {
        master.close().await;
        return Err(refusal);
    }
    master.apply(Change::PasswordAsMaster, pending).await?;
    info!(secret = %rotation.arn(), user = %pending.username, "password changed by the master");
    Ok(())
}

/// MySQL and MariaDB: the user is logged in (`with` says which password).
/// When its name has one account, it changes its own password as on
/// PostgreSQL. When it has several, every one of them must get the password.
async fn mysql_accounts<S: SecretStore>(
    rotation: &Rotation<'_, S>,
    mut session: mysql::Session,
    with: Login,
) -> Result<(), Error> {
    let (arn, pending) = (rotation.arn(), rotation.pending);
    let user = pending.username.as_str();
    let visible = match session.visible_hosts(user).await {
        Ok(visible) => visible,
        Err(e) => {
            session.close().await;
            return Err(failed(
                pending,
                &format!("listing the accounts of {user:?}"),
                e,
            ));
        }
    };
    match visible {
        // The user sees its accounts: it changes the others, if it may,
        // then its own.
        Some(hosts) if hosts.len() > 1 => {
            let changed = session
                .set_password_of_every_account(user, &hosts, &pending.password)
                .await;
            session.close().await;
            match changed {
                Ok(()) => {
                    info!(secret = %arn, user, accounts = hosts.len(), "password changed on every account");
                    Ok(())
                }
                Err(e) if e.cause == Cause::Permission && rotation.has_master() => {
                    warn!(secret = %arn, user, accounts = hosts.len(), "the user may not change its other accounts; the master changes them all");
                    through_master(rotation).await
                }
                Err(e) if e.cause == Cause::Permission => {
                    let refusal =
                        TargetError::new(Cause::Permission, several_accounts(user, &hosts));
                    Err(refusal.at(TargetKind::Database, target(pending)))
                }
                Err(e) => {
                    let what = format!("changing the password of every account of user {user:?}");
                    Err(failed(pending, &what, e))
                }
            }
        }
        Some(_) => finish_own(rotation, session, with).await,
        // The user cannot see whether its name has other accounts: the
        // master, when there is one, counts them.
        None if rotation.has_master() => match count_through_master(rotation, user).await {
            Ok(n) if n > 1 => {
                session.close().await;
                info!(secret = %arn, user, accounts = n, "the user has several accounts; the master changes them all");
                through_master(rotation).await
            }
            Ok(_) => finish_own(rotation, session, with).await,
            Err(e) if e.is_retryable() => {
                session.close().await;
                Err(e)
            }
            Err(e) => {
                warn!(secret = %arn, user, error = %e, "the master cannot count the user's accounts; accounts of the same name on other hosts, if any, keep their password");
                finish_own(rotation, session, with).await
            }
        },
        None => {
            info!(secret = %arn, user, "the user may not read mysql.user: accounts of the same name on other hosts, if any, are not seen and keep their password (a masterarn lets the master change them all)");
            finish_own(rotation, session, with).await
        }
    }
}

/// The user's name has one account (as far as anyone can see): done when
/// the pending password logged in, else the user changes its own password.
async fn finish_own<S: SecretStore>(
    rotation: &Rotation<'_, S>,
    session: mysql::Session,
    with: Login,
) -> Result<(), Error> {
    if with == Login::Pending {
        session.close().await;
        info!(secret = %rotation.arn(), user = %rotation.pending.username, "the pending password already works");
        return Ok(());
    }
    own_change(rotation, Session::MySql(session)).await
}

/// How many accounts the user's name has, as the master sees them.
async fn count_through_master<S: SecretStore>(
    rotation: &Rotation<'_, S>,
    user: &str,
) -> Result<usize, Error> {
    let mut master = rotation.master().await?;
    let count = master.accounts(user).await;
    master.close().await;
    count
}

/// The refusal for a user that sees several accounts of its name and may
/// change only its own, with no master to change the others.
fn several_accounts(user: &str, hosts: &[String]) -> String {
    let accounts: Vec<String> = hosts.iter().map(|h| format!("'{user}'@'{h}'")).collect();
    format!(
        concat!(
            "user {:?} has {} accounts ({}) and may change only the one it logs in as, so the ",
            "others would keep the old password; give the secret a masterarn (or set {}) whose ",
            "master changes them all, or drop the accounts it does not need. Nothing was changed"
        ),
        user,
        hosts.len(),
        accounts.join(", "),
        ADMIN_VAR
    )
}
