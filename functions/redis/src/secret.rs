//! What a redis-rotation secret looks like: a self-managed server's user
//! ([`RedisSecret`]: `host`, `port` (6379 unless given), `username`
//! (`default` unless given), `password`, `ssl` (true unless the secret says
//! `false`) and an optional `masterarn`), or an ElastiCache or MemoryDB user
//! ([`ManagedSecret`], with `user_arn`). [`UserSecret`] is either, told apart
//! by `user_arn`. Every other field is kept as it is. Parsing names the field
//! at fault and never echoes a value ([`SecretError`]).

use std::fmt;

use rotor_core::admin;
use rotor_core::value::SecretValue;
use rotor_core::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::managed::arn::{ArnError, UserArnError};
pub use crate::managed::secret::ManagedSecret;

/// The port used when the secret has none.
pub const DEFAULT_PORT: u16 = 6379;

/// The field that makes a value an ElastiCache or MemoryDB user's.
pub const USER_ARN_FIELD: &str = "user_arn";

/// Whether to use TLS. There is no "try TLS, then plaintext".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TLS with the certificate and host name verified (the default).
    VerifiedTls,
    /// Plaintext, only because the secret says `"ssl": false`.
    Plaintext,
}

/// The fields a value should hold, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A self-managed server's user.
    SelfManaged,
    /// An ElastiCache or MemoryDB user.
    Managed,
    /// Either: the value did not say which.
    Either,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::SelfManaged => "host, port, username and password",
            Shape::Managed => "user_arn, username and password",
            Shape::Either => concat!(
                "host, port, username and password (a server's user), or user_arn, ",
                "username and password (an ElastiCache or MemoryDB user)"
            ),
        })
    }
}

/// Why a value is no redis-rotation secret: names the field at fault and the
/// fix, never a value (the user name and the ARN included: a value in the
/// wrong field may be a password).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The value is not JSON.
    #[error("is not JSON (line {line}, column {column}); store a JSON object with {expected}")]
    NotJson {
        /// Where the JSON parser stopped.
        line: usize,
        /// Where the JSON parser stopped.
        column: usize,
        /// What the value should hold.
        expected: Shape,
    },
    /// The value is JSON, but not an object.
    #[error("is JSON but not an object; store a JSON object with {expected}")]
    NotObject {
        /// What the value should hold.
        expected: Shape,
    },
    /// A field that must be a string is not.
    #[error("field {0} must be a string")]
    NotText(&'static str),
    /// A field the secret needs is absent (or null).
    #[error("has no {field} field; add {add}")]
    Missing {
        /// The field.
        field: &'static str,
        /// What it should hold.
        add: &'static str,
    },
    /// `password` is an empty string.
    #[error("field password is empty; store the user's password")]
    EmptyPassword,
    /// `host` holds spaces, slashes, a scheme or control characters.
    #[error("field host must be a host name or address, without spaces, slashes or a scheme")]
    Host,
    /// `port` is no number from 1 to 65535.
    #[error("field port must be a port number from 1 to 65535")]
    Port,
    /// `ssl` is neither true nor false.
    #[error("field ssl must be true or false")]
    Ssl,
    /// `username` is empty.
    #[error("field username is empty; name the ACL user")]
    EmptyUsername,
    /// `username` is longer than 256 bytes.
    #[error("field username is longer than 256 bytes")]
    LongUsername,
    /// `username` holds whitespace or control characters.
    #[error(
        "field username holds whitespace or control characters, which a Redis ACL user name cannot"
    )]
    UsernameCharacters,
    /// `user_arn` is not `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
    #[error("field user_arn is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)")]
    UserArnShape,
    /// A part of `user_arn` that must not be empty is.
    #[error("field user_arn has no {0}")]
    UserArnPart(&'static str),
    /// `user_arn` names something else than an ElastiCache or MemoryDB user.
    #[error(
        "field user_arn names no ElastiCache user (arn:aws:elasticache:REGION:ACCOUNT:user:USER_ID) or MemoryDB user (arn:aws:memorydb:REGION:ACCOUNT:user/USER_NAME)"
    )]
    NotACacheUser,
}

