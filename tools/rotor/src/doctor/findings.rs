//! What `rotor doctor` finds: each problem with why it matters and the
//! command that fixes it, from the secret's metadata, versions and labels,
//! its function's Lambda metadata, and its value read through the parsers the
//! functions themselves use.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use rotor_core::labels::{AWSCURRENT, AWSPENDING, Versions};
use rotor_core::{ExposeSecret, SecretString};
use serde::Serialize;

use super::lambda::{self, Function, FunctionFacts, Kind};
use crate::clients::Clients;
use crate::status::health::{self, Facts, Health};

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
    /// The commands that fix it.
    pub fix: Vec<String>,
    /// The repair `--fix` applies, when one is safe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
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
}

/// The timeout the template gives each function; less risks a step cut short.
fn recommended_timeout(kind: Kind) -> i32 {
    match kind {
        Kind::Oauth => 120,
        Kind::Scheduler => 600,
        Kind::Rds | Kind::Generic => 60,
    }
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
            anyhow::anyhow!(
                "DescribeSecret {secret_id}: {}",
                e.message()
                    .unwrap_or("the call failed; check the name, credentials and region")
            )
        })?;
    let arn = described.arn().unwrap_or(secret_id).to_owned();
    let name = described.name().unwrap_or(secret_id).to_owned();
    let tags: BTreeMap<String, String> = described
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect();
    let versions = Versions::new(
        described
            .version_ids_to_stages()
            .into_iter()
            .flatten()
            .map(|(id, labels)| (id.clone(), labels.clone())),
    );
    let time = |t: Option<&aws_sdk_secretsmanager::primitives::DateTime>| {
        t.and_then(|t| SystemTime::try_from(*t).ok())
    };
    let mut facts = Facts {
        rotation_enabled: described.rotation_enabled() == Some(true),
        function: described
            .rotation_lambda_arn()
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
        next_rotation: time(described.next_rotation_date()),
        last_rotated: time(described.last_rotated_date()),
        every_days: described
            .rotation_rules()
            .and_then(|r| r.automatically_after_days()),
        in_flight: health::in_flight(&versions),
        versions,
    };
    if let Some(flight) = &mut facts.in_flight
        && !flight.on_current
    {
        crate::status::fill_in_flight(&clients.secrets, &arn, flight).await;
    }
    let function = match &facts.function {
        Some(f) => Some(lambda::inspect(&clients.lambda, f).await),
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
    rotation_findings(&mut exam);
    let current = read(clients, &exam.arn, AWSCURRENT).await;
    let pending = match &exam.facts.in_flight {
        Some(f) if !f.on_current && f.has_value == Some(true) => {
            Some(read(clients, &exam.arn, AWSPENDING).await)
        }
        _ => None,
    };
    let found = match &exam.function {
        Some(Function::Found(f)) => f.kind,
        _ => None,
    };
    exam.kind = found.or(options.kind).or_else(|| match &current {
        Ok(Some(value)) => guess_kind(value),
        _ => None,
    });
    label_findings(&mut exam, options);
    value_findings(clients, &mut exam, &current, pending.as_ref()).await;
    exam.findings.sort_by_key(|f| std::cmp::Reverse(f.health));
    Ok(exam)
}

/// AWSCURRENT or AWSPENDING's value: `Ok(None)` when there is none.
async fn read(clients: &Clients, arn: &str, label: &str) -> Result<Option<SecretString>, String> {
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
        Err(e) => Err(format!(
            "{}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or("GetSecretValue failed")
        )),
    }
}

/// Without Lambda metadata, the value's shape says which function it is for.
fn guess_kind(value: &SecretString) -> Option<Kind> {
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(value.expose_secret()).ok()?;
    if fields.contains_key("engine") {
        Some(Kind::Rds)
    } else if fields.contains_key("client_id") && fields.contains_key("token_endpoint") {
        Some(Kind::Oauth)
    } else {
        Some(Kind::Generic)
    }
}

