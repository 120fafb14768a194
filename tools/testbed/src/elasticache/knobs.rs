//! The tests' side: holding users, tagging them, keeping them `modifying`,
//! injecting faults, and reading what the emulator holds and has seen.

use secrecy::{ExposeSecret, SecretString};

use super::protocol::Fault;
use super::state::{Injected, UserRecord};
use super::{AuthType, Call, ElastiCacheEmulator, RedisAdminError, user_arn};

/// A user for the emulator to hold.
pub struct EmulatedUser {
    /// The API's `UserId`.
    pub user_id: String,
    /// The Redis ACL user name (`UserName`).
    pub user_name: String,
    /// Its access string, Redis ACL rules such as `on ~* +@all`.
    pub access_string: String,
    /// Zero (`no-password`), one or two passwords.
    pub passwords: Vec<SecretString>,
    /// `UserGroupIds`.
    pub user_group_ids: Vec<String>,
    /// Its tags (`ListTagsForResource`), keys and values.
    pub tags: Vec<(String, String)>,
}

impl EmulatedUser {
    /// A user in no group.
    pub fn new(
        user_id: &str,
        user_name: &str,
        access_string: &str,
        passwords: &[SecretString],
    ) -> EmulatedUser {
        EmulatedUser {
            user_id: user_id.to_owned(),
            user_name: user_name.to_owned(),
            access_string: access_string.to_owned(),
            passwords: passwords
                .iter()
                .map(|p| SecretString::from(p.expose_secret()))
                .collect(),
            user_group_ids: Vec::new(),
            tags: Vec::new(),
        }
    }
}

/// Why [`ElastiCacheEmulator::add_user`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The user is not one ElastiCache would hold (message names the field).
    #[error("cannot add the user: {0}")]
    Rejected(String),
    /// The backing Redis refused or failed.
    #[error(transparent)]
    Redis(#[from] RedisAdminError),
}

/// What the emulator holds for a user, without passwords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    /// `UserName`.
    pub user_name: String,
    /// `active` or `modifying`, as the next DescribeUsers answers.
    pub status: String,
    /// `AccessString`.
    pub access_string: String,
    /// `Authentication.Type`.
    pub auth: AuthType,
    /// `Authentication.PasswordCount`.
    pub password_count: usize,
}

impl ElastiCacheEmulator {
    /// Holds `user`, `active`, and makes its Redis ACL user match it
    /// (`ACL SETUSER name reset <access string> >p…`, or `nopass`); returns
    /// its ARN. Adding an id again replaces that user.
    pub async fn add_user(&self, user: EmulatedUser) -> Result<String, EmulatorError> {
        if user.passwords.len() > 2 {
            return Err(EmulatorError::Rejected("at most two passwords".into()));
        }
        if user.user_id.is_empty() || user.user_name.is_empty() {
            return Err(EmulatorError::Rejected(
                "user_id and user_name must not be empty".into(),
            ));
        }
        let mut args: Vec<String> = vec![
            "ACL".into(),
            "SETUSER".into(),
            user.user_name.clone(),
            "reset".into(),
        ];
        args.extend(user.access_string.split_whitespace().map(String::from));
        if user.passwords.is_empty() {
            args.push("nopass".into());
        }
        args.extend(
            user.passwords
                .iter()
                .map(|p| format!(">{}", p.expose_secret())),
        );
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.shared.redis.run(&refs).await?;
        let mut record = UserRecord {
            id: user.user_id.clone(),
            name: user.user_name,
            access_string: user.access_string,
            group_ids: user.user_group_ids,
            auth: if user.passwords.is_empty() {
                AuthType::NoPassword
            } else {
                AuthType::Password
            },
            password_count: user.passwords.len(),
            modifying_left: 0,
            tags: Vec::new(),
        };
        for (key, value) in &user.tags {
            record.tag(key, value);
        }
        self.shared.with_state(|s| {
            s.users.retain(|u| u.id != record.id);
            s.users.push(record);
        });
        Ok(user_arn(&user.user_id))
    }

    /// Makes user `user_id` answer `modifying` to the next `describes`
    /// DescribeUsers calls that include it (0: `active` now); false when
    /// there is no such user.
    pub fn stay_modifying(&self, user_id: &str, describes: u32) -> bool {
        self.shared.with_state(|s| match s.user_mut(user_id) {
            Some(user) => {
                user.modifying_left = describes;
                true
            }
            None => false,
        })
    }

    /// For how many DescribeUsers answers a user stays `modifying` after a
    /// ModifyUser from now on (default 1: the first DescribeUsers after a
    /// change says `modifying`, the next `active`).
    pub fn set_modifying_describes(&self, describes: u32) {
        self.shared
            .with_state(|s| s.modifying_describes = describes);
    }

    /// Answers the next call of `action` (e.g. `ModifyUser`) with `code` and
    /// `status`, changing nothing. Each call queues one failure.
    pub fn fail_next(&self, action: &str, code: &str, status: u16) {
        self.inject(action, code, status, false);
    }

    /// Makes the next call of `action` take effect (in Redis too), then
    /// answers it with `code` and `status`: an answer lost after the service
    /// acted. A call refused on its own merits answers that instead.
    pub fn lose_next_answer(&self, action: &str, code: &str, status: u16) {
        self.inject(action, code, status, true);
    }

    fn inject(&self, action: &str, code: &str, status: u16, after_applying: bool) {
        let fault = Fault::new(code, status, format!("Injected {code} by the test."));
        self.shared.with_state(|s| {
            s.injected.push(Injected {
                action: action.to_owned(),
                fault,
                after_applying,
            })
        });
    }

    /// Every call answered so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.with_state(|s| s.calls.clone())
    }

    /// The calls of `action` answered so far.
    pub fn calls_of(&self, action: &str) -> Vec<Call> {
        self.shared.with_state(|s| {
            s.calls
                .iter()
                .filter(|c| c.action == action)
                .cloned()
                .collect()
        })
    }

    /// Tags user `user_id` with `key` = `value`, as its owner's
    /// `AddTagsToResource` would; false when there is no such user.
    pub fn tag_user(&self, user_id: &str, key: &str, value: &str) -> bool {
        self.shared.with_state(|s| match s.user_mut(user_id) {
            Some(user) => {
                user.tag(key, value);
                true
            }
            None => false,
        })
    }

    /// User `user_id`'s tags, in the order they were added.
    pub fn tags(&self, user_id: &str) -> Option<Vec<(String, String)>> {
        self.shared
            .with_state(|s| s.user(user_id).map(|u| u.tags.clone()))
    }

    /// How many passwords the emulator says user `user_id` has.
    pub fn password_count(&self, user_id: &str) -> Option<usize> {
        self.shared
            .with_state(|s| s.user(user_id).map(|u| u.password_count))
    }

    /// What the emulator holds for user `user_id`; reading it changes nothing.
    pub fn user(&self, user_id: &str) -> Option<UserView> {
        self.shared.with_state(|s| {
            s.user(user_id).map(|u| UserView {
                user_name: u.name.clone(),
                status: u.status().to_owned(),
                access_string: u.access_string.clone(),
                auth: u.auth,
                password_count: u.password_count,
            })
        })
    }
}
