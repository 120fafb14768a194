//! Single user: one user, whose password changes. The user changes its own
//! password when it can log in (with the current password, else the previous
//! one) and may; otherwise the master, when the secret has one, changes that
//! user's password and nothing else.

use rotor_core::labels::AWSPREVIOUS;
use rotor_core::{Error, SecretStore, StepContext};
use tracing::{info, warn};

use crate::config::Config;
use crate::master;
use crate::secret::DbSecret;
use crate::session::{Change, login, refused};

/// setSecret: gives `pending`'s user `pending`'s password.
pub(crate) async fn set_secret<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    current: &DbSecret,
    pending: &DbSecret,
) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    if pending.username != current.username {
        return Err(Error::InvalidSecretValue {
            secret: arn.to_owned(),
            label: ctx.pending_label.to_owned(),
            problem: format!(
                "names user {:?}, but AWSCURRENT names {:?}; single-user rotation changes one user's password",
                pending.username, current.username
            ),
        });
    }
    // The current password, else the previous one (a rotation that changed
    // the database but did not finish), must still log in.
    let mut session = login(current).await?;
    if session.is_none()
        && let Some(previous) = ctx.previous().await?
    {
        let previous = DbSecret::parse_version(arn, AWSPREVIOUS, &previous.value)?;
        if previous.username == pending.username && previous.host == pending.host {
            session = login(&previous).await?;
        }
    }
    // A user that cannot log in or change its own password (an expired or
    // unknown password, MySQL's password_require_current, a restricted
    // role) has it changed by the master, when the secret has one.
    let has_master = current.masterarn.is_some() || config.master_secret().is_some();
    match session {
        Some(session) => match session.apply(Change::OwnPassword, pending).await {
            Ok(()) => {
                info!(secret = %arn, user = %pending.username, "password changed");
                return Ok(());
            }
            Err(e) if !has_master || e.is_retryable() => return Err(e),
            Err(e) => {
                warn!(secret = %arn, user = %pending.username, error = %e, "the user cannot change its own password; the master changes it");
            }
        },
        None if !has_master => {
            return Err(refused(
                pending,
                format!(
                    "refused the pending, current and previous passwords of user {:?}; set the user's password to the AWSCURRENT value, or give the secret a masterarn, then rotate again",
                    pending.username
                ),
            ));
        }
        None => {
            info!(secret = %arn, user = %pending.username, "the user's passwords are refused; the master changes it");
        }
    }
    master::session(ctx, config, current)
        .await?
        .apply(Change::PasswordAsMaster, pending)
        .await?;
    info!(secret = %arn, user = %pending.username, "password changed by the master");
    Ok(())
}