fn rotation_findings(exam: &mut Examination) {
    let arn = exam.arn.clone();
    if !exam.facts.rotation_enabled {
        exam.notes.push("rotation is off for this secret".into());
    }
    let Some(function_arn) = exam.facts.function.clone() else {
        if exam.facts.rotation_enabled {
            exam.findings.push(Finding {
                code: "no-function",
                health: Health::Misconfigured,
                what: "rotation is on but no rotation function is set".into(),
                why: "Secrets Manager has nothing to invoke, so every rotation fails".into(),
                fix: vec![format!(
                    "aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn FUNCTION_ARN"
                )],
                repair: None,
            });
        }
        return;
    };
    match &exam.function {
        Some(Function::Missing) => exam.findings.push(Finding {
            code: "function-missing",
            health: Health::Misconfigured,
            what: format!("the rotation function {function_arn} does not exist"),
            why: "every rotation of this secret fails before it starts (\"A previous rotation isn't complete\" follows if one was in flight)".into(),
            fix: vec![
                "deploy rotor's functions (sam deploy), then point the secret at one:".into(),
                format!(
                    "aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn FUNCTION_ARN --no-rotate-immediately"
                ),
            ],
            repair: None,
        }),
        Some(Function::Unknown(why)) => exam.findings.push(Finding {
            code: "function-unreadable",
            health: Health::Ok,
            what: format!("could not read the rotation function {function_arn}: {why}"),
            why: "doctor cannot check it exists or that Secrets Manager may invoke it".into(),
            fix: vec![
                "run doctor with lambda:GetFunctionConfiguration and lambda:GetPolicy on the function".into(),
            ],
            repair: None,
        }),
        Some(Function::Found(f)) => function_findings(&arn, f, &mut exam.findings, &mut exam.notes),
        None => {}
    }
}

fn function_findings(
    arn: &str,
    f: &FunctionFacts,
    findings: &mut Vec<Finding>,
    notes: &mut Vec<String>,
) {
    let name = f.arn.rsplit(':').next().unwrap_or(&f.arn).to_owned();
    if f.invocable == Some(false) {
        findings.push(Finding {
            code: "not-invocable",
            health: Health::Misconfigured,
            what: format!("Secrets Manager may not invoke {name}"),
            why: "its resource policy has no Allow for secretsmanager.amazonaws.com, so rotations fail with AccessDenied".into(),
            fix: vec![format!(
                "aws lambda add-permission --function-name {} --statement-id SecretsManagerInvoke --action lambda:InvokeFunction --principal secretsmanager.amazonaws.com",
                f.arn
            )],
            repair: None,
        });
    }
    let Some(kind) = f.kind else {
        notes.push(format!(
            "{name} is not one of rotor's functions (or was deployed without the template's description)"
        ));
        return;
    };
    if kind == Kind::Scheduler {
        findings.push(Finding {
            code: "scheduler-as-rotation",
            health: Health::Misconfigured,
            what: format!("{name} is rotation-scheduler, not a rotation function"),
            why: "the scheduler starts rotations; it cannot run a rotation's four steps".into(),
            fix: vec![format!(
                "aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn ROTATION_FUNCTION_ARN --no-rotate-immediately"
            )],
            repair: None,
        });
        return;
    }
    if let Some(timeout) = f.timeout
        && timeout < recommended_timeout(kind)
    {
        findings.push(Finding {
            code: "short-timeout",
            health: Health::Ok,
            what: format!(
                "{name} may run {timeout} s; {} gets {} s in the template",
                kind.name(),
                recommended_timeout(kind)
            ),
            why: "a step cut short by the timeout leaves the rotation in flight until the next attempt".into(),
            fix: vec![format!(
                "aws lambda update-function-configuration --function-name {} --timeout {}",
                f.arn,
                recommended_timeout(kind)
            )],
            repair: None,
        });
    }
    let lookup = |var: &str| f.env.get(var).cloned();
    let settings = match kind {
        Kind::Rds => rds_rotation::Config::from_lookup(lookup).map(|config| {
            notes.push(format!(
                "{name} is rds-rotation, strategy {}",
                match config.strategy() {
                    rds_rotation::Strategy::Single => "single",
                    rds_rotation::Strategy::Alternating => "alternating",
                }
            ));
        }),
        Kind::Oauth => oauth_rotation::Config::from_lookup(lookup)
            .map(|_| notes.push(format!("{name} is oauth-rotation"))),
        Kind::Generic => generic_rotation::settings::Defaults::from_lookup(lookup)
            .map(|_| notes.push(format!("{name} is generic-rotation")))
            .map_err(|e| e.to_string()),
        Kind::Scheduler => Ok(()),
    };
    if let Err(problem) = settings {
        findings.push(Finding {
            code: "function-settings",
            health: Health::Misconfigured,
            what: format!("{name}'s settings are invalid: {problem}"),
            why: "the function refuses every step of every secret until they are fixed".into(),
            fix: vec![format!(
                "fix the variable in the stack's parameters and redeploy (or aws lambda update-function-configuration --function-name {} --environment ...)",
                f.arn
            )],
            repair: None,
        });
    }
}

