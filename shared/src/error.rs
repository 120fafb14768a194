//! Errors of the rotation core, each one a failure that an operator can act on.
//!
//! Secrets Manager shows the function's error to whoever looks at the failed
//! rotation, so every message names the secret, the version or field at fault and
//! the fix. No variant carries a secret value: values stay in `SecretString`s and
//! never reach a message. [`Error::is_retryable`] says whether running the same
//! step again can help; it becomes the Lambda error type.

use crate::password::PolicyError;
use crate::store::StoreError;

/// Everything that can make a rotation step fail.
///
/// Its Lambda error type says whether running the step again can help, and
/// its message names the secret and the fix:
///
/// ```
/// use rotor_core::Error;
///
/// let error = Error::RotationDisabled { secret: "team-a/app".into() };
/// assert!(!error.is_retryable());
/// assert_eq!(error.error_type(), "NotRetryable.RotationDisabled");
/// assert!(error.to_string().starts_with("rotation is not enabled for secret team-a/app; turn it on"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The invocation payload is not a rotation event.
    #[error(
        "the event is not a Secrets Manager rotation event: {reason}. Rotation events carry SecretId, ClientRequestToken and Step (createSecret, setSecret, testSecret or finishSecret); check what invoked the function"
    )]
    InvalidEvent {
        /// Which field is missing or wrong.
        reason: String,
    },

    /// Secrets Manager has rotation turned off for the secret.
    #[error(
        "rotation is not enabled for secret {secret}; turn it on (RotateSecret, or a rotation schedule) and start the rotation again"
    )]
    RotationDisabled {
        /// The secret's ARN or name.
        secret: String,
    },

    /// The event's token is not a version of the secret.
    #[error(
        "secret {secret} has no version {version_id}; the ClientRequestToken must name the version that RotateSecret staged. Start a new rotation with RotateSecret"
    )]
    UnknownVersion {
        /// The secret's ARN or name.
        secret: String,
        /// The event's ClientRequestToken.
        version_id: String,
    },

    /// The event's version is neither current nor pending.
    #[error(
        "version {version_id} of secret {secret} is not staged as {label} (its labels: {labels}); another rotation may have replaced it. Start a new rotation with RotateSecret"
    )]
    NotPending {
        /// The secret's ARN or name.
        secret: String,
        /// The event's ClientRequestToken.
        version_id: String,
        /// The pending label that was expected.
        label: String,
        /// The labels the version has, comma separated, or `none`.
        labels: String,
    },

    /// The function stages rotations under a custom label
    /// (`ROTOR_PENDING_LABEL`), but the event's version is AWSPENDING: a
    /// rotation that Secrets Manager started, which always stages that label.
    #[error(
        "version {version_id} of secret {secret} is staged as AWSPENDING, as Secrets Manager's RotateSecret stages every rotation, but this function rotates only versions staged as {label} ({var}={label}). {var} is for rotations that your own orchestrator stages under that label and runs by invoking the function; for rotations that Secrets Manager starts, remove {var} from the function's environment",
        var = crate::lambda::PENDING_LABEL_VAR
    )]
    PendingLabelMismatch {
        /// The secret's ARN or name.
        secret: String,
        /// The event's ClientRequestToken.
        version_id: String,
        /// The function's pending label.
        label: String,
    },

    /// Someone stored a new AWSCURRENT value after this rotation began.
    #[error(
        "AWSCURRENT of secret {secret} is now version {current}, which was stored after this rotation's version {version_id}: someone else wrote the secret during the rotation, and applying a value made from the older one would undo their change. Nothing was changed at the target. Cancel this rotation (aws secretsmanager update-secret-version-stage --secret-id {secret} --version-stage {label} --remove-from-version-id {version_id}) and rotate again"
    )]
    CurrentChanged {
        /// The secret's ARN or name.
        secret: String,
        /// The version that is AWSCURRENT now.
        current: String,
        /// The event's ClientRequestToken.
        version_id: String,
        /// The pending label.
        label: String,
    },

    /// The secret has no AWSCURRENT version to rotate from.
    #[error(
        "secret {secret} has no AWSCURRENT version with a value; store an initial value (PutSecretValue) before rotating"
    )]
    NoCurrentVersion {
        /// The secret's ARN or name.
        secret: String,
    },

    /// The pending version that an earlier step should have stored is missing.
    #[error(
        "secret {secret} has no value stored for pending version {version_id}; createSecret has not run for this rotation. Start the rotation again"
    )]
    NoPendingValue {
        /// The secret's ARN or name.
        secret: String,
        /// The event's ClientRequestToken.
        version_id: String,
    },

    /// A stored value does not have the shape the function needs.
    #[error("the {label} value of secret {secret} {problem}")]
    InvalidSecretValue {
        /// The secret's ARN or name.
        secret: String,
        /// Which version: AWSCURRENT, AWSPENDING, ...
        label: String,
        /// What is wrong and how to fix it, naming the field (never its value).
        problem: String,
    },

    /// The function's settings (environment or the secret's tags) are unusable.
    #[error("invalid setting {setting} for secret {secret}: {problem}")]
    InvalidSettings {
        /// The secret's ARN or name.
        secret: String,
        /// The environment variable or tag at fault.
        setting: String,
        /// What is wrong and how to fix it.
        problem: String,
    },

    /// A secret this one points at (a master, management or key secret) has not
    /// agreed to serve it, and the deployment's environment does not allow it.
    #[error(
        "setting {setting} of secret {secret} names the secret {linked}, which does not agree to serve it; whoever writes a secret may not borrow another secret's credential. {fix}"
    )]
    NotServed {
        /// The ARN of the secret being rotated.
        secret: String,
        /// The setting that points at the other secret.
        setting: String,
        /// The ARN of the secret it points at.
        linked: String,
        /// What to change: the tag to add, or the deployer's variable.
        fix: String,
    },

    /// An admin secret was asked to act on a user it may not: its own, one
    /// outside its owner's `rotor:manages` tag, or a privileged account.
    #[error(
        "secret {secret} names user {user:?}, which the admin secret {admin} may not act on: {reason}. Nothing was changed"
    )]
    NotManaged {
        /// The ARN of the secret being rotated.
        secret: String,
        /// The ARN of the admin secret.
        admin: String,
        /// The user the secret names.
        user: String,
        /// Why, and the fix.
        reason: String,
    },

    /// The password policy cannot produce a password.
    #[error("password policy for secret {secret}: {source}")]
    PasswordPolicy {
        /// The secret's ARN or name.
        secret: String,
        /// What makes the policy impossible.
        #[source]
        source: PolicyError,
    },

    /// The generator kept producing a value equal to the current or previous one.
    #[error(
        "could not generate a value for secret {secret} that differs from its current and previous values after {attempts} attempts; widen the password policy (PASSWORD_LENGTH, EXCLUDE_*)"
    )]
    NoDistinctValue {
        /// The secret's ARN or name.
        secret: String,
        /// How many values were drawn.
        attempts: u32,
    },

    /// A Secrets Manager call failed.
    #[error("Secrets Manager {operation} on secret {secret} failed: {source}")]
    Store {
        /// The secret's ARN or name.
        secret: String,
        /// The API operation, such as PutSecretValue.
        operation: &'static str,
        /// Why it failed.
        #[source]
        source: StoreError,
    },

    /// The target has already issued the new value (and retired the old one),
    /// but Secrets Manager would not store it before the step's deadline.
    #[error(
        "the target has already issued the value of version {version_id} of secret {secret}, but it could not be stored: {source}. {recovery}"
    )]
    ValueNotStored {
        /// The secret's ARN or name.
        secret: String,
        /// The version the value was issued for.
        version_id: String,
        /// Why the last PutSecretValue failed.
        #[source]
        source: StoreError,
        /// What to run, and which credential still manages the target (named, never shown).
        recovery: String,
    },

    /// Two createSecret runs for one version each had the target issue a
    /// value, and the other run stored its value first, but the target had
    /// retired that one when it issued this run's. This run's value, the one
    /// the target holds, is stored as a new version that carries the pending
    /// label instead; the rotation to finish is the one to that version.
    #[error(
        "two createSecret runs for version {version_id} of secret {secret} each had the target issue a new value, and the other run stored its value first, but the target had retired that value when it issued this run's. The value the target holds is now stored as version {replacement}, which carries {label} instead of {version_id}. Finish the rotation to that version: aws secretsmanager rotate-secret --secret-id {secret} --client-request-token {replacement} (or: rotor doctor {secret} --fix --stuck-after-minutes 0)"
    )]
    PendingReplaced {
        /// The secret's ARN or name.
        secret: String,
        /// The event's version, no longer pending.
        version_id: String,
        /// The version that holds the value the target holds, now pending.
        replacement: String,
        /// The pending label.
        label: String,
    },

    /// The step ran out of time: it stopped short of the function's deadline
    /// rather than be killed by it, and says what it was waiting for.
    #[error(
        "gave up after {elapsed_ms} ms, {margin_ms} ms before the function's timeout, while waiting for {waiting_for}. Check that it is reachable from the function (VPC subnets and routes, security groups, a VPC endpoint for Secrets Manager) and answering, then rotate again; if it is only slow, raise the function's timeout"
    )]
    DeadlineReached {
        /// The secret's ARN or name.
        secret: String,
        /// What the step last said it was waiting for.
        waiting_for: String,
        /// How long the step ran.
        elapsed_ms: u128,
        /// How long before the deadline it stopped.
        margin_ms: u128,
    },

    /// The system that uses the credential (a database, a cache, a provider, a
    /// webhook) refused or could not be reached. Built by
    /// [`TargetError::at`] (or [`Error::target`]) only.
    #[error("{target}: {problem}")]
    #[non_exhaustive]
    Target {
        /// Which kind of target failed.
        kind: TargetKind,
        /// Why it failed, classified from the driver's or protocol's own codes.
        cause: Cause,
        /// The host, URL or system at fault (never a credential).
        target: String,
        /// What failed and the likely fix (never a credential, never a server's
        /// text that may echo one).
        problem: String,
    },
}

