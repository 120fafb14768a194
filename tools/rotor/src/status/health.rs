//! A secret's rotation health, from what Secrets Manager and Lambda say.
//! Pure: the calls are made elsewhere, so every rule can be tested alone.

use std::time::{Duration, SystemTime};

use rotor_core::labels::{AWSCURRENT, AWSPENDING, Versions};
use serde::Serialize;

use crate::doctor::lambda::{Function, Kind, read_settings};

/// The one word `rotor status` gives each secret, and doctor each finding.
/// Worse words sort after better ones; anything worse than `Warning` needs
/// attention (exit code 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Nothing needs attention.
    Ok,
    /// Worth knowing, needs nothing now: a rotation in flight that may still
    /// be running, a timeout shorter than the template's, a function that is
    /// missing while rotation is off.
    Warning,
    /// Rotation is on, and the next rotation is well past due.
    Overdue,
    /// A rotation has been in flight too long, or left a label behind.
    Stuck,
    /// Rotation is on but cannot run: no function, one Secrets Manager
    /// cannot invoke, one that is no rotation function, or one whose
    /// settings its own parser refuses.
    Misconfigured,
}

impl Health {
    /// Whether it needs attention: worse than a warning.
    pub fn needs_attention(self) -> bool {
        self > Health::Warning
    }

    /// The word.
    pub fn word(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Warning => "warning",
            Health::Overdue => "overdue",
            Health::Stuck => "stuck",
            Health::Misconfigured => "misconfigured",
        }
    }
}

/// A rotation in flight: the version that carries AWSPENDING.
#[derive(Clone, Debug, Serialize)]
pub struct InFlight {
    /// The pending version.
    pub version: String,
    /// The pending label sits on the AWSCURRENT version (left behind by a
    /// finishSecret that moved AWSCURRENT and stopped).
    pub on_current: bool,
    /// Whether the pending version has a value (createSecret ran); `None` when
    /// unknown.
    pub has_value: Option<bool>,
    /// When the pending version was created.
    #[serde(skip)]
    pub since: Option<SystemTime>,
}

/// What status and doctor know about one secret's rotation.
#[derive(Clone, Debug)]
pub struct Facts {
    /// Whether rotation is on.
    pub rotation_enabled: bool,
    /// The rotation function's ARN.
    pub function: Option<String>,
    /// The next rotation Secrets Manager planned.
    pub next_rotation: Option<SystemTime>,
    /// The last rotation.
    pub last_rotated: Option<SystemTime>,
    /// The rotation interval in days, when the schedule is one.
    pub every_days: Option<i64>,
    /// Versions and labels.
    pub versions: Versions,
    /// The rotation in flight, if any.
    pub in_flight: Option<InFlight>,
}

/// How late a rotation may be before it is overdue: Secrets Manager rotates
/// within a window on the due day.
pub const OVERDUE_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The rotation in flight according to the labels alone.
pub fn in_flight(versions: &Versions) -> Option<InFlight> {
    let version = versions.with_label(AWSPENDING)?;
    Some(InFlight {
        version: version.to_owned(),
        on_current: versions.has_label(version, AWSCURRENT),
        has_value: None,
        since: None,
    })
}

/// One reason for a health word: the code doctor's finding of the same
/// problem has, how bad, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The finding's code, as doctor names it.
    pub code: &'static str,
    /// How bad.
    pub health: Health,
    /// What is wrong.
    pub what: String,
}

/// How late the rotation is, when it is overdue: rotation on, and the next
/// rotation (planned, or the last one plus the interval) more than
/// [`OVERDUE_GRACE`] ago.
pub fn overdue(facts: &Facts, now: SystemTime) -> Option<Duration> {
    if !facts.rotation_enabled {
        return None;
    }
    let due = facts.next_rotation.or_else(|| {
        let days = u64::try_from(facts.every_days?).ok()?;
        Some(facts.last_rotated? + Duration::from_secs(days * 86_400))
    })?;
    now.duration_since(due)
        .ok()
        .filter(|late| *late > OVERDUE_GRACE)
}

