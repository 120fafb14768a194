//! What to do with one secret, decided from what Secrets Manager says about it,
//! with no I/O: [`evaluate`] turns a secret's [`SecretFacts`] into a
//! [`Decision`], either due (with its policy and due date) or skipped (with a
//! [`Skip`] that says why and names the secret).

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
use rotor_core::labels::{AWSPENDING, Versions};

use crate::authority::{Refusal, Rotation};
use crate::config::Config;
use crate::policy::{Policy, PolicyError, is_due, last_rotation};
use crate::window::{Window, WindowError};

/// What the scheduler knows about a secret, from ListSecrets or DescribeSecret.
#[derive(Clone, Debug, Default)]
pub struct SecretFacts {
    /// The secret's ARN.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// `LastRotatedDate`, in seconds since the Unix epoch.
    pub last_rotated: Option<i64>,
    /// `CreatedDate`, in seconds since the Unix epoch.
    pub created: Option<i64>,
    /// Its versions and their staging labels.
    pub versions: Versions,
    /// `RotationEnabled`.
    pub rotation_enabled: bool,
    /// `RotationLambdaARN`, as the service gives it.
    pub rotation_function: Option<String>,
    /// `RotationRules.ScheduleExpression`: with `window_duration`, Secrets
    /// Manager's own window for the secret ([`crate::window`]).
    pub schedule_expression: Option<String>,
    /// `RotationRules.Duration`.
    pub window_duration: Option<String>,
}

impl SecretFacts {
    /// The name to show in messages: the name, else the ARN.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.arn
        } else {
            &self.name
        }
    }
}

/// A moment, in seconds since the Unix epoch, shown as RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::from_secs(self.0).fmt(DateTimeFormat::DateTime) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{} seconds after 1970-01-01", self.0),
        }
    }
}

