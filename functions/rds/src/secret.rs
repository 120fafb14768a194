//! The RDS secret format of AWS's official rotation functions: `engine`, `host`,
//! `username`, `password`, optional `port`, `dbname`, `ssl` and `masterarn`.
//! Every other field is kept as it is. Parsing says which field is wrong and
//! never echoes a value; the password goes straight into a `SecretString`.

use std::fmt;

use rotor_core::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// The database engines rds-rotation speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// MySQL and Aurora MySQL.
    MySql,
    /// MariaDB.
    MariaDb,
    /// PostgreSQL and Aurora PostgreSQL.
    Postgres,
}

impl Engine {
    /// Parses the `engine` field as AWS's functions and RDS write it.
    pub fn parse(text: &str) -> Option<Engine> {
        match text {
            "mysql" | "aurora-mysql" | "aurora" => Some(Engine::MySql),
            "mariadb" => Some(Engine::MariaDb),
            "postgres" | "postgresql" | "aurora-postgresql" => Some(Engine::Postgres),
            _ => None,
        }
    }

    /// The port used when the secret has none.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            _ => 3306,
        }
    }

    /// The characters AWS's official functions exclude from passwords by
    /// default: those that break connection strings or shell quoting.
    pub fn default_excluded_characters(self) -> &'static str {
        match self {
            Engine::Postgres => ":/@\"'\\",
            _ => "/@\"'\\",
        }
    }

    /// Whether it speaks the MySQL protocol.
    pub fn is_mysql_family(self) -> bool {
        !matches!(self, Engine::Postgres)
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::MySql => "MySQL",
            Engine::MariaDb => "MariaDB",
            Engine::Postgres => "PostgreSQL",
        })
    }
}

/// Whether to use TLS. There is no third, "try TLS then fall back" mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TLS with the certificate and host name verified (the default).
    VerifiedTls,
    /// Plaintext, only because the secret says `"ssl": false`.
    Plaintext,
}

/// A parsed database secret.
pub struct DbSecret {
    /// The engine.
    pub engine: Engine,
    /// The host name or address.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: SecretString,
    /// The database to connect to, if named.
    pub dbname: Option<String>,
    /// TLS or not.
    pub transport: Transport,
    /// The ARN of the secret with the master (admin) credentials, if any.
    pub masterarn: Option<String>,
    /// Every field in order, `password` blanked, to write the secret back.
    fields: Map<String, Value>,
}

impl fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSecret")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("dbname", &self.dbname)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// The longest host or user name accepted: far beyond any engine's limit.
const MAX_NAME: usize = 1024;

/// The engines' names as the `engine` field takes them, for messages.
const ENGINES: &str = "mysql, aurora-mysql, mariadb, postgres or aurora-postgresql";

/// The fields every RDS secret needs, for messages.
const REQUIRED: &str = "RDS secrets are JSON objects with engine, host, username and password";

