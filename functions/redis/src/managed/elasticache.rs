//! ElastiCache (Redis OSS and Valkey) RBAC users: `DescribeUsers` by user ID,
//! `ModifyUser` with `Passwords` (at most two), as AWS's function calls it,
//! and `ListTagsForResource` for the owner's tag on the user.

use aws_sdk_elasticache::Client;
use rotor_core::{Cause, ExposeSecret, SecretString, TargetError};

use super::api::{UserState, failure};

const SERVICE: &str = "ElastiCache";

/// The user with ID `id`.
pub async fn describe(client: &Client, id: &str, arn: &str) -> Result<UserState, TargetError> {
    let out = client
        .describe_users()
        .user_id(id)
        .send()
        .await
        .map_err(|e| failure(SERVICE, "DescribeUsers", arn, &e, true))?;
    let user = out
        .users()
        .iter()
        .find(|u| u.user_id() == Some(id))
        .ok_or_else(|| {
            TargetError::new(
                Cause::NotFound,
                format!("DescribeUsers found no ElastiCache user with ID {id:?} ({arn}); fix user_arn, or create the user"),
            )
        })?;
    Ok(UserState {
        arn: user.arn().map(str::to_owned),
        name: user.user_name().map(str::to_owned),
        status: user.status().unwrap_or_default().to_owned(),
        password_count: user.authentication().and_then(|a| a.password_count()),
    })
}

/// Makes `passwords` the user's only passwords.
pub async fn set_passwords(
    client: &Client,
    id: &str,
    arn: &str,
    passwords: &[&SecretString],
) -> Result<(), TargetError> {
    client
        .modify_user()
        .user_id(id)
        .set_passwords(Some(
            passwords
                .iter()
                .map(|p| p.expose_secret().to_owned())
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| failure(SERVICE, "ModifyUser", arn, &e, false))?;
    Ok(())
}

/// The value of the user's tag `key`, `None` when it has none.
pub async fn tag(client: &Client, arn: &str, key: &str) -> Result<Option<String>, TargetError> {
    let out = client
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| failure(SERVICE, "ListTagsForResource", arn, &e, true))?;
    Ok(out
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(key))
        .map(|t| t.value().unwrap_or_default().to_owned()))
}