/// The kind of target a [`Error::Target`] failure came from: the first half
/// of its Lambda error type (`NotRetryable.DatabaseAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetKind {
    /// A database server (MySQL, MariaDB, PostgreSQL).
    Database,
    /// A Redis-protocol cache, or the ElastiCache / MemoryDB API.
    Cache,
    /// An OAuth authorization server or identity provider's API.
    Provider,
    /// The webhook that registers a generated value.
    Webhook,
    /// Any other system that accepts the credential (an API, a key file):
    /// for rotators built on rotor-core outside rotor's own functions.
    Service,
}

/// Why a target failed: the second half of its Lambda error type. Each cause
/// decides, once, whether running the step again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// No connection: refused, reset, no route, name not found, timed out.
    Unreachable,
    /// Reached, but busy or failing for now: too many connections, 429, 5xx,
    /// a server shutting down, a serialization failure or deadlock.
    Unavailable,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The credential was refused (login failed, 401).
    Auth,
    /// The credential logged in but may not do what the step needs (403,
    /// missing privilege).
    Permission,
    /// The thing the step acts on does not exist (unknown user, client, 404).
    NotFound,
    /// The target refused the request itself (a password policy, a 400, a
    /// state the step cannot repair).
    Rejected,
    /// The target answered something the function does not understand.
    Protocol,
    /// The target is not in the state the step checked for (testSecret found
    /// a difference, a registration not yet accepted).
    Mismatch,
    /// The target is still settling (a user being modified); asking again
    /// later can succeed.
    Pending,
}

