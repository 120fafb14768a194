//! The secret of an ElastiCache or MemoryDB user, in the shape AWS's
//! `SecretsManagerElasticacheUserRotation` function reads: `user_arn`,
//! `username` and `password` (absent before the first rotation). Optional
//! `host`, `port` and `ssl` name an endpoint where testSecret logs in with the
//! new password. Every other field is kept as it is.

use rotor_core::SecretString;
use rotor_core::value::SecretValue;
use serde_json::{Map, Value};

use super::arn::{Arn, CacheUser, CacheUserArn};
use crate::secret::{self, Endpoint, SecretError, Shape, USER_ARN_FIELD, User};

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

impl ManagedSecret {
    pub(crate) fn from_fields(fields: Map<String, Value>) -> Result<ManagedSecret, SecretError> {
        let user_arn: Arn = secret::text(&fields, USER_ARN_FIELD)?
            .ok_or(SecretError::Missing {
                field: USER_ARN_FIELD,
                add: "the ElastiCache or MemoryDB user's ARN",
            })?
            .parse()?;
        let user = user_arn.cache_user()?;
        let username = secret::text(&fields, "username")?.ok_or(SecretError::Missing {
            field: "username",
            add: "the user name clients log in with",
        })?;
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

impl SecretValue for ManagedSecret {
    type Invalid = SecretError;
    type Target = User;

    fn parse(value: &SecretString) -> Result<Self, SecretError> {
        ManagedSecret::from_fields(secret::fields(value, Shape::Managed)?)
    }

    fn target(&self) -> User {
        User::Managed {
            user_arn: self.user_arn.to_string(),
            username: self.username.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rotor_core::ExposeSecret;
    use serde_json::json;

    use super::*;

    const ELASTICACHE: &str = "arn:aws:elasticache:us-east-1:123456789012:user:app-id";
    const MEMORYDB: &str = "arn:aws:memorydb:us-east-1:123456789012:user/app";

    fn parse(value: Value) -> Result<ManagedSecret, SecretError> {
        ManagedSecret::parse(&SecretString::from(value.to_string()))
    }

    #[test]
    fn reads_aws_functions_secrets() {
        let s = parse(json!({"user_arn": ELASTICACHE, "username": "app"})).unwrap();
        assert!(s.password.is_none() && s.endpoint.is_none());
        assert_eq!(s.user, CacheUser::ElastiCache("app-id".into()));
        let next = ManagedSecret::parse(&s.with_password(&SecretString::from("n"))).unwrap();
        assert_eq!(next.password.unwrap().expose_secret(), "n");
        let s = parse(json!({
            "user_arn": MEMORYDB, "username": "app", "password": "pw",
            "host": "c.example", "port": 6380, "ssl": false,
        }))
        .unwrap();
        let e = s.endpoint.unwrap();
        assert_eq!((e.host.as_str(), e.port), ("c.example", 6380));
    }

    #[test]
    fn errors_name_the_field_and_never_a_value() {
        let rds = "arn:aws:rds:us-east-1:1:db:hunter2";
        for (bad, expected) in [
            (
                json!({"username": "app", "password": "hunter2"}),
                SecretError::Missing {
                    field: "user_arn",
                    add: "the ElastiCache or MemoryDB user's ARN",
                },
            ),
            (
                json!({"user_arn": rds, "username": "app", "password": "hunter2"}),
                SecretError::NotACacheUser,
            ),
            (
                json!({"user_arn": "hunter2", "username": "app"}),
                SecretError::UserArnShape,
            ),
            (
                json!({"user_arn": "arn:aws:memorydb::1:user/hunter2", "username": "app"}),
                SecretError::UserArnPart("region"),
            ),
            (
                json!({"user_arn": MEMORYDB, "password": "hunter2"}),
                SecretError::Missing {
                    field: "username",
                    add: "the user name clients log in with",
                },
            ),
            (
                json!({"user_arn": MEMORYDB, "username": "app", "password": 7}),
                SecretError::NotText("password"),
            ),
        ] {
            let e = parse(bad).err().expect("refused");
            assert_eq!(e, expected);
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }
}
