//! The scheduler's settings, read once from the environment.

use std::collections::BTreeMap;
use std::fmt;

use crate::authority::{AllowedSecret, Authority, FunctionArn};
use crate::hourly::DEFAULT_MAX_PER_HOUR;
use crate::policy::Policy;
use crate::window::DEFAULT_WINDOW_TAG;

/// The tag that selects secrets: `TAG_FILTER`.
pub const TAG_FILTER_VAR: &str = "TAG_FILTER";
/// The tag on each secret that holds its policy: `POLICY_TAG`.
pub const POLICY_TAG_VAR: &str = "POLICY_TAG";
/// The tag on each secret that holds its rotation window: `WINDOW_TAG`.
pub const WINDOW_TAG_VAR: &str = "WINDOW_TAG";
/// The policy of secrets without the policy tag: `DEFAULT_POLICY`.
pub const DEFAULT_POLICY_VAR: &str = "DEFAULT_POLICY";
/// The hourly limit per secret: `MAX_ROTATIONS_PER_SECRET_PER_HOUR`.
pub const MAX_PER_HOUR_VAR: &str = "MAX_ROTATIONS_PER_SECRET_PER_HOUR";
/// How many secrets are worked on at once: `MAX_CONCURRENCY`.
pub const MAX_CONCURRENCY_VAR: &str = "MAX_CONCURRENCY";
/// RotateSecret calls per second: `RATE_PER_SECOND`.
pub const RATE_VAR: &str = "RATE_PER_SECOND";
/// The function given to allow-listed secrets without rotation: `ROTATION_LAMBDA_ARN`.
pub const ROTATION_LAMBDA_ARN_VAR: &str = "ROTATION_LAMBDA_ARN";
/// The deployment's rotation functions: `ROTATION_FUNCTION_ARNS`.
pub const ROTATION_FUNCTION_ARNS_VAR: &str = "ROTATION_FUNCTION_ARNS";
/// The secrets that may be given `ROTATION_LAMBDA_ARN`: `ROTATION_ALLOWED_SECRETS`.
pub const ROTATION_ALLOWED_SECRETS_VAR: &str = "ROTATION_ALLOWED_SECRETS";

/// The policy tag when `POLICY_TAG` is unset.
pub const DEFAULT_POLICY_TAG: &str = "rotor:rotation-policy";
/// `MAX_CONCURRENCY` when unset.
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;
/// `RATE_PER_SECOND` when unset: a tenth of Secrets Manager's RotateSecret quota
/// (50 a second, shared with the account's other writes).
pub const DEFAULT_RATE_PER_SECOND: f64 = 5.0;

const MAX_CONCURRENCY_LIMIT: usize = 64;
const MAX_RATE: f64 = 1000.0;
const MAX_PER_HOUR_LIMIT: u32 = 3600;

/// Everything the scheduler is configured with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which secrets the scheduler looks after.
    pub tag_filter: TagFilter,
    /// The tag on a secret that holds its policy.
    pub policy_tag: String,
    /// The tag on a secret that holds its rotation window (UTC hours such as
    /// `02:00-04:00`, see [`crate::window`]).
    pub window_tag: String,
    /// The policy of a secret without the policy tag; without one, such a
    /// secret is skipped.
    pub default_policy: Option<Policy>,
    /// The most rotations of one secret that may start in an hour.
    pub max_per_hour: u32,
    /// How many secrets are worked on at once.
    pub max_concurrency: usize,
    /// The most RotateSecret calls a second.
    pub rate_per_second: f64,
    /// Which secrets may be rotated, and with which function (see [`Authority`]).
    pub authority: Authority,
}

/// A setting that cannot be used; the message names the variable and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong and how to fix it.
    pub problem: String,
}

/// A tag that selects secrets: a key, and a value unless any value will do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFilter {
    /// The tag key, matched exactly.
    pub key: String,
    /// The tag value, matched exactly; `None` matches any value.
    pub value: Option<String>,
}

/// Why a text is not a tag filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagFilterError {
    /// Nothing before the `=`.
    #[error("{0:?} has no tag key; write key=value, such as rotor:fleet=payments, or a key alone")]
    NoKey(String),
    /// A key over Secrets Manager's limit.
    #[error("the tag key is longer than 128 characters")]
    KeyTooLong,
    /// A value over Secrets Manager's limit.
    #[error("the tag value is longer than 256 characters")]
    ValueTooLong,
    /// A character tags cannot hold.
    #[error(
        "{text:?} contains {bad:?}; tags hold only letters, digits, spaces and _ . : / = + - @"
    )]
    Character {
        /// The filter as given.
        text: String,
        /// The first character refused.
        bad: char,
    },
}

