//! `iam-rotation`: rotates an IAM user's access key, with two keys
//! overlapping, never a third, and never a lost key.
//!
//! * createSecret makes a new key (`CreateAccessKey`) and stores it as
//!   AWSPENDING. IAM allows two keys per user: when two exist, the one
//!   AWSPREVIOUS holds goes first, or this rotation's own orphan (a key an
//!   earlier attempt made and never stored, [`keys`]); never the AWSCURRENT
//!   key, never a key of another origin.
//! * setSecret has nothing to do: the key works from the moment it exists.
//! * testSecret signs `sts:GetCallerIdentity` with the pending key and
//!   requires the secret's user, retrying while IAM spreads the new key.
//! * finishSecret moves the labels; then, per `REVOKE_PREVIOUS`, the previous
//!   key stays active until the next rotation (the default), or is
//!   deactivated (or, with `REVOKE_PREVIOUS_ACTION=delete`, deleted).
//!
//! Only users the deployer lists in `IAM_USER_ARNS`, in the secret's own
//! account, are changed ([`settings`]). The secret access key never leaves
//! its [`SecretString`]: no log line, error or Debug output carries it.

use std::time::{Duration, Instant};

use rotor_core::arn::Arn;
use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::retry::Backoff;
use rotor_core::rotation::IssuedValues;
use rotor_core::settings::{EnvSettings, RevokePrevious};
use rotor_core::{
    Cause, Error, Rotator, SecretStore, SecretString, StepContext, TargetError, TargetKind,
};
use tokio::sync::OnceCell;
use tracing::{info, warn};

pub mod api;
pub mod doctor;
pub mod keys;
pub mod secret;
pub mod ses;
pub mod settings;

use keys::{Blocked, Held, ListedKey, Removal};
use secret::KeySecret;
use settings::{RevokeAction, SECRET_TAG, Settings};

/// How long testSecret waits for a new key to work when the step has no
/// deadline (a CLI run); IAM documents that a new key can take seconds.
const KEY_WAIT_WITHOUT_DEADLINE: Duration = Duration::from_secs(60);

/// Rotates IAM users' access keys.
pub struct IamRotator {
    settings: EnvSettings<Settings>,
    clients: Clients,
}

/// The SDK configuration and IAM client, made on first use.
#[derive(Default)]
struct Clients {
    config: OnceCell<aws_config::SdkConfig>,
    iam: OnceCell<aws_sdk_iam::Client>,
}

impl Clients {
    /// The SDK configuration from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL_IAM`, `AWS_ENDPOINT_URL_STS`), on the HTTPS client
    /// Secrets Manager uses.
    async fn config(&self) -> &aws_config::SdkConfig {
        self.config
            .get_or_init(|| rotor_core::store::aws::sdk_loader().load())
            .await
    }

    async fn iam(&self) -> &aws_sdk_iam::Client {
        let config = self.config().await;
        self.iam
            .get_or_init(|| async { aws_sdk_iam::Client::new(config) })
            .await
    }
}

impl IamRotator {
    /// Reads the environment once; a bad variable fails every step, naming it.
    pub fn from_env() -> Self {
        Self::with_settings(EnvSettings::new(Settings::from_lookup(|v| {
            std::env::var(v).ok()
        })))
    }

    /// A rotator with settings given outright.
    pub fn with_settings(settings: EnvSettings<Settings>) -> Self {
        IamRotator {
            settings,
            clients: Clients::default(),
        }
    }
}

/// The target's name in messages: the user, never a key.
fn target(name: &str) -> String {
    format!("IAM user {name}")
}

/// A user the function has checked it may change, with the IAM client.
struct Bound<'a> {
    iam: &'a aws_sdk_iam::Client,
    name: &'a str,
    arn: Arn,
}

impl Bound<'_> {
    fn at(&self, e: TargetError) -> Error {
        e.at(TargetKind::Service, target(self.name))
    }

    async fn keys(&self) -> Result<Vec<ListedKey>, Error> {
        waiting(self.name, "ListAccessKeys");
        api::keys(self.iam, self.name).await.map_err(|e| self.at(e))
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        waiting(self.name, "DeleteAccessKey");
        api::delete(self.iam, self.name, id)
            .await
            .map_err(|e| self.at(e))
    }
}

