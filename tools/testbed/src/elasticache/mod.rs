//! A local stand-in for the Amazon ElastiCache user API that redis-rotation's
//! ElastiCache path calls, because moto has no `ModifyUser`. Written from the
//! ElastiCache API reference (API version 2015-02-02), and checked in the bed
//! tests with the real `aws-sdk-elasticache` client.
//!
//! What is faithful:
//! - the AWS Query protocol as the SDK sends it: a form-encoded POST of
//!   `Action=…&Version=2015-02-02&…`, lists as `Passwords.member.N`,
//!   `AuthenticationMode.Type`; XML answers
//!   (`<ModifyUserResponse xmlns="http://elasticache.amazonaws.com/doc/2015-02-02/">
//!   <ModifyUserResult>…`) with a `RequestId`, and errors as
//!   `<ErrorResponse><Error><Type>Sender|Receiver</Type><Code>…</Code><Message>…`
//!   with the documented status: `UserNotFound` 404, `InvalidUserState`,
//!   `InvalidParameterValue`, `InvalidParameterCombination` 400;
//! - `DescribeUsers` (by `UserId`, or all) and `ModifyUser` (`Passwords`, one
//!   or two of 16–128 characters; `NoPasswordRequired`; `AccessString`;
//!   `AppendAccessString`; `AuthenticationMode` `password`,
//!   `no-password-required`, `iam`), answering the User type: `UserId`,
//!   `UserName`, `Status`, `Engine` (`redis`), `MinimumEngineVersion` (`6.0`),
//!   `AccessString`, `UserGroupIds`, `Authentication{Type, PasswordCount}`,
//!   `ARN` (`arn:aws:elasticache:us-east-1:123456789012:user:ID`);
//! - a user's tags: `ListTagsForResource` and `AddTagsToResource` with
//!   `ResourceName` (the user's ARN) and `Tags.Tag.N.Key`/`.Value`, answering
//!   `<TagList><Tag><Key>…</Key><Value>…</Value></Tag>…`; a user ARN the
//!   emulator does not hold is `UserNotFound` (404), any other text
//!   `InvalidARN` (400); at most 50 tags (`TagQuotaPerResourceExceeded`);
//! - a change leaves the user `modifying` (see [`ElastiCacheEmulator::set_modifying_describes`])
//!   and a user that is not `active` refuses `ModifyUser` with `InvalidUserState`;
//! - the passwords are real: a real Redis holds them. `ModifyUser` with
//!   passwords runs `ACL SETUSER <UserName> resetpass >p1 [>p2]` on it, so an
//!   independent client logs in with exactly those passwords.
//!
//! What is not:
//! - SigV4 is not verified: a request must carry an `Authorization` header
//!   (else `MissingAuthenticationToken`, 403), whatever it says;
//! - Redis changes at once, not at the end of `modifying`; `Engine`,
//!   `Filters`, `MaxRecords` and `Marker` of `DescribeUsers` are ignored (one
//!   page); only POST; no other action (`InvalidAction`, 400); tags only on
//!   users (no clusters or groups), and no `RemoveTagsFromResource`;
//! - the order in which AWS checks parameters, and its message texts, are not
//!   documented: these are the emulator's own; a `ModifyUser` that changes
//!   nothing is refused with `InvalidParameterCombination` (a guess);
//! - `iam` users get no password at all in Redis (IAM tokens are not emulated).
//!
//! Knobs ([`knobs`]): add users, tag them, keep a user `modifying`, fail the next call of
//! an action with any code and status (`Throttling` 400, `InternalFailure`
//! 500), or make the change and then answer such a fault (a lost answer),
//! read the call log (never password values) and a user's state.
//! Plain HTTP on 127.0.0.1, through [`crate::loopback::serve`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::loopback::{self, Loopback};
use crate::redis_server::{ADMIN_USER, RedisServer};

mod actions;
pub mod knobs;
mod protocol;
mod redis_admin;
mod state;

pub use knobs::{EmulatedUser, EmulatorError, UserView};
pub use protocol::Fault;
pub use redis_admin::{RedisAdmin, RedisAdminError};
pub use state::{AuthType, Call, user_arn};

/// The region in every ARN.
pub const REGION: &str = "us-east-1";
/// The account in every ARN.
pub const ACCOUNT: &str = "123456789012";

pub(crate) struct Shared {
    state: Mutex<state::State>,
    redis: RedisAdmin,
}

impl Shared {
    fn with_state<T>(&self, f: impl FnOnce(&mut state::State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }
}

/// A running emulator; dropping it stops the server (the Redis stays).
pub struct ElastiCacheEmulator {
    address: SocketAddr,
    shared: Arc<Shared>,
    _server: Loopback,
}

impl ElastiCacheEmulator {
    /// Listens on 127.0.0.1 at a free port, changing ACL users through `redis`.
    pub async fn start(redis: RedisAdmin) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(state::State::new()),
            redis,
        });
        let handler_state = shared.clone();
        let server = loopback::serve("elasticache emulator", move |request| {
            actions::handle(request, handler_state.clone())
        })
        .await?;
        Ok(ElastiCacheEmulator {
            address: server.address(),
            shared,
            _server: server,
        })
    }

    /// [`start`](Self::start) on a test bed Redis: its plaintext port, as its admin.
    pub async fn start_for(redis: &RedisServer) -> std::io::Result<Self> {
        Self::start(RedisAdmin {
            host: redis.host().to_owned(),
            port: redis.plain_port(),
            user: ADMIN_USER.to_owned(),
            password: redis.admin_password(),
        })
        .await
    }

    /// `http://127.0.0.1:PORT`: the SDK's endpoint URL (`AWS_ENDPOINT_URL_ELASTICACHE`).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}
