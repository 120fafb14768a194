//! The secret of an ElastiCache or MemoryDB user, in the shape AWS's
//! `SecretsManagerElasticacheUserRotation` function reads: `user_arn`,
//! `username` and `password` (absent before the first rotation). Optional
//! `host`, `port` and `ssl` name an endpoint where testSecret logs in with the
//! new password. Every other field is kept as it is.

use rotor_core::SecretString;
use serde_json::{Map, Value};

use super::arn::{Arn, CacheUser};
use crate::secret::{self, Endpoint, Invalid};

/// A parsed managed-user secret.
pub struct ManagedSecret {
    /// The user's ARN, parsed.
    pub user_arn: Arn,
    /// The service and identifier it names.
    pub user: CacheUser,
    /// The user name clients log in with.
    pub username: String,
    /// The password, if the secret holds one yet.
    pub password: Option<SecretString>,
    /// Where to log in for testSecret, if the secret names a host.
    pub endpoint: Option<Endpoint>,
    fields: Map<String, Value>,
}

const EXPECTED: &str = "user_arn, username and password";

/// Whether a secret value is a managed user's: a JSON object with `user_arn`.
pub fn is_managed(value: &SecretString) -> bool {
    secret::fields(value, EXPECTED).is_ok_and(|f| f.contains_key("user_arn"))
}

impl ManagedSecret {
    /// Parses a secret value; the error names the field and the fix.
    pub fn parse(value: &SecretString) -> Result<ManagedSecret, Invalid> {
        let fields = secret::fields(value, EXPECTED)?;
        let text = secret::text(&fields, "user_arn")?
            .ok_or("has no user_arn field; add the ElastiCache or MemoryDB user's ARN")?;
        let user_arn: Arn = text
            .parse()
            .map_err(|e| Invalid(format!("field user_arn: {e}")))?;
        let user = user_arn
            .cache_user()
            .map_err(|e| Invalid(format!("field user_arn: {e}")))?;
        let username = secret::text(&fields, "username")?
            .ok_or("has no username field; add the user name clients log in with")?;
        secret::check_username(&username)?;
        let password = secret::password(&fields)?;
        let endpoint = secret::endpoint(&fields)?;
        Ok(ManagedSecret {
            user_arn,
            user,
            username,
            password,
            endpoint,
            fields,
        })
    }

    /// This secret's value with another password, every other field kept.
    pub fn with_password(&self, password: &SecretString) -> SecretString {
        secret::with_password(&self.fields, password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_core::ExposeSecret;

    fn parse(text: &str) -> Result<ManagedSecret, Invalid> {
        ManagedSecret::parse(&SecretString::from(text))
    }

    #[test]
    fn reads_aws_functions_secrets() {
        let s = parse(
            r#"{"user_arn":"arn:aws:elasticache:us-east-1:123456789012:user:app-id","username":"app"}"#,
        )
        .unwrap();
        assert!(s.password.is_none() && s.endpoint.is_none());
        assert_eq!(s.user, CacheUser::ElastiCache("app-id".into()));
        let next = ManagedSecret::parse(&s.with_password(&SecretString::from("n"))).unwrap();
        assert_eq!(next.password.unwrap().expose_secret(), "n");
        let s = parse(
            r#"{"user_arn":"arn:aws:memorydb:us-east-1:123456789012:user/app","username":"app","password":"pw","host":"c.example","port":6380,"ssl":false}"#,
        )
        .unwrap();
        let e = s.endpoint.unwrap();
        assert_eq!((e.host.as_str(), e.port), ("c.example", 6380));
        assert!(is_managed(&SecretString::from(r#"{"user_arn":"x"}"#)));
        assert!(!is_managed(&SecretString::from(r#"{"host":"h"}"#)));
    }

    #[test]
    fn errors_name_the_field_and_never_a_value() {
        for (bad, field) in [
            (r#"{"username":"app","password":"hunter2"}"#, "user_arn"),
            (
                r#"{"user_arn":"arn:aws:rds:us-east-1:1:db:x","username":"app","password":"hunter2"}"#,
                "user_arn",
            ),
            (
                r#"{"user_arn":"arn:aws:memorydb:us-east-1:1:user/app","password":"hunter2"}"#,
                "username",
            ),
            (
                r#"{"user_arn":"arn:aws:memorydb:us-east-1:1:user/app","username":"app","password":7}"#,
                "password",
            ),
        ] {
            let e = parse(bad).err().expect("refused").0;
            assert!(e.contains(field) && !e.contains("hunter2"), "{e}");
        }
    }
}