impl From<ArnError> for SecretError {
    fn from(error: ArnError) -> Self {
        match error {
            ArnError::Shape(_) => SecretError::UserArnShape,
            ArnError::Empty { part, .. } => SecretError::UserArnPart(part),
            _ => SecretError::UserArnShape,
        }
    }
}

impl From<UserArnError> for SecretError {
    fn from(error: UserArnError) -> Self {
        match error {
            UserArnError::Arn(e) => e.into(),
            UserArnError::NotAUser(_) => SecretError::NotACacheUser,
        }
    }
}

/// Where a Redis-protocol server listens, and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The host name or address.
    pub host: String,
    /// The port.
    pub port: u16,
    /// TLS or plaintext.
    pub transport: Transport,
}

impl Endpoint {
    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        self.server().to_string()
    }

    /// The server, as the core compares servers: host and port.
    pub fn server(&self) -> admin::Endpoint {
        admin::Endpoint::new(self.host.as_str(), self.port)
    }
}

/// A secret's fields as JSON; the error says the value is no JSON object.
pub(crate) fn fields(
    value: &SecretString,
    expected: Shape,
) -> Result<Map<String, Value>, SecretError> {
    match serde_json::from_str(value.expose_secret()) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(SecretError::NotObject { expected }),
        Err(e) => Err(SecretError::NotJson {
            line: e.line(),
            column: e.column(),
            expected,
        }),
    }
}

/// A string field, `None` when absent or null.
pub(crate) fn text(
    fields: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, SecretError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(SecretError::NotText(name)),
    }
}

/// The `password` field: `None` when absent or null (the caller decides
/// whether that is allowed), an error when empty or not a string.
pub(crate) fn password(fields: &Map<String, Value>) -> Result<Option<SecretString>, SecretError> {
    match fields.get("password") {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(SecretString::from(s.as_str()))),
        Some(Value::String(_)) => Err(SecretError::EmptyPassword),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(SecretError::NotText("password")),
    }
}

/// `host`, `port` and `ssl`, or `None` when the secret has no `host`.
pub(crate) fn endpoint(fields: &Map<String, Value>) -> Result<Option<Endpoint>, SecretError> {
    let Some(host) = text(fields, "host")?
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
    else {
        return Ok(None);
    };
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(SecretError::Host);
    }
    let port = match fields.get("port") {
        None | Some(Value::Null) => Some(DEFAULT_PORT),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(s)) => s.trim().parse::<u16>().ok(),
        Some(_) => None,
    };
    let port = port.filter(|n| *n > 0).ok_or(SecretError::Port)?;
    let transport = match fields.get("ssl") {
        None | Some(Value::Null) | Some(Value::Bool(true)) => Transport::VerifiedTls,
        Some(Value::Bool(false)) => Transport::Plaintext,
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Transport::VerifiedTls,
            "false" => Transport::Plaintext,
            _ => return Err(SecretError::Ssl),
        },
        Some(_) => return Err(SecretError::Ssl),
    };
    Ok(Some(Endpoint {
        host,
        port,
        transport,
    }))
}

/// `fields` with another password, as a secret value.
pub(crate) fn with_password(fields: &Map<String, Value>, password: &SecretString) -> SecretString {
    let mut fields = fields.clone();
    fields.insert(
        "password".into(),
        Value::String(password.expose_secret().to_owned()),
    );
    let text = serde_json::to_string(&Value::Object(fields)).unwrap_or_default();
    SecretString::from(text)
}