fn waiting(user: &str, operation: &'static str) {
    rotor_core::progress::waiting_for(|| format!("IAM ({operation} for user {user})"));
}

impl IamRotator {
    /// Checks that the deployer lets the function change `s`'s user for this
    /// secret (GetUser, then the allow-list, the account and the owner's
    /// tag): nothing is changed before this passes.
    async fn bind<'a, S: SecretStore>(
        &'a self,
        ctx: &StepContext<'_, S>,
        label: &str,
        s: &'a KeySecret,
    ) -> Result<Bound<'a>, Error> {
        let settings = self.settings.get(ctx.secret_arn())?;
        let iam = self.clients.iam().await;
        waiting(&s.user_name, "GetUser");
        let user = api::user(iam, &s.user_name, SECRET_TAG)
            .await
            .map_err(|e| e.at(TargetKind::Service, target(&s.user_name)))?;
        settings.authorize(ctx.secret, label, &user.arn, user.owner_tag.as_deref())?;
        Ok(Bound {
            iam,
            name: &s.user_name,
            arn: user.arn,
        })
    }

    /// Whether IAM records a use of key `id` (GetAccessKeyLastUsed).
    async fn was_used(&self, user: &Bound<'_>, id: &str) -> Result<bool, Error> {
        waiting(user.name, "GetAccessKeyLastUsed");
        let used = api::last_used(user.iam, user.name, id)
            .await
            .map_err(|e| user.at(e))?;
        Ok(used.at.is_some())
    }

    /// The secret's region, for the SES SMTP password: the secret ARN's, or
    /// the function's.
    async fn region<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> String {
        match ctx.secret_arn().parse::<Arn>() {
            Ok(arn) if !arn.region.is_empty() => arn.region,
            _ => {
                let config = self.clients.config().await;
                config
                    .region()
                    .map(|r| r.as_ref().to_owned())
                    .unwrap_or_default()
            }
        }
    }
}

/// What to tell the operator about a key that blocks the rotation.
fn foreign_keys(user: &str, found: &[ListedKey]) -> String {
    let list: Vec<String> = found
        .iter()
        .map(|k| {
            let status = if k.active { "active" } else { "inactive" };
            format!("{} ({status})", k.id)
        })
        .collect();
    let first = found.first().map_or("KEY_ID", |k| k.id.as_str());
    format!(
        "user {user} already holds two access keys, and {} is held by no version of this secret and is older than this rotation, so it was made outside rotation; it is never removed by this function. Nothing was changed. If nobody uses it any more (aws iam get-access-key-last-used --access-key-id {first}), delete it (aws iam delete-access-key --user-name {user} --access-key-id {first}), or store it as this secret's AWSCURRENT value; then rotate again",
        list.join(", ")
    )
}