impl TargetKind {
    /// The name used in error types.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Database => "Database",
            TargetKind::Cache => "Cache",
            TargetKind::Provider => "Provider",
            TargetKind::Webhook => "Webhook",
            TargetKind::Service => "Service",
        }
    }
}

impl Cause {
    /// The name used in error types.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Unreachable => "Unreachable",
            Cause::Unavailable => "Unavailable",
            Cause::Tls => "Tls",
            Cause::Auth => "Auth",
            Cause::Permission => "Permission",
            Cause::NotFound => "NotFound",
            Cause::Rejected => "Rejected",
            Cause::Protocol => "Protocol",
            Cause::Mismatch => "Mismatch",
            Cause::Pending => "Pending",
        }
    }

    /// Whether running the same step again, unchanged, can succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Cause::Unreachable | Cause::Unavailable | Cause::Pending
        )
    }
}

/// A target failure below the core, before the function names the system and
/// host: what drivers and provider clients return instead of a `String`.
///
/// ```
/// use rotor_core::{Cause, TargetKind, TargetError};
///
/// // A client for the target sorts its failure by cause...
/// let refused = TargetError::new(Cause::Auth, "the key was refused (401)");
/// // ...and the rotator names the system and the host at fault.
/// let error = refused.at(TargetKind::Service, "api.example.com");
/// assert_eq!(error.error_type(), "NotRetryable.ServiceAuth");
/// assert_eq!(error.to_string(), "api.example.com: the key was refused (401)");
///
/// let down = TargetError::new(Cause::Unreachable, "connection refused");
/// assert_eq!(down.at(TargetKind::Service, "api.example.com").error_type(), "Retryable.ServiceUnreachable");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{problem}")]
pub struct TargetError {
    /// Why it failed.
    pub cause: Cause,
    /// What failed and the likely fix (never a credential).
    pub problem: String,
}

impl TargetError {
    /// A failure of the given cause.
    pub fn new(cause: Cause, problem: impl Into<String>) -> Self {
        TargetError {
            cause,
            problem: problem.into(),
        }
    }

    /// The rotation error for this failure at `target` of kind `kind`.
    pub fn at(self, kind: TargetKind, target: impl Into<String>) -> Error {
        Error::Target {
            kind,
            cause: self.cause,
            target: target.into(),
            problem: self.problem,
        }
    }
}

impl Error {
    /// A failure of the target `target` (a host, a URL: never a credential)
    /// of kind `kind`, for `cause`; `problem` says what failed and the fix.
    pub fn target(
        kind: TargetKind,
        cause: Cause,
        target: impl Into<String>,
        problem: impl Into<String>,
    ) -> Error {
        TargetError::new(cause, problem).at(kind, target)
    }

