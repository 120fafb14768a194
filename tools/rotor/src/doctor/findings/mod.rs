//! What `rotor doctor` finds: each problem with why it matters and the
//! command that fixes it, from the secret's metadata, versions and labels,
//! its function's Lambda metadata, and its value read through the parsers the
//! functions themselves use.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::{ExposeSecret, SecretString};
use serde::Serialize;

use super::lambda::{self, Function, FunctionFacts, Kind};
use crate::clients::Clients;
use crate::commands::Commands;
use crate::status::STUCK_AFTER_MINUTES;
use crate::status::health::{self, Facts, Health};

mod function;
mod labels;
mod values;

use function::rotation_findings;
use labels::label_findings;
use values::value_findings;

/// A repair `--fix` may apply: none of them can lose a working credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "repair", rename_all = "kebab-case")]
pub enum Repair {
    /// Take AWSPENDING off a version that is already AWSCURRENT.
    DropStalePending {
        /// The version.
        version: String,
    },
    /// Take AWSPENDING off a pending version that never got a value: no
    /// credential was made, so nothing can be on the target.
    Cancel {
        /// The version.
        version: String,
    },
    /// Run the rotation again with its own token: every step is idempotent,
    /// and a pending value that may already be set on the target is kept.
    Resume {
        /// The version.
        version: String,
    },
}

/// One problem.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// A stable short name, for scripts and tests.
    pub code: &'static str,
    /// How bad: the health word this finding alone would give.
    pub health: Health,
    /// What is wrong.
    pub what: String,
    /// Why it matters.
    pub why: String,
    /// What fixes it: commands (`rotor …`, `aws …`) that run as printed, a
    /// shell comment after some, and instructions in words.
    pub fix: Vec<String>,
    /// The repair `--fix` applies, when one is safe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
}

impl Finding {
    /// A finding that `--fix` has no repair for; `fix` lists the commands.
    pub(super) fn new(
        code: &'static str,
        health: Health,
        what: impl Into<String>,
        why: impl Into<String>,
        fix: Vec<String>,
    ) -> Finding {
        Finding {
            code,
            health,
            what: what.into(),
            why: why.into(),
            fix,
            repair: None,
        }
    }

    /// The same finding, with the repair `--fix` applies.
    pub(super) fn with_repair(self, repair: Repair) -> Finding {
        Finding {
            repair: Some(repair),
            ..self
        }
    }
}

/// Everything doctor learned about one secret.
#[derive(Clone, Debug)]
pub struct Examination {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Rotation facts.
    pub facts: Facts,
    /// The function, when one is set.
    pub function: Option<Function>,
    /// Which rotor function the value was read as.
    pub kind: Option<Kind>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The findings, worst first.
    pub findings: Vec<Finding>,
    /// Things worth saying that are not problems.
    pub notes: Vec<String>,
}

/// What to examine and how.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Read the value as this function's when the Lambda metadata does not say.
    pub kind: Option<Kind>,
    /// How long a rotation may be in flight before it counts as stuck.
    pub stuck_after: Duration,
    /// The commands the findings suggest: for this endpoint.
    pub commands: Commands,
}

impl Options {
    /// `rotor doctor ARN --fix` with what makes --fix see what this doctor
    /// saw: `--stuck-after-minutes` (0 for a rotation younger than the
    /// limit), `--kind` when it was given, and for a resume against an
    /// emulator the function binary and its deployed settings. `None` when
    /// no such command would work (a resume on an emulator for an unknown
    /// function).
    pub(super) fn fix_command(
        &self,
        exam: &Examination,
        young: bool,
        resume: bool,
    ) -> Option<String> {
        let mut args = vec!["doctor".to_owned(), exam.arn.clone(), "--fix".into()];
        let minutes = self.stuck_after.as_secs() / 60;
        if young {
            args.extend(["--stuck-after-minutes".into(), "0".into()]);
        } else if minutes != STUCK_AFTER_MINUTES {
            args.extend(["--stuck-after-minutes".into(), minutes.to_string()]);
        }
        if let Some(kind) = self.kind {
            args.extend(["--kind".into(), kind.name().to_owned()]);
        }
        if resume && self.commands.emulator().is_some() {
            args.extend(local_function(exam)?);
        }
        Some(self.commands.rotor(&args))
    }

