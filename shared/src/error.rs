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
#[derive(Debug, thiserror::Error)]
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
        "secret {secret} has no version {token}; the ClientRequestToken must name the version that RotateSecret staged. Start a new rotation with RotateSecret"
    )]
    UnknownVersion {
        /// The secret's ARN or name.
        secret: String,
        /// The event's ClientRequestToken.
        token: String,
    },

    /// The event's version is neither current nor pending.
    #[error(
        "version {token} of secret {secret} is not staged as {label} (its labels: {labels}); another rotation may have replaced it. Start a new rotation with RotateSecret"
    )]
    NotPending {
        /// The secret's ARN or name.
        secret: String,
        /// The event's ClientRequestToken.
        token: String,
        /// The pending label that was expected.
        label: String,
        /// The labels the version has, comma separated, or `none`.
        labels: String,
    },

    /// Someone stored a new AWSCURRENT value after this rotation began.
    #[error(
        "AWSCURRENT of secret {secret} is now version {current}, which was stored after this rotation's version {token}: someone else wrote the secret during the rotation, and applying a value made from the older one would undo their change. Nothing was changed at the target. Cancel this rotation (aws secretsmanager update-secret-version-stage --secret-id {secret} --version-stage {label} --remove-from-version-id {token}) and rotate again"
    )]
    CurrentChanged {
        /// The secret's ARN or name.
        secret: String,
        /// The version that is AWSCURRENT now.
        current: String,
        /// The event's ClientRequestToken.
        token: String,
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
        "secret {secret} has no value stored for pending version {token}; createSecret has not run for this rotation. Start the rotation again"
    )]
    NoPendingValue {
        /// The secret's ARN or name.
        secret: String,
        /// The event's ClientRequestToken.
        token: String,
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
        "the target has already issued the value of version {version} of secret {secret}, but it could not be stored: {source}. {recovery}"
    )]
    ValueNotStored {
        /// The secret's ARN or name.
        secret: String,
        /// The version the value was issued for.
        version: String,
        /// Why the last PutSecretValue failed.
        #[source]
        source: StoreError,
        /// What to run, and which credential still manages the target (named, never shown).
        recovery: String,
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

    /// The system that uses the credential (a database, a provider, a webhook)
    /// refused or could not be reached.
    #[error("{target}: {problem}")]
    Target {
        /// The host, URL or system at fault (never a credential).
        target: String,
        /// What failed and the likely fix.
        problem: String,
        /// Whether running the step again can help.
        retryable: bool,
    },
}

impl Error {
    /// Whether running the same step again, unchanged, can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store { source, .. } => source.is_retryable(),
            Error::Target { retryable, .. } => *retryable,
            Error::DeadlineReached { .. } => true,
            _ => false,
        }
    }

    /// A short name for the failure, used in the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidEvent { .. } => "InvalidEvent",
            Error::RotationDisabled { .. } => "RotationDisabled",
            Error::UnknownVersion { .. } => "UnknownVersion",
            Error::NotPending { .. } => "NotPending",
            Error::CurrentChanged { .. } => "CurrentChanged",
            Error::NoCurrentVersion { .. } => "NoCurrentVersion",
            Error::NoPendingValue { .. } => "NoPendingValue",
            Error::InvalidSecretValue { .. } => "InvalidSecretValue",
            Error::InvalidSettings { .. } => "InvalidSettings",
            Error::NotServed { .. } => "NotServed",
            Error::PasswordPolicy { .. } => "PasswordPolicy",
            Error::NoDistinctValue { .. } => "NoDistinctValue",
            Error::Store { .. } => "SecretsManager",
            Error::Target { .. } => "Target",
            Error::DeadlineReached { .. } => "DeadlineReached",
            Error::ValueNotStored { .. } => "ValueNotStored",
        }
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
}
