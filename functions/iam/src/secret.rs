//! The secret's value: the JSON `credential_process` prints, plus the user.
//!
//! `{"Version": 1, "UserName": "<IAM user>", "AccessKeyId": "...",
//! "SecretAccessKey": "..."}`. Every other field is kept as it is, and an
//! optional `ses_smtp_password` field asks for the SES SMTP password derived
//! from the secret access key ([`crate::ses`]). The secret access key lives
//! in a [`SecretString`] from the moment it is parsed; Debug prints its
//! length class only, never a character of it, and no parse error quotes a
//! value.

use std::fmt;

use rotor_core::{ExposeSecret, SecretString, SecretValue};
use serde_json::{Map, Value};

/// The field that holds the user's name.
pub const USER_NAME: &str = "UserName";
/// The access key's id (not a secret: it names the key).
pub const ACCESS_KEY_ID: &str = "AccessKeyId";
/// The secret access key.
pub const SECRET_ACCESS_KEY: &str = "SecretAccessKey";
/// `credential_process`'s format version: 1.
pub const VERSION: &str = "Version";
/// Optional: the SES SMTP password for the secret's region.
pub const SES_SMTP_PASSWORD: &str = "ses_smtp_password";

/// What is wrong with a secret's value: names the field and the fix, never a
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A secret's value, parsed.
#[derive(Clone)]
pub struct KeySecret {
    /// The IAM user whose key this is.
    pub user_name: String,
    /// The access key's id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// Whether the secret asks for `ses_smtp_password`.
    pub wants_ses_password: bool,
    fields: Map<String, Value>,
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySecret")
            .field("user_name", &self.user_name)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("wants_ses_password", &self.wants_ses_password)
            .finish_non_exhaustive()
    }
}

const EXPECTED: &str = "UserName, AccessKeyId and SecretAccessKey (and \"Version\": 1)";

fn text<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, Invalid> {
    match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(Invalid(format!("field {name} is empty; {}", fix(name)))),
        None | Some(Value::Null) => Err(Invalid(format!("has no {name} field; {}", fix(name)))),
        Some(_) => Err(Invalid(format!(
            "field {name} must be a string; {}",
            fix(name)
        ))),
    }
}

fn fix(name: &str) -> &'static str {
    match name {
        USER_NAME => "store the IAM user's name (not its ARN)",
        ACCESS_KEY_ID => "store the id of the user's access key that the secret holds",
        _ => "store the user's secret access key",
    }
}

/// IAM's rule for user names: 1 to 64 of letters, digits and `+=,.@_-`.
fn check_user_name(name: &str) -> Result<(), Invalid> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.len() > 64 || !name.chars().all(allowed) {
        return Err(Invalid(format!(
            "field {USER_NAME} is not an IAM user name (1 to 64 letters, digits and +=,.@_-); store the user's name, not its ARN or path"
        )));
    }
    Ok(())
}

/// IAM's rule for access key ids: 16 to 128 letters and digits.
fn check_key_id(id: &str) -> Result<(), Invalid> {
    if !(16..=128).contains(&id.len()) || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Invalid(format!(
            "field {ACCESS_KEY_ID} is not an access key id (16 to 128 letters and digits, such as AKIA...); store the id of the user's key"
        )));
    }
    Ok(())
}

impl KeySecret {
    /// Parses a stored value.
    pub fn parse(value: &SecretString) -> Result<KeySecret, Invalid> {
        let fields = match serde_json::from_str(value.expose_secret()) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => {
                return Err(Invalid(format!(
                    "is JSON but not an object; store a JSON object with {EXPECTED}"
                )));
            }
            Err(e) => {
                return Err(Invalid(format!(
                    "is not JSON (line {}, column {}); store a JSON object with {EXPECTED}",
                    e.line(),
                    e.column()
                )));
            }
        };
        match fields.get(VERSION) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
            Some(_) => {
                return Err(Invalid(format!(
                    "field {VERSION} must be 1, as credential_process reads it; set it to 1"
                )));
            }
        }
        if fields.contains_key("SessionToken") {
            return Err(Invalid(
                "has a SessionToken field, but an IAM user's access key has none; remove it (temporary credentials cannot be rotated)".into(),
            ));
        }
        let user_name = text(&fields, USER_NAME)?.to_owned();
        check_user_name(&user_name)?;
        let access_key_id = text(&fields, ACCESS_KEY_ID)?.to_owned();
        check_key_id(&access_key_id)?;
        let secret_access_key = SecretString::from(text(&fields, SECRET_ACCESS_KEY)?);
        let wants_ses_password = match fields.get(SES_SMTP_PASSWORD) {
            None => false,
            Some(Value::String(_) | Value::Null) => true,
            Some(_) => {
                return Err(Invalid(format!(
                    "field {SES_SMTP_PASSWORD} must be a string (or null to ask for one)"
                )));
            }
        };
        Ok(KeySecret {
            user_name,
            access_key_id,
            secret_access_key,
            wants_ses_password,
            fields,
        })
    }

    /// This secret's value with another key (and, where asked for, its SES
    /// SMTP password), every other field kept.
    pub fn with_key(
        &self,
        access_key_id: &str,
        secret_access_key: &SecretString,
        ses_password: Option<&SecretString>,
    ) -> SecretString {
        let mut fields = self.fields.clone();
        fields.insert(VERSION.into(), Value::from(1));
        fields.insert(
            ACCESS_KEY_ID.into(),
            Value::String(access_key_id.to_owned()),
        );
        let secret = secret_access_key.expose_secret().to_owned();
        fields.insert(SECRET_ACCESS_KEY.into(), Value::String(secret));
        if let Some(password) = ses_password {
            let password = password.expose_secret().to_owned();
            fields.insert(SES_SMTP_PASSWORD.into(), Value::String(password));
        }
        let text = serde_json::to_string(&Value::Object(fields)).unwrap_or_default();
        SecretString::from(text)
    }
}