    /// The command that resumes the rotation to `version` by hand: RotateSecret
    /// with its token on AWS; against an emulator, which would not run the
    /// function, `rotor rotate --token` with the function's binary.
    pub(super) fn resume_command(&self, exam: &Examination, version: &str) -> Option<String> {
        if self.commands.emulator().is_none() {
            return Some(self.commands.aws([
                "secretsmanager",
                "rotate-secret",
                "--secret-id",
                &exam.arn,
                "--client-request-token",
                version,
            ]));
        }
        let mut args = vec![
            "rotate".to_owned(),
            exam.arn.clone(),
            "--token".into(),
            version.to_owned(),
        ];
        args.extend(local_function(exam)?);
        Some(self.commands.rotor(&args))
    }

    /// The command that makes `function` (a placeholder) the secret's rotation
    /// function: RotateSecret on AWS (which tests it, RotateImmediately=false);
    /// against an emulator, `rotor rotate --rotation-function --test-only`, which
    /// tests it with the function's binary.
    pub(super) fn set_function_command(&self, exam: &Examination, function: &str) -> String {
        if self.commands.emulator().is_none() {
            return self.commands.aws([
                "secretsmanager",
                "rotate-secret",
                "--secret-id",
                &exam.arn,
                "--rotation-lambda-arn",
                function,
                "--no-rotate-immediately",
            ]);
        }
        let mut args = vec![
            "rotate".to_owned(),
            exam.arn.clone(),
            "--rotation-function".into(),
            function.to_owned(),
            "--test-only".into(),
        ];
        args.extend(local_function(exam).unwrap_or_default());
        self.commands.rotor(&args)
    }
}

/// `--function BINARY` and an `--env` for each of the deployed function's
/// settings: what runs the secret's rotation function locally as deployed.
/// `None` when which function it is is unknown.
fn local_function(exam: &Examination) -> Option<Vec<String>> {
    let kind = exam.kind.filter(|k| k.runs_rotations())?;
    let mut args = vec!["--function".to_owned(), kind.name().to_owned()];
    if let Some(Function::Found(f)) = &exam.function {
        for (name, value) in &f.env {
            args.extend(["--env".to_owned(), format!("{name}={value}")]);
        }
    }
    Some(args)
}

/// Examines one secret. Errors only when the secret cannot be described.
pub async fn examine(
    clients: &Clients,
    secret_id: &str,
    options: &Options,
) -> anyhow::Result<Examination> {
    let described = clients
        .secrets
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            crate::endpoint::explain(&clients.secrets_call("DescribeSecret", Some(secret_id)), &e)
        })?;
    let arn = described.arn().unwrap_or(secret_id).to_owned();
    let name = described.name().unwrap_or(secret_id).to_owned();
    let tags: BTreeMap<String, String> = described
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect();
    let mut facts = crate::status::facts(
        described.rotation_enabled(),
        described.rotation_lambda_arn(),
        described.next_rotation_date(),
        described.last_rotated_date(),
        described.rotation_rules(),
        described.version_ids_to_stages(),
    );
    if let Some(flight) = &mut facts.in_flight
        && !flight.on_current
    {
        crate::status::fill_in_flight(&clients.secrets, &arn, flight).await;
    }
    let function = match &facts.function {
        Some(f) => Some(lambda::inspect(&clients.lambda, clients.endpoint.as_deref(), f).await),
        None => None,
    };
    let mut exam = Examination {
        arn,
        name,
        facts,
        function,
        kind: None,
        tags,
        findings: Vec::new(),
        notes: Vec::new(),
    };
    let current = read(clients, &exam.arn, AWSCURRENT).await;
    let pending = match &exam.facts.in_flight {
        Some(f) if !f.on_current && f.has_value == Some(true) => {
            Some(read(clients, &exam.arn, AWSPENDING).await)
        }
        _ => None,
    };
    let value = current.as_ref().ok().and_then(Option::as_ref);
    let (kind, how) = which_function(exam.function.as_ref(), options.kind, value);
    exam.kind = kind;
    exam.notes.extend(how);
    rotation_findings(&mut exam, options);
    label_findings(&mut exam, options, value);
    value_findings(clients, options, &mut exam, &current, pending.as_ref()).await;
    exam.findings.sort_by_key(|f| std::cmp::Reverse(f.health));
    Ok(exam)
}