/// The health word (the worst of the reasons', `Ok` without any) and the
/// reasons for it.
pub fn assess(
    facts: &Facts,
    function: Option<&Function>,
    now: SystemTime,
    stuck_after: Duration,
) -> (Health, Vec<Reason>) {
    let mut reasons = Vec::new();
    let mut worse = |code: &'static str, health: Health, what: String| {
        reasons.push(Reason { code, health, what });
    };
    if facts.rotation_enabled {
        match (&facts.function, function) {
            (None, _) => worse(
                "no-function",
                Health::Misconfigured,
                "rotation is on but no function is set".into(),
            ),
            (Some(_), Some(Function::Missing)) => worse(
                "function-missing",
                Health::Misconfigured,
                "the rotation function does not exist".into(),
            ),
            (Some(_), Some(Function::Found(f))) => {
                if f.invocable == Some(false) {
                    worse(
                        "not-invocable",
                        Health::Misconfigured,
                        "Secrets Manager may not invoke the rotation function".into(),
                    );
                }
                match f.kind {
                    Some(Kind::Scheduler) => worse(
                        "scheduler-as-rotation",
                        Health::Misconfigured,
                        "the rotation function is rotation-scheduler, which starts rotations but cannot run one".into(),
                    ),
                    Some(kind) => {
                        if let Err(problem) = read_settings(kind, &f.env) {
                            worse(
                                "function-settings",
                                Health::Misconfigured,
                                format!("the rotation function's settings are invalid ({}): {problem}", kind.name()),
                            );
                        }
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }
    if facts.versions.current().is_none() {
        worse(
            "no-current",
            Health::Misconfigured,
            "no version is AWSCURRENT".into(),
        );
    }
    if let Some(flight) = &facts.in_flight {
        if flight.on_current {
            worse(
                "pending-on-current",
                Health::Stuck,
                format!(
                    "AWSPENDING left on the AWSCURRENT version {}",
                    flight.version
                ),
            );
        } else {
            let age = flight.since.and_then(|t| now.duration_since(t).ok());
            if age.is_none_or(|age| age >= stuck_after) {
                let (code, value) = match flight.has_value {
                    Some(true) => ("pending-with-value", "with a value"),
                    Some(false) => ("pending-without-value", "without a value"),
                    None => ("pending-unknown", "value unknown"),
                };
                worse(
                    code,
                    Health::Stuck,
                    format!(
                        "version {} pending {}{value}",
                        flight.version,
                        age.map(|a| format!("for {} ", human(a)))
                            .unwrap_or_default()
                    ),
                );
            }
        }
    }
    if let Some(late) = overdue(facts, now) {
        worse(
            "overdue",
            Health::Overdue,
            format!("rotation due {} ago", human(late)),
        );
    }
    let health = reasons.iter().map(|r| r.health).max().unwrap_or(Health::Ok);
    (health, reasons)
}

/// A duration for people: 45s, 12m, 5h, 3d.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(labels: &[(&str, &[&str])]) -> Facts {
        let versions = Versions::new(labels.iter().map(|(id, l)| {
            (
                id.to_string(),
                l.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        }));
        Facts {
            rotation_enabled: true,
            function: Some("arn:aws:lambda:us-east-1:1:function:f".into()),
            next_rotation: None,
            last_rotated: None,
            every_days: Some(30),
            in_flight: in_flight(&versions),
            versions,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn words() {
        let now = SystemTime::now();
        let ok = facts(&[("a", &[AWSCURRENT])]);
        assert_eq!(assess(&ok, None, now, HOUR).0, Health::Ok);

        let stale = facts(&[("a", &[AWSCURRENT, AWSPENDING])]);
        assert_eq!(assess(&stale, None, now, HOUR).0, Health::Stuck);

        let mut young = facts(&[("a", &[AWSCURRENT]), ("b", &[AWSPENDING])]);
        young.in_flight.as_mut().unwrap().since = Some(now - Duration::from_secs(60));
        assert_eq!(assess(&young, None, now, HOUR).0, Health::Ok);
        assert_eq!(assess(&young, None, now, Duration::ZERO).0, Health::Stuck);

        let missing = facts(&[("a", &[AWSCURRENT])]);
        let (health, reasons) = assess(&missing, Some(&Function::Missing), now, HOUR);
        assert_eq!(health, Health::Misconfigured);
        assert!(reasons[0].what.contains("does not exist"));
        assert_eq!(reasons[0].code, "function-missing");

        let function = |kind: Kind, env: &[(&str, &str)]| {
            Function::Found(Box::new(crate::doctor::lambda::FunctionFacts {
                arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
                kind: Some(kind),
                candidates: Vec::new(),
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                timeout: Some(60),
                invocable: Some(true),
            }))
        };
        let ok = facts(&[("a", &[AWSCURRENT])]);
        let redis = function(Kind::Redis, &[("REVOKE_PREVIOUS", "at-finish")]);
        assert_eq!(assess(&ok, Some(&redis), now, HOUR).0, Health::Ok);
        let refused = function(Kind::Redis, &[("REVOKE_PREVIOUS", "sometimes")]);
        let (health, reasons) = assess(&ok, Some(&refused), now, HOUR);
        assert_eq!(health, Health::Misconfigured);
        assert!(reasons[0].what.contains("REVOKE_PREVIOUS"), "{reasons:?}");
        let scheduler = function(Kind::Scheduler, &[]);
        assert_eq!(
            assess(&ok, Some(&scheduler), now, HOUR).0,
            Health::Misconfigured
        );

        let mut late = facts(&[("a", &[AWSCURRENT])]);
        late.last_rotated = Some(now - 40 * 24 * HOUR);
        assert_eq!(assess(&late, None, now, HOUR).0, Health::Overdue);
        assert_eq!(assess(&late, None, now, HOUR).1[0].code, "overdue");
        late.rotation_enabled = false;
        assert_eq!(assess(&late, None, now, HOUR).0, Health::Ok);
        assert!(Health::Warning < Health::Overdue && !Health::Warning.needs_attention());
    }
}
