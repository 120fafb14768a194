//! The four-step driver: the service's pre-checks, then one `match` over the step.
//!
//! A rotation function supplies only what differs between targets through
//! [`Rotator`]: how to make the new value and how to set and test it at the
//! target. Everything that keeps a working credential in the secret at every
//! instant lives here: createSecret never regenerates a value already stored for
//! the token, finishSecret only moves labels, and every step can run twice.

use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::event::{RotationEvent, Step};
use crate::labels::{AWSCURRENT, AWSPENDING, Precheck, Refusal};
use crate::metrics::Completion;
use crate::retry::Backoff;
use crate::store::{NewVersion, SecretStore, StoreError, StoredValue, VersionSelector};
use crate::value::SecretValue;

/// How many values createSecret draws before giving up on one that differs from
/// the current and previous values (only a tiny password space ever needs two).
const DISTINCT_ATTEMPTS: u32 = 8;

mod context;

use context::not_overtaken;
pub use context::{StepContext, ValueCache};

/// How long before the step's deadline createSecret stops retrying the write of
/// a value the target issued, to leave time to report what to do.
const REPORT_MARGIN: Duration = Duration::from_millis(500);

/// How long before the step's deadline the after-rotation actions stop, so
/// that finishSecret still answers (and `after_finish` still runs).
#[cfg(feature = "after")]
const AFTER_MARGIN: Duration = Duration::from_secs(2);

/// How long that write is retried when the step has no deadline (a CLI run).
const RETRY_WITHOUT_DEADLINE: Duration = Duration::from_secs(20);

/// What a rotation function does at its target: the four things every
/// function must say, and nothing else. Everything that keeps a working
/// credential in the secret (never regenerating a stored value, refusing a
/// pending value made from an older current one or naming another target,
/// moving labels) is the driver's.
///
/// ```
/// use rotor_core::value::{Anywhere, SecretValue};
/// use rotor_core::{Error, ExposeSecret, Rotator, SecretStore, SecretString, StepContext};
///
/// /// A token that its consumers check against the secret itself.
/// struct Token(SecretString);
///
/// impl SecretValue for Token {
///     type Invalid = &'static str;
///     type Target = Anywhere;
///     fn parse(value: &SecretString) -> Result<Self, Self::Invalid> {
///         Ok(Token(SecretString::from(value.expose_secret())))
///     }
///     fn target(&self) -> Anywhere {
///         Anywhere
///     }
/// }
///
/// struct Tokens;
///
/// impl Rotator for Tokens {
///     type Secret = Token;
///
///     async fn create_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<SecretString, Error> {
///         ctx.generate_password(&Default::default())
///     }
///     async fn set_value<S: SecretStore>(&self, _ctx: &StepContext<'_, S>) -> Result<(), Error> {
///         Ok(()) // nothing to tell: consumers read the secret
///     }
///     async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
///         ctx.pending_as::<Token>().await.map(|_| ())
///     }
/// }
/// ```
pub trait Rotator: Send + Sync {
    /// What the function's secret looks like. Before setSecret the driver
    /// parses the current and the pending value as this type and refuses a
    /// pending value whose [`SecretValue::target`] differs.
    type Secret: SecretValue;

    /// Makes the new value (createSecret). The driver stores it as pending and
    /// checks that it differs from the current and previous values.
    fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> impl Future<Output = Result<SecretString, Error>> + Send;

