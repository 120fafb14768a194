//! The IAM and STS calls the function makes, each one function, and the
//! classification of a failure into a target cause from IAM's error codes.
//!
//! The secret access key appears in two places only: the answer of
//! `CreateAccessKey`, which goes straight into a [`SecretString`], and the
//! credentials STS's client signs testSecret's call with. No message of a
//! call that carries it (the STS call, `CreateAccessKey`) is echoed: only its
//! error code and HTTP status.

use std::time::SystemTime;

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::StatusType;
use rotor_core::arn::Arn;
use rotor_core::{Cause, ExposeSecret, SecretString, TargetError};

use crate::keys::ListedKey;

/// A user as GetUser reports it.
#[derive(Clone, Debug)]
pub struct UserInfo {
    /// Its ARN, path included.
    pub arn: Arn,
    /// The value of its `rotor:secret` tag, if it has one.
    pub owner_tag: Option<String>,
}

/// A key CreateAccessKey made.
pub struct NewKey {
    /// Its id.
    pub id: String,
    /// Its secret.
    pub secret: SecretString,
}

/// When and where a key was last used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastUsed {
    /// When, if ever.
    pub at: Option<SystemTime>,
    /// The service it was used with (`N/A` when never).
    pub service: String,
}

/// The cause of an IAM or STS failure, from its code or, failing that, the
/// HTTP status.
pub fn classify(code: Option<&str>, status: u16) -> Cause {
    match code.unwrap_or_default() {
        "NoSuchEntity" => Cause::NotFound,
        "EntityTemporarilyUnmodifiable" => Cause::Pending,
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "ServiceFailure"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "ConcurrentModification" => Cause::Unavailable,
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => Cause::Permission,
        "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "ExpiredToken"
        | "AuthFailure" => Cause::Auth,
        "LimitExceeded" | "InvalidInput" => Cause::Rejected,
        _ => rotor_core::sdk::status_cause(status),
    }
}

/// A failed call as a target error. `echo`: whether the service's message
/// may be shown (never for a call that carries a secret key).
pub fn failure<E>(
    operation: &str,
    user: &str,
    error: &SdkError<E, HttpResponse>,
    echo: bool,
) -> TargetError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (cause, detail) = rotor_core::sdk::failure_detail(error, echo, classify);
    let fix = match cause {
        Cause::Permission => format!(
            "; the function's role needs iam:{operation} on user {user} (template parameter iamUserArns lists the users it may change)"
        ),
        Cause::Unavailable | Cause::Unreachable | Cause::Pending => {
            "; IAM is throttling or failing for now: rotate again".to_owned()
        }
        Cause::NotFound => format!("; IAM has no user {user:?} in this account: fix UserName"),
        _ => String::new(),
    };
    TargetError::new(
        cause,
        format!("{operation} for user {user} failed: {detail}{fix}"),
    )
}

fn time(t: Option<&aws_sdk_iam::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|d| SystemTime::try_from(*d).ok())
}

/// GetUser: the user's ARN (with its path) and its owner's tag.
pub async fn user(
    client: &aws_sdk_iam::Client,
    name: &str,
    tag: &str,
) -> Result<UserInfo, TargetError> {
    let out = client.get_user().user_name(name).send().await;
    let out = out.map_err(|e| failure("GetUser", name, &e, true))?;
    let Some(user) = out.user() else {
        return Err(TargetError::new(
            Cause::Protocol,
            "GetUser answered no user",
        ));
    };
    let arn: Arn = user.arn().parse().map_err(|e| {
        TargetError::new(
            Cause::Protocol,
            format!("GetUser answered an unusable ARN: {e}"),
        )
    })?;
    let owner_tag = user
        .tags()
        .iter()
        .find(|t| t.key() == tag)
        .map(|t| t.value().to_owned());
    Ok(UserInfo { arn, owner_tag })
}