impl Rotator for IamRotator {
    type Secret = KeySecret;

    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let current: KeySecret = ctx.current_as().await?;
        let user = self.bind(ctx, AWSCURRENT, &current).await?;
        let listed = user.keys().await?;
        let previous = match ctx.previous_as::<KeySecret>().await {
            Ok(p) => p
                .filter(|p| p.user_name == current.user_name)
                .map(|p| p.access_key_id),
            Err(e) => {
                warn!(secret = %ctx.secret_arn(), error = %e,
                    "AWSPREVIOUS does not parse: its key, if any, counts as one of another origin");
                None
            }
        };
        let token = &ctx.event.version_id;
        let held = Held {
            current: current.access_key_id.clone(),
            previous,
        };
        // When the rotation began matters only for a key no version holds:
        // a steady-state rotation (current and previous keys) skips the call.
        let unheld = listed
            .iter()
            .any(|k| k.id != held.current && held.previous.as_deref() != Some(k.id.as_str()));
        let staged = if unheld {
            ctx.store()
                .version_created(ctx.secret_arn(), token)
                .await
                .map_err(|source| Error::Store {
                    secret: ctx.secret_arn().to_owned(),
                    operation: "ListSecretVersionIds",
                    source,
                })?
        } else {
            None
        };
        let removals = match keys::make_room(&listed, &held, staged) {
            Ok(removals) => removals,
            Err(Blocked::CurrentNotTheUsers) => {
                return Err(ctx.invalid_value(
                    AWSCURRENT,
                    format!(
                        "field AccessKeyId names key {}, which IAM user {} does not hold (ListAccessKeys lists {}); nothing was changed. Store one of the user's own keys in the secret (or fix UserName), then rotate",
                        current.access_key_id,
                        current.user_name,
                        listed.len()
                    ),
                ));
            }
            Err(Blocked::Foreign(found)) => {
                let problem = foreign_keys(&current.user_name, &found);
                return Err(user.at(TargetError::new(Cause::Rejected, problem)));
            }
        };
        // A key made in the same second as the rotation began counts as its
        // own (the dates are whole seconds); one that was ever used cannot be
        // a key that existed only in a process that died before storing it.
        for (id, why) in &removals {
            if *why == Removal::Orphan && self.was_used(&user, id).await? {
                let key = listed
                    .iter()
                    .filter(|k| k.id == *id)
                    .cloned()
                    .collect::<Vec<_>>();
                let problem = foreign_keys(&current.user_name, &key);
                return Err(user.at(TargetError::new(Cause::Rejected, problem)));
            }
        }
        for (id, why) in &removals {
            user.delete(id).await?;
            match why {
                Removal::Orphan => {
                    info!(secret = %ctx.secret_arn(), user = %user.arn, key = %id, version = %token,
                    "deleted this rotation's own key that an earlier attempt made and never stored")
                }
                Removal::Previous => info!(secret = %ctx.secret_arn(), user = %user.arn, key = %id,
                    "deleted the key AWSPREVIOUS holds, to make room for the new one"),
            }
        }
        waiting(user.name, "CreateAccessKey");
        let new = api::create(user.iam, user.name).await.map_err(|e| {
            user.at(e).map_target_problem(|p| {
                format!("{p}; if the user holds two keys again, someone made one during this rotation: rotate again, and it is named")
            })
        })?;
        info!(secret = %ctx.secret_arn(), user = %user.arn, key = %new.id, version = %token, "created the new access key");
        let ses = if current.wants_ses_password {
            Some(ses::smtp_password(&new.secret, &self.region(ctx).await))
        } else {
            None
        };
        Ok(current.with_key(&new.id, &new.secret, ses.as_ref()))
    }

    async fn set_value<S: SecretStore>(&self, _ctx: &StepContext<'_, S>) -> Result<(), Error> {
        // The key works from the moment CreateAccessKey made it; the driver
        // has checked that the pending value names the same user.
        Ok(())
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let pending: KeySecret = ctx.pending_as().await?;
        let user = self.bind(ctx, ctx.pending_label, &pending).await?;
        let config = self.clients.config().await;
        let started = Instant::now();
        let expected = user.arn.to_string();
        waiting(user.name, "sts:GetCallerIdentity with the pending key");
        let answered = Backoff::new(Duration::from_millis(250), Duration::from_secs(4))
            .until(started + KEY_WAIT_WITHOUT_DEADLINE)
            .run(
                |_| api::caller(config, &pending.access_key_id, &pending.secret_access_key, user.name),
                // A new key is refused until IAM has spread it.
                |e| matches!(e.cause, Cause::Auth | Cause::Unavailable | Cause::Unreachable),
                |attempt, e, _| {
                    info!(user = %user.arn, attempt, cause = ?e.cause, "the pending key is not accepted yet; retrying");
                },
            )
            .await
            .map_err(|gave_up| {
                user.at(gave_up.error).map_target_problem(|p| {
                    format!("{p} (the pending key, after {} s); if IAM still refuses it, cancel the rotation (aws secretsmanager cancel-rotate-secret) and rotate again", started.elapsed().as_secs())
                })
            })?;
        if answered != expected {
            let problem = format!(
                "the pending key signs in as {answered}, not as {expected}; nothing was changed. Cancel the rotation (aws secretsmanager cancel-rotate-secret) and rotate again"
            );
            return Err(user.at(TargetError::new(Cause::Mismatch, problem)));
        }
        // moto accepts an Inactive key's signature where AWS refuses it, so
        // the key's status is read too.
        let listed = user.keys().await?;
        match listed.iter().find(|k| k.id == pending.access_key_id) {
            Some(k) if k.active => Ok(()),
            found => {
                let state = if found.is_some() { "inactive" } else { "gone" };
                let problem = format!(
                    "the pending key {} is {state} at IAM; someone changed it during the rotation. Cancel the rotation (aws secretsmanager cancel-rotate-secret) and rotate again",
                    pending.access_key_id
                );
                Err(user.at(TargetError::new(Cause::Mismatch, problem)))
            }
        }
    }

    async fn after_finish<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let settings = self.settings.get(ctx.secret_arn())?;
        if settings.revoke != RevokePrevious::AtFinish {
            return Ok(());
        }
        let (Some(current), Some(previous)) = (
            ctx.read_label_as::<KeySecret>(AWSCURRENT).await?,
            ctx.read_label_as::<KeySecret>(AWSPREVIOUS).await?,
        ) else {
            return Ok(());
        };
        if previous.user_name != current.user_name
            || previous.access_key_id == current.access_key_id
        {
            return Ok(());
        }
        let user = self.bind(ctx, AWSCURRENT, &current).await?;
        let listed = user.keys().await?;
        let Some(old) = listed.iter().find(|k| k.id == previous.access_key_id) else {
            return Ok(());
        };
        match settings.action {
            RevokeAction::Delete => {
                user.delete(&old.id).await?;
                info!(secret = %ctx.secret_arn(), user = %user.arn, key = %old.id, revoked = "deleted",
                    "the previous access key is deleted");
            }
            RevokeAction::Deactivate if old.active => {
                waiting(user.name, "UpdateAccessKey");
                api::deactivate(user.iam, user.name, &old.id)
                    .await
                    .map_err(|e| user.at(e))?;
                info!(secret = %ctx.secret_arn(), user = %user.arn, key = %old.id, revoked = "deactivated",
                    "the previous access key is deactivated; the next rotation deletes it");
            }
            RevokeAction::Deactivate => {}
        }
        Ok(())
    }

    fn issued_values(&self) -> Option<&impl IssuedValues> {
        Some(self)
    }
}