/// Why a secret's rotation is not started. Each message names the secret and,
/// where there is one, the fix.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Skip {
    /// No policy tag, and no `DEFAULT_POLICY`.
    #[error(
        "secret {secret} has no {tag} tag and DEFAULT_POLICY is not set; tag the secret with a policy such as {tag}=30d, or set DEFAULT_POLICY"
    )]
    NoPolicy {
        /// The secret's name.
        secret: String,
        /// The policy tag.
        tag: String,
    },
    /// The policy tag holds no valid policy.
    #[error("invalid rotation policy for secret {secret} (tag {tag}): {source}")]
    BadPolicy {
        /// The secret's name.
        secret: String,
        /// The policy tag.
        tag: String,
        /// What is wrong with it.
        #[source]
        source: PolicyError,
    },
    /// Another rotation has not finished.
    #[error(
        "a rotation of secret {secret} is in progress: version {version} is AWSPENDING and not AWSCURRENT; it is left to finish (or, if it failed, to be cleared by removing AWSPENDING from that version)"
    )]
    InProgress {
        /// The secret's name.
        secret: String,
        /// The pending version.
        version: String,
    },
    /// The rotation is not due yet.
    #[error("secret {secret} is not due until {due_at} (policy {policy})")]
    NotDue {
        /// The secret's name.
        secret: String,
        /// Its policy.
        policy: String,
        /// When it is due.
        due_at: Timestamp,
    },
    /// The hourly limit is reached.
    #[error(
        "{recent} rotations of secret {secret} started in the last hour, and MAX_ROTATIONS_PER_SECRET_PER_HOUR allows {limit}; a later run starts it"
    )]
    HourlyLimit {
        /// The secret's name.
        secret: String,
        /// Versions created in the last hour.
        recent: u32,
        /// The limit.
        limit: u32,
    },
    /// Secrets Manager gave no date to count from.
    #[error(
        "Secrets Manager gave neither LastRotatedDate nor CreatedDate for secret {secret}, so its due date is unknown"
    )]
    NoDates {
        /// The secret's name.
        secret: String,
    },
    /// The secret lost the selecting tag between listing and looking again.
    #[error("secret {secret} no longer carries the tag {filter}")]
    NotSelected {
        /// The secret's name.
        secret: String,
        /// The tag filter.
        filter: String,
    },
    /// Rotation is not enabled, and the deployer did not allow-list the secret.
    #[error(
        "rotation of secret {secret} is not enabled{}, and the secret is not in ROTATION_ALLOWED_SECRETS, so the scheduler does not start it: a tag alone does not configure rotation. To rotate it, configure its rotation with one of this deployment's functions ({functions}), or have the deployer add it ({arn}) to ROTATION_ALLOWED_SECRETS, with ROTATION_LAMBDA_ARN set",
        turned_off(.function)
    )]
    NotConfigured {
        /// The secret's name.
        secret: String,
        /// The secret's ARN.
        arn: String,
        /// The function its rotation names while turned off, if any.
        function: Option<String>,
        /// The deployment's functions, as the message shows them.
        functions: String,
    },
    /// Rotation names a function the scheduler may not use for this secret.
    #[error(
        "rotation of secret {secret} {}; the scheduler never re-points a secret's rotation: it starts one only when it is enabled with one of this deployment's functions ({functions}), or, for a secret in ROTATION_ALLOWED_SECRETS with no rotation function, with ROTATION_LAMBDA_ARN. Configure the secret's rotation with one of this deployment's functions, or, if that function is this deployment's, have the deployer add it to ROTATION_FUNCTION_ARNS",
        configured_with(.function)
    )]
    ForeignFunction {
        /// The secret's name.
        secret: String,
        /// The function, or `None` for rotation with no Lambda function.
        function: Option<String>,
        /// The deployment's functions, as the message shows them.
        functions: String,
    },
    /// The window tag or the rotation rules give no usable window. The secret
    /// is not rotated until they do: an unreadable window never means "any time".
    #[error(
        "invalid rotation window for secret {secret}: {source}; until then the scheduler does not \
         rotate it"
    )]
    BadWindow {
        /// The secret's name.
        secret: String,
        /// What is wrong, naming the tag or the field.
        #[source]
        source: WindowError,
    },
    /// The rotation is due, and its window is closed.
    #[error(
        "secret {secret} is due since {due_at} (policy {policy}) but outside its rotation window \
         ({window}); the window opens at {opens_at}, and a run then starts the rotation"
    )]
    OutsideWindow {
        /// The secret's name.
        secret: String,
        /// Its policy.
        policy: String,
        /// When it became due.
        due_at: Timestamp,
        /// The window, as [`Window::describe`] gives it.
        window: String,
        /// When the window opens next.
        opens_at: Timestamp,
    },
    /// The function's deadline came first.
    #[error(
        "secret {secret} was not reached before the function's deadline; the next run picks it up (raise the function's timeout or RATE_PER_SECOND if this repeats)"
    )]
    Deadline {
        /// The secret's name.
        secret: String,
    },
}

impl Skip {
    /// A short code for the reason, for the report and for log queries.
    pub fn code(&self) -> &'static str {
        match self {
            Skip::NoPolicy { .. } => "no_policy",
            Skip::BadPolicy { .. } => "bad_policy",
            Skip::InProgress { .. } => "in_progress",
            Skip::NotDue { .. } => "not_due",
            Skip::HourlyLimit { .. } => "hourly_limit",
            Skip::NoDates { .. } => "no_dates",
            Skip::NotSelected { .. } => "not_selected",
            Skip::NotConfigured { .. } => "not_configured",
            Skip::ForeignFunction { .. } => "foreign_function",
            Skip::Deadline { .. } => "deadline",
            Skip::BadWindow { .. } => "bad_window",
            Skip::OutsideWindow { .. } => "outside_window",
        }
    }
}

fn turned_off(function: &Option<String>) -> String {
    match function {
        Some(function) => format!(" (it names {function}, but is turned off)"),
        None => String::new(),
    }
}

