//! MemoryDB users: `DescribeUsers` by user name, `UpdateUser` with
//! `AuthenticationMode {Type: password, Passwords}` (at most two), and
//! `ListTags` for the owner's tag on the user.

use aws_sdk_memorydb::Client;
use aws_sdk_memorydb::types::{AuthenticationMode, InputAuthenticationType};
use rotor_core::{Cause, ExposeSecret, SecretString, TargetError};

use super::api::{UserState, failure};

const SERVICE: &str = "MemoryDB";

/// The user named `name`.
pub async fn describe(client: &Client, name: &str, arn: &str) -> Result<UserState, TargetError> {
    let out = client
        .describe_users()
        .user_name(name)
        .send()
        .await
        .map_err(|e| failure(SERVICE, "DescribeUsers", arn, &e, true))?;
    let user = out
        .users()
        .iter()
        .find(|u| u.name() == Some(name))
        .ok_or_else(|| {
            TargetError::new(
                Cause::NotFound,
                format!("DescribeUsers found no MemoryDB user {name:?} ({arn}); fix user_arn, or create the user"),
            )
        })?;
    Ok(UserState {
        arn: user.arn().map(str::to_owned),
        name: user.name().map(str::to_owned),
        status: user.status().unwrap_or_default().to_owned(),
        password_count: user.authentication().and_then(|a| a.password_count()),
    })
}

/// Makes `passwords` the user's only passwords.
pub async fn set_passwords(
    client: &Client,
    name: &str,
    arn: &str,
    passwords: &[&SecretString],
) -> Result<(), TargetError> {
    let mode = AuthenticationMode::builder()
        .r#type(InputAuthenticationType::Password)
        .set_passwords(Some(
            passwords
                .iter()
                .map(|p| p.expose_secret().to_owned())
                .collect(),
        ))
        .build();
    client
        .update_user()
        .user_name(name)
        .authentication_mode(mode)
        .send()
        .await
        .map_err(|e| failure(SERVICE, "UpdateUser", arn, &e, false))?;
    Ok(())
}

/// The value of the user's tag `key`, `None` when it has none.
pub async fn tag(client: &Client, arn: &str, key: &str) -> Result<Option<String>, TargetError> {
    let out = client
        .list_tags()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| failure(SERVICE, "ListTags", arn, &e, true))?;
    Ok(out
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(key))
        .map(|t| t.value().unwrap_or_default().to_owned()))
}
