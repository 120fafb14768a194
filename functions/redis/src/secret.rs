//! The secret of one Redis ACL user: `host`, `port` (6379 unless
//! given), `username` (`default` unless given), `password`, `ssl` (true unless
//! the secret says `false`) and an optional `masterarn`. Every other field is
//! kept as it is. Parsing names the field at fault and never echoes a value.

use rotor_core::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// The port used when the secret has none.
pub const DEFAULT_PORT: u16 = 6379;

/// Whether to use TLS. There is no "try TLS, then plaintext".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TLS with the certificate and host name verified (the default).
    VerifiedTls,
    /// Plaintext, only because the secret says `"ssl": false`.
    Plaintext,
}

/// What is wrong with a secret's value: names the field and the fix, never a
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<&str> for Invalid {
    fn from(problem: &str) -> Self {
        Invalid(problem.to_owned())
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
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A secret's fields as JSON; the error says the value is no JSON object.
pub fn fields(value: &SecretString, expected: &str) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_str(value.expose_secret()) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Invalid(format!(
            "is JSON but not an object; store a JSON object with {expected}"
        ))),
        Err(e) => Err(Invalid(format!(
            "is not JSON (line {}, column {}); store a JSON object with {expected}",
            e.line(),
            e.column()
        ))),
    }
}

/// A string field, `None` when absent or null.
pub fn text(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, Invalid> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Invalid(format!("field {name} must be a string"))),
    }
}

/// The `password` field: `None` when absent or null (the caller decides
/// whether that is allowed), an error when empty or not a string.
pub fn password(fields: &Map<String, Value>) -> Result<Option<SecretString>, Invalid> {
    match fields.get("password") {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(SecretString::from(s.as_str()))),
        Some(Value::String(_)) => Err("field password is empty; store the user's password".into()),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err("field password must be a string".into()),
    }
}

/// `host`, `port` and `ssl`, or `None` when the secret has no `host`.
pub fn endpoint(fields: &Map<String, Value>) -> Result<Option<Endpoint>, Invalid> {
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
        return Err(
            "field host must be a host name or address, without spaces, slashes or a scheme".into(),
        );
    }
    let bad_port = || Invalid::from("field port must be a port number from 1 to 65535");
    let port = match fields.get("port") {
        None | Some(Value::Null) => DEFAULT_PORT,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(bad_port)?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(bad_port)?,
        Some(_) => return Err(bad_port()),
    };
    let transport = match fields.get("ssl") {
        None | Some(Value::Null) | Some(Value::Bool(true)) => Transport::VerifiedTls,
        Some(Value::Bool(false)) => Transport::Plaintext,
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Transport::VerifiedTls,
            "false" => Transport::Plaintext,
            _ => return Err("field ssl must be true or false".into()),
        },
        Some(_) => return Err("field ssl must be true or false".into()),
    };
    Ok(Some(Endpoint {
        host,
        port,
        transport,
    }))
}

/// `fields` with another password, as a secret value.
pub fn with_password(fields: &Map<String, Value>, password: &SecretString) -> SecretString {
    let mut fields = fields.clone();
    fields.insert(
        "password".into(),
        Value::String(password.expose_secret().to_owned()),
    );
    let text = serde_json::to_string(&Value::Object(fields)).unwrap_or_default();
    SecretString::from(text)
}

/// A parsed user secret.
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

const EXPECTED: &str = "host, port, username and password";

impl RedisSecret {
    /// Parses a secret value; the error names the field and the fix.
    pub fn parse(value: &SecretString) -> Result<RedisSecret, Invalid> {
        let fields = fields(value, EXPECTED)?;
        let Endpoint {
            host,
            port,
            transport,
        } = endpoint(&fields)?.ok_or("has no host field; add the Redis server's host name")?;
        let username = text(&fields, "username")?.unwrap_or_else(|| "default".into());
        check_username(&username)?;
        let password =
            password(&fields)?.ok_or("has no password field; add the user's password")?;
        let masterarn = text(&fields, "masterarn")?.filter(|m| !m.trim().is_empty());
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
        self.endpoint().address()
    }

