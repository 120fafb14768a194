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
    let arn = exam.arn.clone();
    if exam.facts.versions.current().is_none() {
        exam.findings.push(Finding::new(
            "no-current",
            Health::Misconfigured,
            "no version is AWSCURRENT",
            "readers of the secret get nothing, and a rotation has nothing to start from",
            vec![format!(
                "aws secretsmanager put-secret-value --secret-id {arn} --secret-string file://value.json"
            )],
        ));
    }
    let Some(flight) = exam.facts.in_flight.clone() else {
        return;
    };
    let version = flight.version.clone();
    let resume_by_hand = match &exam.facts.function {
        Some(function) => format!(
            "rotor rotate {arn} --token {version} --invoke {function}   (or: aws secretsmanager rotate-secret --secret-id {arn} --client-request-token {version})"
        ),
        None => format!(
            "aws secretsmanager rotate-secret --secret-id {arn} --client-request-token {version}"
        ),
    };
    if flight.on_current {
        exam.findings.push(Finding::new(
            "pending-on-current",
            Health::Stuck,
            format!("AWSPENDING is still on version {version}, which is AWSCURRENT"),
            "a finishSecret moved AWSCURRENT and stopped before removing AWSPENDING; AWS's own functions and some tools then refuse to rotate",
            vec![
                format!("rotor doctor {arn} --fix"),
                format!(
                    "aws secretsmanager update-secret-version-stage --secret-id {arn} --version-stage AWSPENDING --remove-from-version-id {version}"
                ),
            ],
        )
            .with_repair(Repair::DropStalePending { version }));
        return;
    }
    let now = SystemTime::now();
    let age = flight.since.and_then(|t| now.duration_since(t).ok());
    let age_text = age
        .map(|a| format!(" for {}", health::human(a)))
        .unwrap_or_default();
    let stuck = age.is_none_or(|a| a >= options.stuck_after);
    let health = if stuck { Health::Stuck } else { Health::Ok };
    match flight.has_value {
        // createSecret may have failed with ValueNotStored: the server issued
        // the new secret and retired the old one, and the function keeps the
        // new one for this version only. Cancelling would throw that away.
        Some(false) if issued_at_target(exam.kind, current) => exam.findings.push(Finding::new(
            "pending-without-value",
            health,
            format!("version {version} has been AWSPENDING{age_text} without a value"),
            concat!(
                "the authorization server makes the new secret itself and retires the old one (RFC 7592), so createSecret may have got one that Secrets Manager did not store (NotRetryable.ValueNotStored); ",
                "the function keeps it for this version, and only a retry with this version stores it. ",
                "Cancelling would lose it, so doctor only resumes the rotation with its own token"
            ),
            vec![format!("rotor doctor {arn} --fix   (resumes it)"), resume_by_hand],
        )
            .with_repair(Repair::Resume { version })),
        Some(false) => exam.findings.push(Finding::new(
            "pending-without-value",
            health,
            format!("version {version} has been AWSPENDING{age_text} without a value"),
            "createSecret never stored a new credential; until the label goes, Secrets Manager answers every rotation with \"A previous rotation isn't complete\"",
            vec![
                format!("rotor doctor {arn} --fix   (cancels it: nothing was made, so nothing is lost)"),
                format!(
                    "aws secretsmanager update-secret-version-stage --secret-id {arn} --version-stage AWSPENDING --remove-from-version-id {version}"
                ),
            ],
        )
            .with_repair(Repair::Cancel { version })),
        Some(true) => exam.findings.push(Finding::new(
            "pending-with-value",
            health,
            format!("version {version} has been AWSPENDING{age_text} with a value"),
            "the new credential may already be set on the target; deleting it could strand the only one that works, so doctor only finishes the rotation with its own token",
            vec![format!("rotor doctor {arn} --fix   (resumes it)"), resume_by_hand],
        )
            .with_repair(Repair::Resume { version })),
        None => exam.findings.push(Finding::new(
            "pending-unknown",
            health,
            format!("version {version} is AWSPENDING{age_text}; its value could not be read"),
            "doctor cannot tell whether a credential was made, so it changes nothing",
            vec![resume_by_hand],
        )),
    }
}
