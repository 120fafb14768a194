//! Findings from the versions and labels: a rotation in flight, with or
//! without a value, or AWSPENDING left on the current version.

use super::*;

/// Whether the function makes its new value at the target, retiring the old
/// one as it does (RFC 7592's update): the function's own rule
/// ([`rotor_core::Rotator::issued_at_target`]), applied to AWSCURRENT.
fn issued_at_target(kind: Option<Kind>, current: Option<&SecretString>) -> bool {
    use rotor_core::IssuedValues as _;
    let (Some(Kind::Oauth), Some(current)) = (kind, current) else {
        return false;
    };
    oauth_rotation::Config::from_lookup(|_| None)
        .is_ok_and(|config| oauth_rotation::OAuthRotator::new(config).issued_at_target(current))
}

pub(super) fn label_findings(
    exam: &mut Examination,
    options: &Options,
    current: Option<&SecretString>,
) {
    let commands = &options.commands;
    let arn = exam.arn.clone();
    if exam.facts.versions.current().is_none() {
        exam.findings.push(Finding::new(
            "no-current",
            Health::Misconfigured,
            "no version is AWSCURRENT",
            "readers of the secret get nothing, and a rotation has nothing to start from",
            vec![commands.aws([
                "secretsmanager",
                "put-secret-value",
                "--secret-id",
                &arn,
                "--secret-string",
                "file://value.json",
            ])],
        ));
    }
    let Some(flight) = exam.facts.in_flight.clone() else {
        return;
    };
    let version = flight.version.clone();
    let cancel = commands.aws([
        "secretsmanager",
        "update-secret-version-stage",
        "--secret-id",
        &arn,
        "--version-stage",
        AWSPENDING,
        "--remove-from-version-id",
        &version,
    ]);
    if flight.on_current {
        let fix = options.fix_command(exam, false, false);
        exam.findings.push(Finding::new(
            "pending-on-current",
            Health::Stuck,
            format!("AWSPENDING is still on version {version}, which is AWSCURRENT"),
            "a finishSecret moved AWSCURRENT and stopped before removing AWSPENDING; AWS's own functions and some tools then refuse to rotate",
            fix.into_iter().chain([cancel]).collect(),
        )
            .with_repair(Repair::DropStalePending { version }));
        return;
    }
    let now = SystemTime::now();
    let age = flight.since.and_then(|t| now.duration_since(t).ok());
    let age_text = age
        .map(|a| format!(" for {}", health::human(a)))
        .unwrap_or_default();
    let young = age.is_some_and(|a| a < options.stuck_after);
    let health = if young {
        Health::Warning
    } else {
        Health::Stuck
    };
    // A rotation that young may still be running: say when --fix will act.
    let wait = match (young, flight.since) {
        (true, Some(since)) => format!(
            " It may still be running: --fix acts on a rotation once it has been in flight {} minutes, from {}; to act sooner, if nothing is running it, give --stuck-after-minutes 0.",
            options.stuck_after.as_secs() / 60,
            utc(since + options.stuck_after)
        ),
        _ => String::new(),
    };
    let comment = |what: &str| {
        if young {
            format!("  # only if nothing is running this rotation now: {what}")
        } else {
            format!("  # {what}")
        }
    };
    let resume_fix = options
        .fix_command(exam, young, true)
        .map(|c| c + &comment("resumes it"));
    let resume = options.resume_command(exam, &version);
    match flight.has_value {
        // createSecret may have failed with ValueNotStored: the server issued
        // the new secret and retired the old one, and the function keeps the
        // new one for this version only. Cancelling would throw that away.
        Some(false) if issued_at_target(exam.kind, current) => exam.findings.push(Finding::new(
            "pending-without-value",
            health,
            format!("version {version} has been AWSPENDING{age_text} without a value"),
            format!(
                "{}{wait}",
                concat!(
                    "the authorization server makes the new secret itself and retires the old one (RFC 7592), so createSecret may have got one that Secrets Manager did not store (NotRetryable.ValueNotStored); ",
                    "the function keeps it for this version, and only a retry with this version stores it. ",
                    "Cancelling would lose it, so doctor only resumes the rotation with its own token"
                )
            ),
            resume_fix.into_iter().chain(resume).collect(),
        )
            .with_repair(Repair::Resume { version })),
        Some(false) => {
            let fix = options
                .fix_command(exam, young, false)
                .map(|c| c + &comment("cancels it (nothing was made, so nothing is lost)"));
            exam.findings.push(Finding::new(
                "pending-without-value",
                health,
                format!("version {version} has been AWSPENDING{age_text} without a value"),
                format!(
                    "createSecret never stored a new credential; until the label goes, Secrets Manager answers every rotation with \"A previous rotation isn't complete\".{wait}"
                ),
                fix.into_iter().chain([cancel]).collect(),
            )
                .with_repair(Repair::Cancel { version }))
        }
        Some(true) => exam.findings.push(Finding::new(
            "pending-with-value",
            health,
            format!("version {version} has been AWSPENDING{age_text} with a value"),
            format!(
                "the new credential may already be set on the target; deleting it could strand the only one that works, so doctor only finishes the rotation with its own token.{wait}"
            ),
            resume_fix.into_iter().chain(resume).collect(),
        )
            .with_repair(Repair::Resume { version })),
        None => exam.findings.push(Finding::new(
            "pending-unknown",
            health,
            format!("version {version} is AWSPENDING{age_text}; its value could not be read"),
            format!(
                "doctor cannot tell whether a credential was made, so it changes nothing.{wait}"
            ),
            resume.into_iter().collect(),
        )),
    }
}

/// `2026-01-31 12:34 UTC`.
fn utc(t: SystemTime) -> String {
    use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
    DateTime::from(t)
        .fmt(DateTimeFormat::DateTime)
        .map(|s| {
            format!(
                "{} UTC",
                s.chars().take(16).collect::<String>().replace('T', " ")
            )
        })
        .unwrap_or_else(|_| "?".into())
}