fn label_findings(exam: &mut Examination, options: &Options) {
    let arn = exam.arn.clone();
    if exam.facts.versions.current().is_none() {
        exam.findings.push(Finding {
            code: "no-current",
            health: Health::Misconfigured,
            what: "no version is AWSCURRENT".into(),
            why: "readers of the secret get nothing, and a rotation has nothing to start from".into(),
            fix: vec![format!(
                "aws secretsmanager put-secret-value --secret-id {arn} --secret-string file://value.json"
            )],
            repair: None,
        });
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
        exam.findings.push(Finding {
            code: "pending-on-current",
            health: Health::Stuck,
            what: format!("AWSPENDING is still on version {version}, which is AWSCURRENT"),
            why: "a finishSecret moved AWSCURRENT and stopped before removing AWSPENDING; AWS's own functions and some tools then refuse to rotate".into(),
            fix: vec![
                format!("rotor doctor {arn} --fix"),
                format!(
                    "aws secretsmanager update-secret-version-stage --secret-id {arn} --version-stage AWSPENDING --remove-from-version-id {version}"
                ),
            ],
            repair: Some(Repair::DropStalePending { version }),
        });
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
        Some(false) => exam.findings.push(Finding {
            code: "pending-without-value",
            health,
            what: format!("version {version} has been AWSPENDING{age_text} without a value"),
            why: "createSecret never stored a new credential; until the label goes, Secrets Manager answers every rotation with \"A previous rotation isn't complete\"".into(),
            fix: vec![
                format!("rotor doctor {arn} --fix   (cancels it: nothing was made, so nothing is lost)"),
                format!(
                    "aws secretsmanager update-secret-version-stage --secret-id {arn} --version-stage AWSPENDING --remove-from-version-id {version}"
                ),
            ],
            repair: Some(Repair::Cancel { version }),
        }),
        Some(true) => exam.findings.push(Finding {
            code: "pending-with-value",
            health,
            what: format!("version {version} has been AWSPENDING{age_text} with a value"),
            why: "the new credential may already be set on the target; deleting it could strand the only one that works, so doctor only finishes the rotation with its own token".into(),
            fix: vec![format!("rotor doctor {arn} --fix   (resumes it)"), resume_by_hand],
            repair: Some(Repair::Resume { version }),
        }),
        None => exam.findings.push(Finding {
            code: "pending-unknown",
            health,
            what: format!("version {version} is AWSPENDING{age_text}; its value could not be read"),
            why: "doctor cannot tell whether a credential was made, so it changes nothing".into(),
            fix: vec![resume_by_hand],
            repair: None,
        }),
    }
}