/// Why a value is not an RDS secret. Each message names the field at fault
/// and the fix, and never holds a field's value except the engine's.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The value does not parse as JSON.
    #[error("is not JSON; {REQUIRED}")]
    NotJson,
    /// The value is JSON, but not an object.
    #[error("is JSON but not an object; {REQUIRED}")]
    NotAnObject,
    /// There is no password field.
    #[error("has no password field")]
    NoPassword,
    /// A required field is absent, null or empty.
    #[error(
        "has no {0} field (or it is empty); RDS secrets need engine, host, username and password"
    )]
    Missing(&'static str),
    /// A field that must be a string is something else.
    #[error("has a {0} field that is not a string")]
    NotAString(&'static str),
    /// A name longer than [`MAX_NAME`] bytes.
    #[error("has a {0} field longer than {MAX_NAME} bytes")]
    TooLong(&'static str),
    /// A name with a NUL character, which no engine takes.
    #[error("has a {0} field with a NUL character")]
    Nul(&'static str),
    /// An engine rds-rotation does not rotate.
    #[error("has engine {0:?}, which rds-rotation does not rotate; use {ENGINES}")]
    UnknownEngine(String),
    /// A numeric port of 0 or above 65535.
    #[error("has a port outside 1-65535")]
    PortOutOfRange,
    /// A port string that is not a number from 1 to 65535.
    #[error("has a port that is not a number from 1 to 65535")]
    PortNotANumber,
    /// A port that is an object, array or boolean.
    #[error("has a port that is neither a number nor a string")]
    PortType,
}

impl DbSecret {
    /// Parses a secret value; the error names the field at fault and the fix.
    pub fn parse(value: &SecretString) -> Result<DbSecret, SecretError> {
        let mut fields = match serde_json::from_str::<Value>(value.expose_secret()) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Err(SecretError::NotAnObject),
            Err(_) => return Err(SecretError::NotJson),
        };
        // The password leaves the map (a placeholder keeps its position).
        let password = match fields.insert("password".into(), Value::Null) {
            Some(Value::String(p)) => SecretString::from(p),
            Some(_) => return Err(SecretError::NotAString("password")),
            None => return Err(SecretError::NoPassword),
        };
        let text = |name: &'static str| -> Result<Option<String>, SecretError> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.len() > MAX_NAME => Err(SecretError::TooLong(name)),
                Some(Value::String(s)) if s.contains('\0') => Err(SecretError::Nul(name)),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(SecretError::NotAString(name)),
            }
        };
        let required = |name: &'static str| -> Result<String, SecretError> {
            text(name)?
                .filter(|s| !s.is_empty())
                .ok_or(SecretError::Missing(name))
        };
        let engine_text = required("engine")?;
        let engine = Engine::parse(&engine_text).ok_or(SecretError::UnknownEngine(engine_text))?;
        let host = required("host")?;
        let username = required("username")?;
        let port = match fields.get("port") {
            None | Some(Value::Null) => engine.default_port(),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|p| *p > 0)
                .ok_or(SecretError::PortOutOfRange)?,
            Some(Value::String(s)) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(SecretError::PortNotANumber)?,
            Some(_) => return Err(SecretError::PortType),
        };
        let transport = match fields.get("ssl") {
            None | Some(Value::Null) | Some(Value::Bool(true)) => Transport::VerifiedTls,
            Some(Value::Bool(false)) => Transport::Plaintext,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Transport::VerifiedTls,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Transport::Plaintext,
            // AWS's functions take any other value as "TLS" (with a fallback to
            // plaintext that rotor does not copy): verified TLS, and a warning.
            Some(_) => {
                tracing::warn!(concat!(
                    "the secret's ssl field is neither true nor false; using verified TLS ",
                    "(set it to true, or false for plaintext, to silence this)"
                ));
                Transport::VerifiedTls
            }
        };
        Ok(DbSecret {
            engine,
            dbname: text("dbname")?.filter(|s| !s.is_empty()),
            masterarn: text("masterarn")?.filter(|s| !s.is_empty()),
            host,
            port,
            username,
            password,
            transport,
            fields,
        })
    }

    /// Where the credential works: engine and server.
    pub fn endpoint(&self) -> rotor_core::admin::Endpoint {
        rotor_core::admin::Endpoint::new(&self.host, self.port)
    }

    /// The database to connect to: `dbname`, or PostgreSQL's `postgres`.
    pub fn database(&self) -> Option<&str> {
        match (&self.dbname, self.engine) {
            (Some(name), _) => Some(name),
            (None, Engine::Postgres) => Some("postgres"),
            (None, _) => None,
        }
    }

    /// The secret with another user name and password, every other field kept.
    pub fn with_credentials(&self, username: &str, password: &SecretString) -> SecretString {
        let mut fields = self.fields.clone();
        fields.insert("username".into(), Value::String(username.to_owned()));
        fields.insert(
            "password".into(),
            Value::String(password.expose_secret().to_owned()),
        );
        SecretString::from(Value::Object(fields).to_string())
    }

    /// The login of another user at another address of this secret's
    /// database (its master's): engine, database name and every other field
    /// are this secret's.
    pub(crate) fn login_at(
        &self,
        username: String,
        password: SecretString,
        at: rotor_core::admin::Endpoint,
        transport: Transport,
    ) -> DbSecret {
        DbSecret {
            engine: self.engine,
            host: at.host,
            port: at.port,
            username,
            password,
            dbname: self.dbname.clone(),
            transport,
            masterarn: self.masterarn.clone(),
            fields: self.fields.clone(),
        }
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The suffix that marks the alternate user of the alternating-users strategy.
pub const CLONE_SUFFIX: &str = "_clone";

/// Why a user has no alternate within the engine's limits.
#[derive(Debug, thiserror::Error)]
pub enum AlternateNameError {
    /// The name is the suffix alone.
    #[error(
        "the user name {0:?} has no original user before {CLONE_SUFFIX:?}; {need}{CLONE_SUFFIX}",
        need = "alternating users need a name such as app and app"
    )]
    NoOriginal(String),
    /// The clone's name would be longer than the engine allows.
    #[error(
        "the alternate user {clone:?} would be {length} long, over {engine}'s limit of {limit}; {}",
        shorter_name(*.engine)
    )]
    TooLong {
        /// The clone's name.
        clone: String,
        /// Its length, in the engine's unit.
        length: usize,
        /// The engine.
        engine: Engine,
        /// The engine's (or the deployment's) limit.
        limit: usize,
    },
}

