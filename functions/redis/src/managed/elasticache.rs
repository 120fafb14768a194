//! ElastiCache (Redis OSS and Valkey) RBAC users: `DescribeUsers` by user ID,
//! `ModifyUser` with `Passwords` (at most two), as AWS's function calls it,
//! and `ListTagsForResource` for the owner's tag on the user.

use aws_sdk_elasticache::Client;
use aws_sdk_elasticache::types::User;
use rotor_core::{SecretString, TargetError};

use super::api::{ListedUser, UserState, exposed, failure, find_user, tag_value};
use super::arn::CacheUser;

const SERVICE: &str = "ElastiCache";

impl ListedUser for User {
    fn id(&self) -> Option<&str> {
        self.user_id()
    }

    fn state(&self) -> UserState {
        let count = self.authentication().and_then(|a| a.password_count());
        UserState::new(self.arn(), self.user_name(), self.status(), count)
    }
}

/// The user `user` (by user ID).
pub async fn describe(
    client: &Client,
    user: &CacheUser,
    arn: &str,
) -> Result<UserState, TargetError> {
    let call = client.describe_users().user_id(user.id()).send().await;
    let out = call.map_err(|e| failure(SERVICE, "DescribeUsers", arn, &e, true))?;
    find_user(out.users(), user, arn)
}

/// Makes `passwords` the user's only passwords.
pub async fn set_passwords(
    client: &Client,
    id: &str,
    arn: &str,
    passwords: &[&SecretString],
) -> Result<(), TargetError> {
    let request = client.modify_user().user_id(id);
    let call = request.set_passwords(Some(exposed(passwords))).send().await;
    call.map_err(|e| failure(SERVICE, "ModifyUser", arn, &e, false))?;
    Ok(())
}

/// The value of the user's tag `key`, `None` when it has none.
pub async fn tag(client: &Client, arn: &str, key: &str) -> Result<Option<String>, TargetError> {
    let call = client
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await;
    let out = call.map_err(|e| failure(SERVICE, "ListTagsForResource", arn, &e, true))?;
    let tags = out.tag_list().iter().map(|t| (t.key(), t.value()));
    Ok(tag_value(tags, key))
}
