//! ARNs, parsed into their parts and compared part by part, never as text:
//! `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, where only the resource
//! may hold further colons. The users this function changes are
//! `arn:…:elasticache:REGION:ACCOUNT:user:USER_ID` and
//! `arn:…:memorydb:REGION:ACCOUNT:user/USER_NAME`.

use std::fmt;
use std::str::FromStr;

/// Why a text is not a usable ARN. Names the part at fault; ARNs are not
/// secret, so the text itself may be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// Not `arn:` followed by five colon-separated parts.
    #[error("{0:?} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)")]
    Shape(String),
    /// A part that must not be empty is.
    #[error("ARN {arn:?} has no {part}")]
    Empty {
        /// The ARN.
        arn: String,
        /// Which part.
        part: &'static str,
    },
    /// The ARN is not an ElastiCache or MemoryDB user's.
    #[error(
        "ARN {0:?} is not an ElastiCache user's (arn:aws:elasticache:REGION:ACCOUNT:user:USER_ID) or a MemoryDB user's (arn:aws:memorydb:REGION:ACCOUNT:user/USER_NAME)"
    )]
    NotAUser(String),
}

/// A parsed ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: String,
    /// The service namespace: `elasticache`, `memorydb`, …
    pub service: String,
    /// The region (may be empty for global resources).
    pub region: String,
    /// The account (may be empty for some resources).
    pub account: String,
    /// Everything after the fifth colon.
    pub resource: String,
}

impl FromStr for Arn {
    type Err = ArnError;

    fn from_str(text: &str) -> Result<Arn, ArnError> {
        let text = text.trim();
        let mut parts = text.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(ArnError::Shape(text.to_owned()));
        };
        for (part, value) in [
            ("partition", partition),
            ("service", service),
            ("resource", resource),
        ] {
            if value.is_empty() {
                return Err(ArnError::Empty {
                    arn: text.to_owned(),
                    part,
                });
            }
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ArnError::Shape(text.to_owned()));
        }
        Ok(Arn {
            partition: partition.to_owned(),
            service: service.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource: resource.to_owned(),
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
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

impl Arn {
    /// The ElastiCache or MemoryDB user this ARN names, with a region and an
    /// account.
    pub fn cache_user(&self) -> Result<CacheUser, ArnError> {
        let not_a_user = || ArnError::NotAUser(self.to_string());
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
                });
            }
        }
        Ok(id)
    }
}

/// An ARN whose parts may hold IAM's wildcards (`*`: any run of characters,
/// `?`: any one), matched part by part: a wildcard never spans a colon
/// between parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArnPattern(Arn);

impl FromStr for ArnPattern {
    type Err = ArnError;

    fn from_str(text: &str) -> Result<ArnPattern, ArnError> {
        Ok(ArnPattern(text.parse()?))
    }
}

impl fmt::Display for ArnPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ArnPattern {
    /// Whether it matches exactly one ARN: no `*` or `?` in any part.
    pub fn is_exact(&self) -> bool {
        !self.0.to_string().contains(['*', '?'])
    }

    /// Whether `arn` matches, part by part.
    pub fn matches(&self, arn: &Arn) -> bool {
        let p = &self.0;
        glob(&p.partition, &arn.partition)
            && glob(&p.service, &arn.service)
            && glob(&p.region, &arn.region)
            && glob(&p.account, &arn.account)
            && glob(&p.resource, &arn.resource)
    }
}

/// IAM-style matching of one part: `*` any run (also empty), `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
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
        assert!(glob("a*b*c", "aXXbYYc") && !glob("a*b*c", "aXXbYY") && glob("*", ""));
        assert!(p("arn:aws:elasticache:eu-west-1:123456789012:user:orders-app").is_exact());
        assert!(!p("arn:aws:elasticache:eu-west-1:123456789012:user:orders-*").is_exact());
        assert!(!p("arn:aws:elasticache:eu-west-?:123456789012:user:orders").is_exact());
        assert!(!p("arn:aws:elasticache:eu-west-1:*:user:orders").is_exact());
    }
}