    /// Makes the target accept the pending value (setSecret). Must be idempotent.
    fn set_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Proves the pending value works at the target (testSecret).
    fn test_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Runs after finishSecret promoted the value (for example to revoke the old
    /// one where the target keeps several). The labels have moved by then:
    /// AWSCURRENT is the new value and AWSPREVIOUS the old one, so read them
    /// afresh ([`StepContext::read_label`]), not through the context's
    /// cached reads. Runs on every finishSecret, replays included, so it must
    /// be idempotent. Does nothing by default.
    fn after_finish<S: SecretStore>(
        &self,
        _ctx: &StepContext<'_, S>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }

    /// A capability few targets need: values the target issues itself and
    /// retires the old one for ([`IssuedValues`]). `None` by default.
    fn issued_values(&self) -> Option<&impl IssuedValues> {
        None::<&NoIssuedValues>
    }
}

/// For a target that issues the new value itself and retires the old one in
/// the same act (RFC 7592's client update): a value that exists only at the
/// target until it is stored, so making another is no way to recover from a
/// failed write. A [`Rotator`] opts in through [`Rotator::issued_values`].
pub trait IssuedValues: Send + Sync {
    /// Whether `value`, just returned by [`Rotator::create_value`], was
    /// issued at the target. For such a value createSecret retries
    /// PutSecretValue until the step's deadline, keeps the value in this
    /// process (by secret and version) so that a retry of the step stores it
    /// rather than asking the target for another, and if it still cannot be
    /// stored fails with [`Error::ValueNotStored`] and
    /// [`IssuedValues::recovery`]'s instructions.
    fn issued_at_target(&self, value: &SecretString) -> bool;

    /// Before a retry stores a value kept from an earlier attempt that could not
    /// store it: the value to store (the same, or updated with what the target
    /// changed since, such as a replaced registration access token), or `None`
    /// if the target no longer holds it (another process asked for a newer
    /// one), in which case createSecret asks for a new value. The kept value
    /// by default.
    fn refresh_issued<S: SecretStore>(
        &self,
        _ctx: &StepContext<'_, S>,
        kept: &SecretString,
    ) -> impl Future<Output = Result<Option<SecretString>, Error>> + Send {
        let kept = SecretString::from(kept.expose_secret());
        async move { Ok(Some(kept)) }
    }

    /// A value this run had the target issue could not be stored because
    /// another run of createSecret for the same version stored a different
    /// one first. Both asked the target, and where the target retires the old
    /// value on issue, the later ask retired the earlier one's value,
    /// whichever was stored. Whether the target holds `ours`: the value to
    /// store (updated with what the target changed since, such as a replaced
    /// registration access token), or `None` when it holds another or cannot
    /// tell, and the stored value stands. `None` by default.
    fn held_at_target<S: SecretStore>(
        &self,
        _ctx: &StepContext<'_, S>,
        _ours: &SecretString,
    ) -> impl Future<Output = Result<Option<SecretString>, Error>> + Send {
        async { Ok(None) }
    }

    /// For an issued value that could not be stored: what the operator runs
    /// to recover, and where the credential that still manages the target is
    /// (named, never shown).
    fn recovery<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        _value: &SecretString,
    ) -> impl Future<Output = String> + Send {
        let secret = ctx.secret_arn().to_owned();
        let version = ctx.event.version_id.clone();
        async move {
            format!(
                "This function keeps the value until it restarts: once Secrets Manager accepts writes again, retry the rotation (aws secretsmanager rotate-secret --secret-id {secret}: while version {version} is pending, Secrets Manager reattempts it) to store it"
            )
        }
    }
}

/// The [`IssuedValues`] of a rotator that makes its values itself: none is
/// issued at the target.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoIssuedValues;

impl IssuedValues for NoIssuedValues {
    fn issued_at_target(&self, _value: &SecretString) -> bool {
        false
    }
}

/// What a step did, returned to the caller (and shown by the local runner).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The step did its work.
    Done,
    /// createSecret found a value already stored for the token and kept it.
    PendingKept,
    /// The token is already AWSCURRENT: nothing left to do.
    AlreadyCurrent,
}

/// The result a step returns to Secrets Manager (which ignores it) and to the
/// local runner (which prints it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// The step that ran.
    pub step: &'static str,
    /// The secret's ARN.
    pub secret: String,
    /// The id of the version rotated to (serialized as `version`, as the
    /// local runner has always printed it).
    #[serde(rename = "version")]
    pub version_id: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Runs rotation steps for one function: a store, a rotator and the label that
/// marks the version being rotated to.
pub struct Driver<S, R> {
    store: S,
    rotator: R,
    pending_label: String,
    cache: ValueCache,
    /// Values the target issued that could not be stored yet, kept for a retry.
    issued: ValueCache,
    /// The after-rotation actions finishSecret runs ([`crate::after`]).
    #[cfg(feature = "after")]
    actions: Option<crate::after::Actions>,
}

impl<S: SecretStore, R: Rotator> Driver<S, R> {
    /// A driver that stages rotations under AWSPENDING.
    pub fn new(store: S, rotator: R) -> Self {
        Driver {
            store,
            rotator,
            pending_label: AWSPENDING.to_owned(),
            cache: ValueCache::default(),
            issued: ValueCache::default(),
            #[cfg(feature = "after")]
            actions: None,
        }
    }