fn configured_with(function: &Option<String>) -> String {
    match function {
        Some(function) => format!("is configured with {function}"),
        None => {
            "is enabled with no Lambda function (rotation managed by another service)".to_owned()
        }
    }
}

/// What to do with a secret.
#[derive(Clone, Debug)]
pub enum Decision {
    /// Its rotation is due: start it (subject to the hourly limit).
    Due {
        /// Its policy.
        policy: Policy,
        /// When it became due.
        due_at: Timestamp,
        /// How to call RotateSecret.
        rotation: Rotation,
    },
    /// Leave it, for this reason.
    Skip(Skip),
}

/// Decides about one secret at `now`. In order: it must carry the tag filter's
/// tag, be one the deployer lets the scheduler rotate ([`crate::authority`]),
/// have a valid policy (its tag, else `DEFAULT_POLICY`) and a readable window
/// (the window tag, its `RotationRules`: [`crate::window`]), have no rotation
/// in progress, be due, and be inside its window, if it has one.
pub fn evaluate(facts: &SecretFacts, config: &Config, now: i64) -> Decision {
    decide(facts, config, now, Windows::Honour)
}

/// Whether [`decide`] looks at the secret's window.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Windows {
    Honour,
    Ignore,
}

fn decide(facts: &SecretFacts, config: &Config, now: i64, windows: Windows) -> Decision {
    let secret = facts.label().to_owned();
    if !config.tag_filter.matches(&facts.tags) {
        return Decision::Skip(Skip::NotSelected {
            secret,
            filter: config.tag_filter.to_string(),
        });
    }
    let authority = &config.authority;
    let rotation = match authority.decide(
        &facts.arn,
        &facts.name,
        facts.rotation_enabled,
        facts.rotation_function.as_deref(),
    ) {
        Ok(rotation) => rotation,
        Err(Refusal::NotConfigured { function }) => {
            return Decision::Skip(Skip::NotConfigured {
                secret,
                arn: facts.arn.clone(),
                function,
                functions: authority.describe_functions(),
            });
        }
        Err(Refusal::ForeignFunction { function }) => {
            return Decision::Skip(Skip::ForeignFunction {
                secret,
                function,
                functions: authority.describe_functions(),
            });
        }
    };
    let tag = &config.policy_tag;
    let policy = match facts.tags.get(tag) {
        Some(text) => match Policy::parse(text) {
            Ok(policy) => policy,
            Err(source) => {
                return Decision::Skip(Skip::BadPolicy {
                    secret,
                    tag: tag.clone(),
                    source,
                });
            }
        },
        None => match &config.default_policy {
            Some(policy) => policy.clone(),
            None => {
                return Decision::Skip(Skip::NoPolicy {
                    secret,
                    tag: tag.clone(),
                });
            }
        },
    };
    let window = match windows {
        Windows::Ignore => None,
        Windows::Honour => match Window::of(
            &config.window_tag,
            &facts.tags,
            facts.schedule_expression.as_deref(),
            facts.window_duration.as_deref(),
        ) {
            Ok(window) => window,
            Err(source) => return Decision::Skip(Skip::BadWindow { secret, source }),
        },
    };
    if let Some(version) = facts.versions.rotation_in_progress("", AWSPENDING) {
        return Decision::Skip(Skip::InProgress {
            secret,
            version: version.to_owned(),
        });
    }
    let Some(last) = last_rotation(facts.last_rotated, facts.created) else {
        return Decision::Skip(Skip::NoDates { secret });
    };
    let due_at = match policy.due_at(last) {
        Some(due_at) if is_due(due_at, now) => Timestamp(due_at),
        due_at => {
            return Decision::Skip(Skip::NotDue {
                secret,
                policy: policy.to_string(),
                due_at: Timestamp(due_at.unwrap_or(i64::MAX)),
            });
        }
    };
    if let Some(window) = window {
        match window.next_opening(now) {
            Ok(opening) if opening.is_open_at(now) => {}
            Ok(opening) => {
                return Decision::Skip(Skip::OutsideWindow {
                    secret,
                    policy: policy.to_string(),
                    due_at,
                    window: window.describe(),
                    opens_at: Timestamp(opening.opens),
                });
            }
            Err(source) => return Decision::Skip(Skip::BadWindow { secret, source }),
        }
    }
    Decision::Due {
        policy,
        due_at,
        rotation,
    }
}