async fn value_findings(
    clients: &Clients,
    exam: &mut Examination,
    current: &Result<Option<SecretString>, String>,
    pending: Option<&Result<Option<SecretString>, String>>,
) {
    let arn = exam.arn.clone();
    let current = match current {
        Ok(Some(value)) => value,
        Ok(None) => return,
        Err(problem) => {
            exam.findings.push(Finding {
                code: "current-unreadable",
                health: Health::Misconfigured,
                what: format!("AWSCURRENT cannot be read: {problem}"),
                why: "the rotation function reads it in every step (with its own role, which may differ from yours)".into(),
                fix: vec![
                    "grant secretsmanager:GetSecretValue on the secret, and kms:Decrypt on its key, to the function's role".into(),
                ],
                repair: None,
            });
            return;
        }
    };
    let Some(kind) = exam.kind else { return };
    let mut check = |label: &str, value: &SecretString| -> Option<String> {
        let problem = match kind {
            Kind::Rds => rds_rotation::secret::DbSecret::parse(value).err(),
            Kind::Oauth => oauth_rotation::client::Client::parse(value).err(),
            Kind::Generic | Kind::Scheduler => None,
        }?;
        exam.findings.push(Finding {
            code: if label == AWSCURRENT {
                "current-unparsable"
            } else {
                "pending-unparsable"
            },
            health: Health::Misconfigured,
            what: format!("{label}'s value is not a valid {} secret: {problem}", kind.name()),
            why: "the function refuses to rotate a value it cannot parse".into(),
            fix: vec![format!(
                "aws secretsmanager put-secret-value --secret-id {arn} --secret-string file://fixed.json{}",
                if label == AWSCURRENT { "" } else { " --version-stages AWSPENDING --client-request-token VERSION" }
            )],
            repair: None,
        });
        Some(problem)
    };
    let failed = check(AWSCURRENT, current).is_some();
    if let Some(Ok(Some(value))) = pending {
        check(AWSPENDING, value);
    }
    if failed {
        return;
    }
    match kind {
        Kind::Rds => rds_links(clients, exam, current).await,
        Kind::Generic => generic_settings(clients, exam).await,
        Kind::Oauth | Kind::Scheduler => {}
    }
}

fn env_lookup(exam: &Examination) -> impl Fn(&str) -> Option<String> + '_ {
    move |var: &str| match &exam.function {
        Some(Function::Found(f)) => f.env.get(var).cloned(),
        _ => None,
    }
}

/// The master secret of an rds secret with the alternating strategy (its
/// `masterarn`, else the deployment's MASTER_SECRET_ARN) must agree to serve
/// it (the core's rule, `rotor_core::linked`), be readable, and parse. Without
/// the function's metadata the strategy is unknown, so a `masterarn` is checked.
async fn rds_links(clients: &Clients, exam: &mut Examination, current: &SecretString) {
    use rotor_core::linked::{Deployer, Link};
    let Ok(secret) = rds_rotation::secret::DbSecret::parse(current) else {
        return;
    };
    let known = matches!(exam.function, Some(Function::Found(_)));
    let config = rds_rotation::Config::from_lookup(env_lookup(exam)).ok();
    let deployer = config
        .as_ref()
        .and_then(|c| c.master_secret().map(str::to_owned));
    let alternating = config
        .as_ref()
        .is_some_and(|c| c.strategy() == rds_rotation::Strategy::Alternating);
    if known && !alternating {
        return;
    }
    let (setting, target) = match (&secret.masterarn, &deployer) {
        (Some(named), _) => ("masterarn", named.clone()),
        (None, Some(variable)) => (rds_rotation::MASTER_SECRET_VAR, variable.clone()),
        (None, None) => {
            if alternating {
                exam.findings.push(Finding {
                    code: "master-missing",
                    health: Health::Misconfigured,
                    what: "the alternating strategy needs a master secret, and none is named".into(),
                    why: "the function cannot create or update the alternate user".into(),
                    fix: vec![
                        "add \"masterarn\" to the secret's value, or set the stack's masterSecretArn".into(),
                    ],
                    repair: None,
                });
            }
            return;
        }
    };
    let allowed: Vec<String> = deployer.into_iter().collect();
    let link = Link {
        setting,
        target: &target,
        deployer: Deployer {
            variable: rds_rotation::MASTER_SECRET_VAR,
            secrets: &allowed,
        },
    };
    let problem = match linked(clients, &exam.arn, link).await {
        Err(error) => Some(error),
        Ok(master) => rds_rotation::secret::DbSecret::parse(&master.value)
            .err()
            .map(|p| format!("the master secret {} does not parse: {p}", master.arn)),
    };
    if let Some(problem) = problem {
        exam.findings.push(Finding {
            code: "master-unreadable",
            health: Health::Misconfigured,
            what: format!("the master secret {target} cannot be used: {problem}"),
            why: "setSecret logs in with the master credentials to manage the alternate user; without them every rotation fails at that step".into(),
            fix: vec![format!(
                "the message names the fix; then grant the function's role secretsmanager:GetSecretValue on {target} (and kms:Decrypt on its key), and run rotor doctor {target} for its own state"
            )],
            repair: None,
        });
    }
}

