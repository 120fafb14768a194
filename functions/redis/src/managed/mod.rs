//! Amazon ElastiCache (Redis OSS, Valkey) RBAC users and Amazon MemoryDB
//! users, whose passwords only the services' APIs change. A secret in the
//! shape AWS's `SecretsManagerElasticacheUserRotation` reads (`user_arn`,
//! `username`, `password`) is rotated with a two-password overlap:
//! * setSecret waits for the user's `Status` to be `active`, then sets its
//!   passwords to [pending, current] (ElastiCache `ModifyUser`, MemoryDB
//!   `UpdateUser`): clients keep logging in with the current one;
//! * testSecret waits for `active` again (the change is in force), and logs
//!   in with the pending password where the secret names a `host`;
//! * finishSecret: the labels move; with `REVOKE_PREVIOUS=at-finish` the
//!   passwords become [new] only, else the previous one works until the next
//!   rotation's setSecret replaces it.
//!
//! Whoever writes a secret is not the deployer: the function changes only a
//! user whose ARN the deployer lists in `MANAGED_USER_ARNS`, in the function's
//! own region and the secret's account, and only once `DescribeUsers` reports
//! that very ARN for the identifier it is about to change. When that list
//! admits more than one user, also only for the secret that the user's own
//! `rotor:secret` tag names ([`binding`]), so that one team's writer cannot
//! name another team's listed user.

pub mod api;
pub mod arn;
pub mod binding;
pub mod elasticache;
pub mod memorydb;
pub mod secret;
mod settings;

use std::time::{Duration, Instant};

use rotor_core::event::Step;
use rotor_core::labels::AWSCURRENT;
use rotor_core::retry::{Backoff, GaveUp};
use rotor_core::store::SecretDescription;
use rotor_core::{Cause, Error, SecretStore, SecretString, StepContext, TargetError, TargetKind};
use tokio::sync::OnceCell;
use tracing::info;

use crate::Config;
use api::{ACTIVE, UserState};
use arn::{Arn, CacheUser};
use secret::ManagedSecret;
pub use settings::{
    MANAGED_USER_ARNS_VAR, MAX_WAIT_VAR, ManagedSettings, SECRET_ARN_VAR, SettingsError,
    TRUST_ALL_WRITERS_VAR, USER_NAME_VAR, WAIT_INTERVAL_VAR,
};

/// The API clients, made on the first managed secret only.
#[derive(Default)]
pub struct Clients {
    config: OnceCell<aws_config::SdkConfig>,
    memorydb: OnceCell<aws_sdk_memorydb::Client>,
    elasticache: OnceCell<aws_sdk_elasticache::Client>,
}

impl Clients {
    /// The SDK configuration from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL_MEMORYDB`, `AWS_ENDPOINT_URL_ELASTICACHE`), on the
    /// HTTPS client Secrets Manager uses.
    async fn config(&self) -> &aws_config::SdkConfig {
        self.config
            .get_or_init(|| rotor_core::store::aws::sdk_loader().load())
            .await
    }
}

/// A user the function has checked it may change, with its service's client.
struct Bound<'a> {
    api: Api<'a>,
    arn: &'a Arn,
    user: &'a CacheUser,
    username: &'a str,
    settings: &'a ManagedSettings,
}