    /// Runs the after-rotation actions a secret's `rotor:after` tag asks
    /// for and `actions` allows, at each finishSecret once the version is
    /// AWSCURRENT ([`crate::after`]). [`crate::lambda::serve`] sets them up
    /// from the environment.
    #[cfg(feature = "after")]
    pub fn with_actions(mut self, actions: crate::after::Actions) -> Self {
        self.actions = Some(actions);
        self
    }

    /// Stages rotations under another label, such as `MyPendingLabel`, for
    /// rotations that are staged now and promoted later by an orchestrator
    /// that invokes the function itself. A rotation that Secrets Manager
    /// starts is always AWSPENDING: such a driver refuses it
    /// ([`Error::PendingLabelMismatch`]).
    pub fn with_pending_label(mut self, label: impl Into<String>) -> Self {
        self.pending_label = label.into();
        self
    }

    /// The store, for callers that share it.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Runs one step: the service's checks, then the step itself.
    pub async fn run(&self, event: &RotationEvent) -> Result<StepReport, Error> {
        let secret = self
            .store
            .describe(&event.secret_id)
            .await
            .map_err(|source| Error::Store {
                secret: event.secret_id.clone(),
                operation: "DescribeSecret",
                source,
            })?;
        if !secret.rotation_enabled {
            return Err(Error::RotationDisabled { secret: secret.arn });
        }
        let precheck = secret
            .versions
            .precheck(&event.version_id, &self.pending_label)
            .map_err(|refusal| {
                refused(&secret.arn, &event.version_id, &self.pending_label, refusal)
            })?;
        let ctx = StepContext {
            store: &self.store,
            event,
            secret: &secret,
            pending_label: &self.pending_label,
            current: OnceCell::new(),
            pending: OnceCell::new(),
            cache: &self.cache,
        };
        let outcome = match (event.step, precheck) {
            // A finished rotation may still carry the pending label: tidy it.
            (Step::FinishSecret, _) => self.finish(&ctx).await?,
            (_, Precheck::AlreadyCurrent) => Outcome::AlreadyCurrent,
            (Step::CreateSecret, Precheck::Pending) => self.create(&ctx).await?,
            (Step::SetSecret, Precheck::Pending) => {
                not_overtaken(&ctx).await?;
                same_target::<S, R::Secret>(&ctx).await?;
                self.rotator.set_value(&ctx).await?;
                Outcome::Done
            }
            (Step::TestSecret, Precheck::Pending) => {
                self.rotator.test_value(&ctx).await?;
                Outcome::Done
            }
        };
        info!(secret = %secret.arn, step = %event.step, version = %event.version_id, ?outcome, "step finished");
        Ok(StepReport {
            step: event.step.as_str(),
            secret: secret.arn.clone(),
            version_id: event.version_id.clone(),
            outcome,
        })
    }

    async fn create(&self, ctx: &StepContext<'_, S>) -> Result<Outcome, Error> {
        let arn = &ctx.secret.arn;
        let token = &ctx.event.version_id;
        let current = ctx.current().await?;
        if let Some(stored) = ctx.read_pending().await? {
            // Kept from an earlier attempt of this process, while another run
            // stored a different value: which one does the target hold?
            if let Some(kept) = self.issued.get(arn, token)
                && kept.value.expose_secret() != stored.value.expose_secret()
            {
                return self.settle_race(ctx, kept.value).await;
            }
            self.issued.remove(arn, token);
            return Ok(Outcome::PendingKept);
        }
        let kept = match self.issued.get(arn, token) {
            Some(kept) => self.refresh_issued(ctx, &kept.value).await?,
            None => None,
        };
        let value = match kept {
            Some(value) => {
                info!(secret = %arn, version = %token, "storing the value the target issued in an earlier attempt, without asking for another");
                value
            }
            None => {
                if self.issued.get(arn, token).is_some() {
                    warn!(secret = %arn, version = %token, "the target no longer holds the value kept from an earlier attempt; asking for a new one");
                    self.issued.remove(arn, token);
                }
                self.new_value(ctx, current).await?
            }
        };
        let issued = self.issued.get(arn, token).is_some() || self.issued_at_target(&value);
        let put = if issued {
            self.put_until_deadline(ctx, token, &value).await
        } else {
            self.put_pending(ctx, token, &value).await
        };
        let source = match put {
            Ok(()) => {
                self.issued.remove(arn, token);
                let stored = StoredValue {
                    version_id: token.clone(),
                    value,
                    created: Some(std::time::SystemTime::now()),
                };
                self.cache.put(arn, &stored);
                return Ok(Outcome::Done);
            }
            Err(source) => source,
        };
        // Another invocation of createSecret for this token stored its value
        // between our read and our write. A value rotor made stands aside for
        // it; a value the target issued may have retired it.
        if matches!(source, StoreError::Rejected(_))
            && let Some(stored) = ctx.read_pending().await?
        {
            if issued && stored.value.expose_secret() != value.expose_secret() {
                return self.settle_race(ctx, value).await;
            }
            self.issued.remove(arn, token);
            warn!(secret = %arn, version = %token, "a concurrent createSecret stored the pending value first; keeping it");
            return Ok(Outcome::PendingKept);
        }
        if issued {
            return Err(self.keep_issued(ctx, value, source).await);
        }
        Err(ctx.store_error("PutSecretValue", source))
    }