/// The user a secret's key belongs to: the part a rotation never changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User(pub String);

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IAM user {:?}", self.0)
    }
}

impl SecretValue for KeySecret {
    type Invalid = Invalid;
    type Target = User;

    fn parse(value: &SecretString) -> Result<Self, Invalid> {
        KeySecret::parse(value)
    }

    fn target(&self) -> User {
        User(self.user_name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn parse(text: &str) -> Result<KeySecret, Invalid> {
        KeySecret::parse(&SecretString::from(text))
    }

    fn good(more: &str) -> String {
        format!(
            r#"{{"Version":1,"UserName":"ci-deploy","AccessKeyId":"AKIAIOSFODNN7EXAMPLE","SecretAccessKey":"{SECRET}"{more}}}"#
        )
    }

    #[test]
    fn reads_the_fields_and_keeps_the_others() {
        let s = parse(&good(r#","Region":"eu-west-1""#)).unwrap();
        assert_eq!(
            (s.user_name.as_str(), s.access_key_id.as_str()),
            ("ci-deploy", "AKIAIOSFODNN7EXAMPLE")
        );
        assert!(!s.wants_ses_password);
        let next = s.with_key(
            "AKIANEWKEY0000000000",
            &SecretString::from("n3w/s3cret"),
            None,
        );
        let next = parse(next.expose_secret()).unwrap();
        assert_eq!(next.access_key_id, "AKIANEWKEY0000000000");
        assert_eq!(next.secret_access_key.expose_secret(), "n3w/s3cret");
        assert_eq!(next.fields.get("Region"), Some(&Value::from("eu-west-1")));
        assert_eq!(next.target(), s.target());
    }

    #[test]
    fn asks_for_the_ses_password_by_its_field() {
        for more in [
            r#","ses_smtp_password":null"#,
            r#","ses_smtp_password":"old""#,
        ] {
            assert!(parse(&good(more)).unwrap().wants_ses_password, "{more}");
        }
        assert!(parse(&good(r#","ses_smtp_password":1"#)).is_err());
    }

    #[test]
    fn refusals_name_the_field_and_never_a_value() {
        let cases = [
            ("[]".to_owned(), "not an object"),
            (format!("{{\"x\":\"{SECRET}"), "not JSON"),
            (good("").replace("\"Version\":1", "\"Version\":2"), VERSION),
            (good("").replace("ci-deploy", ""), USER_NAME),
            (good("").replace("ci-deploy", "user/ci/deploy"), USER_NAME),
            (
                good("").replace("\"AKIAIOSFODNN7EXAMPLE\"", "7"),
                ACCESS_KEY_ID,
            ),
            (
                good("").replace("AKIAIOSFODNN7EXAMPLE", "AKIA-X"),
                ACCESS_KEY_ID,
            ),
            (good("").replace(SECRET, ""), SECRET_ACCESS_KEY),
            (
                good(&format!(",\"SessionToken\":\"{SECRET}\"")),
                "SessionToken",
            ),
        ];
        for (text, field) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
            assert!(!e.contains(SECRET) && !e.contains("wJalr"), "{e}");
        }
        let debug = format!("{:?}", parse(&good("")).unwrap());
        assert!(
            !debug.contains(SECRET) && debug.contains("ci-deploy"),
            "{debug}"
        );
    }
}