/// What to do about an alternate user's name over `engine`'s limit.
fn shorter_name(engine: Engine) -> &'static str {
    match engine {
        Engine::MySql => concat!(
            "use a shorter user name or raise USERNAME_CHARACTER_LIMIT ",
            "(MySQL 5.7+ allows 32)"
        ),
        _ => "use a shorter user name",
    }
}

/// The other user of an alternating pair: `u` ↔ `u_clone`, within the engine's
/// name limit (counted in characters for MySQL and MariaDB, bytes for PostgreSQL).
pub fn alternate_username(
    current: &str,
    limit: usize,
    engine: Engine,
) -> Result<String, AlternateNameError> {
    if let Some(base) = current.strip_suffix(CLONE_SUFFIX) {
        if base.is_empty() {
            return Err(AlternateNameError::NoOriginal(current.to_owned()));
        }
        return Ok(base.to_owned());
    }
    let clone = format!("{current}{CLONE_SUFFIX}");
    let length = match engine {
        Engine::Postgres => clone.len(),
        _ => clone.chars().count(),
    };
    if length > limit {
        return Err(AlternateNameError::TooLong {
            clone,
            length,
            engine,
            limit,
        });
    }
    Ok(clone)
}

/// The first user of an alternating pair (without the suffix).
pub fn base_username(name: &str) -> &str {
    name.strip_suffix(CLONE_SUFFIX).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<DbSecret, SecretError> {
        DbSecret::parse(&SecretString::from(json))
    }

    #[test]
    fn parses_the_official_format_with_defaults() {
        let s =
            parse(r#"{"engine":"postgres","host":"db","username":"app","password":"pw"}"#).unwrap();
        assert_eq!(
            (s.engine, s.port, s.database(), s.transport),
            (
                Engine::Postgres,
                5432,
                Some("postgres"),
                Transport::VerifiedTls
            )
        );
        let s = parse(concat!(
            r#"{"engine":"aurora-mysql","host":"db","username":"app","password":"pw","#,
            r#""port":"3307","ssl":"FALSE","dbname":"x","masterarn":"arn:m"}"#
        ))
        .unwrap();
        assert_eq!(
            (s.engine, s.port, s.database(), s.transport),
            (Engine::MySql, 3307, Some("x"), Transport::Plaintext)
        );
        assert_eq!(s.masterarn.as_deref(), Some("arn:m"));
        assert_eq!(
            parse(r#"{"engine":"mariadb","host":"h","username":"u","password":"p"}"#)
                .unwrap()
                .database(),
            None
        );
    }

    #[test]
    fn errors_name_the_field_and_never_the_password() {
        let cases = [
            ("nope", "not JSON"),
            ("[1]", "not an object"),
            (
                r#"{"engine":"postgres","host":"h","username":"u"}"#,
                "no password",
            ),
            (
                r#"{"engine":"oracle","host":"h","username":"u","password":"p4ss"}"#,
                "oracle",
            ),
            (
                r#"{"host":"h","username":"u","password":"p4ss"}"#,
                "no engine",
            ),
            (
                r#"{"engine":"mysql","username":"u","password":"p4ss"}"#,
                "no host",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":"","password":"p4ss"}"#,
                "no username",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":"u","password":"p4ss","port":70000}"#,
                "port outside",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":"u","password":"p4ss","port":"x"}"#,
                "port that is not",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":5,"password":"p4ss"}"#,
                "username field that is not a string",
            ),
        ];
        for (json, expected) in cases {
            let error = parse(json).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("p4ss"));
        }
    }

    #[test]
    fn any_other_ssl_value_means_verified_tls() {
        for ssl in [r#""maybe""#, r#""require""#, "1", "0", "[]", r#""""#] {
            let json = format!(
                r#"{{"engine":"mysql","host":"h","username":"u","password":"p","ssl":{ssl}}}"#
            );
            assert_eq!(
                parse(&json).unwrap().transport,
                Transport::VerifiedTls,
                "{ssl}"
            );
        }
    }

    #[test]
    fn writes_back_every_other_field_in_order() {
        let rest = r#""port":3306,"extra":{"k":[1,2]},"big":123456789012345678901234567890}"#;
        let s = parse(&format!(
            r#"{{"password":"old","engine":"mysql","host":"h","username":"u",{rest}"#
        ))
        .unwrap();
        let out = s.with_credentials("u_clone", &SecretString::from("new"));
        assert_eq!(
            out.expose_secret(),
            format!(
                r#"{{"password":"new","engine":"mysql","host":"h","username":"u_clone",{rest}"#
            )
        );
        assert!(!format!("{s:?}").contains("old"));
    }

    #[test]
    fn alternates_users_within_limits() {
        assert_eq!(
            alternate_username("app", 16, Engine::MySql).unwrap(),
            "app_clone"
        );
        assert_eq!(
            alternate_username("app_clone", 16, Engine::MySql).unwrap(),
            "app"
        );
        assert!(
            alternate_username("a_sixteen_chars_", 16, Engine::MySql)
                .unwrap_err()
                .to_string()
                .contains("USERNAME_CHARACTER_LIMIT")
        );
        assert_eq!(
            alternate_username("a_sixteen_chars_", 16, Engine::MySql)
                .unwrap_err()
                .to_string(),
            concat!(
                "the alternate user \"a_sixteen_chars__clone\" would be 22 long, over MySQL's ",
                "limit of 16; use a shorter user name or raise USERNAME_CHARACTER_LIMIT ",
                "(MySQL 5.7+ allows 32)"
            )
        );
        assert_eq!(
            alternate_username(&"x".repeat(80), 80, Engine::MariaDb)
                .unwrap_err()
                .to_string(),
            format!(
                "the alternate user \"{}_clone\" would be 86 long, {}",
                "x".repeat(80),
                "over MariaDB's limit of 80; use a shorter user name"
            )
        );
        // PostgreSQL counts bytes: 28 two-byte letters + "_clone" = 62 bytes.
        assert!(alternate_username(&"é".repeat(28), 63, Engine::Postgres).is_ok());
        assert!(alternate_username(&"é".repeat(29), 63, Engine::Postgres).is_err());
        assert_eq!(base_username("x_clone"), "x");
        // Found by reading the fuzz target: an empty original user is refused.
        assert!(alternate_username("_clone", 16, Engine::MySql).is_err());
    }
}

/// Where an RDS secret's credentials work: the engine and the server. The
/// user is not part of it (alternating users change it); single-user
/// rotation checks that itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    /// MySQL and MariaDB are one family; PostgreSQL another.
    pub engine: Engine,
    /// Host and port.
    pub endpoint: rotor_core::admin::Endpoint,
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.engine, self.endpoint)
    }
}

impl rotor_core::SecretValue for DbSecret {
    type Invalid = SecretError;
    type Target = Database;

    fn parse(value: &SecretString) -> Result<Self, SecretError> {
        DbSecret::parse(value)
    }

    fn target(&self) -> Database {
        Database {
            engine: self.engine,
            endpoint: self.endpoint(),
        }
    }
}
