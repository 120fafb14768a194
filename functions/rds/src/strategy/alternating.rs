//! Alternating users: `u` and `u_clone` take turns. The master, once it has
//! admitted both ([`Master::admit`]: the original as a user whose password it
//! may set, the alternate as a name it manages and, when it exists, neither a
//! privileged account nor, on PostgreSQL, a role with members), brings the
//! user that is not current to exactly the original user's state on every
//! attempt, and testSecret checks that the clone acts with the original's
//! access and no more.
//!
//! [`Master::admit`]: crate::master::Master

use rotor_core::{Error, SecretStore, TargetError, TargetKind};
use tracing::info;

use super::Rotation;
use crate::master::Act;
use crate::postgres;
use crate::secret::{DbSecret, base_username};
use crate::session::{Change, Session, failed, login, refused, target};

/// setSecret: the master brings the pending user, the other of the pair
/// ([`super::Strategy::pending_user`]), to the state of the current one's,
/// with the pending password.
pub(crate) async fn set_secret<S: SecretStore>(rotation: &Rotation<'_, S>) -> Result<(), Error> {
    let (current, pending) = (rotation.current, rotation.pending);
    // The master first: it checks that this secret's server is its own
    // (host and port), so that the login below with the current credentials
    // proves something, and whom it would act on, before anything changes.
    let mut master = rotation.master().await?;
    let base = base_username(&current.username);
    // Whichever of the pair is overwritten passes the privileged-account
    // checks: the original (pending when AWSCURRENT names the clone) as a
    // user whose password the master sets, the clone as an alternate.
    let admitted = match master.admit(base, Act::SetPassword).await {
        Ok(()) if pending.username == base => Ok(()),
        Ok(()) => master.admit(&pending.username, Act::Alternate).await,
        Err(refusal) => Err(refusal),
    };
    if let Err(refusal) = admitted {
        master.close().await;
        return Err(refusal);
    }
    match login(current).await {
        Ok(Some(session)) => session.close().await,
        refusal => {
            master.close().await;
            return Err(refusal.err().unwrap_or_else(|| {
                refused(
                    current,
                    format!(
                        "refused the AWSCURRENT credentials of user {:?}; fix them before rotating",
                        current.username
                    ),
                )
            }));
        }
    }
    let change = Change::Alternate {
        current: &current.username,
    };
    master.apply(change, pending).await?;
    info!(secret = %rotation.arn(), user = %pending.username, "alternate user set");
    Ok(())
}

/// testSecret: checks that the logged-in clone `pending` has the access of
/// the original user: MySQL and MariaDB, the same `SHOW GRANTS` once the user
/// names are set aside (the original logs in with AWSCURRENT to show its
/// own); PostgreSQL, membership of the original role only, and acting as it.
pub(crate) async fn same_access(
    session: &mut Session,
    pending: &DbSecret,
    current: &DbSecret,
) -> Result<(), Error> {
    let base = base_username(&pending.username);
    let fix = "run setSecret again (rotating again re-synchronises the alternate user)";
    let mismatch = |problem: String| {
        TargetError::new(
            rotor_core::Cause::Mismatch,
            format!("testSecret: {problem}; {fix}"),
        )
        .at(TargetKind::Database, target(pending))
    };
    match session {
        Session::Postgres(client) => {
            let (acts_as, member_of) = postgres::identity(client)
                .await
                .map_err(|detail| failed(pending, "reading the pending user's roles", detail))?;
            let user = &pending.username;
            if acts_as != base {
                return Err(mismatch(format!(
                    concat!(
                        "user {:?} acts as {:?} after login, not as the original user {:?} ",
                        "(ALTER ROLE ... SET role)"
                    ),
                    user, acts_as, base
                )));
            }
            if member_of != [base] {
                return Err(mismatch(format!(
                    "user {user:?} is a member of {member_of:?}; {} [{base:?}]",
                    "it must be a member of exactly"
                )));
            }
            Ok(())
        }
        Session::MySql(clone) => {
            if current.username != base {
                return Err(mismatch(format!(
                    "AWSCURRENT names user {:?}, not the original user {base:?} of {:?}",
                    current.username, pending.username
                )));
            }
            let have = clone
                .own_grants(&pending.username)
                .await
                .map_err(|detail| failed(pending, "SHOW GRANTS as the pending user", detail))?;
            let Some(Session::MySql(mut original)) = login(current).await? else {
                let problem = format!(
                    "refused the AWSCURRENT credentials of user {:?}, {}",
                    current.username, "whose privileges the pending user must match"
                );
                return Err(refused(current, problem));
            };
            let want = original.own_grants(base).await;
            original.close().await;
            let want =
                want.map_err(|detail| failed(current, "SHOW GRANTS as the original user", detail))?;
            if have == want {
                return Ok(());
            }
            let missing: Vec<&String> = want.difference(&have).collect();
            let extra: Vec<&String> = have.difference(&want).collect();
            Err(mismatch(format!(
                concat!(
                    "user {:?} lacks {:?} and has {:?} beyond the original user {:?} ",
                    "(SHOW GRANTS, user names as ?)"
                ),
                pending.username, missing, extra, base
            )))
        }
    }
}