/// ListAccessKeys: every key of the user (IAM allows two; the pages are
/// followed all the same).
pub async fn keys(client: &aws_sdk_iam::Client, name: &str) -> Result<Vec<ListedKey>, TargetError> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_access_keys()
        .user_name(name)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failure("ListAccessKeys", name, &e, true))?;
        keys.extend(page.access_key_metadata().iter().map(|k| ListedKey {
            id: k.access_key_id().unwrap_or_default().to_owned(),
            active: k.status() == Some(&StatusType::Active),
            created: time(k.create_date()),
        }));
    }
    Ok(keys)
}

/// CreateAccessKey.
pub async fn create(client: &aws_sdk_iam::Client, name: &str) -> Result<NewKey, TargetError> {
    let out = client.create_access_key().user_name(name).send().await;
    let out = out.map_err(|e| failure("CreateAccessKey", name, &e, false))?;
    let Some(key) = out.access_key else {
        return Err(TargetError::new(
            Cause::Protocol,
            "CreateAccessKey answered no key",
        ));
    };
    Ok(NewKey {
        id: key.access_key_id,
        secret: SecretString::from(key.secret_access_key),
    })
}

/// DeleteAccessKey. A key already gone is no failure.
pub async fn delete(client: &aws_sdk_iam::Client, name: &str, id: &str) -> Result<(), TargetError> {
    let call = client
        .delete_access_key()
        .user_name(name)
        .access_key_id(id)
        .send()
        .await;
    match call.map_err(|e| failure("DeleteAccessKey", name, &e, true)) {
        Err(e) if e.cause == Cause::NotFound => Ok(()),
        other => other.map(|_| ()),
    }
}

/// UpdateAccessKey to `Inactive`.
pub async fn deactivate(
    client: &aws_sdk_iam::Client,
    name: &str,
    id: &str,
) -> Result<(), TargetError> {
    let call = client
        .update_access_key()
        .user_name(name)
        .access_key_id(id)
        .status(StatusType::Inactive)
        .send()
        .await;
    call.map_err(|e| failure("UpdateAccessKey", name, &e, true))?;
    Ok(())
}

/// GetAccessKeyLastUsed.
pub async fn last_used(
    client: &aws_sdk_iam::Client,
    name: &str,
    id: &str,
) -> Result<LastUsed, TargetError> {
    let call = client
        .get_access_key_last_used()
        .access_key_id(id)
        .send()
        .await;
    let out = call.map_err(|e| failure("GetAccessKeyLastUsed", name, &e, true))?;
    Ok(out
        .access_key_last_used()
        .map(|u| LastUsed {
            at: time(u.last_used_date()),
            service: u.service_name().to_owned(),
        })
        .unwrap_or_default())
}

/// STS GetCallerIdentity signed with `key`: the ARN of the identity it
/// belongs to.
pub async fn caller(
    config: &aws_config::SdkConfig,
    key_id: &str,
    secret: &SecretString,
    user: &str,
) -> Result<String, TargetError> {
    let credentials = aws_credential_types::Credentials::new(
        key_id,
        secret.expose_secret(),
        None,
        None,
        "iam-rotation-pending-key",
    );
    let sts = aws_sdk_sts::config::Builder::from(config)
        .credentials_provider(credentials)
        .build();
    let client = aws_sdk_sts::Client::from_conf(sts);
    let out = client.get_caller_identity().send().await;
    let out = out.map_err(|e| failure("sts:GetCallerIdentity", user, &e, false))?;
    Ok(out.arn().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decide_before_statuses() {
        assert_eq!(classify(Some("NoSuchEntity"), 404), Cause::NotFound);
        assert_eq!(classify(Some("LimitExceeded"), 409), Cause::Rejected);
        assert_eq!(classify(Some("AccessDenied"), 403), Cause::Permission);
        assert_eq!(classify(Some("InvalidClientTokenId"), 403), Cause::Auth);
        assert_eq!(classify(Some("Throttling"), 400), Cause::Unavailable);
        assert_eq!(
            classify(Some("EntityTemporarilyUnmodifiable"), 409),
            Cause::Pending
        );
        assert_eq!(classify(None, 503), Cause::Unavailable);
        assert_eq!(classify(None, 400), Cause::Rejected);
    }
}
