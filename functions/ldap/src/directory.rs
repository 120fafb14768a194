//! Self-managed directories (Active Directory on Windows or Samba, OpenLDAP):
//! the function speaks LDAP to the secret's servers.
//! * setSecret: nothing to do when the pending password already binds (a
//!   crash after the change); else the account changes its own password
//!   (AD: `unicodePwd` delete-old/add-new in one modify; LDAP: RFC 3062's
//!   password modify with the old password), or, where the secret names an
//!   admin secret, the admin resets it;
//! * testSecret: the pending password binds at every server the secret
//!   lists, retried while it reaches the other domain controllers.
//!
//! Whoever writes the account's secret is not the admin's owner, so the
//! admin acts only under the core's rules (rotor_core::admin): read only
//! when it agreed to serve the secret; at its own server (host *and* port
//! of the account's secret equal the admin's; the admin binds with its own
//! URL and transport, so its password goes nowhere else); never on its own
//! account, only on accounts its `rotor:manages` tag admits, never on a
//! privileged one (Domain Admins and AD's other protected groups) unless
//! that tag names it; and only on an account that one of the secret's own
//! passwords binds as, so that naming another team's account gains nothing.

use std::time::Duration;

use ldap3::Mod;
use rotor_core::admin::{self, Admin, Names};
use rotor_core::labels::AWSCURRENT;
use rotor_core::retry::Backoff;
use rotor_core::{Cause, Error, SecretStore, SecretString, StepContext, TargetError, TargetKind};
use tracing::info;

use crate::Config;
use crate::ad::{self, AdAccount};
use crate::client::{self, Connection, Failure, rc};
use crate::secret::{AdName, Directory, DirectorySecret, Server};

/// What refuses an LDAP account's own change, in words for the error.
const LDAP_SELF_POLICY: &str =
    "the server's password policy (ppolicy: minimum age, history, length or quality)";
/// What refuses an admin's reset of an LDAP account.
const LDAP_RESET_POLICY: &str = "the server's password policy (ppolicy: length or quality)";

fn parse(secret: &str, label: &str, value: &SecretString) -> Result<DirectorySecret, Error> {
    DirectorySecret::parse(value).map_err(|problem| Error::InvalidSecretValue {
        secret: secret.to_owned(),
        label: label.to_owned(),
        problem: problem.0,
    })
}

/// The system's name in errors: `Active Directory at host:port`.
pub fn target(directory: Directory, server: &Server) -> String {
    format!("{directory} at {}", server.endpoint)
}

fn at(directory: Directory, server: &Server, e: TargetError) -> Error {
    e.at(TargetKind::Service, target(directory, server))
}

fn waiting(directory: Directory, server: &Server, doing: &str) {
    rotor_core::progress::waiting_for(|| format!("{} ({doing})", target(directory, server)));
}

async fn open(directory: Directory, server: &Server) -> Result<Connection, Error> {
    waiting(directory, server, "connecting");
    client::connect(server)
        .await
        .map_err(|f| at(directory, server, f.error))
}

