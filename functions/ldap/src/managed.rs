//! AWS Managed Microsoft AD (and AD Connector, Simple AD): the password
//! changes through Directory Service's `ResetUserPassword`, as AWS's Active
//! Directory rotation function does, from a secret in its shape.
//! * setSecret: nothing to do when the pending password already binds;
//!   otherwise the current password must bind (the secret's writer holds the
//!   account: the function's role can reset any user of the directory, and
//!   must not do so for a writer who names another team's account), then
//!   `ResetUserPassword`;
//! * testSecret: the pending password binds at the directory, retried while
//!   it reaches both domain controllers.
//!
//! Binds go to `ldaps://<the directory's DNS name>:636`, the name
//! `DescribeDirectories` reports (never one the secret's writer chooses):
//! the directory needs LDAPS turned on, and the function its CA in
//! `SSL_CERT_FILE`.

use std::time::Duration;

use aws_sdk_directory::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_directory::operation::reset_user_password::ResetUserPasswordError;
use rotor_core::admin::Endpoint;
use rotor_core::labels::AWSCURRENT;
use rotor_core::retry::Backoff;
use rotor_core::{Cause, Error, SecretStore, SecretString, StepContext, TargetError, TargetKind};
use tokio::sync::OnceCell;
use tracing::info;

use crate::client::{self, Failure, rc};
use crate::secret::{ManagedKeys, ManagedSecret, Server, Transport};

/// The Directory Service client, made on the first managed secret only.
#[derive(Default)]
pub struct Clients {
    client: OnceCell<aws_sdk_directory::Client>,
}

impl Clients {
    async fn get(&self) -> &aws_sdk_directory::Client {
        self.client
            .get_or_init(|| async {
                let config = rotor_core::store::aws::sdk_loader().load().await;
                aws_sdk_directory::Client::new(&config)
            })
            .await
    }
}

fn parse(secret: &str, label: &str, value: &SecretString) -> Result<ManagedSecret, Error> {
    ManagedSecret::parse_with(value, ManagedKeys::from_env()).map_err(|problem| {
        Error::InvalidSecretValue {
            secret: secret.to_owned(),
            label: label.to_owned(),
            problem: problem.0,
        }
    })
}

fn target(id: &str) -> String {
    format!("Directory Service directory {id}")
}

fn at(id: &str, e: TargetError) -> Error {
    e.at(TargetKind::Service, target(id))
}

/// The directory's DNS name, from `DescribeDirectories`.
async fn dns_name(client: &aws_sdk_directory::Client, id: &str) -> Result<String, Error> {
    rotor_core::progress::waiting_for(|| format!("{} (DescribeDirectories)", target(id)));
    let described = client
        .describe_directories()
        .directory_ids(id)
        .send()
        .await
        .map_err(|e| at(id, api_failure("DescribeDirectories", &e)))?;
    let directory = described
        .directory_descriptions()
        .iter()
        .find(|d| d.directory_id() == Some(id))
        .ok_or_else(|| {
            at(
                id,
                TargetError::new(
                    Cause::NotFound,
                    "DescribeDirectories does not know it; check the secret's directory id, and that the function runs in the directory's account and region",
                ),
            )
        })?;
    directory
        .name()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            at(
                id,
                TargetError::new(Cause::Protocol, "DescribeDirectories gave no DNS name"),
            )
        })
}

/// The directory's LDAPS server.
fn server(name: &str) -> Server {
    Server {
        endpoint: Endpoint::new(name, 636),
        transport: Transport::Ldaps,
    }
}

/// The user principal name the account binds as.
fn principal(username: &str, name: &str) -> String {
    format!("{username}@{name}")
}

async fn binds(server: &Server, user: &str, password: &SecretString) -> Result<bool, Failure> {
    let mut conn = client::connect(server).await?;
    let bound = conn.bind(user, password).await;
    conn.close().await;
    bound
}

/// setSecret for an AWS Managed Microsoft AD account.
pub(crate) async fn set<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    clients: &Clients,
) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
    let current = parse(arn, AWSCURRENT, &ctx.current().await?.value)?;
    let id = current.directory_id.as_str();
    let client = clients.get().await;
    let name = dns_name(client, id).await?;
    let ldaps = server(&name);
    let user = principal(&current.username, &name);
    let on_ldap = |f: Failure| {
        at(id, f.error).map_target_problem(|p| format!("LDAPS at {}: {p}", ldaps.endpoint))
    };
    rotor_core::progress::waiting_for(|| format!("{} (binding at {})", target(id), ldaps.endpoint));
    if binds(&ldaps, &user, &pending.password)
        .await
        .map_err(on_ldap)?
    {
        info!(secret = %arn, account = %current.username, "the pending password already binds; nothing to change");
        return Ok(());
    }
    if !binds(&ldaps, &user, &current.password)
        .await
        .map_err(on_ldap)?
    {
        let problem = format!(
            concat!(
                "account {:?} refused the pending and the current password at {}, so nothing ",
                "was reset: the function resets only an account whose current password its ",
                "secret holds. Set the account's password to the AWSCURRENT value, then rotate again"
            ),
            current.username, ldaps.endpoint
        );
        return Err(at(id, TargetError::new(Cause::Auth, problem)));
    }
    rotor_core::progress::waiting_for(|| format!("{} (ResetUserPassword)", target(id)));
    client
        .reset_user_password()
        .directory_id(id)
        .user_name(&current.username)
        .new_password(rotor_core::ExposeSecret::expose_secret(&pending.password))
        .send()
        .await
        .map_err(|e| at(id, reset_failure(&current.username, &e)))?;
    info!(secret = %arn, account = %current.username, "ResetUserPassword set the pending password");
    Ok(())
}

