//! What a step sees ([`StepContext`]): the event, the secret's description and
//! the values it needs, each read from the store at most once.

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

use crate::error::Error;
use crate::event::RotationEvent;
use crate::labels::{AWSCURRENT, AWSPREVIOUS};
use crate::password::PasswordPolicy;
use crate::store::{SecretDescription, SecretStore, StoreError, StoredValue, VersionSelector};
use crate::value::{self, SecretValue};

/// What a step sees: the event, the secret's description, and the values it
/// needs, each read from the store at most once and only when asked for.
pub struct StepContext<'a, S> {
    pub(super) store: &'a S,
    /// The event being handled.
    pub event: &'a RotationEvent,
    /// The secret as DescribeSecret returned it at the start of the step.
    pub secret: &'a SecretDescription,
    /// The label the rotation is staged under (AWSPENDING unless configured).
    pub pending_label: &'a str,
    pub(super) current: OnceCell<StoredValue>,
    pub(super) pending: OnceCell<StoredValue>,
    pub(super) cache: &'a ValueCache,
}

/// Values this process has already read or written, by secret ARN and version
/// id. A stored version's value never changes (Secrets Manager refuses a
/// different value under an existing version id), so a cached value is always
/// the stored one, and a warm process skips reading it again in a later step.
/// Small and bounded; values stay in `SecretString`s.
#[derive(Default)]
pub struct ValueCache(std::sync::Mutex<Vec<Cached>>);

struct Cached {
    secret: String,
    version: String,
    value: SecretString,
    created: Option<std::time::SystemTime>,
}

/// Enough for the current, previous and pending values of a few secrets.
const CACHE_LIMIT: usize = 32;

impl ValueCache {
    pub(super) fn get(&self, secret: &str, version: &str) -> Option<StoredValue> {
        let entries = self.0.lock().ok()?;
        entries
            .iter()
            .find(|c| c.secret == secret && c.version == version)
            .map(|c| StoredValue {
                version_id: c.version.clone(),
                value: SecretString::from(c.value.expose_secret()),
                created: c.created,
            })
    }

    pub(super) fn put(&self, secret: &str, stored: &StoredValue) {
        let Ok(mut entries) = self.0.lock() else {
            return;
        };
        if entries
            .iter()
            .any(|c| c.secret == secret && c.version == stored.version_id)
        {
            return;
        }
        if entries.len() >= CACHE_LIMIT {
            entries.remove(0);
        }
        entries.push(Cached {
            secret: secret.to_owned(),
            version: stored.version_id.clone(),
            value: SecretString::from(stored.value.expose_secret()),
            created: stored.created,
        });
    }

    pub(super) fn remove(&self, secret: &str, version: &str) {
        if let Ok(mut entries) = self.0.lock() {
            entries.retain(|c| !(c.secret == secret && c.version == version));
        }
    }
}

impl<'a, S: SecretStore> StepContext<'a, S> {
    /// The store, for reading other secrets (a signing key, a master secret).
    pub fn store(&self) -> &S {
        self.store
    }

    /// The secret's ARN, for messages and logs.
    pub fn secret_arn(&self) -> &str {
        &self.secret.arn
    }

    /// The AWSCURRENT value.
    pub async fn current(&self) -> Result<&StoredValue, Error> {
        self.current
            .get_or_try_init(|| async {
                let id = self.secret.versions.current().unwrap_or_default();
                self.cached_or_read(id, VersionSelector::Label(AWSCURRENT))
                    .await?
                    .ok_or_else(|| Error::NoCurrentVersion {
                        secret: self.secret.arn.clone(),
                    })
            })
            .await
    }

    /// The value stored for the event's token under the pending label.
    pub async fn pending(&self) -> Result<&StoredValue, Error> {
        self.pending
            .get_or_try_init(|| async {
                self.read_pending()
                    .await?
                    .ok_or_else(|| Error::NoPendingValue {
                        secret: self.secret.arn.clone(),
                        version_id: self.event.version_id.clone(),
                    })
            })
            .await
    }

    /// The AWSPREVIOUS value, if the secret has one.
    pub async fn previous(&self) -> Result<Option<StoredValue>, Error> {
        match self.secret.versions.previous() {
            None => Ok(None),
            Some(id) => {
                self.cached_or_read(id, VersionSelector::Label(AWSPREVIOUS))
                    .await
            }
        }
    }

    /// The AWSCURRENT value as the function's type, or
    /// [`Error::InvalidSecretValue`] naming AWSCURRENT.
    pub async fn current_as<T: SecretValue>(&self) -> Result<T, Error> {
        value::parse_version(&self.secret.arn, AWSCURRENT, &self.current().await?.value)
    }

    /// The pending value as the function's type, or
    /// [`Error::InvalidSecretValue`] naming the pending label.
    pub async fn pending_as<T: SecretValue>(&self) -> Result<T, Error> {
        value::parse_version(
            &self.secret.arn,
            self.pending_label,
            &self.pending().await?.value,
        )
    }