impl TagFilter {
    /// Parses `key=value` or `key`. The key ends at the first `=`, so a key
    /// cannot contain one. Keys and values may hold what Secrets Manager allows
    /// in tags: letters, digits, spaces and `_ . : / = + - @`.
    pub fn parse(text: &str) -> Result<TagFilter, TagFilterError> {
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (text, None),
        };
        if key.trim().is_empty() {
            return Err(TagFilterError::NoKey(text.to_owned()));
        }
        if key.chars().count() > 128 {
            return Err(TagFilterError::KeyTooLong);
        }
        if value.is_some_and(|v| v.chars().count() > 256) {
            return Err(TagFilterError::ValueTooLong);
        }
        let allowed = |c: char| c.is_alphanumeric() || " _.:/=+-@".contains(c);
        if let Some(bad) = text.chars().find(|c| !allowed(*c)) {
            return Err(TagFilterError::Character {
                text: text.to_owned(),
                bad,
            });
        }
        Ok(TagFilter {
            key: key.to_owned(),
            value: value.map(str::to_owned),
        })
    }

    /// Whether a secret with these tags is selected.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match (tags.get(&self.key), &self.value) {
            (Some(_), None) => true,
            (Some(actual), Some(wanted)) => actual == wanted,
            (None, _) => false,
        }
    }
}

