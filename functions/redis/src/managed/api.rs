//! What the ElastiCache and MemoryDB clients share: a user as `DescribeUsers`
//! reports it, the two SDKs' user and tag types read one way, and the
//! classification of an API failure into a target cause.

use aws_sdk_memorydb::config::http::HttpResponse;
use aws_sdk_memorydb::error::{ProvideErrorMetadata, SdkError};
use rotor_core::{Cause, ExposeSecret, SecretString, TargetError};

use super::arn::CacheUser;

/// The status in which a user accepts a change and its passwords are in force.
pub const ACTIVE: &str = "active";

/// A user as `DescribeUsers` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserState {
    /// Its ARN, as the service reports it.
    pub arn: Option<String>,
    /// The name clients log in with.
    pub name: Option<String>,
    /// `active`, `modifying`, `creating`, `deleting`, …
    pub status: String,
    /// How many passwords it holds (never the passwords).
    pub password_count: Option<i32>,
}

impl UserState {
    /// A user from the fields both SDKs' `User` types have.
    pub fn new(
        arn: Option<&str>,
        name: Option<&str>,
        status: Option<&str>,
        password_count: Option<i32>,
    ) -> UserState {
        UserState {
            arn: arn.map(str::to_owned),
            name: name.map(str::to_owned),
            status: status.unwrap_or_default().to_owned(),
            password_count,
        }
    }
}

/// A user as one SDK's `DescribeUsers` lists it. ElastiCache's and
/// MemoryDB's `User` types hold the same facts under other names; each
/// service module says which is which, and [`find_user`] reads either.
pub trait ListedUser {
    /// The identifier `DescribeUsers` was asked for ([`CacheUser::id`]).
    fn id(&self) -> Option<&str>;
    /// The user as the function reads it.
    fn state(&self) -> UserState;
}

/// The user `user` among those `DescribeUsers` listed, or a `NotFound`
/// naming it and its ARN.
pub fn find_user<U: ListedUser>(
    listed: &[U],
    user: &CacheUser,
    arn: &str,
) -> Result<UserState, TargetError> {
    let found = listed.iter().find(|u| u.id() == Some(user.id()));
    found.map(ListedUser::state).ok_or_else(|| {
        let problem = format!(
            "DescribeUsers found no {} user with {} {:?} ({arn}); fix user_arn, or create the user",
            user.service(),
            user.id_kind(),
            user.id()
        );
        TargetError::new(Cause::NotFound, problem)
    })
}

/// The value of the tag `key` among `tags` (key and value, as both SDKs'
/// `Tag` types hold them), `None` when there is none.
pub fn tag_value<'a>(
    tags: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
    key: &str,
) -> Option<String> {
    let (_, value) = tags.into_iter().find(|(k, _)| *k == Some(key))?;
    Some(value.unwrap_or_default().to_owned())
}

/// Passwords as both SDKs take them.
pub fn exposed(passwords: &[&SecretString]) -> Vec<String> {
    passwords
        .iter()
        .map(|p| p.expose_secret().to_owned())
        .collect()
}

/// The cause of an API failure, from the error code (the services answer a
/// throttled call with HTTP 400 and a code) or, failing that, the status.
pub fn classify(code: Option<&str>, status: u16) -> Cause {
    match code.unwrap_or_default() {
        "UserNotFound" | "UserNotFoundFault" => Cause::NotFound,
        "InvalidUserState" | "InvalidUserStateFault" => Cause::Pending,
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalFailure"
        | "InternalServerError"
        | "InternalServiceError" => Cause::Unavailable,
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "NotAuthorized" => {
            Cause::Permission
        }
        "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature" => Cause::Auth,
        _ => rotor_core::sdk::status_cause(status),
    }
}