/// Why GetSecretValue gave no value: the endpoint's failure, or the
/// service's error code and message.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Unreadable(crate::endpoint::EndpointError);

/// Why a secret that another one points at may not be used.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The pointing secret itself could not be described.
    #[error("describing {arn}: {source}")]
    Describe {
        /// The pointing secret.
        arn: String,
        /// What Secrets Manager said.
        source: rotor_core::store::StoreError,
    },
    /// The core's consent rule refused the link, or its target could not be read.
    #[error(transparent)]
    Refused(rotor_core::Error),
}

/// AWSCURRENT or AWSPENDING's value: `Ok(None)` when there is none.
pub(super) async fn read(
    clients: &Clients,
    arn: &str,
    label: &str,
) -> Result<Option<SecretString>, Unreadable> {
    match clients
        .secrets
        .get_secret_value()
        .secret_id(arn)
        .version_stage(label)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .secret_string()
            .map(|s| SecretString::from(s.to_owned()))),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => {
            let call = clients.secrets_call("GetSecretValue", None);
            Err(Unreadable(crate::endpoint::explain(&call, &e)))
        }
    }
}

/// Which function the value is read as, and a note saying how it was told
/// when the function's metadata did not say: the function's own kind (its
/// description, its name, or settings only one function reads); else
/// `--kind`; else the value's shape, among the functions whose settings the
/// function has (rds or redis for MASTER_SECRET_ARN), or among all of them
/// when there is no metadata.
fn which_function(
    function: Option<&Function>,
    given: Option<Kind>,
    value: Option<&SecretString>,
) -> (Option<Kind>, Option<String>) {
    let facts = match function {
        Some(Function::Found(f)) => Some(f),
        _ => None,
    };
    if let Some(kind) = facts.and_then(|f| f.kind).or(given) {
        return (Some(kind), None);
    }
    let candidates = facts.map(|f| f.candidates.as_slice()).unwrap_or_default();
    let fits = |k: &Kind| candidates.is_empty() || candidates.contains(k);
    let shape = value.and_then(shape_of).filter(fits);
    let names = |kinds: &[Kind]| {
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let note = match (shape, candidates.is_empty()) {
        (Some(kind), false) => format!(
            "the function's settings are those of {}; the value's shape is {}'s",
            names(candidates),
            kind.name()
        ),
        (Some(kind), true) => format!(
            "no rotor function's metadata says which function the secret is for; its value's shape is {}'s (--kind overrides)",
            kind.name()
        ),
        (None, false) => format!(
            "the function's settings are those of {}, and the value's shape is neither's; give --kind",
            names(candidates)
        ),
        (None, true) => {
            "which rotor function the secret is for is unknown: no function's metadata says, and the value has no shape to tell by; give --kind".to_owned()
        }
    };
    (shape, Some(note))
}

/// The function whose secrets look like `value`, by the fields only its
/// format has: `engine` (rds), `client_id` or `token_endpoint` (oauth),
/// `user_arn` or `host` (redis), `directory` and `url` or AWS's
/// `awsSeamlessDomainDirectoryId` (ldap), `AccessKeyId` and `UserName` (iam);
/// any other value is generic-rotation's.
fn shape_of(value: &SecretString) -> Option<Kind> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(value.expose_secret()) else {
        return Some(Kind::Generic);
    };
    let has = |field: &str| fields.contains_key(field);
    Some(if has("engine") {
        Kind::Rds
    } else if has("AccessKeyId") && has("UserName") {
        Kind::Iam
    } else if (has("directory") && has("url")) || has("awsSeamlessDomainDirectoryId") {
        Kind::Ldap
    } else if has("client_id") || has("token_endpoint") {
        Kind::Oauth
    } else if has("user_arn") || has("host") {
        Kind::Redis
    } else {
        Kind::Generic
    })
}

/// Whether anything needs attention (a warning does not).
pub fn needs_attention(exam: &Examination) -> bool {
    exam.findings.iter().any(|f| f.health.needs_attention())
}