/// How long past its due date a secret the scheduler rotates counts as
/// overdue: a day. A run (hourly by default) starts a due rotation at once,
/// and the rotation finishes within minutes, moving `LastRotatedDate`; a
/// secret still past its due date a day later has a rotation that failed, is
/// stuck in progress, or could not be started.
pub const OVERDUE_AFTER_SECS: i64 = 86_400;

/// Whether a secret is overdue at `now`: [`evaluate`] would find it due (it is
/// selected, the deployer configured its rotation, it has a valid policy and
/// a date to count from) had it no rotation in progress and no window, and
/// its due date passed more than [`OVERDUE_AFTER_SECS`] ago. Neither a
/// rotation in progress nor a window excuses it: one started on time would
/// have finished by then, and a window that keeps a due secret waiting more
/// than a day (or cannot be read) is worth an alarm too.
pub fn is_overdue(facts: &SecretFacts, config: &Config, now: i64) -> bool {
    let settled = SecretFacts {
        versions: Versions::default(),
        ..facts.clone()
    };
    match decide(&settled, config, now, Windows::Ignore) {
        Decision::Due { due_at, .. } => now.saturating_sub(due_at.0) > OVERDUE_AFTER_SECS,
        Decision::Skip(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::Authority;
    use crate::config::TagFilter;
    use rotor_core::labels::AWSCURRENT;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_750_000_000;

    fn config(default_policy: Option<&str>) -> Config {
        Config {
            tag_filter: TagFilter::parse("rotor:fleet=payments").unwrap(),
            policy_tag: "rotor:rotation-policy".into(),
            window_tag: "rotor:window".into(),
            default_policy: default_policy.map(|p| Policy::parse(p).unwrap()),
            max_per_hour: 50,
            max_concurrency: 4,
            rate_per_second: 5.0,
            authority: Authority::default(),
        }
    }

    fn facts(policy: Option<&str>, created_days_ago: i64) -> SecretFacts {
        let mut tags = BTreeMap::from([("rotor:fleet".to_owned(), "payments".to_owned())]);
        if let Some(policy) = policy {
            tags.insert("rotor:rotation-policy".into(), policy.into());
        }
        SecretFacts {
            arn: "arn:aws:secretsmanager:us-east-1:1:secret:app-AbCdEf".into(),
            name: "app".into(),
            tags,
            last_rotated: None,
            created: Some(NOW - created_days_ago * DAY),
            versions: Versions::new([("v1".to_owned(), vec![AWSCURRENT.to_owned()])]),
            rotation_enabled: true,
            rotation_function: Some(
                "arn:aws:lambda:us-east-1:123456789012:function:generic-rotation".into(),
            ),
            schedule_expression: None,
            window_duration: None,
        }
    }

    fn skip_code(decision: &Decision) -> Option<&'static str> {
        match decision {
            Decision::Skip(skip) => Some(skip.code()),
            Decision::Due { .. } => None,
        }
    }

    #[test]
    fn due_from_the_creation_when_never_rotated() {
        let c = config(None);
        assert!(matches!(
            evaluate(&facts(Some("30d"), 31), &c, NOW),
            Decision::Due { .. }
        ));
        assert!(matches!(
            evaluate(&facts(Some("30d"), 30), &c, NOW),
            Decision::Due {
                due_at: Timestamp(NOW),
                ..
            }
        ));
        let not_due = evaluate(&facts(Some("30d"), 29), &c, NOW);
        assert_eq!(skip_code(&not_due), Some("not_due"));
        let Decision::Skip(skip) = not_due else {
            unreachable!()
        };
        assert!(
            skip.to_string().contains(&Timestamp(NOW + DAY).to_string()),
            "{skip}"
        );
    }

    #[test]
    fn the_last_rotation_wins_over_the_creation() {
        let c = config(None);
        let mut f = facts(Some("30d"), 400);
        f.last_rotated = Some(NOW - 10 * DAY);
        assert_eq!(skip_code(&evaluate(&f, &c, NOW)), Some("not_due"));
        f.last_rotated = Some(NOW - 40 * DAY);
        assert!(matches!(evaluate(&f, &c, NOW), Decision::Due { .. }));
    }

    #[test]
    fn policy_from_the_tag_else_the_default_else_skipped() {
        assert_eq!(
            skip_code(&evaluate(&facts(None, 400), &config(None), NOW)),
            Some("no_policy")
        );
        assert!(matches!(
            evaluate(&facts(None, 400), &config(Some("90d")), NOW),
            Decision::Due { .. }
        ));
        assert_eq!(
            skip_code(&evaluate(&facts(None, 80), &config(Some("90d")), NOW)),
            Some("not_due")
        );
        // The tag overrides the default.
        assert_eq!(
            skip_code(&evaluate(
                &facts(Some("365d"), 100),
                &config(Some("7d")),
                NOW
            )),
            Some("not_due")
        );
    }

    #[test]
    fn a_bad_policy_names_the_secret() {
        for policy in ["167h", "366d", "99999999999999999999d", "30x", ""] {
            let decision = evaluate(&facts(Some(policy), 400), &config(Some("30d")), NOW);
            let Decision::Skip(skip) = decision else {
                panic!("{policy} accepted")
            };
            assert_eq!(skip.code(), "bad_policy");
            let message = skip.to_string();
            assert!(
                message.contains("secret app") && message.contains("rotor:rotation-policy"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_rotation_in_progress_is_left_alone() {
        let mut f = facts(Some("30d"), 400);
        f.versions = Versions::new([
            ("v1".to_owned(), vec![AWSCURRENT.to_owned()]),
            ("v2".to_owned(), vec![AWSPENDING.to_owned()]),
        ]);
        let decision = evaluate(&f, &config(None), NOW);
        assert_eq!(skip_code(&decision), Some("in_progress"));
        // AWSPENDING left on the current version is no rotation in flight.
        f.versions = Versions::new([(
            "v1".to_owned(),
            vec![AWSCURRENT.to_owned(), AWSPENDING.to_owned()],
        )]);
        assert!(matches!(
            evaluate(&f, &config(None), NOW),
            Decision::Due { .. }
        ));
    }

    #[test]
    fn secrets_outside_the_filter_and_without_dates() {
        let mut f = facts(Some("30d"), 400);
        f.tags.insert("rotor:fleet".into(), "payments-eu".into());
        assert_eq!(
            skip_code(&evaluate(&f, &config(None), NOW)),
            Some("not_selected")
        );
        let mut f = facts(Some("30d"), 400);
        f.created = None;
        assert_eq!(
            skip_code(&evaluate(&f, &config(None), NOW)),
            Some("no_dates")
        );
        // A date at the end of time is never due, and does not panic.
        f.created = Some(i64::MAX);
        assert_eq!(
            skip_code(&evaluate(&f, &config(None), NOW)),
            Some("not_due")
        );
    }

    #[test]
    fn secrets_the_deployer_did_not_configure_are_skipped_with_the_fix() {
        use crate::authority::FunctionArn;
        let generic = "arn:aws:lambda:us-east-1:123456789012:function:generic-rotation";
        let other = "arn:aws:lambda:us-east-1:123456789012:function:team-b";
        let mut c = config(Some("30d"));
        c.authority = Authority {
            functions: vec![FunctionArn::parse(generic).unwrap()],
            ..Authority::default()
        };
        let f = facts(Some("30d"), 400);
        let Decision::Due { rotation, .. } = evaluate(&f, &c, NOW) else {
            panic!("not due")
        };
        assert_eq!(rotation, Rotation::ItsOwnFunction);

        let mut f = facts(Some("30d"), 400);
        f.rotation_enabled = false;
        f.rotation_function = None;
        let Decision::Skip(skip) = evaluate(&f, &c, NOW) else {
            panic!("started")
        };
        assert_eq!(skip.code(), "not_configured");
        let message = skip.to_string();
        for part in [
            "secret app",
            "not enabled",
            generic,
            "ROTATION_ALLOWED_SECRETS",
            &f.arn,
        ] {
            assert!(message.contains(part), "{message} lacks {part}");
        }
        // Before the policy: a secret the deployer did not configure is
        // reported as such, whatever its tags say.
        f.tags.insert("rotor:rotation-policy".into(), "30x".into());
        assert_eq!(skip_code(&evaluate(&f, &c, NOW)), Some("not_configured"));

        let mut f = facts(Some("30d"), 400);
        f.rotation_function = Some(other.into());
        let Decision::Skip(skip) = evaluate(&f, &c, NOW) else {
            panic!("started")
        };
        assert_eq!(skip.code(), "foreign_function");
        let message = skip.to_string();
        for part in [
            "secret app",
            other,
            "never re-points",
            "ROTATION_FUNCTION_ARNS",
            generic,
        ] {
            assert!(message.contains(part), "{message} lacks {part}");
        }
        f.rotation_function = None;
        let Decision::Skip(skip) = evaluate(&f, &c, NOW) else {
            panic!("started")
        };
        assert!(skip.to_string().contains("no Lambda function"), "{skip}");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_750_000_000).to_string(), "2025-06-15T15:06:40Z");
        assert!(!Timestamp(i64::MAX).to_string().is_empty());
    }

    #[test]
    fn overdue_a_day_after_the_due_date_even_with_a_rotation_in_progress() {
        let c = config(None);
        // Due 30 days after creation: 30 days and a day ago is not yet overdue.
        assert!(!is_overdue(&facts(Some("30d"), 30), &c, NOW));
        assert!(!is_overdue(&facts(Some("30d"), 31), &c, NOW));
        assert!(is_overdue(&facts(Some("30d"), 32), &c, NOW));
        // A rotation stuck in progress does not excuse it.
        let mut stuck = facts(Some("30d"), 40);
        stuck.versions = Versions::new([
            ("v1".to_owned(), vec![AWSCURRENT.to_owned()]),
            ("v2".to_owned(), vec![AWSPENDING.to_owned()]),
        ]);
        assert_eq!(skip_code(&evaluate(&stuck, &c, NOW)), Some("in_progress"));
        assert!(is_overdue(&stuck, &c, NOW));
        // Nor is it overdue for the scheduler when the scheduler would not
        // rotate it: no policy, or rotated recently.
        assert!(!is_overdue(&facts(None, 400), &c, NOW));
        let mut recent = facts(Some("30d"), 400);
        recent.last_rotated = Some(NOW - 2 * DAY);
        assert!(!is_overdue(&recent, &c, NOW));
    }

    /// `NOW` is 2025-06-15T15:06:40Z.
    const WINDOW: &str = "rotor:window";

    fn windowed(policy_age_days: i64, window: &str) -> SecretFacts {
        let mut f = facts(Some("30d"), policy_age_days);
        f.tags.insert(WINDOW.into(), window.into());
        f
    }

    #[test]
    fn a_due_secret_waits_for_its_window_and_still_counts_as_overdue() {
        let c = config(None);
        let open = windowed(40, "14:00-16:00");
        assert!(matches!(evaluate(&open, &c, NOW), Decision::Due { .. }));
        let closed = windowed(40, "02:00-04:00");
        let decision = evaluate(&closed, &c, NOW);
        assert_eq!(skip_code(&decision), Some("outside_window"));
        let Decision::Skip(Skip::OutsideWindow { opens_at, .. }) = &decision else {
            unreachable!()
        };
        let tomorrow_2am = (NOW / DAY + 1) * DAY + 2 * 3600;
        assert_eq!(*opens_at, Timestamp(tomorrow_2am));
        let Decision::Skip(skip) = decision else {
            unreachable!()
        };
        let message = skip.to_string();
        for part in [
            "secret app",
            "tag rotor:window=02:00-04:00",
            &Timestamp(tomorrow_2am).to_string(),
            "policy 30d",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
        // Outside its window, ten days past due: overdue all the same.
        assert!(is_overdue(&closed, &c, NOW));
        assert!(is_overdue(&open, &c, NOW));
        // Not due: not due, whatever the window.
        assert_eq!(
            skip_code(&evaluate(&windowed(10, "02:00-04:00"), &c, NOW)),
            Some("not_due")
        );
        assert!(!is_overdue(&windowed(10, "02:00-04:00"), &c, NOW));
    }

    #[test]
    fn a_malformed_window_is_never_taken_for_any_time() {
        let c = config(None);
        for (age, value) in [(40, "2am-4am"), (10, "02:00"), (40, "")] {
            let Decision::Skip(skip) = evaluate(&windowed(age, value), &c, NOW) else {
                panic!("{value:?} started")
            };
            assert_eq!(skip.code(), "bad_window", "{value:?}");
            let message = skip.to_string();
            assert!(
                message.contains("secret app")
                    && message.contains("tag rotor:window=")
                    && message.contains("02:00-04:00")
                    && message.contains("does not rotate it"),
                "{message}"
            );
        }
        // Due, but its window cannot be read: overdue.
        assert!(is_overdue(&windowed(40, "2am-4am"), &c, NOW));
        // The window tag is a setting.
        let mut custom = config(None);
        custom.window_tag = "team:window".into();
        assert!(matches!(
            evaluate(&windowed(40, "2am-4am"), &custom, NOW),
            Decision::Due { .. }
        ));
    }

    #[test]
    fn the_rotation_rules_window_is_honoured_with_the_tag() {
        let c = config(None);
        let mut f = facts(Some("30d"), 40);
        // 2025-06-15 is a Sunday: 15:00-17:00 on Sundays is open.
        f.schedule_expression = Some("cron(0 15 ? * SUN *)".into());
        f.window_duration = Some("2h".into());
        assert!(matches!(evaluate(&f, &c, NOW), Decision::Due { .. }));
        f.schedule_expression = Some("cron(0 15 ? * MON *)".into());
        assert_eq!(skip_code(&evaluate(&f, &c, NOW)), Some("outside_window"));
        // Both: Sundays 15:00-17:00 and 16:00-18:00 every day: not before 16:00.
        f.schedule_expression = Some("cron(0 15 ? * SUN *)".into());
        f.tags.insert(WINDOW.into(), "16:00-18:00".into());
        let Decision::Skip(Skip::OutsideWindow { opens_at, .. }) = evaluate(&f, &c, NOW) else {
            panic!("not outside its window")
        };
        assert_eq!(opens_at, Timestamp(NOW / DAY * DAY + 16 * 3600));
        // Windows that never overlap, and a schedule Secrets Manager refuses.
        f.tags.insert(WINDOW.into(), "01:00-02:00".into());
        assert_eq!(skip_code(&evaluate(&f, &c, NOW)), Some("bad_window"));
        f.tags.remove(WINDOW);
        f.schedule_expression = Some("cron(30 15 ? * SUN *)".into());
        let Decision::Skip(skip) = evaluate(&f, &c, NOW) else {
            panic!("started")
        };
        assert_eq!(skip.code(), "bad_window");
        assert!(
            skip.to_string()
                .contains("RotationRules.ScheduleExpression \"cron(30 15 ? * SUN *)\""),
            "{skip}"
        );
    }
}
