//! Findings from the rotation function's Lambda metadata: does it exist, may
//! Secrets Manager invoke it, which rotor function, its timeout and settings.

use super::*;

pub(super) fn rotation_findings(exam: &mut Examination, options: &Options) {
    if !exam.facts.rotation_enabled {
        exam.notes.push("rotation is off for this secret".into());
    }
    let found = exam.findings.len();
    function_problems(exam, options);
    // With rotation off, nothing fails yet: each problem is a warning until
    // rotation is turned on (a secret the local runner staged keeps the
    // function the emulator recorded, and rotation off).
    if !exam.facts.rotation_enabled {
        for finding in &mut exam.findings[found..] {
            if finding.health.needs_attention() {
                finding.health = Health::Warning;
                finding.why = format!(
                    "{} (rotation is off: this matters once it is turned on)",
                    finding.why
                );
            }
        }
    }
    if let Some(late) = health::overdue(&exam.facts, SystemTime::now()) {
        let rotate_now = match options.commands.emulator() {
            None => {
                options
                    .commands
                    .aws(["secretsmanager", "rotate-secret", "--secret-id", &exam.arn])
            }
            Some(_) => {
                let mut args = vec!["rotate".to_owned(), exam.arn.clone()];
                args.extend(local_function(exam).unwrap_or_default());
                options.commands.rotor(&args)
            }
        };
        exam.findings.push(Finding::new(
            "overdue",
            Health::Overdue,
            format!("the rotation is {} overdue", health::human(late)),
            "Secrets Manager did not rotate it when due: a rotation that fails before the function runs (the function missing, or not invocable, or \"A previous rotation isn't complete\") leaves no other trace",
            vec![
                "fix the other findings first; then start a rotation:".into(),
                rotate_now,
            ],
        ));
    }
}

fn function_problems(exam: &mut Examination, options: &Options) {
    let Some(function_arn) = exam.facts.function.clone() else {
        if exam.facts.rotation_enabled {
            let point = options.set_function_command(exam, "FUNCTION_ARN");
            exam.findings.push(Finding::new(
                "no-function",
                Health::Misconfigured,
                "rotation is on but no rotation function is set",
                "Secrets Manager has nothing to invoke, so every rotation fails",
                vec![point],
            ));
        }
        return;
    };
    match &exam.function {
        Some(Function::Missing) => {
            let point = options.set_function_command(exam, "FUNCTION_ARN");
            let mut why = "every rotation of this secret fails before it starts (\"A previous rotation isn't complete\" follows if one was in flight)".to_owned();
            if function_arn == rotor_core::store::aws::STAGING_ONLY_FUNCTION {
                why.push_str(
                    "; it is the placeholder rotor rotate stages with on an emulator when a secret names no function",
                );
            }
            exam.findings.push(Finding::new(
                "function-missing",
                Health::Misconfigured,
                format!("the rotation function {function_arn} does not exist"),
                why,
                vec![
                    "deploy rotor's functions (sam deploy), then point the secret at one:".into(),
                    point,
                ],
            ))
        }
        Some(Function::Unknown(why)) => exam.findings.push(Finding::new(
            "function-unreadable",
            Health::Warning,
            format!("could not read the rotation function {function_arn}: {why}"),
            "doctor cannot check it exists or that Secrets Manager may invoke it",
            vec![
                "run doctor with lambda:GetFunctionConfiguration and lambda:GetPolicy on the function".into(),
            ],
        )),
        Some(Function::Found(f)) => {
            let f = f.clone();
            function_findings(exam, options, &f);
        }
        None => {}
    }
}

/// The findings of a function that exists, for the secret read as
/// `exam.kind`: the function's own, or one of its candidates chosen by the
/// value's shape.
pub(super) fn function_findings(exam: &mut Examination, options: &Options, f: &FunctionFacts) {
    let commands = &options.commands;
    let kind = exam.kind;
    let name = f.arn.rsplit(':').next().unwrap_or(&f.arn).to_owned();
    if f.invocable == Some(false) {
        exam.findings.push(Finding::new(
            "not-invocable",
            Health::Misconfigured,
            format!("Secrets Manager may not invoke {name}"),
            "its resource policy has no Allow for secretsmanager.amazonaws.com, so rotations fail with AccessDenied",
            vec![commands.aws([
                "lambda",
                "add-permission",
                "--function-name",
                &f.arn,
                "--statement-id",
                "SecretsManagerInvoke",
                "--action",
                "lambda:InvokeFunction",
                "--principal",
                lambda::SECRETS_MANAGER,
            ])],
        ));
    }
    let Some(kind) = f.kind.or(kind.filter(|k| f.candidates.contains(k))) else {
        exam.notes.push(format!(
            "{name} is not one of rotor's functions (or was deployed without the template's description or name)"
        ));
        return;
    };
    if kind == Kind::Scheduler {
        exam.findings.push(Finding::new(
            "scheduler-as-rotation",
            Health::Misconfigured,
            format!("{name} is rotation-scheduler, not a rotation function"),
            "the scheduler starts rotations; it cannot run a rotation's four steps",
            vec![options.set_function_command(exam, "ROTATION_FUNCTION_ARN")],
        ));
        return;
    }
    if let Some(timeout) = f.timeout
        && timeout < kind.recommended_timeout()
    {
        let recommended = kind.recommended_timeout().to_string();
        exam.findings.push(Finding::new(
            "short-timeout",
            Health::Warning,
            format!(
                "{name} may run {timeout} s; {} gets {recommended} s in the template",
                kind.name(),
            ),
            "a step cut short by the timeout leaves the rotation in flight until the next attempt",
            vec![commands.aws([
                "lambda",
                "update-function-configuration",
                "--function-name",
                &f.arn,
                "--timeout",
                &recommended,
            ])],
        ));
    }
    let settings = lambda::read_settings(kind, &f.env).map(|what| {
        exam.notes.push(format!("{name} is {what}"));
    });
    if let Err(problem) = settings {
        exam.findings.push(Finding::new(
            "function-settings",
            Health::Misconfigured,
            format!("{name}'s settings are invalid: {problem}"),
            "the function refuses every step of every secret until they are fixed",
            vec![format!(
                "fix the variable in the stack's parameters and redeploy (its Lambda environment: {})",
                f.arn
            )],
        ));
    }
}