/// The worst health among the findings: the secret's word.
pub fn health(exam: &Examination) -> Health {
    exam.findings
        .iter()
        .map(|f| f.health)
        .max()
        .unwrap_or(Health::Ok)
}

/// Re-reads the state and checks a repair still applies, so a repair never
/// acts on a state someone else changed since doctor looked.
pub fn still_applies(exam: &Examination, repair: &Repair) -> bool {
    exam.findings
        .iter()
        .any(|f| f.repair.as_ref() == Some(repair))
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repair::DropStalePending { version } => write!(
                f,
                "remove AWSPENDING from version {version} (already AWSCURRENT)"
            ),
            Repair::Cancel { version } => write!(
                f,
                "cancel the rotation to version {version}: remove AWSPENDING from it (it has no value)"
            ),
            Repair::Resume { version } => write!(
                f,
                "resume the rotation to version {version} with its own token"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(kind: Option<Kind>, candidates: &[Kind]) -> Function {
        Function::Found(Box::new(FunctionFacts {
            arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
            kind,
            candidates: candidates.to_vec(),
            env: BTreeMap::new(),
            timeout: Some(60),
            invocable: Some(true),
        }))
    }

    fn kind_of(function: Option<&Function>, given: Option<Kind>, value: &str) -> Option<Kind> {
        which_function(function, given, Some(&SecretString::from(value))).0
    }

    const REDIS: &str = r#"{"host":"cache","username":"app","password":"pw"}"#;
    const MANAGED: &str =
        r#"{"user_arn":"arn:aws:memorydb:us-east-1:1:user/app","username":"app"}"#;
    const RDS: &str = r#"{"engine":"postgres","host":"db","username":"u","password":"p"}"#;

    #[test]
    fn the_function_says_first_then_kind_then_the_shape() {
        let redis = found(Some(Kind::Redis), &[]);
        assert_eq!(
            kind_of(Some(&redis), Some(Kind::Rds), RDS),
            Some(Kind::Redis)
        );
        assert_eq!(kind_of(None, Some(Kind::Rds), REDIS), Some(Kind::Rds));
        let either = found(None, &[Kind::Rds, Kind::Redis]);
        assert_eq!(kind_of(Some(&either), None, REDIS), Some(Kind::Redis));
        assert_eq!(kind_of(Some(&either), None, MANAGED), Some(Kind::Redis));
        assert_eq!(kind_of(Some(&either), None, RDS), Some(Kind::Rds));
        // A shape neither function reads: not guessed.
        let (kind, note) = which_function(Some(&either), None, Some(&SecretString::from("v")));
        assert_eq!(kind, None);
        assert!(note.is_some_and(|n| n.contains("--kind")));
        // No metadata at all: the shape alone, said in a note.
        assert_eq!(kind_of(None, None, "plain"), Some(Kind::Generic));
        assert_eq!(
            kind_of(None, None, r#"{"password":"p"}"#),
            Some(Kind::Generic)
        );
        assert_eq!(kind_of(None, None, MANAGED), Some(Kind::Redis));
        assert_eq!(kind_of(None, None, RDS), Some(Kind::Rds));
        // ldap-rotation's two shapes, among the MASTER_SECRET_ARN readers.
        let three = found(None, &[Kind::Rds, Kind::Redis, Kind::Ldap]);
        let ad = r#"{"directory":"ad","url":"ldaps://dc","username":"u@r","host":"x"}"#;
        assert_eq!(kind_of(Some(&three), None, ad), Some(Kind::Ldap));
        let aws = r#"{"awsSeamlessDomainDirectoryId":"d-1234567890"}"#;
        assert_eq!(kind_of(None, None, aws), Some(Kind::Ldap));
        // iam-rotation's shape, among the REVOKE_PREVIOUS readers.
        let revokers = found(None, &[Kind::Oauth, Kind::Redis, Kind::Iam]);
        let key = r#"{"Version":1,"UserName":"ci","AccessKeyId":"AKIAIOSFODNN7EXAMPLE"}"#;
        assert_eq!(kind_of(Some(&revokers), None, key), Some(Kind::Iam));
        assert_eq!(kind_of(None, None, key), Some(Kind::Iam));
    }
}
