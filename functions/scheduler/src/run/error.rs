//! Why a call, a look or a whole run failed.

use rotor_core::store::StoreError;

use super::{CHECK_TIMEOUT, DEADLINE_MARGIN};
use crate::ConfigError;

/// A call that failed, after [`retry::MAX_ATTEMPTS`] attempts at most.
#[derive(Debug, thiserror::Error)]
#[error("Secrets Manager {operation} failed after {attempts} attempt(s): {source}")]
pub struct CallError {
    /// The API operation.
    pub operation: &'static str,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last attempt's failure, or the deadline.
    #[source]
    pub source: CallFailure,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    /// The service's (or the connection's) answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run stopped waiting: its time ran out.
    #[error(
        "the run stopped waiting for it {} s before the function's deadline (raise the function's timeout if this repeats)",
        DEADLINE_MARGIN.as_secs()
    )]
    Deadline,
}

impl CallFailure {
    /// Whether a later run may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallFailure::Store(e) => e.is_retryable(),
            CallFailure::Deadline => true,
        }
    }
}

/// Why the one quick look after a cut-off RotateSecret could not tell
/// whether the version is staged.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// DescribeSecret failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// DescribeSecret did not answer in time.
    #[error("it did not answer within {} s", CHECK_TIMEOUT.as_secs())]
    TimedOut,
}

/// Why a whole run failed (a secret's failure only fails that secret).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The function's settings are unusable.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The event's overrides are unusable.
    #[error(
        "the event's {field} {problem}; the scheduler accepts any JSON event, with optional overrides such as {{\"dry_run\": true}}"
    )]
    InvalidEvent {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The secrets could not be listed.
    #[error("listing the secrets tagged {filter} failed: {source}")]
    List {
        /// The tag filter.
        filter: String,
        /// The failed call.
        #[source]
        source: CallError,
    },
}

impl RunError {
    /// Whether a later run may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RunError::List { source, .. } if source.source.is_retryable())
    }

    /// The failure's kind: the error type without its class.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Config(_) => "InvalidSettings",
            RunError::InvalidEvent { .. } => "InvalidEvent",
            RunError::List { .. } => "SecretsManager",
        }
    }

    /// The Lambda error type: `Retryable.<Kind>` or `NotRetryable.<Kind>`, as the
    /// rotation functions report theirs.
    pub fn error_type(&self) -> &'static str {
        match self {
            RunError::Config(_) => "NotRetryable.InvalidSettings",
            RunError::InvalidEvent { .. } => "NotRetryable.InvalidEvent",
            RunError::List { source, .. } if source.source.is_retryable() => {
                "Retryable.SecretsManager"
            }
            RunError::List { .. } => "NotRetryable.SecretsManager",
        }
    }
}