    /// The server it names, as the core compares servers: host and port.
    pub fn server(&self) -> rotor_core::admin::Endpoint {
        rotor_core::admin::Endpoint::new(self.host.as_str(), self.port)
    }

    /// This secret's value with another password, every other field kept.
    pub fn with_password(&self, password: &SecretString) -> SecretString {
        with_password(&self.fields, password)
    }
}

/// A user name the function agrees to manage: not empty, at most 256 bytes,
/// without whitespace or control characters (Redis refuses spaces itself).
/// Each command argument travels as its own length-prefixed string, so no name
/// could add ACL rules anyway; refusing odd names gives a clear error instead
/// of a server's.
pub fn check_username(name: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err("field username is empty; name the ACL user".into());
    }
    if name.len() > 256 {
        return Err("field username is longer than 256 bytes".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Invalid(format!(
            "field username {name:?} holds whitespace or control characters, which Redis ACL user names cannot"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RedisSecret, Invalid> {
        RedisSecret::parse(&SecretString::from(text))
    }

    #[test]
    fn defaults_and_fields() {
        let s = parse(r#"{"host":"cache","password":"pw"}"#).unwrap();
        assert_eq!(
            (s.port, s.username.as_str(), s.transport),
            (6379, "default", Transport::VerifiedTls)
        );
        let s = parse(
            r#"{"host":"cache","port":"6380","username":"app","password":"pw","ssl":false,"x":1}"#,
        )
        .unwrap();
        assert_eq!((s.port, s.transport), (6380, Transport::Plaintext));
        let again = RedisSecret::parse(&s.with_password(&SecretString::from("new"))).unwrap();
        assert_eq!(again.password.expose_secret(), "new");
        assert!(again.fields.contains_key("x"));
    }

    #[test]
    fn errors_never_echo_values() {
        for bad in [
            r#"{"host":"h","password":"hunter2","port":0}"#,
            r#"{"host":"h","password":"hunter2","ssl":"maybe"}"#,
            r#"{"host":"h","password":"hunter2","username":"a b"}"#,
            r#"{"host":"h","password":"hunter2","username":"a\nuser"}"#,
            r#"{"password":"hunter2"}"#,
            "hunter2",
        ] {
            let e = parse(bad).err().expect("refused");
            assert!(!e.0.contains("hunter2"), "{e}");
        }
    }
}

/// A redis-rotation secret: a self-managed server's user, or an ElastiCache
/// or MemoryDB user (`user_arn`), told apart by
/// [`crate::managed::secret::is_managed`].
pub enum UserSecret {
    /// A user of a server the function speaks RESP to.
    SelfManaged(RedisSecret),
    /// A user the service's API manages.
    Managed(crate::managed::secret::ManagedSecret),
}

/// Whose password a redis-rotation secret rotates, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum User {
    /// An ACL user of one server, reached one way.
    SelfManaged {
        /// The user name.
        username: String,
        /// Host and port.
        endpoint: rotor_core::admin::Endpoint,
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

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

impl rotor_core::SecretValue for UserSecret {
    type Invalid = Invalid;
    type Target = User;

    fn parse(value: &SecretString) -> Result<Self, Invalid> {
        if crate::managed::secret::is_managed(value) {
            crate::managed::secret::ManagedSecret::parse(value).map(UserSecret::Managed)
        } else {
            RedisSecret::parse(value).map(UserSecret::SelfManaged)
        }
    }

    fn target(&self) -> User {
        match self {
            UserSecret::SelfManaged(s) => User::SelfManaged {
                username: s.username.clone(),
                endpoint: rotor_core::admin::Endpoint::new(&s.host, s.port),
                transport: s.transport,
            },
            UserSecret::Managed(m) => User::Managed {
                user_arn: m.user_arn.to_string(),
                username: m.username.clone(),
            },
        }
    }
}
