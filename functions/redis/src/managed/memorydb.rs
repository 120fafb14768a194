//! MemoryDB users: `DescribeUsers` by user name, `UpdateUser` with
//! `AuthenticationMode {Type: password, Passwords}` (at most two), and
//! `ListTags` for the owner's tag on the user.

use aws_sdk_memorydb::Client;
use aws_sdk_memorydb::types::{AuthenticationMode, InputAuthenticationType, User};
use rotor_core::{SecretString, TargetError};

use super::api::{ListedUser, UserState, exposed, failure, find_user, tag_value};
use super::arn::CacheUser;

const SERVICE: &str = "MemoryDB";

impl ListedUser for User {
    fn id(&self) -> Option<&str> {
        self.name()
    }

    fn state(&self) -> UserState {
        let count = self.authentication().and_then(|a| a.password_count());
        UserState::new(self.arn(), self.name(), self.status(), count)
    }
}

/// The user `user` (by user name).
pub async fn describe(
    client: &Client,
    user: &CacheUser,
    arn: &str,
) -> Result<UserState, TargetError> {
    let call = client.describe_users().user_name(user.id()).send().await;
    let out = call.map_err(|e| failure(SERVICE, "DescribeUsers", arn, &e, true))?;
    find_user(out.users(), user, arn)
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
        .set_passwords(Some(exposed(passwords)))
        .build();
    let request = client
        .update_user()
        .user_name(name)
        .authentication_mode(mode);
    let call = request.send().await;
    call.map_err(|e| failure(SERVICE, "UpdateUser", arn, &e, false))?;
    Ok(())
}

/// The value of the user's tag `key`, `None` when it has none.
pub async fn tag(client: &Client, arn: &str, key: &str) -> Result<Option<String>, TargetError> {
    let call = client.list_tags().resource_arn(arn).send().await;
    let out = call.map_err(|e| failure(SERVICE, "ListTags", arn, &e, true))?;
    let tags = out.tag_list().iter().map(|t| (t.key(), t.value()));
    Ok(tag_value(tags, key))
}