enum Api<'a> {
    MemoryDb(&'a aws_sdk_memorydb::Client),
    ElastiCache(&'a aws_sdk_elasticache::Client),
}

/// Why one look at a user did not find it `active`.
enum NotYet {
    /// It is in another status: worth another look.
    Busy(UserState),
    /// The look failed.
    Failed(Error),
}

impl Bound<'_> {
    fn target(&self) -> String {
        format!("{} user {}", self.user.service(), self.arn)
    }

    fn at(&self, e: TargetError) -> Error {
        e.at(TargetKind::Cache, self.target())
    }

    fn refused(&self, cause: Cause, problem: String) -> Error {
        self.at(TargetError::new(cause, problem))
    }

    async fn describe(&self) -> Result<UserState, Error> {
        let arn = self.arn.to_string();
        rotor_core::progress::waiting_for(|| format!("{} (DescribeUsers)", self.target()));
        let state = match self.api {
            Api::MemoryDb(c) => memorydb::describe(c, self.user, &arn).await,
            Api::ElastiCache(c) => elasticache::describe(c, self.user, &arn).await,
        }
        .map_err(|e| self.at(e))?;
        // The API acts on the caller's account: the user it reports must be
        // the one the secret names, or the function would change another.
        let reported: Option<Arn> = state.arn.as_deref().and_then(|a| a.parse().ok());
        if reported.as_ref() != Some(self.arn) {
            let problem = format!(
                "DescribeUsers reports {} {:?} as {}, not as the secret's user_arn; the user is not in this function's account and region. Nothing was changed: rotate it with a function deployed in the user's account and region",
                self.user.id_kind(),
                self.user.id(),
                state.arn.as_deref().unwrap_or("no ARN")
            );
            return Err(self.refused(Cause::Mismatch, problem));
        }
        if state.name.as_deref() != Some(self.username) {
            let problem = format!(
                "the user logs in as {:?}, but the secret's username is {:?}; nothing was changed. Set the secret's username to the user's name",
                state.name.as_deref().unwrap_or(""),
                self.username
            );
            return Err(self.refused(Cause::Mismatch, problem));
        }
        Ok(state)
    }

    /// One look at the user: `active`, or why not.
    async fn active(&self) -> Result<UserState, NotYet> {
        match self.describe().await {
            Ok(state) if state.status == ACTIVE => Ok(state),
            Ok(state) => Err(NotYet::Busy(state)),
            Err(e) => Err(NotYet::Failed(e)),
        }
    }

    /// Waits until the user is `active`, looking every
    /// `WAITING_RETRY_INTERVAL_IN_SECONDS`: at most the deployer's
    /// `MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS`, and (the core's backoff)
    /// never past the step's deadline. Running out is retryable and names
    /// the status.
    async fn wait_active(&self, step: Step) -> Result<UserState, Error> {
        let interval = self.settings.interval;
        let started = Instant::now();
        let bound = self;
        // Two seconds before the deadline leave room for the call that
        // reports the user's last status.
        let waited = Backoff::new(interval, interval)
            .until(started + self.settings.max_wait)
            .margin(Duration::from_secs(2))
            .run(
                move |_| async move { bound.active().await },
                |not_yet| matches!(not_yet, NotYet::Busy(_)),
                |_, not_yet, _| self.log_wait(step, not_yet),
            )
            .await;
        match waited {
            Ok(state) => Ok(state),
            Err(GaveUp {
                error: NotYet::Failed(e),
                ..
            }) => Err(e),
            Err(GaveUp {
                error: NotYet::Busy(state),
                ..
            }) => Err(self.still_busy(step, &state, started.elapsed())),
        }
    }

    fn log_wait(&self, step: Step, not_yet: &NotYet) {
        if let NotYet::Busy(state) = not_yet {
            let status = &state.status;
            info!(user = %self.arn, %status, "{step}: waiting for the user to be active");
        }
    }

    fn still_busy(&self, step: Step, state: &UserState, waited: Duration) -> Error {
        let problem = format!(
            "{step}: the user is {:?}, not active, after {} s of waiting ({MAX_WAIT_VAR}={}, and the function's timeout); {} is still applying a change to it. Nothing was changed by this step: rotate again once the user is active",
            state.status,
            waited.as_secs(),
            self.settings.max_wait.as_secs(),
            self.user.service()
        );
        self.refused(Cause::Pending, problem)
    }

    /// The user's [`binding::SECRET_TAG`], as its owner set it.
    async fn owner_tag(&self) -> Result<Option<String>, Error> {
        let arn = self.arn.to_string();
        rotor_core::progress::waiting_for(|| format!("{} (reading its tags)", self.target()));
        match self.api {
            Api::MemoryDb(c) => memorydb::tag(c, &arn, binding::SECRET_TAG).await,
            Api::ElastiCache(c) => elasticache::tag(c, &arn, binding::SECRET_TAG).await,
        }
        .map_err(|e| self.at(e))
    }

    async fn set_passwords(&self, passwords: &[&SecretString]) -> Result<(), Error> {
        let (id, arn) = (self.user.id(), self.arn.to_string());
        rotor_core::progress::waiting_for(|| format!("{} (setting passwords)", self.target()));
        match self.api {
            Api::MemoryDb(c) => memorydb::set_passwords(c, id, &arn, passwords).await,
            Api::ElastiCache(c) => elasticache::set_passwords(c, id, &arn, passwords).await,
        }
        .map_err(|e| self.at(e))
    }
}