/// setSecret for a self-managed directory's account: the account the
/// pending value names (the same one, or the other of an alternating pair)
/// gets the pending password.
pub(crate) async fn set<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
    let current = parse(arn, AWSCURRENT, &ctx.current().await?.value)?;
    let (directory, server) = (pending.directory, pending.primary().clone());
    let fail = |f: Failure| at(directory, &server, f.error);
    let mut conn = open(directory, &server).await?;
    waiting(directory, &server, "binding with the pending password");
    if conn
        .bind(&pending.username, &pending.password)
        .await
        .map_err(fail)?
    {
        info!(secret = %arn, account = %pending.username, "the pending password already binds; nothing to change");
        conn.close().await;
        return Ok(());
    }
    // The passwords this secret holds for the account that changes: a
    // broken AWSPREVIOUS only lacks one of them.
    let previous = match ctx.previous().await? {
        Some(p) => DirectorySecret::parse(&p.value).ok(),
        None => None,
    };
    let known = known_passwords(&pending.username, &current, previous.as_ref());
    let old = known_password(&mut conn, &pending, &known).await?;
    let admin = admin::read(
        ctx.store(),
        ctx.secret,
        current.masterarn.as_deref(),
        config.master_secret.as_deref(),
    )
    .await?;
    match (admin, old) {
        (None, Some(old)) => self_change(arn, conn, &pending, &old).await,
        (None, None) => {
            let problem = format!(
                concat!(
                    "refused the pending password of account {:?} and every other password ",
                    "this secret holds for it; set the account's password to the value this ",
                    "secret holds for it (AWSCURRENT, or alternate_password for the first ",
                    "rotation to an alternate account), or name an admin secret in masterarn, ",
                    "then rotate again"
                ),
                pending.username
            );
            Err(fail(Failure {
                rc: Some(rc::INVALID_CREDENTIALS),
                ad_code: None,
                error: TargetError::new(Cause::Auth, problem),
            }))
        }
        (Some(admin), old) => {
            conn.close().await;
            if old.is_none() {
                let problem = format!(
                    concat!(
                        "account {:?} refused every password of this secret (AWSCURRENT, ",
                        "AWSPREVIOUS, AWSPENDING), so the admin changed nothing: an admin resets ",
                        "only an account that one of its secret's passwords binds as. Set the ",
                        "account's password to the AWSCURRENT value, then rotate again"
                    ),
                    pending.username
                );
                return Err(fail(Failure {
                    rc: None,
                    ad_code: None,
                    error: TargetError::new(Cause::Mismatch, problem),
                }));
            }
            admin_reset(arn, &admin, &pending).await
        }
    }
}

/// The passwords the secret's versions hold for `account`: AWSCURRENT's
/// (as its username, or as a pair's one-time `alternate_password`) and
/// AWSPREVIOUS's.
fn known_passwords(
    account: &str,
    current: &DirectorySecret,
    previous: Option<&DirectorySecret>,
) -> Vec<SecretString> {
    let mut known = Vec::new();
    let same = |name: &str| name.eq_ignore_ascii_case(account);
    if same(&current.username) {
        known.push(current.password.clone());
    }
    if let (Some(name), Some(password)) = (&current.alternate, &current.alternate_password)
        && same(name)
    {
        known.push(password.clone());
    }
    if let Some(p) = previous.filter(|p| same(&p.username)) {
        known.push(p.password.clone());
    }
    known
}

/// The first of `known` that binds as the account `pending` names.
async fn known_password(
    conn: &mut Connection,
    pending: &DirectorySecret,
    known: &[SecretString],
) -> Result<Option<SecretString>, Error> {
    let (directory, server) = (pending.directory, pending.primary().clone());
    for password in known {
        let bound = conn.bind(&pending.username, password).await;
        if bound.map_err(|f| at(directory, &server, f.error))? {
            return Ok(Some(password.clone()));
        }
    }
    Ok(None)
}

