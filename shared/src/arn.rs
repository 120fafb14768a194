//! ARNs, parsed into their parts and compared part by part, never as text:
//! `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, where only the resource
//! may hold further colons. A deployer's allow-list of ARNs with IAM's
//! wildcards ([`ArnPattern`]) is matched here, once, for every function
//! that changes only the resources its deployer lists.
//!
//! ```
//! use rotor_core::arn::{Arn, ArnPattern};
//!
//! let user: Arn = "arn:aws:iam::123456789012:user/ci/deploy".parse().unwrap();
//! let team: ArnPattern = "arn:aws:iam::123456789012:user/ci/*".parse().unwrap();
//! assert!(team.matches(&user));
//! // A wildcard never reaches into another part: this account is not `*`.
//! let other: ArnPattern = "arn:aws:iam::*:user/ci/deploy".parse().unwrap();
//! assert!(other.matches(&user) && !other.is_exact());
//! assert!(!team.matches(&"arn:aws:iam::210987654321:user/ci/deploy".parse().unwrap()));
//! ```

use std::fmt;
use std::str::FromStr;

/// Why a text is not a usable ARN. Names the part at fault; ARNs are not
/// secret, so the text itself may be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
}

/// A parsed ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: String,
    /// The service namespace: `iam`, `elasticache`, …
    pub service: String,
    /// The region (empty for global services such as IAM).
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
        let mut next = || parts.next();
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (next(), next(), next(), next(), next(), next())
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

    /// The pattern's parts, as written.
    pub fn parts(&self) -> &Arn {
        &self.0
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

/// A variable naming a deployer's allow-list that the function cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllowListError {
    /// An entry of the list is not an ARN.
    #[error("{var}: {source}; list full ARNs (wildcards allowed within a part), comma-separated")]
    Arn {
        /// The list's variable.
        var: &'static str,
        /// Why the entry is not an ARN.
        source: ArnError,
    },
    /// The trust variable is neither `true` nor `false`.
    #[error("{var}={value:?}; use true or false (the default)")]
    Trust {
        /// The trust variable.
        var: &'static str,
        /// Its value (no secret).
        value: String,
    },
}

/// The deployer's allow-list of the target ARNs a function may change (a
/// comma-separated variable, wildcards allowed), and whether every writer of
/// every secret the function rotates is trusted with every target it admits.
/// When the list admits more than one target and that trust is not given, a
/// target is changed only for the secret its owner's tag names: otherwise one
/// team's writer could name another team's listed target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList {
    /// The list's variable, for messages.
    pub var: &'static str,
    /// Its entries.
    pub patterns: Vec<ArnPattern>,
    /// The trust variable's value (`false` unless set to `true`).
    pub trust_all_writers: bool,
}