/// A user name the function agrees to manage: not empty, at most 256 bytes,
/// without whitespace or control characters (Redis refuses spaces itself).
/// Each command argument travels as its own length-prefixed string, so no name
/// could add ACL rules anyway; refusing odd names gives a clear error instead
/// of a server's.
pub(crate) fn check_username(name: &str) -> Result<(), SecretError> {
    if name.is_empty() {
        return Err(SecretError::EmptyUsername);
    }
    if name.len() > 256 {
        return Err(SecretError::LongUsername);
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SecretError::UsernameCharacters);
    }
    Ok(())
}

/// The secret of a user of a self-managed server.
pub struct RedisSecret {
    /// The host name or address.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The ACL user.
    pub username: String,
    /// Its password.
    pub password: SecretString,
    /// TLS or plaintext.
    pub transport: Transport,
    /// The admin secret that manages the user, if any.
    pub masterarn: Option<String>,
    fields: Map<String, Value>,
}

impl RedisSecret {
    fn from_fields(fields: Map<String, Value>) -> Result<RedisSecret, SecretError> {
        let Endpoint {
            host,
            port,
            transport,
        } = endpoint(&fields)?.ok_or(SecretError::Missing {
            field: "host",
            add: "the Redis server's host name",
        })?;
        let username = text(&fields, "username")?.unwrap_or_else(|| "default".into());
        check_username(&username)?;
        let password = password(&fields)?.ok_or(SecretError::Missing {
            field: "password",
            add: "the user's password",
        })?;
        let masterarn = text(&fields, admin::ADMIN_FIELD)?.filter(|m| !m.trim().is_empty());
        Ok(RedisSecret {
            host,
            port,
            username,
            password,
            transport,
            masterarn,
            fields,
        })
    }

    /// Where the server listens.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: self.port,
            transport: self.transport,
        }
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        self.server().to_string()
    }

    /// The server it names, as the core compares servers: host and port.
    pub fn server(&self) -> admin::Endpoint {
        admin::Endpoint::new(self.host.as_str(), self.port)
    }

    /// This secret's value with another password, every other field kept.
    pub fn with_password(&self, password: &SecretString) -> SecretString {
        with_password(&self.fields, password)
    }
}

impl SecretValue for RedisSecret {
    type Invalid = SecretError;
    type Target = User;

    /// Parses the value as a self-managed server's user, whatever else it holds.
    fn parse(value: &SecretString) -> Result<Self, SecretError> {
        RedisSecret::from_fields(fields(value, Shape::SelfManaged)?)
    }

    fn target(&self) -> User {
        User::SelfManaged {
            username: self.username.clone(),
            endpoint: self.server(),
            transport: self.transport,
        }
    }
}

/// A redis-rotation secret: a self-managed server's user, or an ElastiCache
/// or MemoryDB user (a value with [`USER_ARN_FIELD`]).
pub enum UserSecret {
    /// A user of a server the function speaks RESP to.
    SelfManaged(RedisSecret),
    /// A user the service's API manages.
    Managed(ManagedSecret),
}

impl UserSecret {
    /// This secret's value with another password, every other field kept.
    pub fn with_password(&self, password: &SecretString) -> SecretString {
        match self {
            UserSecret::SelfManaged(s) => s.with_password(password),
            UserSecret::Managed(m) => m.with_password(password),
        }
    }
}

impl SecretValue for UserSecret {
    type Invalid = SecretError;
    type Target = User;

    fn parse(value: &SecretString) -> Result<Self, SecretError> {
        let fields = fields(value, Shape::Either)?;
        if fields.contains_key(USER_ARN_FIELD) {
            ManagedSecret::from_fields(fields).map(UserSecret::Managed)
        } else {
            RedisSecret::from_fields(fields).map(UserSecret::SelfManaged)
        }
    }

    fn target(&self) -> User {
        match self {
            UserSecret::SelfManaged(s) => s.target(),
            UserSecret::Managed(m) => m.target(),
        }
    }
}

