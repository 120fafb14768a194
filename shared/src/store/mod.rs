//! The secret-store port: the few Secrets Manager operations a rotation needs.
//!
//! The rotation driver names only this trait, never an SDK client, so the same
//! steps run against AWS (or moto) through [`aws::AwsStore`] and, with the
//! `testing` feature, in memory through `memory::MemoryStore`. One contract
//! suite (`rotor_core::testing::store_contract`) runs against both adapters to
//! keep the in-memory one honest: it must behave as AWS documents, not as is
//! convenient.
//!
//! The service's own side of a rotation (`RotationService`: creating a
//! secret, staging a rotation as RotateSecret does) exists only with the
//! `testing` feature: staging needs an emulator, and a deployed function never
//! plays the service.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::SystemTime;

use secrecy::SecretString;

use crate::labels::{LabelMove, Versions};

pub mod aws;
#[cfg(feature = "testing")]
pub mod memory;

/// What DescribeSecret tells about a secret.
#[derive(Clone, Debug, Default)]
pub struct SecretDescription {
    /// The secret's full ARN.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// Whether rotation is turned on.
    pub rotation_enabled: bool,
    /// Its versions and their staging labels.
    pub versions: Versions,
    /// Its tags, which carry per-secret rotation settings.
    pub tags: BTreeMap<String, String>,
}

/// Which version GetSecretValue should read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSelector<'a> {
    /// The version that carries this label.
    Label(&'a str),
    /// This version id, which must also carry the label when one is given.
    Id(&'a str, Option<&'a str>),
}

/// A version's value.
#[derive(Debug)]
pub struct StoredValue {
    /// The version id.
    pub version_id: String,
    /// The `SecretString`.
    pub value: SecretString,
    /// When the version was created, if the store says.
    pub created: Option<SystemTime>,
}

/// A value to store as a new version (PutSecretValue).
#[derive(Clone, Copy, Debug)]
pub struct NewVersion<'a> {
    /// The version id (PutSecretValue's ClientRequestToken). Putting the same
    /// value twice under one id is a success; a different value under an
    /// existing id is refused.
    pub version_id: &'a str,
    /// The value.
    pub value: &'a SecretString,
    /// The labels the version gets (moved from wherever they are).
    pub labels: &'a [&'a str],
    /// The RotationToken of a cross-account rotation, passed on to the service.
    pub rotation_token: Option<&'a str>,
}

/// Why a store call failed. Messages come from the service and never hold values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The secret or version does not exist.
    #[error("not found ({0})")]
    NotFound(String),
    /// The function's role may not do this.
    #[error(
        "access denied ({0}); grant the function's role this action on the secret (and kms:Decrypt on its key)"
    )]
    AccessDenied(String),
    /// No AWS credentials could be found to sign the request.
    #[error(
        "no AWS credentials could be loaded ({0}); run the function with an execution role, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    NoCredentials(String),
    /// The service refused the request as invalid in the secret's current state.
    #[error("refused ({0})")]
    Rejected(String),
    /// The service asked us to slow down.
    #[error("throttled ({0}); the step can be retried")]
    Throttled(String),
    /// The service could not be reached or failed.
    #[error("unavailable ({0}); check the endpoint and network (VPC endpoint or NAT), then retry")]
    Unavailable(String),
    /// The version holds a value rotor cannot rotate.
    #[error("unsupported value ({0})")]
    Unsupported(String),
}

impl StoreError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Throttled(_) | StoreError::Unavailable(_))
    }
}

/// The operations a rotation function performs on its secret.
pub trait SecretStore: Send + Sync {
    /// DescribeSecret.
    fn describe(
        &self,
        secret_id: &str,
    ) -> impl Future<Output = Result<SecretDescription, StoreError>> + Send;