/// The account changes its own password from `old` (bound just before, on
/// this connection): it proves the old one in the same operation, so the
/// directory's policy for users applies (minimum age, history, complexity).
async fn self_change(
    arn: &str,
    mut conn: Connection,
    pending: &DirectorySecret,
    old: &SecretString,
) -> Result<(), Error> {
    let (directory, server) = (pending.directory, pending.primary().clone());
    let fail = |f: Failure| at(directory, &server, f.error);
    waiting(directory, &server, "changing the account's own password");
    match directory {
        Directory::ActiveDirectory => {
            let name = AdName::parse(&pending.username).map_err(|p| invalid(arn, p.0))?;
            let base = ad::naming_context(&mut conn).await.map_err(fail)?;
            let found = ad::find(&mut conn, &base, &name).await.map_err(fail)?;
            let dn = match (&pending.dn, &found) {
                (Some(dn), _) => dn.clone(),
                (None, Some(account)) => account.dn.clone(),
                (None, None) => return Err(fail(not_found(&pending.username))),
            };
            let mods = vec![
                Mod::Delete(
                    b"unicodePwd".to_vec(),
                    client::values(vec![ad::unicode_pwd(old).to_vec()]),
                ),
                Mod::Add(
                    b"unicodePwd".to_vec(),
                    client::values(vec![ad::unicode_pwd(&pending.password).to_vec()]),
                ),
            ];
            let changed = conn.modify(&dn, mods, "changing the password").await;
            if let Err(f) = changed {
                let policy = match f.rc {
                    Some(rc::CONSTRAINT_VIOLATION) => {
                        let set = found.as_ref().and_then(|a| a.password_set);
                        Some(ad::describe_policy(&mut conn, &base, set).await)
                    }
                    _ => None,
                };
                return Err(refused(directory, &server, f, policy));
            }
        }
        Directory::Ldap => {
            let changed = conn
                .password_modify(None, Some(old), &pending.password, "changing the password")
                .await;
            if let Err(f) = changed {
                let policy =
                    (f.rc == Some(rc::CONSTRAINT_VIOLATION)).then(|| LDAP_SELF_POLICY.to_owned());
                return Err(refused(directory, &server, f, policy));
            }
        }
    }
    conn.close().await;
    info!(secret = %arn, account = %pending.username, "the account changed its own password to the pending one");
    Ok(())
}