impl Clients {
    /// Checks that the deployer lets the function change `s`'s user for
    /// `secret`, and, where the deployer's list admits several users, that
    /// the user's owner does too; then returns it with its client.
    async fn bind<'a>(
        &'a self,
        settings: &'a ManagedSettings,
        secret: &SecretDescription,
        label: &str,
        s: &'a ManagedSecret,
    ) -> Result<Bound<'a>, Error> {
        let secret_arn = secret.arn.as_str();
        settings.authorize(secret_arn, label, s)?;
        let config = self.config().await;
        let region = config.region().map(|r| r.as_ref().to_owned());
        if region.as_deref() != Some(s.user_arn.region.as_str()) {
            let problem = format!(
                "field user_arn names a user in region {}, but the function runs in {}; nothing was changed. Rotate it with a function deployed in {}",
                s.user_arn.region,
                region.as_deref().unwrap_or("no region"),
                s.user_arn.region
            );
            return Err(Error::InvalidSecretValue {
                secret: secret_arn.to_owned(),
                label: label.to_owned(),
                problem,
            });
        }
        let api = match &s.user {
            CacheUser::MemoryDb(_) => Api::MemoryDb(
                self.memorydb
                    .get_or_init(|| async { aws_sdk_memorydb::Client::new(config) })
                    .await,
            ),
            CacheUser::ElastiCache(_) => Api::ElastiCache(
                self.elasticache
                    .get_or_init(|| async { aws_sdk_elasticache::Client::new(config) })
                    .await,
            ),
        };
        let bound = Bound {
            api,
            arn: &s.user_arn,
            user: &s.user,
            username: &s.username,
            settings,
        };
        if settings.allowed.owner_tag_required() {
            let tag = bound.owner_tag().await?;
            binding::require_bound(secret, &s.user_arn, &s.user, settings, tag.as_deref())?;
        }
        Ok(bound)
    }
}

/// createSecret: a new password, every other field kept. Refuses a user the
/// deployer (or, for a list of several users, the user's owner) does not
/// allow before anything is stored.
pub(crate) async fn create<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    clients: &Clients,
    current: ManagedSecret,
) -> Result<SecretString, Error> {
    let settings = &config.managed;
    settings.authorize(ctx.secret_arn(), AWSCURRENT, &current)?;
    if settings.allowed.owner_tag_required() {
        clients
            .bind(settings, ctx.secret, AWSCURRENT, &current)
            .await?;
    }
    let password = ctx.generate_password(&settings.policy)?;
    Ok(current.with_password(&password))
}

/// setSecret: [pending, current] once the user is active.
pub(crate) async fn set<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    clients: &Clients,
    current: ManagedSecret,
) -> Result<(), Error> {
    let (arn, label) = (ctx.secret_arn(), ctx.pending_label);
    let pending: ManagedSecret = ctx.pending_as().await?;
    let Some(new) = &pending.password else {
        return Err(Error::InvalidSecretValue {
            secret: arn.to_owned(),
            label: label.to_owned(),
            problem: "has no password field; run createSecret again".into(),
        });
    };
    let user = clients
        .bind(&config.managed, ctx.secret, label, &pending)
        .await?;
    user.wait_active(ctx.event.step).await?;
    // Before the first rotation AWS's secrets may hold no password yet.
    let passwords: Vec<&SecretString> = [Some(new), current.password.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    user.set_passwords(&passwords).await?;
    info!(secret = %arn, user = %pending.user_arn, passwords = passwords.len(), "passwords set; the current one still works");
    Ok(())
}

/// testSecret: the user is active again, and the pending password logs in
/// where the secret names an endpoint.
pub(crate) async fn test<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    clients: &Clients,
    pending: ManagedSecret,
) -> Result<(), Error> {
    let user = clients
        .bind(&config.managed, ctx.secret, ctx.pending_label, &pending)
        .await?;
    let state = user.wait_active(ctx.event.step).await?;
    if state.password_count == Some(0) {
        let problem = "holds no password; run setSecret again".to_owned();
        return Err(user.refused(Cause::Mismatch, problem));
    }
    let (Some(endpoint), Some(password)) = (&pending.endpoint, &pending.password) else {
        return Ok(());
    };
    let target = format!("Redis at {}", endpoint.address());
    let login = crate::acl::login(endpoint, &pending.username, password).await;
    match login.map_err(|e| e.at(TargetKind::Cache, target.clone()))? {
        Some(_) => Ok(()),
        None => {
            let problem = format!(
                "refused the pending password of user {:?} although {} reports the user active; run setSecret again",
                pending.username,
                pending.user.service()
            );
            Err(TargetError::new(Cause::Auth, problem).at(TargetKind::Cache, target))
        }
    }
}

/// finishSecret, after the labels moved: with `REVOKE_PREVIOUS=at-finish`
/// only AWSCURRENT's password stays.
pub(crate) async fn finish<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    config: &Config,
    clients: &Clients,
    current: ManagedSecret,
) -> Result<(), Error> {
    let Some(password) = current
        .password
        .as_ref()
        .filter(|_| config.revoke_at_finish)
    else {
        return Ok(());
    };
    let user = clients
        .bind(&config.managed, ctx.secret, AWSCURRENT, &current)
        .await?;
    user.wait_active(ctx.event.step).await?;
    user.set_passwords(&[password]).await?;
    info!(secret = %ctx.secret_arn(), user = %current.user_arn, "the previous password is revoked");
    Ok(())
}