/// Every value createSecret returns holds a key IAM made, whose secret IAM
/// shows once: it is retried into the store until the step's deadline, and
/// kept in the process for a retry, rather than made again.
impl IssuedValues for IamRotator {
    fn issued_at_target(&self, _value: &SecretString) -> bool {
        true
    }

    /// The kept key still exists (nobody deleted it meanwhile): store it.
    async fn refresh_issued<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        kept: &SecretString,
    ) -> Result<Option<SecretString>, Error> {
        let Ok(ours) = KeySecret::parse(kept) else {
            return Ok(None);
        };
        let user = self.bind(ctx, AWSCURRENT, &ours).await?;
        let listed = user.keys().await?;
        Ok(listed
            .iter()
            .any(|k| k.id == ours.access_key_id)
            .then(|| SecretString::from(rotor_core::ExposeSecret::expose_secret(kept))))
    }

    /// Another run stored its key first. IAM retires nothing on issue, so
    /// the stored key stands while it exists, and ours, held by no version,
    /// is deleted now rather than left as a third key's worth of risk.
    async fn held_at_target<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        ours: &SecretString,
    ) -> Result<Option<SecretString>, Error> {
        let Ok(mine) = KeySecret::parse(ours) else {
            return Ok(None);
        };
        let stored: KeySecret = ctx.pending_as().await?;
        let user = self.bind(ctx, ctx.pending_label, &mine).await?;
        let listed = user.keys().await?;
        let has = |id: &str| listed.iter().any(|k| k.id == id);
        if has(&stored.access_key_id) || !has(&mine.access_key_id) {
            if has(&mine.access_key_id) {
                user.delete(&mine.access_key_id).await?;
                info!(secret = %ctx.secret_arn(), key = %mine.access_key_id,
                    "deleted this run's key: a concurrent run stored its own first");
            }
            return Ok(None);
        }
        Ok(Some(SecretString::from(
            rotor_core::ExposeSecret::expose_secret(ours),
        )))
    }

    async fn recovery<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        value: &SecretString,
    ) -> String {
        let key = KeySecret::parse(value).map_or_else(
            |_| "the new key".to_owned(),
            |k| format!("key {}", k.access_key_id),
        );
        format!(
            "{key} exists only at IAM and in this process. Once Secrets Manager accepts writes again, retry the rotation (aws secretsmanager rotate-secret --secret-id {}): this process stores the key, or, if the function restarted meanwhile, createSecret deletes it as this rotation's own and makes another. AWSCURRENT's key keeps working throughout",
            ctx.secret_arn()
        )
    }
}