/// The admin resets the account's password, under the core's limits.
async fn admin_reset(arn: &str, admin: &Admin, pending: &DirectorySecret) -> Result<(), Error> {
    let current = pending;
    let linked = &admin.secret;
    let master = parse(&linked.arn, AWSCURRENT, &linked.value)?;
    if master.directory != current.directory {
        return Err(Error::InvalidSettings {
            secret: arn.to_owned(),
            setting: admin.setting.to_owned(),
            problem: format!(
                "the admin secret {} is for {}, this secret for {}; name an admin of the same directory",
                linked.arn, master.directory, current.directory
            ),
        });
    }
    admin.require_same_endpoint(arn, &master.primary().endpoint, &current.primary().endpoint)?;
    let (directory, server) = (master.directory, master.primary().clone());
    let fail = |f: Failure| at(directory, &server, f.error);
    // The admin binds with its own secret's URL and transport only.
    let mut conn = open(directory, &server).await?;
    waiting(directory, &server, "binding as the admin");
    if let Err(f) = conn.try_bind(&master.username, &master.password).await {
        if f.rc == Some(rc::INVALID_CREDENTIALS) {
            let problem = format!(
                "refused the admin credentials of account {:?} from {}; nothing was changed. Fix that secret's password, then rotate again",
                master.username, linked.arn
            );
            return Err(fail(Failure {
                error: TargetError::new(Cause::Auth, problem),
                ..f
            }));
        }
        return Err(fail(f));
    }
    let refuse = |user: &str, reason: &str| admin::not_managed(arn, &linked.arn, user, reason);
    match directory {
        Directory::ActiveDirectory => {
            let admin_name =
                AdName::parse(&master.username).map_err(|p| invalid(&linked.arn, p.0))?;
            let name = AdName::parse(&current.username).map_err(|p| invalid(arn, p.0))?;
            let base = ad::naming_context(&mut conn).await.map_err(fail)?;
            let account: AdAccount = ad::find(&mut conn, &base, &name)
                .await
                .map_err(fail)?
                .ok_or_else(|| fail(not_found(&current.username)))?;
            if let Some(dn) = &current.dn
                && !same_dn(dn, &account.dn)
            {
                return Err(invalid(
                    arn,
                    "field dn names another entry than the account username binds as; remove dn or correct it".into(),
                ));
            }
            let admin_account = ad::find(&mut conn, &base, &admin_name)
                .await
                .map_err(fail)?;
            let admin_user = admin_account
                .as_ref()
                .map_or(admin_name.user(), |a| a.name.as_str());
            if admin_account
                .as_ref()
                .is_some_and(|a| same_dn(&a.dn, &account.dn))
            {
                return Err(refuse(
                    &account.name,
                    "it is the admin's own account; an admin never changes its own credentials for another secret. Rotate the admin secret with its own rotation",
                ));
            }
            admin.require_manages(arn, admin_user, &account.name, Names::CaseInsensitive)?;
            if !account.privileged.is_empty()
                && !admin
                    .manages
                    .names_exactly(&account.name, Names::CaseInsensitive)
            {
                let reason = format!(
                    "it is a privileged account ({}); the admin never resets one for the writer of another secret unless its owner names the account itself in the admin secret's {} tag. Rotate it with its own password (no masterarn), or as the admin's owner",
                    account.privileged.join("; "),
                    admin::MANAGES_TAG
                );
                return Err(refuse(&account.name, &reason));
            }
            waiting(directory, &server, "resetting the account's password");
            let mods = vec![Mod::Replace(
                b"unicodePwd".to_vec(),
                client::values(vec![ad::unicode_pwd(&pending.password).to_vec()]),
            )];
            if let Err(f) = conn
                .modify(&account.dn, mods, "resetting the password")
                .await
            {
                let policy = match f.rc {
                    Some(rc::CONSTRAINT_VIOLATION) => {
                        Some(ad::describe_policy(&mut conn, &base, None).await)
                    }
                    _ => None,
                };
                return Err(refused(directory, &server, f, policy));
            }
        }
        Directory::Ldap => {
            let dn = current.username.clone();
            if let Some(given) = &current.dn
                && !same_dn(given, &dn)
            {
                return Err(invalid(
                    arn,
                    "field dn names another entry than username (the account's DN); remove dn or correct it".into(),
                ));
            }
            if same_dn(&dn, &master.username) {
                return Err(refuse(
                    &dn,
                    "it is the admin's own account; an admin never changes its own credentials for another secret. Rotate the admin secret with its own rotation",
                ));
            }
            admin.require_manages(
                arn,
                &rdn_value(&master.username),
                &rdn_value(&dn),
                Names::CaseInsensitive,
            )?;
            waiting(directory, &server, "resetting the account's password");
            if let Err(f) = conn
                .password_modify(Some(&dn), None, &pending.password, "resetting the password")
                .await
            {
                let policy =
                    (f.rc == Some(rc::CONSTRAINT_VIOLATION)).then(|| LDAP_RESET_POLICY.to_owned());
                return Err(refused(directory, &server, f, policy));
            }
        }
    }
    conn.close().await;
    info!(secret = %arn, account = %current.username, admin = %linked.arn, "the admin reset the account's password to the pending one");
    Ok(())
}

/// testSecret: the pending password binds at every server the secret
/// lists. A server other than the first may not have the change yet
/// (replication between domain controllers): it is asked again, within the
/// step's deadline.
pub(crate) async fn test<S: SecretStore>(ctx: &StepContext<'_, S>) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
    for (index, server) in pending.servers.iter().enumerate() {
        let attempts = if index == 0 { 4 } else { 20 };
        let directory = pending.directory;
        waiting(directory, server, "binding with the pending password");
        let tried = Backoff::new(Duration::from_millis(200), Duration::from_secs(3))
            .attempts(attempts)
            .run(
                |_| async {
                    let mut conn = client::connect(server).await?;
                    let bound = conn.bind(&pending.username, &pending.password).await;
                    conn.close().await;
                    match bound {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(Failure {
                            rc: Some(rc::INVALID_CREDENTIALS),
                            ad_code: None,
                            error: TargetError::new(Cause::Auth, "refused the pending password"),
                        }),
                        Err(f) => Err(f),
                    }
                },
                |f: &Failure| f.rc == Some(rc::INVALID_CREDENTIALS) || f.error.cause.is_retryable(),
                |attempt, f, wait| {
                    info!(secret = %arn, server = %server.endpoint, attempt, cause = ?f.error.cause, ?wait, "the pending password does not bind yet; asking again");
                },
            )
            .await;
        if let Err(gave_up) = tried {
            let f = gave_up.error;
            if f.rc != Some(rc::INVALID_CREDENTIALS) {
                return Err(at(directory, server, f.error));
            }
            let (cause, problem) = if index == 0 {
                (
                    Cause::Auth,
                    format!(
                        "refused the pending password of account {:?} ({} attempts); run setSecret again",
                        pending.username, gave_up.attempts
                    ),
                )
            } else {
                (
                    Cause::Pending,
                    format!(
                        "refused the pending password of account {:?} after {} attempts: the change made at {} has not reached this server yet (replication). Rotate again once the directory has replicated",
                        pending.username,
                        gave_up.attempts,
                        pending.primary().endpoint
                    ),
                )
            };
            return Err(at(directory, server, TargetError::new(cause, problem)));
        }
    }
    Ok(())
}