    /// Keeps a value the target issued for a retry in this process, and
    /// says what to do.
    async fn keep_issued(
        &self,
        ctx: &StepContext<'_, S>,
        value: SecretString,
        source: StoreError,
    ) -> Error {
        let (arn, token) = (&ctx.secret.arn, &ctx.event.version_id);
        let recovery = self.recovery(ctx, &value).await;
        let kept = StoredValue {
            version_id: token.clone(),
            value,
            created: None,
        };
        self.issued.remove(arn, token);
        self.issued.put(arn, &kept);
        Error::ValueNotStored {
            secret: arn.clone(),
            version_id: token.clone(),
            source,
            recovery,
        }
    }

    /// Another run of createSecret stored its value for this version first,
    /// and `ours`, which the target issued, differs. If the target still
    /// holds ours, the stored value was retired when ours was issued: ours is
    /// the working credential, and since a version's value never changes, it
    /// is stored as a new version that takes the pending label. The step then
    /// fails, naming that version, whose rotation is the one to finish.
    async fn settle_race(
        &self,
        ctx: &StepContext<'_, S>,
        ours: SecretString,
    ) -> Result<Outcome, Error> {
        let (arn, token) = (&ctx.secret.arn, &ctx.event.version_id);
        let Some(held) = self.held_at_target(ctx, &ours).await? else {
            self.issued.remove(arn, token);
            warn!(secret = %arn, version = %token, "a concurrent createSecret stored another value first, and the target does not hold this run's; keeping the stored one");
            return Ok(Outcome::PendingKept);
        };
        let replacement = match new_version_id() {
            Ok(id) => id,
            Err(source) => {
                self.issued.remove(arn, token);
                let kept = StoredValue {
                    version_id: token.clone(),
                    value: held,
                    created: None,
                };
                self.issued.put(arn, &kept);
                return Err(Error::PasswordPolicy {
                    secret: arn.clone(),
                    source,
                });
            }
        };
        warn!(secret = %arn, version = %token, replacement = %replacement,
            "a concurrent createSecret stored a value the target has retired since; storing the one it holds as a new pending version");
        match self.put_until_deadline(ctx, &replacement, &held).await {
            Ok(()) => {
                self.issued.remove(arn, token);
                Err(Error::PendingReplaced {
                    secret: arn.clone(),
                    version_id: token.clone(),
                    replacement,
                    label: ctx.pending_label.to_owned(),
                })
            }
            Err(source) => Err(self.keep_issued(ctx, held, source).await),
        }
    }

    /// Whether the rotator's target issued `value` ([`IssuedValues`]).
    fn issued_at_target(&self, value: &SecretString) -> bool {
        self.rotator
            .issued_values()
            .is_some_and(|issued| issued.issued_at_target(value))
    }

    async fn refresh_issued(
        &self,
        ctx: &StepContext<'_, S>,
        kept: &SecretString,
    ) -> Result<Option<SecretString>, Error> {
        match self.rotator.issued_values() {
            Some(issued) => issued.refresh_issued(ctx, kept).await,
            None => NoIssuedValues.refresh_issued(ctx, kept).await,
        }
    }

