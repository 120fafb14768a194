//! An in-memory secret store for fast tests (the `testing` feature), following
//! AWS's documented behaviour (not moto's where they differ): a version's value can never change,
//! moving AWSCURRENT puts AWSPREVIOUS on the old version, and moving a label that
//! sits on another version requires naming that version.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

use super::{
    NewVersion, RotationService, SecretDescription, SecretStore, StoreError, StoredValue,
    VersionSelector,
};
use crate::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, LabelMove, Versions};

/// Secrets kept in process memory (the `testing` feature). Create secrets and
/// stage rotations through [`RotationService`], as moto or AWS would.
///
/// ```
/// use rotor_core::labels::AWSCURRENT;
/// use rotor_core::store::{RotationService, VersionSelector};
/// use rotor_core::{ExposeSecret, MemoryStore, SecretStore, SecretString};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let arn = store
///     .create_secret("team-a/api-key", &SecretString::from("first"), &[("team", "a")])
///     .await
///     .unwrap();
///
/// let current = store
///     .get_value(&arn, VersionSelector::Label(AWSCURRENT))
///     .await
///     .unwrap()
///     .expect("a new secret has an AWSCURRENT value");
/// assert!(current.value.expose_secret() == "first");
/// assert_eq!(store.reads(), 1);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    secrets: Mutex<Vec<Secret>>,
    reads: std::sync::atomic::AtomicUsize,
}

#[derive(Debug)]
struct Secret {
    arn: String,
    name: String,
    rotation_enabled: bool,
    tags: BTreeMap<String, String>,
    versions: Vec<Version>,
}

#[derive(Debug)]
struct Version {
    id: String,
    value: Option<SecretString>,
    labels: Vec<String>,
    created: SystemTime,
}

impl Secret {
    fn version_mut(&mut self, id: &str) -> Option<&mut Version> {
        self.versions.iter_mut().find(|v| v.id == id)
    }

    fn holder_of(&self, label: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.labels.iter().any(|l| l == label))
            .map(|v| v.id.as_str())
    }

    fn remove_label(&mut self, label: &str) {
        for version in &mut self.versions {
            version.labels.retain(|l| l != label);
        }
    }

    /// Puts a label on a version, taking it from any other; AWSCURRENT leaves
    /// AWSPREVIOUS behind on the version it came from, as the service does.
    fn attach(&mut self, label: &str, to: &str) {
        let old = self.holder_of(label).map(str::to_owned);
        if old.as_deref() == Some(to) {
            return;
        }
        self.remove_label(label);
        if let Some(old) = old.filter(|_| label == AWSCURRENT) {
            self.remove_label(AWSPREVIOUS);
            if let Some(v) = self.version_mut(&old) {
                v.labels.push(AWSPREVIOUS.to_owned());
            }
        }
        if let Some(v) = self.version_mut(to) {
            v.labels.push(label.to_owned());
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many GetSecretValue calls this store has answered.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Secret>> {
        // A panic while holding the lock cannot leave a half-made change behind:
        // every change is applied after its checks pass.
        self.secrets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_secret<T>(
        &self,
        secret_id: &str,
        f: impl FnOnce(&mut Secret) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut secrets = self.lock();
        let secret = secrets
            .iter_mut()
            .find(|s| s.arn == secret_id || s.name == secret_id)
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "ResourceNotFoundException: Secrets Manager can't find the specified secret {secret_id}"
                ))
            })?;
        f(secret)
    }
}