/// generic-rotation's per-secret settings (tags over the deployment's) must
/// resolve, and a webhook's signing-key secret must agree to serve the secret
/// (or the deployer name it) and be readable.
async fn generic_settings(clients: &Clients, exam: &mut Examination) {
    use generic_rotation::settings::{Defaults, names};
    let defaults = match Defaults::from_lookup(env_lookup(exam)) {
        Ok(defaults) => defaults,
        Err(_) => return, // reported as function-settings
    };
    let settings = match defaults.resolve(&exam.arn, &exam.tags) {
        Ok(settings) => settings,
        Err(problem) => {
            exam.findings.push(Finding {
                code: "settings-invalid",
                health: Health::Misconfigured,
                what: format!("the secret's rotation settings are invalid: {problem}"),
                why: "generic-rotation refuses the secret until its rotor:* tags are fixed".into(),
                fix: vec![format!(
                    "aws secretsmanager tag-resource --secret-id {} --tags Key=TAG,Value=VALUE",
                    exam.arn
                )],
                repair: None,
            });
            return;
        }
    };
    let Some(hook) = settings.webhook else { return };
    let allowed = defaults.deployer_key_secrets();
    let link = rotor_core::linked::Link {
        setting: names::WEBHOOK_KEY_TAG,
        target: &hook.key_secret,
        deployer: rotor_core::linked::Deployer {
            variable: names::WEBHOOK_KEY_VAR,
            secrets: &allowed,
        },
    };
    if let Err(problem) = linked(clients, &exam.arn, link).await {
        exam.findings.push(Finding {
            code: "webhook-key-unreadable",
            health: Health::Misconfigured,
            what: format!(
                "the webhook's signing-key secret {} cannot be used: {problem}",
                hook.key_secret
            ),
            why: "every step that calls the webhook signs its request with that key; without it the rotation fails".into(),
            fix: vec![format!(
                "the message names the fix; then grant the function's role secretsmanager:GetSecretValue on {}",
                hook.key_secret
            )],
            repair: None,
        });
    }
}

/// Reads a secret that `arn` points at, by the core's consent rule
/// ([`rotor_core::linked::read`]); the error says why it may not be used.
async fn linked(
    clients: &Clients,
    arn: &str,
    link: rotor_core::linked::Link<'_>,
) -> Result<rotor_core::linked::LinkedSecret, String> {
    let store = rotor_core::AwsStore::new(clients.secrets.clone());
    let pointing = rotor_core::SecretStore::describe(&store, arn)
        .await
        .map_err(|e| format!("describing {arn}: {e}"))?;
    rotor_core::linked::read(&store, &pointing, link)
        .await
        .map_err(|e| e.to_string())
}

/// Whether anything needs attention.
pub fn needs_attention(exam: &Examination) -> bool {
    exam.findings.iter().any(|f| f.health != Health::Ok)
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