impl fmt::Display for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    /// An empty variable counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let error = |variable: &'static str, problem: String| ConfigError { variable, problem };

        let tag_filter = match get(TAG_FILTER_VAR) {
            Some(text) => {
                TagFilter::parse(&text).map_err(|p| error(TAG_FILTER_VAR, p.to_string()))?
            }
            None => {
                return Err(error(
                    TAG_FILTER_VAR,
                    "it is not set; set it to the tag that selects the secrets to rotate, such as rotor:fleet=payments".to_owned(),
                ));
            }
        };
        let policy_tag = get(POLICY_TAG_VAR).unwrap_or_else(|| DEFAULT_POLICY_TAG.to_owned());
        let window_tag = match get(WINDOW_TAG_VAR) {
            None => DEFAULT_WINDOW_TAG.to_owned(),
            Some(text) => {
                let filter = TagFilter::parse(text.trim())
                    .ok()
                    .filter(|f| f.value.is_none())
                    .ok_or_else(|| {
                        error(
                            WINDOW_TAG_VAR,
                            format!(
                                "{text:?} is not a tag key (up to 128 letters, digits, spaces \
                                 and _ . : / + - @, no =); set it such as {DEFAULT_WINDOW_TAG}"
                            ),
                        )
                    })?;
                filter.key
            }
        };
        let default_policy = get(DEFAULT_POLICY_VAR)
            .map(|text| Policy::parse(&text))
            .transpose()
            .map_err(|e| error(DEFAULT_POLICY_VAR, e.to_string()))?;
        let max_per_hour = match get(MAX_PER_HOUR_VAR) {
            None => DEFAULT_MAX_PER_HOUR,
            Some(text) => parse_whole(&text, 1, u64::from(MAX_PER_HOUR_LIMIT))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    error(
                        MAX_PER_HOUR_VAR,
                        format!("{text:?} is not a whole number from 1 to {MAX_PER_HOUR_LIMIT}"),
                    )
                })?,
        };
        let max_concurrency = match get(MAX_CONCURRENCY_VAR) {
            None => DEFAULT_MAX_CONCURRENCY,
            Some(text) => parse_whole(&text, 1, MAX_CONCURRENCY_LIMIT as u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    error(
                        MAX_CONCURRENCY_VAR,
                        format!("{text:?} is not a whole number from 1 to {MAX_CONCURRENCY_LIMIT}"),
                    )
                })?,
        };
        let rate_per_second = match get(RATE_VAR) {
            None => DEFAULT_RATE_PER_SECOND,
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r >= 0.01 && *r <= MAX_RATE)
                .ok_or_else(|| {
                    error(
                        RATE_VAR,
                        format!(
                            "{text:?} is not a number of RotateSecret calls a second from 0.01 to {MAX_RATE}"
                        ),
                    )
                })?,
        };
        let assign = get(ROTATION_LAMBDA_ARN_VAR)
            .map(|text| FunctionArn::parse(&text))
            .transpose()
            .map_err(|p| error(ROTATION_LAMBDA_ARN_VAR, format!("{p}, or unset it")))?;
        let functions = get(ROTATION_FUNCTION_ARNS_VAR)
            .map(|text| {
                list(&text)
                    .map(FunctionArn::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|p| {
                error(
                    ROTATION_FUNCTION_ARNS_VAR,
                    format!("{p}; separate the deployment's rotation functions with commas"),
                )
            })?
            .unwrap_or_default();
        let allowed = get(ROTATION_ALLOWED_SECRETS_VAR)
            .map(|text| {
                list(&text)
                    .map(AllowedSecret::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|p| {
                error(
                    ROTATION_ALLOWED_SECRETS_VAR,
                    format!("{p}; separate entries with commas"),
                )
            })?
            .unwrap_or_default();
        if !allowed.is_empty() && assign.is_none() {
            return Err(error(
                ROTATION_ALLOWED_SECRETS_VAR,
                "it is set but ROTATION_LAMBDA_ARN is not, so its secrets could not be given a rotation function; set ROTATION_LAMBDA_ARN to the function they should use, or unset ROTATION_ALLOWED_SECRETS".to_owned(),
            ));
        }
        let authority = Authority {
            functions,
            assign,
            allowed,
        };
        Ok(Config {
            tag_filter,
            policy_tag,
            window_tag,
            default_policy,
            max_per_hour,
            max_concurrency,
            rate_per_second,
            authority,
        })
    }
}

/// The non-empty entries of a comma-separated list.
fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// A whole number in `min..=max`, written with ASCII digits only.
fn parse_whole(text: &str, min: u64, max: u64) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[("TAG_FILTER", "rotor:fleet=payments")]).unwrap();
        assert_eq!(
            c.tag_filter,
            TagFilter {
                key: "rotor:fleet".into(),
                value: Some("payments".into())
            }
        );
        assert_eq!(c.policy_tag, "rotor:rotation-policy");
        assert_eq!(c.window_tag, "rotor:window");
        assert_eq!(c.default_policy, None);
        assert_eq!(c.max_per_hour, 50);
        assert_eq!(c.max_concurrency, 4);
        assert_eq!(c.rate_per_second, 5.0);
        assert_eq!(c.authority, Authority::default());
    }

    #[test]
    fn every_setting() {
        let c = config(&[
            ("TAG_FILTER", "team"),
            ("POLICY_TAG", "policy"),
            ("WINDOW_TAG", " team:window "),
            ("DEFAULT_POLICY", "90d"),
            ("MAX_ROTATIONS_PER_SECRET_PER_HOUR", "3"),
            ("MAX_CONCURRENCY", "8"),
            ("RATE_PER_SECOND", "0.5"),
            (
                "ROTATION_LAMBDA_ARN",
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ),
            (
                "ROTATION_FUNCTION_ARNS",
                " arn:aws:lambda:us-east-1:123456789012:function:g ,,arn:aws:lambda:us-east-1:123456789012:function:h:$LATEST",
            ),
            (
                "ROTATION_ALLOWED_SECRETS",
                "prod/app,arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf",
            ),
        ])
        .unwrap();
        assert_eq!(c.tag_filter.value, None);
        assert_eq!(c.policy_tag, "policy");
        assert_eq!(c.window_tag, "team:window");
        assert_eq!(c.default_policy.unwrap().interval_secs(), 90 * 86_400);
        assert_eq!((c.max_per_hour, c.max_concurrency), (3, 8));
        assert_eq!(c.rate_per_second, 0.5);
        assert_eq!(
            c.authority.assign.as_ref().map(|f| f.as_str()),
            Some("arn:aws:lambda:us-east-1:123456789012:function:f")
        );
        assert_eq!(c.authority.functions.len(), 2);
        assert_eq!(c.authority.allowed.len(), 2);
        assert!(c.authority.allows("arn:any", "prod/app"));
    }

    #[test]
    fn bad_settings_name_their_variable() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: [Case; 16] = [
            (&[], "TAG_FILTER", "is not set"),
            (
                &[("TAG_FILTER", "a"), ("WINDOW_TAG", "rotor:window=02:00")],
                "WINDOW_TAG",
                "not a tag key",
            ),
            (
                &[("TAG_FILTER", "a"), ("WINDOW_TAG", "window(utc)")],
                "WINDOW_TAG",
                "such as rotor:window",
            ),
            (&[("TAG_FILTER", "=payments")], "TAG_FILTER", "no tag key"),
            (&[("TAG_FILTER", "fleet!=x")], "TAG_FILTER", "'!'"),
            (
                &[("TAG_FILTER", "a"), ("DEFAULT_POLICY", "167h")],
                "DEFAULT_POLICY",
                "6d 23h",
            ),
            (
                &[
                    ("TAG_FILTER", "a"),
                    ("MAX_ROTATIONS_PER_SECRET_PER_HOUR", "0"),
                ],
                "MAX_ROTATIONS_PER_SECRET_PER_HOUR",
                "from 1",
            ),
            (
                &[("TAG_FILTER", "a"), ("MAX_CONCURRENCY", "-1")],
                "MAX_CONCURRENCY",
                "from 1 to 64",
            ),
            (
                &[
                    ("TAG_FILTER", "a"),
                    ("MAX_CONCURRENCY", "99999999999999999999999"),
                ],
                "MAX_CONCURRENCY",
                "whole number",
            ),
            (
                &[("TAG_FILTER", "a"), ("RATE_PER_SECOND", "0")],
                "RATE_PER_SECOND",
                "0.01",
            ),
            (
                &[("TAG_FILTER", "a"), ("RATE_PER_SECOND", "inf")],
                "RATE_PER_SECOND",
                "0.01",
            ),
            (
                &[
                    ("TAG_FILTER", "a"),
                    ("ROTATION_LAMBDA_ARN", "generic-rotation"),
                ],
                "ROTATION_LAMBDA_ARN",
                "not an ARN",
            ),
            (
                &[
                    ("TAG_FILTER", "a"),
                    (
                        "ROTATION_LAMBDA_ARN",
                        "arn:aws:lambda:us-east-1:1:function:f",
                    ),
                ],
                "ROTATION_LAMBDA_ARN",
                "not a Lambda function ARN",
            ),
            (
                &[
                    ("TAG_FILTER", "a"),
                    (
                        "ROTATION_FUNCTION_ARNS",
                        "arn:aws:lambda:us-east-1:123456789012:function:f,generic-rotation",
                    ),
                ],
                "ROTATION_FUNCTION_ARNS",
                "\"generic-rotation\" is not an ARN",
            ),
            (
                &[
                    ("TAG_FILTER", "a"),
                    ("ROTATION_ALLOWED_SECRETS", "prod/app"),
                ],
                "ROTATION_ALLOWED_SECRETS",
                "set ROTATION_LAMBDA_ARN",
            ),
            (
                &[
                    ("TAG_FILTER", "a"),
                    (
                        "ROTATION_LAMBDA_ARN",
                        "arn:aws:lambda:us-east-1:123456789012:function:f",
                    ),
                    ("ROTATION_ALLOWED_SECRETS", "prod/app,arn:aws:s3:::bucket"),
                ],
                "ROTATION_ALLOWED_SECRETS",
                "not a secret's ARN",
            ),
        ];
        for (vars, variable, expected) in cases {
            let error = config(vars).unwrap_err();
            assert_eq!(error.variable, variable, "{error}");
            let message = error.to_string();
            assert!(
                message.contains(variable) && message.contains(expected),
                "{message:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let c = config(&[
            ("TAG_FILTER", "a=b"),
            ("DEFAULT_POLICY", ""),
            ("ROTATION_LAMBDA_ARN", " "),
            ("ROTATION_FUNCTION_ARNS", " , "),
            ("ROTATION_ALLOWED_SECRETS", ""),
            ("MAX_CONCURRENCY", ""),
        ])
        .unwrap();
        assert_eq!(c.default_policy, None);
        assert_eq!(c.authority, Authority::default());
        assert_eq!(c.max_concurrency, 4);
    }

    #[test]
    fn tag_filters_match_exactly() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let fleet = TagFilter::parse("rotor:fleet=payments").unwrap();
        assert!(fleet.matches(&tags(&[("rotor:fleet", "payments"), ("x", "y")])));
        // ListSecrets' tag filters match prefixes; the scheduler does not.
        assert!(!fleet.matches(&tags(&[("rotor:fleet", "payments-eu")])));
        assert!(!fleet.matches(&tags(&[("rotor:fleet-2", "payments")])));
        assert!(!fleet.matches(&tags(&[("other", "payments")])));
        let key_only = TagFilter::parse("rotor:fleet").unwrap();
        assert!(key_only.matches(&tags(&[("rotor:fleet", "")])));
        assert!(key_only.matches(&tags(&[("rotor:fleet", "anything")])));
        assert!(!key_only.matches(&tags(&[])));
        let empty_value = TagFilter::parse("k=").unwrap();
        assert!(empty_value.matches(&tags(&[("k", "")])));
        assert!(!empty_value.matches(&tags(&[("k", "v")])));
        let with_equals = TagFilter::parse("k=a=b").unwrap();
        assert_eq!(with_equals.value.as_deref(), Some("a=b"));
        assert_eq!(with_equals.to_string(), "k=a=b");
        assert_eq!(key_only.to_string(), "rotor:fleet");
    }
}