impl AllowList {
    /// Reads the list from `var` and the trust from `trust_var`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        var: &'static str,
        trust_var: &'static str,
    ) -> Result<AllowList, AllowListError> {
        let patterns = crate::settings::list(&lookup, var)
            .iter()
            .map(|entry| {
                entry
                    .parse()
                    .map_err(|source| AllowListError::Arn { var, source })
            })
            .collect::<Result<Vec<ArnPattern>, _>>()?;
        let trust_all_writers = match lookup(trust_var).as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(AllowListError::Trust {
                    var: trust_var,
                    value: other.to_owned(),
                });
            }
        };
        Ok(AllowList {
            var,
            patterns,
            trust_all_writers,
        })
    }

    /// Whether a target must carry its owner's tag naming the secret: when
    /// the list admits more than one target (several entries, or a
    /// wildcard). A single exact ARN is the deployer's own binding; trusting
    /// all writers waives the tag.
    pub fn owner_tag_required(&self) -> bool {
        let single = matches!(self.patterns.as_slice(), [only] if only.is_exact());
        !single && !self.trust_all_writers
    }

    /// The list as the deployer wrote it, for messages (`empty` when empty).
    pub fn describe(&self) -> String {
        if self.patterns.is_empty() {
            return "empty".to_owned();
        }
        let all: Vec<String> = self.patterns.iter().map(ToString::to_string).collect();
        all.join(",")
    }

    /// Whether an entry matches `arn`.
    pub fn admits(&self, arn: &Arn) -> bool {
        self.patterns.iter().any(|p| p.matches(arn))
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
    fn parses_and_prints_the_parts() {
        let a = arn("arn:aws:iam::123456789012:user/ci/deploy");
        assert_eq!(
            (a.service.as_str(), a.region.as_str(), a.account.as_str()),
            ("iam", "", "123456789012")
        );
        assert_eq!(a.resource, "user/ci/deploy");
        assert_eq!(a.to_string(), "arn:aws:iam::123456789012:user/ci/deploy");
        for bad in [
            "",
            "user/x",
            "arn:aws:iam::123456789012",
            "ARN:aws:iam::1:user/x",
            "arn::iam::1:user/x",
            "arn:aws:iam::1:",
            "arn:aws:iam::1:user/a b",
        ] {
            assert!(bad.parse::<Arn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_match_part_by_part() {
        let p = |t: &str| t.parse::<ArnPattern>().unwrap();
        let user = arn("arn:aws:iam::123456789012:user/ci/deploy");
        assert!(p("arn:aws:iam::123456789012:user/ci/deploy").matches(&user));
        assert!(p("arn:aws:iam::123456789012:user/ci/*").matches(&user));
        assert!(p("arn:aws:iam::123456789012:user/*").matches(&user));
        assert!(p("arn:aws:iam::12345678901?:user/ci/deploy").matches(&user));
        assert!(!p("arn:aws:iam::123456789012:user/deploy").matches(&user));
        assert!(!p("arn:aws:iam::123456789012:user/ci/deploy2").matches(&user));
        assert!(!p("arn:aws:iam::210987654321:user/ci/deploy").matches(&user));
        assert!(!p("arn:aws:sts::123456789012:user/ci/deploy").matches(&user));
        // Text that looks alike is not an ARN that matches.
        assert!(
            !p("arn:aws:iam::123456789012:user/ci/deploy")
                .matches(&arn("arn:aws:iam::123456789012:user/ci/deploy:x"))
        );
        assert!(glob("a*b*c", "aXXbYYc") && !glob("a*b*c", "aXXbYY") && glob("*", ""));
        assert!(p("arn:aws:iam::123456789012:user/ci/deploy").is_exact());
        assert!(!p("arn:aws:iam::123456789012:user/ci/*").is_exact());
        assert!(!p("arn:aws:iam::*:user/ci/deploy").is_exact());
    }

    #[test]
    fn an_allow_list_binds_owners_unless_one_exact_target_or_trust() {
        let list = |vars: &[(&str, &str)]| {
            let vars = vars.to_vec();
            AllowList::from_lookup(
                move |v| {
                    vars.iter()
                        .find(|(k, _)| *k == v)
                        .map(|(_, x)| x.to_string())
                },
                "LIST",
                "TRUST",
            )
        };
        let one = list(&[("LIST", "arn:aws:iam::123456789012:user/ci/deploy")]).unwrap();
        assert!(!one.owner_tag_required());
        assert!(one.admits(&arn("arn:aws:iam::123456789012:user/ci/deploy")));
        assert!(!one.admits(&arn("arn:aws:iam::123456789012:user/ci/other")));
        let wide = list(&[("LIST", " arn:aws:iam::123456789012:user/ci/* ,")]).unwrap();
        assert!(wide.owner_tag_required());
        assert_eq!(wide.describe(), "arn:aws:iam::123456789012:user/ci/*");
        let trusted = list(&[
            ("LIST", "arn:aws:iam::123456789012:user/ci/*"),
            ("TRUST", " true "),
        ])
        .unwrap();
        assert!(!trusted.owner_tag_required());
        let empty = list(&[]).unwrap();
        assert!(empty.owner_tag_required() && empty.describe() == "empty");
        assert!(!empty.admits(&arn("arn:aws:iam::123456789012:user/ci/deploy")));
        let e = list(&[("LIST", "*")]).unwrap_err().to_string();
        assert!(e.contains("LIST") && e.contains("comma-separated"), "{e}");
        let e = list(&[("TRUST", "yes")]).unwrap_err().to_string();
        assert!(e.contains("TRUST") && e.contains("true or false"), "{e}");
    }
}