/// Whose password a redis-rotation secret rotates, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum User {
    /// An ACL user of one server, reached one way.
    SelfManaged {
        /// The user name.
        username: String,
        /// Host and port.
        endpoint: admin::Endpoint,
        /// TLS or plaintext.
        transport: Transport,
    },
    /// An ElastiCache or MemoryDB user.
    Managed {
        /// Its ARN, as text.
        user_arn: String,
        /// Its user name.
        username: String,
    },
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            User::SelfManaged {
                username,
                endpoint,
                transport,
            } => {
                let how = match transport {
                    Transport::VerifiedTls => "over TLS",
                    Transport::Plaintext => "in plaintext",
                };
                write!(f, "user {username:?} at {endpoint} {how}")
            }
            User::Managed { user_arn, username } => write!(f, "user {username:?} ({user_arn})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<RedisSecret, SecretError> {
        RedisSecret::parse(&SecretString::from(value.to_string()))
    }

    #[test]
    fn defaults_and_fields() {
        let s = parse(json!({"host": "cache", "password": "pw"})).unwrap();
        assert_eq!(
            (s.port, s.username.as_str(), s.transport),
            (6379, "default", Transport::VerifiedTls)
        );
        let s = parse(json!({
            "host": "cache", "port": "6380", "username": "app",
            "password": "pw", "ssl": false, "x": 1,
        }))
        .unwrap();
        assert_eq!((s.port, s.transport), (6380, Transport::Plaintext));
        let again = RedisSecret::parse(&s.with_password(&SecretString::from("new"))).unwrap();
        assert_eq!(again.password.expose_secret(), "new");
        assert!(again.fields.contains_key("x"));
    }

    #[test]
    fn each_failure_names_its_field_and_never_a_value() {
        for (bad, expected) in [
            (
                json!({"host": "h", "password": "hunter2", "port": 0}),
                SecretError::Port,
            ),
            (
                json!({"host": "h", "password": "hunter2", "ssl": "maybe"}),
                SecretError::Ssl,
            ),
            (
                json!({"host": "h/x", "password": "hunter2"}),
                SecretError::Host,
            ),
            (
                json!({"host": "h", "password": "hunter2", "username": "hunter2 x"}),
                SecretError::UsernameCharacters,
            ),
            (
                json!({"host": "h", "password": "hunter2", "username": "a\nuser"}),
                SecretError::UsernameCharacters,
            ),
            (
                json!({"host": "h", "password": ""}),
                SecretError::EmptyPassword,
            ),
            (
                json!({"host": "h", "password": 7}),
                SecretError::NotText("password"),
            ),
            (
                json!({"host": "h", "password": "pw", "username": ""}),
                SecretError::EmptyUsername,
            ),
            (
                json!(["hunter2"]),
                SecretError::NotObject {
                    expected: Shape::SelfManaged,
                },
            ),
        ] {
            let e = parse(bad).err().expect("refused");
            assert_eq!(e, expected);
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let e = parse(json!({"password": "hunter2"}))
            .err()
            .expect("refused");
        assert!(e.to_string().starts_with("has no host field"), "{e}");
        let e = RedisSecret::parse(&"hunter2".into())
            .err()
            .expect("refused");
        assert!(matches!(e, SecretError::NotJson { line: 1, .. }), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn user_arn_makes_a_value_a_managed_users() {
        let parse = |v: Value| UserSecret::parse(&SecretString::from(v.to_string()));
        let self_managed = json!({"host": "h", "username": "app", "password": "pw"});
        assert!(matches!(
            parse(self_managed),
            Ok(UserSecret::SelfManaged(_))
        ));
        let managed = json!({
            "user_arn": "arn:aws:memorydb:us-east-1:123456789012:user/app",
            "username": "app", "host": "h",
        });
        let managed = parse(managed).expect("a managed user");
        assert!(matches!(managed, UserSecret::Managed(_)));
        assert_eq!(
            managed.target().to_string(),
            "user \"app\" (arn:aws:memorydb:us-east-1:123456789012:user/app)"
        );
        let e = UserSecret::parse(&"[".into()).err().expect("refused");
        assert!(e.to_string().contains("user_arn, username"), "{e}");
    }
}