    async fn held_at_target(
        &self,
        ctx: &StepContext<'_, S>,
        ours: &SecretString,
    ) -> Result<Option<SecretString>, Error> {
        match self.rotator.issued_values() {
            Some(issued) => issued.held_at_target(ctx, ours).await,
            None => Ok(None),
        }
    }

    async fn recovery(&self, ctx: &StepContext<'_, S>, value: &SecretString) -> String {
        match self.rotator.issued_values() {
            Some(issued) => issued.recovery(ctx, value).await,
            None => NoIssuedValues.recovery(ctx, value).await,
        }
    }

    /// A value from the rotator that differs from the current and previous ones.
    async fn new_value(
        &self,
        ctx: &StepContext<'_, S>,
        current: &StoredValue,
    ) -> Result<SecretString, Error> {
        let previous = ctx.previous().await?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let candidate = self.rotator.create_value(ctx).await?;
            let seen = |old: &StoredValue| old.value.expose_secret() == candidate.expose_secret();
            if !seen(current) && !previous.as_ref().is_some_and(seen) {
                return Ok(candidate);
            }
            if attempts == DISTINCT_ATTEMPTS {
                return Err(Error::NoDistinctValue {
                    secret: ctx.secret.arn.clone(),
                    attempts,
                });
            }
        }
    }

    /// PutSecretValue of a pending value as version `token`, once.
    async fn put_pending(
        &self,
        ctx: &StepContext<'_, S>,
        token: &str,
        value: &SecretString,
    ) -> Result<(), StoreError> {
        self.store
            .put_value(
                &ctx.secret.arn,
                NewVersion {
                    version_id: token,
                    value,
                    labels: &[&self.pending_label],
                    rotation_token: ctx.event.rotation_token.as_deref(),
                },
            )
            .await
    }

    /// PutSecretValue of a value the target issued: retried while the failure
    /// is one a retry can cure, until shortly before the step's deadline. A
    /// write whose answer was lost is safe to repeat: the version id makes it
    /// idempotent.
    async fn put_until_deadline(
        &self,
        ctx: &StepContext<'_, S>,
        version: &str,
        value: &SecretString,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let give_up = match crate::progress::deadline() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(started);
                started + left.saturating_sub(REPORT_MARGIN).max(left / 2)
            }
            None => started + RETRY_WITHOUT_DEADLINE,
        };
        Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
            .until(give_up)
            .run(
                |attempt| async move {
                    let left = give_up.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, self.put_pending(ctx, version, value)).await {
                        Ok(result) => result,
                        Err(_) => Err(StoreError::Unavailable(format!(
                            "PutSecretValue did not answer within the step's time ({attempt} attempts)"
                        ))),
                    }
                },
                StoreError::is_retryable,
                |attempt, error, _| {
                    warn!(secret = %ctx.secret.arn, version = %version, attempt, error = %error,
                        "could not store the value the target issued; retrying until the step's deadline");
                },
            )
            .await
            .map_err(|gave_up| gave_up.error)
    }

    async fn finish(&self, ctx: &StepContext<'_, S>) -> Result<Outcome, Error> {
        let plan = ctx
            .secret
            .versions
            .finish_plan(&ctx.event.version_id, &self.pending_label);
        let was_current = ctx.secret.versions.current() == Some(ctx.event.version_id.as_str());
        // Read before the labels move, for the rotation's metrics: in a warm
        // process both values are cached from createSecret, and cost no call.
        let times = if was_current {
            None
        } else {
            Some(self.rotation_times(ctx).await)
        };
        for change in &plan {
            self.store
                .move_label(&ctx.secret.arn, change)
                .await
                .map_err(|source| ctx.store_error("UpdateSecretVersionStage", source))?;
        }
        if let Some((pending_created, replaced_created)) = times {
            crate::metrics::record_completion(Completion {
                pending_created,
                replaced_created,
                completed_at: SystemTime::now(),
            });
        }
        // Before retiring the old value, and never failing the step: the
        // rotation is complete, whatever becomes of its consumers' actions.
        self.after_rotation(ctx).await;
        // Also on a replay: if retiring the old value failed after AWSCURRENT
        // moved, the service's retry of finishSecret gets to finish the job.
        self.rotator.after_finish(ctx).await?;
        Ok(if was_current {
            Outcome::AlreadyCurrent
        } else {
            Outcome::Done
        })
    }

    /// The secret's after-rotation actions, each at most once per version.
    /// A function without them says that a `rotor:after` tag is ignored.
    async fn after_rotation(&self, ctx: &StepContext<'_, S>) {
        #[cfg(feature = "after")]
        if let Some(actions) = &self.actions {
            // Stopped short of the step's deadline, so that the step still
            // succeeds: an action cut short has no outcome recorded, so
            // `rotor status` shows it as not run (and a replayed finishSecret,
            // if Secrets Manager sends one, runs it).
            let left = crate::progress::deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .map(|left| left.saturating_sub(AFTER_MARGIN).max(left / 2));
            match left {
                Some(left) => {
                    if tokio::time::timeout(left, actions.run(ctx)).await.is_err() {
                        warn!(secret = %ctx.secret.arn, version = %ctx.event.version_id,
                            "the after-rotation actions ran out of the step's time; \
                             those with no outcome recorded did not run (rotor status)");
                    }
                }
                None => actions.run(ctx).await,
            }
            return;
        }
        if ctx.secret.tags.contains_key(crate::after::AFTER_TAG) {
            warn!(secret = %ctx.secret.arn, version = %ctx.event.version_id,
                "the secret's {} tag is ignored: this function runs no after-rotation actions",
                crate::after::AFTER_TAG);
        }
    }

    /// When the pending version and the current one (the credential the
    /// rotation replaces) were created, where the store says. Never fails the
    /// step: a time that cannot be read is left out of the metrics.
    async fn rotation_times(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> (Option<SystemTime>, Option<SystemTime>) {
        let token = ctx.event.version_id.as_str();
        let pending = VersionSelector::Id(token, Some(ctx.pending_label));
        let pending_created = self.created(ctx, token, pending).await;
        let replaced_created = match ctx.secret.versions.current() {
            Some(id) => {
                let current = VersionSelector::Id(id, Some(AWSCURRENT));
                self.created(ctx, id, current).await
            }
            None => None,
        };
        (pending_created, replaced_created)
    }

    async fn created(
        &self,
        ctx: &StepContext<'_, S>,
        id: &str,
        selector: VersionSelector<'_>,
    ) -> Option<SystemTime> {
        match ctx.cached_or_read(id, selector).await {
            Ok(stored) => stored.and_then(|s| s.created),
            Err(e) => {
                debug!(secret = %ctx.secret.arn, version = %id, error = %e,
                    "could not read when the version was created; its metric is left out");
                None
            }
        }
    }
}