    /// The AWSPREVIOUS value as the function's type: `None` when the secret
    /// has none, [`Error::InvalidSecretValue`] when it has one that does not
    /// parse. A caller that can do without it decides so in words of its
    /// own; none may treat a broken previous value as no previous value
    /// without saying so (it may hold a credential that still works).
    pub async fn previous_as<T: SecretValue>(&self) -> Result<Option<T>, Error> {
        match self.previous().await? {
            None => Ok(None),
            Some(stored) => {
                value::parse_version(&self.secret.arn, AWSPREVIOUS, &stored.value).map(Some)
            }
        }
    }

    /// The version that carries `label` now, read from the store: after
    /// finishSecret moved the labels, the context's own reads (made from the
    /// step's start) name the versions as they were.
    pub async fn read_label(&self, label: &str) -> Result<Option<StoredValue>, Error> {
        let read = self.read(VersionSelector::Label(label)).await?;
        if let Some(stored) = &read {
            self.cache.put(&self.secret.arn, stored);
        }
        Ok(read)
    }

    /// [`StepContext::read_label`], parsed as the function's type.
    pub async fn read_label_as<T: SecretValue>(&self, label: &str) -> Result<Option<T>, Error> {
        match self.read_label(label).await? {
            None => Ok(None),
            Some(stored) => value::parse_version(&self.secret.arn, label, &stored.value).map(Some),
        }
    }

    /// The refusal of the value under `label` for `problem` (a predicate
    /// naming the field and the fix, never a value): for a shape that only
    /// the function's settings can check, where [`SecretValue::parse`]
    /// cannot.
    pub fn invalid_value(&self, label: &str, problem: impl Into<String>) -> Error {
        Error::InvalidSecretValue {
            secret: self.secret.arn.clone(),
            label: label.to_owned(),
            problem: problem.into(),
        }
    }

    /// `bytes` random bytes from the OS's source, encoded by `encode` (a
    /// client secret, a key), or [`Error::PasswordPolicy`] naming the secret
    /// when the source fails.
    pub fn random_text(
        &self,
        bytes: usize,
        encode: impl FnOnce(&[u8]) -> String,
    ) -> Result<SecretString, Error> {
        crate::password::random_text(bytes, encode).map_err(|source| Error::PasswordPolicy {
            secret: self.secret.arn.clone(),
            source,
        })
    }

    /// A new password under `policy`, or [`Error::PasswordPolicy`] naming
    /// the secret when the policy cannot make one.
    pub fn generate_password(&self, policy: &PasswordPolicy) -> Result<SecretString, Error> {
        policy.generate().map_err(|source| Error::PasswordPolicy {
            secret: self.secret.arn.clone(),
            source,
        })
    }

    pub(super) async fn read_pending(&self) -> Result<Option<StoredValue>, Error> {
        let selector = VersionSelector::Id(&self.event.version_id, Some(self.pending_label));
        self.cached_or_read(&self.event.version_id, selector).await
    }

    /// The value of version `id`, from this process's cache or the store.
    pub(super) async fn cached_or_read(
        &self,
        id: &str,
        selector: VersionSelector<'_>,
    ) -> Result<Option<StoredValue>, Error> {
        if let Some(cached) = self.cache.get(&self.secret.arn, id) {
            return Ok(Some(cached));
        }
        let read = self.read(selector).await?;
        if let Some(stored) = &read {
            self.cache.put(&self.secret.arn, stored);
        }
        Ok(read)
    }

    pub(super) async fn read(
        &self,
        selector: VersionSelector<'_>,
    ) -> Result<Option<StoredValue>, Error> {
        self.store
            .get_value(&self.secret.arn, selector)
            .await
            .map_err(|source| self.store_error("GetSecretValue", source))
    }

    pub(super) fn store_error(&self, operation: &'static str, source: StoreError) -> Error {
        Error::Store {
            secret: self.secret.arn.clone(),
            operation,
            source,
        }
    }
}

/// Refuses to change the target for a pending value that was made from an
/// older AWSCURRENT: if someone stored a new current value (PutSecretValue)
/// after this rotation began, applying the pending value would undo their
/// change and could retire the credential they just stored.
pub(super) async fn not_overtaken<S: SecretStore>(ctx: &StepContext<'_, S>) -> Result<(), Error> {
    let current = ctx.current().await?;
    let pending = ctx.pending().await?;
    match (current.created, pending.created) {
        (Some(current_at), Some(pending_at)) if current_at > pending_at => {
            Err(Error::CurrentChanged {
                secret: ctx.secret.arn.clone(),
                current: current.version_id.clone(),
                version_id: ctx.event.version_id.clone(),
                label: ctx.pending_label.to_owned(),
            })
        }
        _ => Ok(()),
    }
}