    /// A target failure with its problem rewritten by `more` (to add what the
    /// caller knows of the likely cause); any other error as it is.
    pub fn map_target_problem(self, more: impl FnOnce(String) -> String) -> Error {
        match self {
            Error::Target { .. } => self.map_problem(more),
            other => other,
        }
    }

    /// The same error with its `problem` (a target failure's, an invalid
    /// value's or an invalid setting's) rewritten by `more`, to add what the
    /// caller did or did not do because of it; any other error as it is.
    pub fn map_problem(self, more: impl FnOnce(String) -> String) -> Error {
        match self {
            Error::Target {
                kind,
                cause,
                target,
                problem,
            } => Error::Target {
                kind,
                cause,
                target,
                problem: more(problem),
            },
            Error::InvalidSecretValue {
                secret,
                label,
                problem,
            } => Error::InvalidSecretValue {
                secret,
                label,
                problem: more(problem),
            },
            Error::InvalidSettings {
                secret,
                setting,
                problem,
            } => Error::InvalidSettings {
                secret,
                setting,
                problem: more(problem),
            },
            other => other,
        }
    }

    /// A target failure's cause; `None` for any other error.
    pub fn target_cause(&self) -> Option<Cause> {
        match self {
            Error::Target { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    /// Whether running the same step again, unchanged, can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store { source, .. } => source.is_retryable(),
            Error::Target { cause, .. } => cause.is_retryable(),
            Error::DeadlineReached { .. } => true,
            _ => false,
        }
    }

    /// A short name for the failure, used in the Lambda error type. A target
    /// failure is named by its system and cause: `DatabaseAuth`,
    /// `ProviderUnreachable`, `WebhookRejected`.
    pub fn kind(&self) -> std::borrow::Cow<'static, str> {
        let name = match self {
            Error::InvalidEvent { .. } => "InvalidEvent",
            Error::RotationDisabled { .. } => "RotationDisabled",
            Error::UnknownVersion { .. } => "UnknownVersion",
            Error::NotPending { .. } => "NotPending",
            Error::PendingLabelMismatch { .. } => "PendingLabelMismatch",
            Error::CurrentChanged { .. } => "CurrentChanged",
            Error::NoCurrentVersion { .. } => "NoCurrentVersion",
            Error::NoPendingValue { .. } => "NoPendingValue",
            Error::InvalidSecretValue { .. } => "InvalidSecretValue",
            Error::InvalidSettings { .. } => "InvalidSettings",
            Error::NotServed { .. } => "NotServed",
            Error::NotManaged { .. } => "NotManaged",
            Error::PasswordPolicy { .. } => "PasswordPolicy",
            Error::NoDistinctValue { .. } => "NoDistinctValue",
            Error::Store { .. } => "SecretsManager",
            Error::Target { kind, cause, .. } => {
                return format!("{}{}", kind.name(), cause.name()).into();
            }
            Error::DeadlineReached { .. } => "DeadlineReached",
            Error::ValueNotStored { .. } => "ValueNotStored",
            Error::PendingReplaced { .. } => "PendingReplaced",
        };
        name.into()
    }

    /// The Lambda error type: `Retryable.<Kind>` or `NotRetryable.<Kind>`, so that an
    /// operator (and an alarm) can tell a passing fault from one that needs a fix.
    pub fn error_type(&self) -> String {
        let class = if self.is_retryable() {
            "Retryable"
        } else {
            "NotRetryable"
        };
        format!("{class}.{}", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_say_whether_a_retry_helps() {
        let throttled = Error::Store {
            secret: "s".into(),
            operation: "GetSecretValue",
            source: StoreError::Throttled("slow down".into()),
        };
        assert_eq!(throttled.error_type(), "Retryable.SecretsManager");
        let disabled = Error::RotationDisabled { secret: "s".into() };
        assert_eq!(disabled.error_type(), "NotRetryable.RotationDisabled");
        assert!(disabled.to_string().contains("secret s"));
    }

    #[test]
    fn target_errors_are_named_by_system_and_cause() {
        let refused =
            TargetError::new(Cause::Auth, "login refused").at(TargetKind::Database, "db:5432");
        assert_eq!(refused.error_type(), "NotRetryable.DatabaseAuth");
        assert_eq!(refused.to_string(), "db:5432: login refused");
        let down = TargetError::new(Cause::Unreachable, "connection refused")
            .at(TargetKind::Provider, "idp");
        assert_eq!(down.error_type(), "Retryable.ProviderUnreachable");
        let busy =
            TargetError::new(Cause::Pending, "user is modifying").at(TargetKind::Cache, "user");
        assert!(busy.is_retryable());
    }
}