/// Refuses, before setSecret, a pending value that names another target than
/// the current one (another server, user or client): the function's own
/// type says what a target is.
async fn same_target<S: SecretStore, T: SecretValue>(
    ctx: &StepContext<'_, S>,
) -> Result<(), Error> {
    let current: T = ctx.current_as().await?;
    let pending: T = ctx.pending_as().await?;
    crate::value::require_same_target(ctx.secret_arn(), ctx.pending_label, &current, &pending)
}

/// A new version id, as Secrets Manager's own: a random (v4) UUID.
fn new_version_id() -> Result<String, crate::password::PolicyError> {
    let id = crate::password::random_text(16, uuid_text)?;
    Ok(id.expose_secret().to_owned())
}

/// 16 random bytes as the text of a version 4 (random) UUID.
pub(crate) fn uuid_text(random: &[u8]) -> String {
    let mut b = random.to_vec();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The error for a version the service's pre-checks refuse.
fn refused(secret: &str, token: &str, pending_label: &str, refusal: Refusal) -> Error {
    match refusal {
        Refusal::UnknownVersion => Error::UnknownVersion {
            secret: secret.to_owned(),
            version_id: token.to_owned(),
        },
        Refusal::NotPending(labels)
            if pending_label != AWSPENDING && labels.iter().any(|l| l == AWSPENDING) =>
        {
            Error::PendingLabelMismatch {
                secret: secret.to_owned(),
                version_id: token.to_owned(),
                label: pending_label.to_owned(),
            }
        }
        Refusal::NotPending(labels) => Error::NotPending {
            secret: secret.to_owned(),
            version_id: token.to_owned(),
            label: pending_label.to_owned(),
            labels: if labels.is_empty() {
                "none".to_owned()
            } else {
                labels.join(", ")
            },
        },
    }
}