fn invalid(secret: &str, problem: String) -> Error {
    Error::InvalidSecretValue {
        secret: secret.to_owned(),
        label: AWSCURRENT.to_owned(),
        problem,
    }
}

fn not_found(username: &str) -> Failure {
    Failure {
        rc: Some(rc::NO_SUCH_OBJECT),
        ad_code: None,
        error: TargetError::new(
            Cause::NotFound,
            format!(
                "has no account that {username:?} names; check the secret's username (user@realm or DOMAIN\\user), or create the account first: rotor never creates directory accounts"
            ),
        ),
    }
}

/// A refused change as an error: a password policy's refusal names the
/// policy (never the password) and is not retryable.
fn refused(directory: Directory, server: &Server, f: Failure, policy: Option<String>) -> Error {
    let Some(policy) = policy else {
        let mut error = f.error;
        if f.rc == Some(rc::INSUFFICIENT_ACCESS) {
            error.problem.push_str(
                "; the account may not change this password: grant it the right (AD: Change Password; OpenLDAP: write on userPassword by self), or name an admin secret",
            );
        }
        return at(directory, server, error);
    };
    let code = f
        .ad_code
        .map(|c| format!(", AD error 0x{c:X}"))
        .unwrap_or_default();
    let problem = format!(
        "{policy} refused the new password (LDAP constraintViolation{code}). Nothing was changed"
    );
    at(
        directory,
        server,
        TargetError::new(Cause::Rejected, problem),
    )
}

/// Whether two DNs are the same, compared as AD and OpenLDAP compare the
/// usual ones: without regard to case or spaces around separators.
pub(crate) fn same_dn(a: &str, b: &str) -> bool {
    let norm = |dn: &str| -> String {
        dn.split(',')
            .map(|rdn| {
                rdn.split('=')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("=")
                    .to_lowercase()
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    norm(a) == norm(b)
}

/// The name `rotor:manages` lists for a secret's account: the account part
/// of an AD logon name (`svc-app` of `svc-app@realm` or `DOMAIN\svc-app`),
/// the first RDN's value of an LDAP DN.
pub fn account_name(secret: &DirectorySecret) -> String {
    match secret.directory {
        Directory::ActiveDirectory => AdName::parse(&secret.username)
            .map(|n| n.user().to_owned())
            .unwrap_or_default(),
        Directory::Ldap => rdn_value(&secret.username),
    }
}

/// The value of a DN's first RDN (`svc-app` of `uid=svc-app,ou=people,...`):
/// the name `rotor:manages` lists for an LDAP account.
pub(crate) fn rdn_value(dn: &str) -> String {
    dn.split(',')
        .next()
        .and_then(|rdn| rdn.split_once('='))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert!(same_dn("CN=Svc,CN=Users,DC=x", "cn=svc, cn=users, dc=X"));
        assert!(!same_dn("cn=svc,dc=x", "cn=svc2,dc=x"));
        assert_eq!(rdn_value("uid=svc-app, ou=people,dc=x"), "svc-app");
        assert_eq!(rdn_value("nonsense"), "");
    }
}
