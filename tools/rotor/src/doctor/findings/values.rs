//! Findings from the value, read through the function's own parser, and the
//! secrets it points at (rds master, webhook signing key), read by the core's
//! consent rule.

use super::*;

pub(super) async fn value_findings(
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
            Kind::Rds => rds_rotation::secret::DbSecret::parse(value)
                .err()
                .map(|e| e.to_string()),
            Kind::Oauth => oauth_rotation::client::Client::parse(value)
                .err()
                .map(|e| e.to_string()),
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

pub(super) fn env_lookup(exam: &Examination) -> impl Fn(&str) -> Option<String> + '_ {
    move |var: &str| match &exam.function {
        Some(Function::Found(f)) => f.env.get(var).cloned(),
        _ => None,
    }
}

/// The master secret of an rds secret with the alternating strategy (its
/// `masterarn`, else the deployment's MASTER_SECRET_ARN) must agree to serve
/// it (the core's rule, `rotor_core::linked`), be readable, and parse. Without
/// the function's metadata the strategy is unknown, so a `masterarn` is checked.
pub(super) async fn rds_links(clients: &Clients, exam: &mut Examination, current: &SecretString) {
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
pub(super) async fn generic_settings(clients: &Clients, exam: &mut Examination) {
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
pub(super) async fn linked(
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