/// testSecret for an AWS Managed Microsoft AD account.
pub(crate) async fn test<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    clients: &Clients,
) -> Result<(), Error> {
    let arn = ctx.secret_arn();
    let pending = parse(arn, ctx.pending_label, &ctx.pending().await?.value)?;
    let id = pending.directory_id.as_str();
    let name = dns_name(clients.get().await, id).await?;
    let ldaps = server(&name);
    let user = principal(&pending.username, &name);
    rotor_core::progress::waiting_for(|| format!("{} (binding at {})", target(id), ldaps.endpoint));
    let refused = || Failure {
        rc: Some(rc::INVALID_CREDENTIALS),
        ad_code: None,
        error: TargetError::new(Cause::Pending, "refused the pending password"),
    };
    let tried = Backoff::new(Duration::from_millis(250), Duration::from_secs(4))
        .attempts(15)
        .run(
            |_| async {
                match binds(&ldaps, &user, &pending.password).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(refused()),
                    Err(f) => Err(f),
                }
            },
            |f: &Failure| f.rc == Some(rc::INVALID_CREDENTIALS) || f.error.cause.is_retryable(),
            |attempt, _, wait| {
                info!(secret = %arn, attempt, ?wait, "the pending password does not bind yet; asking again");
            },
        )
        .await;
    match tried {
        Ok(()) => Ok(()),
        Err(gave_up) if gave_up.error.rc == Some(rc::INVALID_CREDENTIALS) => {
            let problem = format!(
                "LDAPS at {}: refused the pending password of account {:?} after {} attempts; both domain controllers may not have it yet. Rotate again in a few minutes, or run setSecret again",
                ldaps.endpoint, pending.username, gave_up.attempts
            );
            Err(at(id, TargetError::new(Cause::Pending, problem)))
        }
        Err(gave_up) => Err(at(id, gave_up.error.error)
            .map_target_problem(|p| format!("LDAPS at {}: {p}", ldaps.endpoint))),
    }
}

/// A failed `ResetUserPassword`, by the service's typed errors. Its
/// message is never shown: it answers a call that carried a password.
fn reset_failure<R>(user: &str, error: &SdkError<ResetUserPasswordError, R>) -> TargetError
where
    R: std::fmt::Debug,
{
    let Some(service) = error.as_service_error() else {
        return api_failure("ResetUserPassword", error);
    };
    let (cause, problem) = match service {
        ResetUserPasswordError::InvalidPasswordException(_) => (
            Cause::Rejected,
            "the directory's password policy (complexity, length, history) refused the new password. Nothing was changed: check PASSWORD_LENGTH and EXCLUDE_* against the directory's policy".to_owned(),
        ),
        ResetUserPasswordError::UserDoesNotExistException(_) => (
            Cause::NotFound,
            format!("the directory has no user {user:?}; check the secret's user name"),
        ),
        ResetUserPasswordError::EntityDoesNotExistException(_) => (
            Cause::NotFound,
            "the directory does not exist; check the secret's directory id".to_owned(),
        ),
        ResetUserPasswordError::UnsupportedOperationException(_) => (
            Cause::Rejected,
            format!("the directory does not let ResetUserPassword change {user:?} (an AWS-reserved or admin account); rotate it another way"),
        ),
        ResetUserPasswordError::DirectoryUnavailableException(_)
        | ResetUserPasswordError::ServiceException(_) => (
            Cause::Unavailable,
            "the directory is unavailable for now; rotate again".to_owned(),
        ),
        _ => {
            let code = service.code().unwrap_or("an unnamed error");
            (Cause::Rejected, format!("failed: {code}"))
        }
    };
    TargetError::new(cause, format!("ResetUserPassword for {user:?}: {problem}"))
}

/// Any other failed call, by its kind and the service's error code.
fn api_failure<E, R>(operation: &str, error: &SdkError<E, R>) -> TargetError
where
    E: ProvideErrorMetadata,
    R: std::fmt::Debug,
{
    let (cause, detail) = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => (
            Cause::Unreachable,
            "Directory Service could not be reached; check the function's route to it (a VPC endpoint for ds, or a NAT gateway)".to_owned(),
        ),
        SdkError::ServiceError(e) => {
            let code = e.err().code().unwrap_or("an unnamed error");
            let cause = match code {
                "ClientException" | "AccessDeniedException" => Cause::Permission,
                "EntityDoesNotExistException" => Cause::NotFound,
                "ServiceException" | "ThrottlingException" => Cause::Unavailable,
                _ => Cause::Rejected,
            };
            (cause, format!("{code}; check the function role's ds:{operation} permission and the directory id"))
        }
        _ => (Cause::Protocol, "an answer the SDK could not read".to_owned()),
    };
    TargetError::new(cause, format!("{operation} failed: {detail}"))
}