impl SecretStore for MemoryStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription, StoreError> {
        self.with_secret(secret_id, |s| {
            Ok(SecretDescription {
                arn: s.arn.clone(),
                name: s.name.clone(),
                rotation_enabled: s.rotation_enabled,
                // Like the service, list only versions that carry a label.
                versions: Versions::new(
                    s.versions
                        .iter()
                        .filter(|v| !v.labels.is_empty())
                        .map(|v| (v.id.clone(), v.labels.clone())),
                ),
                tags: s.tags.clone(),
            })
        })
    }

    async fn get_value(
        &self,
        secret_id: &str,
        selector: VersionSelector<'_>,
    ) -> Result<Option<StoredValue>, StoreError> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The service answers ResourceNotFoundException for a missing secret and
        // a missing value alike, so the AWS adapter cannot tell them apart.
        let found = self.with_secret(secret_id, |s| {
            let found = s.versions.iter().find(|v| match selector {
                VersionSelector::Label(label) => v.labels.iter().any(|l| l == label),
                VersionSelector::Id(id, label) => {
                    v.id == id && label.is_none_or(|label| v.labels.iter().any(|l| l == label))
                }
            });
            Ok(found.and_then(|v| {
                let value = v.value.as_ref()?;
                Some(StoredValue {
                    version_id: v.id.clone(),
                    value: SecretString::from(value.expose_secret()),
                    created: Some(v.created),
                })
            }))
        });
        match found {
            Err(StoreError::NotFound(_)) => Ok(None),
            other => other,
        }
    }

    async fn put_value(&self, secret_id: &str, new: NewVersion<'_>) -> Result<(), StoreError> {
        self.with_secret(secret_id, |s| {
            let labels: Vec<&str> = if new.labels.is_empty() {
                vec![AWSCURRENT]
            } else {
                new.labels.to_vec()
            };
            match s.version_mut(new.version_id) {
                Some(Version {
                    value: Some(old), ..
                }) => {
                    if old.expose_secret() != new.value.expose_secret() {
                        return Err(StoreError::Rejected(format!(
                            "ResourceExistsException: version {} already exists with another value",
                            new.version_id
                        )));
                    }
                }
                Some(version) => {
                    version.value = Some(SecretString::from(new.value.expose_secret()))
                }
                None => s.versions.push(Version {
                    id: new.version_id.to_owned(),
                    value: Some(SecretString::from(new.value.expose_secret())),
                    labels: Vec::new(),
                    created: SystemTime::now(),
                }),
            }
            for label in labels {
                s.attach(label, new.version_id);
            }
            Ok(())
        })
    }

    async fn move_label(&self, secret_id: &str, change: &LabelMove) -> Result<(), StoreError> {
        self.with_secret(secret_id, |s| {
            let holder = s.holder_of(&change.label).map(str::to_owned);
            for id in change.to.iter().chain(change.from.iter()) {
                if !s.versions.iter().any(|v| &v.id == id) {
                    return Err(StoreError::NotFound(format!(
                        "ResourceNotFoundException: secret {} has no version {id}",
                        s.arn
                    )));
                }
            }
            match (&holder, &change.from, &change.to) {
                // The service refuses to take a label from a version it is not on...
                (_, Some(from), _) if holder.as_ref() != Some(from) => {
                    Err(StoreError::Rejected(format!(
                        "InvalidParameterException: label {} is not attached to version {from}",
                        change.label
                    )))
                }
                // ...and to move a label without saying where it comes from.
                (Some(holder), None, Some(to)) if holder != to => {
                    Err(StoreError::Rejected(format!(
                        "InvalidParameterException: label {} is attached to version {holder}; name it in RemoveFromVersionId",
                        change.label
                    )))
                }
                (_, _, Some(to)) => {
                    s.attach(&change.label, to);
                    Ok(())
                }
                (_, _, None) => {
                    s.remove_label(&change.label);
                    Ok(())
                }
            }
        })
    }

    async fn set_tag(&self, secret_id: &str, key: &str, value: &str) -> Result<(), StoreError> {
        self.with_secret(secret_id, |s| {
            s.tags.insert(key.to_owned(), value.to_owned());
            Ok(())
        })
    }

    async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<SystemTime>, StoreError> {
        let found = self.with_secret(secret_id, |s| {
            Ok(s.versions
                .iter()
                .find(|v| v.id == version_id)
                .map(|v| v.created))
        });
        match found {
            Err(StoreError::NotFound(_)) => Ok(None),
            other => other,
        }
    }
}

impl RotationService for MemoryStore {
    async fn create_secret(
        &self,
        name: &str,
        value: &SecretString,
        tags: &[(&str, &str)],
    ) -> Result<String, StoreError> {
        let mut secrets = self.lock();
        if secrets.iter().any(|s| s.name == name) {
            return Err(StoreError::Rejected(format!(
                "ResourceExistsException: a secret named {name} already exists"
            )));
        }
        let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-rotor1");
        let initial = format!("initial-{}", secrets.len());
        secrets.push(Secret {
            arn: arn.clone(),
            name: name.to_owned(),
            rotation_enabled: false,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            versions: vec![Version {
                id: initial,
                value: Some(SecretString::from(value.expose_secret())),
                labels: vec![AWSCURRENT.to_owned()],
                created: SystemTime::now(),
            }],
        });
        Ok(arn)
    }

    async fn begin_rotation(&self, secret_id: &str, token: &str) -> Result<(), StoreError> {
        self.with_secret(secret_id, |s| {
            if s.version_mut(token).is_some() {
                return Err(StoreError::Rejected(format!(
                    "InvalidRequestException: version {token} already exists"
                )));
            }
            s.rotation_enabled = true;
            s.versions.push(Version {
                id: token.to_owned(),
                value: None,
                labels: Vec::new(),
                created: SystemTime::now(),
            });
            s.attach(AWSPENDING, token);
            Ok(())
        })
    }
}
