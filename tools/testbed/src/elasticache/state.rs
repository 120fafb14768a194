//! The emulator's data: the users it holds (never their passwords: Redis
//! holds those), their status and tags, the injected faults and the call log.

use super::protocol::{Fault, element};
use super::{ACCOUNT, REGION};

/// How a user authenticates, as the `Authentication.Type` of the User type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    /// `password`: one or two passwords.
    Password,
    /// `no-password`: any password logs in.
    NoPassword,
    /// `iam`: IAM tokens only (not emulated: no password logs in).
    Iam,
}

impl AuthType {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Password => "password",
            AuthType::NoPassword => "no-password",
            AuthType::Iam => "iam",
        }
    }
}

pub(super) struct UserRecord {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) access_string: String,
    pub(super) group_ids: Vec<String>,
    pub(super) auth: AuthType,
    pub(super) password_count: usize,
    /// How many more DescribeUsers answers show it `modifying`.
    pub(super) modifying_left: u32,
    /// Its tags, in the order they were added; each key once.
    pub(super) tags: Vec<(String, String)>,
}

impl UserRecord {
    /// Sets `key` to `value`, replacing the key's value if it has one.
    pub(super) fn tag(&mut self, key: &str, value: &str) {
        match self.tags.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_owned(),
            None => self.tags.push((key.to_owned(), value.to_owned())),
        }
    }

    /// The TagList type's XML: `<TagList><Tag><Key>…</Key><Value>…</Value></Tag>…`.
    pub(super) fn tags_xml(&self) -> String {
        let tags: String = self
            .tags
            .iter()
            .map(|(k, v)| format!("<Tag>{}{}</Tag>", element("Key", k), element("Value", v)))
            .collect();
        format!("<TagList>{tags}</TagList>")
    }

    pub(super) fn status(&self) -> &'static str {
        if self.modifying_left > 0 {
            "modifying"
        } else {
            "active"
        }
    }

    /// The User type's XML fields, in the order the API reference lists them,
    /// with `status`.
    pub(super) fn to_xml(&self, status: &str) -> String {
        let groups: String = self
            .group_ids
            .iter()
            .map(|g| element("member", g))
            .collect();
        format!(
            "{}{}{}<Engine>redis</Engine><MinimumEngineVersion>6.0</MinimumEngineVersion>{}\
             <UserGroupIds>{groups}</UserGroupIds><Authentication>{}<PasswordCount>{}\
             </PasswordCount></Authentication>{}",
            element("UserId", &self.id),
            element("UserName", &self.name),
            element("Status", status),
            element("AccessString", &self.access_string),
            element("Type", self.auth.as_str()),
            self.password_count,
            element("ARN", &user_arn(&self.id)),
        )
    }
}

/// A user's ARN.
pub fn user_arn(id: &str) -> String {
    format!("arn:aws:elasticache:{REGION}:{ACCOUNT}:user:{id}")
}

/// One call the emulator answered, without any password value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The `Action` parameter (empty when missing).
    pub action: String,
    /// The `UserId` parameter.
    pub user_id: Option<String>,
    /// How many passwords the request carried (`Passwords` or
    /// `AuthenticationMode.Passwords`).
    pub password_count: usize,
    /// The HTTP status answered.
    pub status: u16,
    /// The error code answered, if any.
    pub error_code: Option<String>,
}

pub(super) struct Injected {
    pub(super) action: String,
    pub(super) fault: Fault,
    /// Make the change first: the answer is lost after the service acted.
    pub(super) after_applying: bool,
}

pub(super) struct State {
    pub(super) users: Vec<UserRecord>,
    /// For how many DescribeUsers answers a modified user stays `modifying`.
    pub(super) modifying_describes: u32,
    pub(super) injected: Vec<Injected>,
    pub(super) calls: Vec<Call>,
}

impl State {
    pub(super) fn new() -> State {
        State {
            users: Vec::new(),
            modifying_describes: 1,
            injected: Vec::new(),
            calls: Vec::new(),
        }
    }

    pub(super) fn user(&self, id: &str) -> Option<&UserRecord> {
        self.users.iter().find(|u| u.id == id)
    }

    pub(super) fn user_mut(&mut self, id: &str) -> Option<&mut UserRecord> {
        self.users.iter_mut().find(|u| u.id == id)
    }

    /// The user whose ARN is `arn`.
    pub(super) fn user_by_arn_mut(&mut self, arn: &str) -> Option<&mut UserRecord> {
        self.users.iter_mut().find(|u| user_arn(&u.id) == arn)
    }

    /// The first fault injected for `action`, removed.
    pub(super) fn take_injected(&mut self, action: &str) -> Option<Injected> {
        let at = self.injected.iter().position(|i| i.action == action)?;
        Some(self.injected.remove(at))
    }
}