/// What to do about a failure of `cause`, for the message.
fn fix(cause: Cause, service: &str, operation: &str, user: &str) -> String {
    match cause {
        Cause::NotFound => format!(
            "; the secret's user_arn names no {service} user ({user}) in this account and region: fix user_arn, or create the user"
        ),
        Cause::Pending => format!(
            "; the user is being changed ({service} applies a change for a few minutes): rotate again once it is active"
        ),
        Cause::Permission => format!(
            "; the function's role needs {}:{operation} on {user} (template parameter redisManagedUserArns)",
            service.to_ascii_lowercase()
        ),
        Cause::Unavailable | Cause::Unreachable => {
            format!("; {service} is throttling or failing for now: rotate again")
        }
        _ => String::new(),
    }
}

/// A failed call as a target error. `echo` says whether the service's own
/// message may be shown: not for calls that carry passwords, whose message
/// could quote one.
pub fn failure<E>(
    service: &str,
    operation: &str,
    user: &str,
    error: &SdkError<E, HttpResponse>,
    echo: bool,
) -> TargetError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (cause, detail) = rotor_core::sdk::failure_detail(error, echo, classify);
    let fix = fix(cause, service, operation, user);
    TargetError::new(
        cause,
        format!("{operation} for {user} failed: {detail}{fix}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Listed(&'static str, &'static str);

    impl ListedUser for Listed {
        fn id(&self) -> Option<&str> {
            Some(self.0)
        }

        fn state(&self) -> UserState {
            UserState::new(None, Some(self.0), Some(self.1), Some(2))
        }
    }

    #[test]
    fn the_user_asked_for_is_found_by_its_id_or_named_as_missing() {
        let listed = [Listed("other", "active"), Listed("app", "modifying")];
        let user = CacheUser::MemoryDb("app".into());
        let arn = "arn:aws:memorydb:us-east-1:123456789012:user/app";
        let found = find_user(&listed, &user, arn).unwrap();
        assert_eq!(
            (found.status.as_str(), found.password_count),
            ("modifying", Some(2))
        );
        let missing = CacheUser::ElastiCache("gone".into());
        let e = find_user(&listed, &missing, arn).unwrap_err();
        assert_eq!(e.cause, Cause::NotFound);
        assert!(
            e.problem.contains("ElastiCache user with user ID \"gone\""),
            "{}",
            e.problem
        );
    }

    #[test]
    fn a_tag_is_read_by_its_key() {
        let tags = [(Some("team"), Some("a")), (Some("rotor:secret"), None)];
        assert_eq!(tag_value(tags, "team").as_deref(), Some("a"));
        assert_eq!(tag_value(tags, "rotor:secret").as_deref(), Some(""));
        assert_eq!(tag_value(tags, "owner"), None);
    }

    #[test]
    fn codes_decide_before_statuses() {
        assert_eq!(classify(Some("UserNotFound"), 404), Cause::NotFound);
        assert_eq!(classify(Some("UserNotFoundFault"), 400), Cause::NotFound);
        assert_eq!(classify(Some("InvalidUserState"), 400), Cause::Pending);
        assert_eq!(classify(Some("InvalidUserStateFault"), 400), Cause::Pending);
        assert_eq!(classify(Some("Throttling"), 400), Cause::Unavailable);
        assert_eq!(
            classify(Some("ThrottlingException"), 400),
            Cause::Unavailable
        );
        assert_eq!(classify(Some("AccessDenied"), 403), Cause::Permission);
        assert_eq!(
            classify(Some("AccessDeniedException"), 400),
            Cause::Permission
        );
        assert_eq!(classify(Some("ExpiredToken"), 400), Cause::Auth);
        assert_eq!(
            classify(Some("InvalidParameterValue"), 400),
            Cause::Rejected
        );
        assert_eq!(classify(None, 503), Cause::Unavailable);
        assert_eq!(classify(None, 429), Cause::Unavailable);
        assert_eq!(classify(None, 403), Cause::Permission);
        assert!(Cause::Pending.is_retryable() && Cause::Unavailable.is_retryable());
        assert!(!Cause::NotFound.is_retryable() && !Cause::Permission.is_retryable());
    }
}
