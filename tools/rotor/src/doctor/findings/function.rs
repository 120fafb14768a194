//! Findings from the rotation function's Lambda metadata: does it exist, may
//! Secrets Manager invoke it, which rotor function, its timeout and settings.

use super::*;

pub(super) fn rotation_findings(exam: &mut Examination) {
    let arn = exam.arn.clone();
    if !exam.facts.rotation_enabled {
        exam.notes.push("rotation is off for this secret".into());
    }
    let Some(function_arn) = exam.facts.function.clone() else {
        if exam.facts.rotation_enabled {
            exam.findings.push(Finding::new(
                "no-function",
                Health::Misconfigured,
                "rotation is on but no rotation function is set",
                "Secrets Manager has nothing to invoke, so every rotation fails",
                vec![format!(
                    "aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn FUNCTION_ARN"
                )],
            ));
        }
        return;
    };
    match &exam.function {
        Some(Function::Missing) => exam.findings.push(Finding::new(
            "function-missing",
            Health::Misconfigured,
            format!("the rotation function {function_arn} does not exist"),
            "every rotation of this secret fails before it starts (\"A previous rotation isn't complete\" follows if one was in flight)",
            vec![
                "deploy rotor's functions (sam deploy), then point the secret at one:".into(),
                format!(
                    "aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn FUNCTION_ARN --no-rotate-immediately"
                ),
            ],
        )),
        Some(Function::Unknown(why)) => exam.findings.push(Finding::new(
            "function-unreadable",
            Health::Ok,
            format!("could not read the rotation function {function_arn}: {why}"),
            "doctor cannot check it exists or that Secrets Manager may invoke it",
            vec![
                "run doctor with lambda:GetFunctionConfiguration and lambda:GetPolicy on the function".into(),
            ],
        )),
        Some(Function::Found(f)) => {
            function_findings(&arn, f, exam.kind, &mut exam.findings, &mut exam.notes)
        }
        None => {}
    }
}

/// `kind` is the function the secret is read as: the function's own, or one
/// of its candidates chosen by the value's shape.
pub(super) fn function_findings(
    arn: &str,
    f: &FunctionFacts,
    kind: Option<Kind>,
    findings: &mut Vec<Finding>,
    notes: &mut Vec<String>,
) {
    let name = f.arn.rsplit(':').next().unwrap_or(&f.arn).to_owned();
    if f.invocable == Some(false) {
        findings.push(Finding::new(
            "not-invocable",
            Health::Misconfigured,
            format!("Secrets Manager may not invoke {name}"),
            "its resource policy has no Allow for secretsmanager.amazonaws.com, so rotations fail with AccessDenied",
            vec![format!(
                "aws lambda add-permission --function-name {} --statement-id SecretsManagerInvoke --action lambda:InvokeFunction --principal secretsmanager.amazonaws.com",
                f.arn
            )],
        ));
    }
    let Some(kind) = f.kind.or(kind.filter(|k| f.candidates.contains(k))) else {
        notes.push(format!(
            "{name} is not one of rotor's functions (or was deployed without the template's description or name)"
        ));
        return;
    };
    if kind == Kind::Scheduler {
        findings.push(Finding::new(
            "scheduler-as-rotation",
            Health::Misconfigured,
            format!("{name} is rotation-scheduler, not a rotation function"),
            "the scheduler starts rotations; it cannot run a rotation's four steps",
            vec![format!(
                "aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn ROTATION_FUNCTION_ARN --no-rotate-immediately"
            )],
        ));
        return;
    }
    if let Some(timeout) = f.timeout
        && timeout < kind.recommended_timeout()
    {
        findings.push(Finding::new(
            "short-timeout",
            Health::Ok,
            format!(
                "{name} may run {timeout} s; {} gets {} s in the template",
                kind.name(),
                kind.recommended_timeout()
            ),
            "a step cut short by the timeout leaves the rotation in flight until the next attempt",
            vec![format!(
                "aws lambda update-function-configuration --function-name {} --timeout {}",
                f.arn,
                kind.recommended_timeout()
            )],
        ));
    }
    let settings = lambda::read_settings(kind, &f.env).map(|what| {
        notes.push(format!("{name} is {what}"));
    });
    if let Err(problem) = settings {
        findings.push(Finding::new(
            "function-settings",
            Health::Misconfigured,
            format!("{name}'s settings are invalid: {problem}"),
            "the function refuses every step of every secret until they are fixed",
            vec![format!(
                "fix the variable in the stack's parameters and redeploy (or aws lambda update-function-configuration --function-name {} --environment ...)",
                f.arn
            )],
        ));
    }
}