    /// GetSecretValue; `Ok(None)` when the selector matches no version, the
    /// version has no value yet, or there is no such secret (the service gives
    /// one answer for all three).
    fn get_value(
        &self,
        secret_id: &str,
        selector: VersionSelector<'_>,
    ) -> impl Future<Output = Result<Option<StoredValue>, StoreError>> + Send;

    /// PutSecretValue with a ClientRequestToken and staging labels.
    fn put_value(
        &self,
        secret_id: &str,
        version: NewVersion<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// UpdateSecretVersionStage.
    fn move_label(
        &self,
        secret_id: &str,
        change: &LabelMove,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// TagResource of one tag, replacing its value: the records rotor keeps
    /// on a secret, such as the after-rotation actions' results
    /// ([`crate::after::RESULT_TAG`]). A store that keeps no tags refuses
    /// (the default); the caller then only loses the record.
    fn set_tag(
        &self,
        secret_id: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (secret_id, value);
        let problem = format!("this store keeps no tags, so the tag {key} was not written");
        async move { Err(StoreError::Unsupported(problem)) }
    }

    /// When version `version_id` was created (ListSecretVersionIds'
    /// `CreatedDate`): for a version RotateSecret staged, when the rotation
    /// began, before createSecret stored a value. `Ok(None)` when the store
    /// does not say (the default) or has no such version. A target whose
    /// createSecret makes something the store must then hold (an IAM access
    /// key) tells its own leftovers by it.
    fn version_created(
        &self,
        _secret_id: &str,
        _version_id: &str,
    ) -> impl Future<Output = Result<Option<SystemTime>, StoreError>> + Send {
        async { Ok(None) }
    }
}

/// A shared store is a store: several drivers (or a test and a driver) can use
/// one client.
impl<S: SecretStore + ?Sized> SecretStore for &S {
    fn describe(
        &self,
        secret_id: &str,
    ) -> impl Future<Output = Result<SecretDescription, StoreError>> + Send {
        (**self).describe(secret_id)
    }

    fn get_value(
        &self,
        secret_id: &str,
        selector: VersionSelector<'_>,
    ) -> impl Future<Output = Result<Option<StoredValue>, StoreError>> + Send {
        (**self).get_value(secret_id, selector)
    }

    fn put_value(
        &self,
        secret_id: &str,
        version: NewVersion<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_value(secret_id, version)
    }

    fn move_label(
        &self,
        secret_id: &str,
        change: &LabelMove,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).move_label(secret_id, change)
    }

    fn set_tag(
        &self,
        secret_id: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).set_tag(secret_id, key, value)
    }

    fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> impl Future<Output = Result<Option<SystemTime>, StoreError>> + Send {
        (**self).version_created(secret_id, version_id)
    }
}

/// The service's own side of a rotation, which the local runner and the tests
/// play: creating secrets and staging a rotation as RotateSecret does. Only
/// with the `testing` feature.
///
/// ```
/// use rotor_core::labels::AWSPENDING;
/// use rotor_core::store::RotationService;
/// use rotor_core::{MemoryStore, SecretStore, SecretString};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let arn = store
///     .create_secret("team-a/api-key", &SecretString::from("first"), &[])
///     .await
///     .unwrap();
/// store.begin_rotation(&arn, "v2").await.unwrap();
///
/// let secret = store.describe(&arn).await.unwrap();
/// assert!(secret.rotation_enabled);
/// assert_eq!(secret.versions.with_label(AWSPENDING), Some("v2"));
/// # }
/// ```
#[cfg(feature = "testing")]
pub trait RotationService: SecretStore {
    /// CreateSecret with an initial value (AWSCURRENT) and tags; returns the ARN.
    fn create_secret(
        &self,
        name: &str,
        value: &SecretString,
        tags: &[(&str, &str)],
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// What RotateSecret does before it invokes the function: turn rotation on and
    /// stage a version `token` with no value under AWSPENDING.
    fn begin_rotation(
        &self,
        secret_id: &str,
        token: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
