//! The ElastiCache and MemoryDB users this function changes, read from an
//! ARN parsed by the core ([`rotor_core::arn`]):
//! `arn:…:elasticache:REGION:ACCOUNT:user:USER_ID` and
//! `arn:…:memorydb:REGION:ACCOUNT:user/USER_NAME`.

pub use rotor_core::arn::{Arn, ArnError, ArnPattern};

/// Why an ARN is not a user this function can change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserArnError {
    /// Not an ARN, or a part it needs is empty.
    #[error(transparent)]
    Arn(#[from] ArnError),
    /// The ARN is not an ElastiCache or MemoryDB user's.
    #[error(
        "ARN {0:?} is not an ElastiCache user's (arn:aws:elasticache:REGION:ACCOUNT:user:USER_ID) \
         or a MemoryDB user's (arn:aws:memorydb:REGION:ACCOUNT:user/USER_NAME)"
    )]
    NotAUser(String),
}

/// Which service keeps a user, and the identifier its API takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheUser {
    /// An ElastiCache (Redis OSS or Valkey) RBAC user, by user ID.
    ElastiCache(String),
    /// A MemoryDB user, by user name.
    MemoryDb(String),
}

impl CacheUser {
    /// The service's name, for messages.
    pub fn service(&self) -> &'static str {
        match self {
            CacheUser::ElastiCache(_) => "ElastiCache",
            CacheUser::MemoryDb(_) => "MemoryDB",
        }
    }

    /// The identifier the service's API takes (ElastiCache's user ID,
    /// MemoryDB's user name).
    pub fn id(&self) -> &str {
        match self {
            CacheUser::ElastiCache(id) | CacheUser::MemoryDb(id) => id,
        }
    }

    /// What [`CacheUser::id`] is, for messages.
    pub fn id_kind(&self) -> &'static str {
        match self {
            CacheUser::ElastiCache(_) => "user ID",
            CacheUser::MemoryDb(_) => "user name",
        }
    }
}

/// The user an ARN names, read the way this function reads it.
pub trait CacheUserArn {
    /// The ElastiCache or MemoryDB user this ARN names, with a region and an
    /// account.
    fn cache_user(&self) -> Result<CacheUser, UserArnError>;
}

impl CacheUserArn for Arn {
    fn cache_user(&self) -> Result<CacheUser, UserArnError> {
        let not_a_user = || UserArnError::NotAUser(self.to_string());
        let id = match self.service.as_str() {
            "elasticache" => self
                .resource
                .strip_prefix("user:")
                .map(|id| CacheUser::ElastiCache(id.to_owned())),
            "memorydb" => self
                .resource
                .strip_prefix("user/")
                .map(|n| CacheUser::MemoryDb(n.to_owned())),
            _ => None,
        }
        .ok_or_else(not_a_user)?;
        let inner = id.id();
        if inner.is_empty() || inner.contains([':', '/', '*', '?']) {
            return Err(not_a_user());
        }
        for (part, value) in [("region", &self.region), ("account", &self.account)] {
            if value.is_empty() {
                return Err(ArnError::Empty {
                    arn: self.to_string(),
                    part,
                }
                .into());
            }
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(text: &str) -> Arn {
        text.parse().unwrap()
    }

    #[test]
    fn parses_both_kinds_of_user() {
        let a = arn("arn:aws:elasticache:eu-west-1:123456789012:user:orders-app");
        assert_eq!(
            (a.partition.as_str(), a.region.as_str(), a.account.as_str()),
            ("aws", "eu-west-1", "123456789012")
        );
        assert_eq!(
            a.cache_user().unwrap(),
            CacheUser::ElastiCache("orders-app".into())
        );
        let m = arn("arn:aws-cn:memorydb:cn-north-1:123456789012:user/billing");
        assert_eq!(
            m.cache_user().unwrap(),
            CacheUser::MemoryDb("billing".into())
        );
        assert_eq!(
            m.to_string(),
            "arn:aws-cn:memorydb:cn-north-1:123456789012:user/billing"
        );
    }

    #[test]
    fn refuses_what_is_not_a_user() {
        for bad in [
            "arn:aws:elasticache:eu-west-1:123456789012:usergroup:g",
            "arn:aws:elasticache:eu-west-1:123456789012:user/x",
            "arn:aws:memorydb:eu-west-1:123456789012:user:x",
            "arn:aws:memorydb:eu-west-1:123456789012:acl/x",
            "arn:aws:rds:eu-west-1:123456789012:db:x",
            "arn:aws:elasticache::123456789012:user:x",
            "arn:aws:elasticache:eu-west-1::user:x",
            "arn:aws:elasticache:eu-west-1:123456789012:user:",
            "arn:aws:elasticache:eu-west-1:123456789012:user:a*",
            "arn:aws:memorydb:eu-west-1:123456789012:user/a/b",
        ] {
            assert!(arn(bad).cache_user().is_err(), "{bad}");
        }
        for bad in [
            "",
            "user:x",
            "arn:aws:elasticache:eu-west-1:123456789012",
            "ARN:aws:elasticache:eu-west-1:1:user:x",
            "arn::elasticache:eu-west-1:1:user:x",
            "arn:aws:elasticache:eu-west-1:1:user:a b",
        ] {
            assert!(bad.parse::<Arn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_match_part_by_part() {
        let p = |t: &str| t.parse::<ArnPattern>().unwrap();
        let user = arn("arn:aws:elasticache:eu-west-1:123456789012:user:orders-app");
        assert!(p("arn:aws:elasticache:eu-west-1:123456789012:user:orders-app").matches(&user));
        assert!(p("arn:aws:elasticache:eu-west-1:123456789012:user:orders-*").matches(&user));
        assert!(p("arn:aws:elasticache:*:123456789012:user:*").matches(&user));
        assert!(p("arn:aws:elasticache:eu-west-?:123456789012:user:orders-app").matches(&user));
        assert!(!p("arn:aws:elasticache:eu-west-1:123456789012:user:orders").matches(&user));
        assert!(!p("arn:aws:elasticache:eu-west-1:210987654321:user:orders-app").matches(&user));
        assert!(!p("arn:aws:memorydb:eu-west-1:123456789012:user/orders-app").matches(&user));
        assert!(!p("arn:aws:elasticache:eu-west-1:123456789012:user:orders-app-2").matches(&user));
        // A wildcard in one part never reaches into the next: the account of
        // this pattern is `*`, but its region must still be eu-west-1.
        assert!(
            !p("arn:aws:elasticache:eu-west-1:*:user:orders-app").matches(&arn(
                "arn:aws:elasticache:us-east-1:123456789012:user:orders-app"
            ))
        );
        // Text that looks alike is not an ARN that matches.
        assert!(
            !p("arn:aws:elasticache:eu-west-1:123456789012:user:orders-app").matches(&arn(
                "arn:aws:elasticache:eu-west-1:123456789012:user:orders-app:x"
            ))
        );
        assert!(p("arn:aws:elasticache:eu-west-1:123456789012:user:orders-app").is_exact());
        assert!(!p("arn:aws:elasticache:eu-west-1:123456789012:user:orders-*").is_exact());
        assert!(!p("arn:aws:elasticache:eu-west-?:123456789012:user:orders").is_exact());
        assert!(!p("arn:aws:elasticache:eu-west-1:*:user:orders").is_exact());
    }
}
