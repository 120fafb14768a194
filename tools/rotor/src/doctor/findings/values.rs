//! Findings from the value, read through the function's own parser, and the
//! secrets it points at (an rds master, a Redis admin, a webhook signing
//! key), read by the core's consent rule.

use rotor_core::admin::{ADMIN_VAR, Names};

use super::*;

/// How a function reads its secrets, for the one secret examined: the
/// per-secret settings generic-rotation resolves from its tags.
enum Reader {
    Rds,
    Oauth,
    Redis,
    Ldap(ldap_rotation::secret::ManagedKeys),
    Iam,
    Generic(Box<generic_rotation::settings::Settings>),
}

impl Reader {
    /// Why the function refuses the `label` value, in its own words.
    fn problem(&self, arn: &str, label: &str, value: &SecretString) -> Option<String> {
        match self {
            Reader::Rds => rds_rotation::secret::DbSecret::parse(value)
                .err()
                .map(|e| e.to_string()),
            Reader::Oauth => oauth_rotation::secret::ClientSecret::parse(value)
                .err()
                .map(|e| e.to_string()),
            Reader::Redis => redis_problem(value),
            Reader::Ldap(keys) => ldap_rotation::secret::AccountSecret::parse_with(value, keys)
                .err()
                .map(|e| e.0),
            Reader::Iam => iam_rotation::secret::KeySecret::parse(value)
                .err()
                .map(|e| e.0),
            Reader::Generic(settings) => {
                match generic_rotation::check_value(arn, label, value, settings) {
                    Ok(()) => None,
                    Err(rotor_core::Error::InvalidSecretValue { problem, .. }) => Some(problem),
                    Err(other) => Some(other.to_string()),
                }
            }
        }
    }
}

/// redis-rotation's own choice: a value with `user_arn` is an ElastiCache or
/// MemoryDB user's, any other a self-managed server's user.
fn redis_problem(value: &SecretString) -> Option<String> {
    use redis_rotation::secret::UserSecret;
    <UserSecret as rotor_core::SecretValue>::parse(value)
        .err()
        .map(|e| e.to_string())
}

pub(super) async fn value_findings(
    clients: &Clients,
    options: &Options,
    exam: &mut Examination,
    current: &Result<Option<SecretString>, Unreadable>,
    pending: Option<&Result<Option<SecretString>, Unreadable>>,
) {
    let arn = exam.arn.clone();
    let current = match current {
        Ok(Some(value)) => value,
        Ok(None) => return,
        Err(problem) => {
            exam.findings.push(Finding::new(
                "current-unreadable",
                Health::Misconfigured,
                format!("AWSCURRENT cannot be read: {problem}"),
                "the rotation function reads it in every step (with its own role, which may differ from yours)",
                vec![
                    "grant secretsmanager:GetSecretValue on the secret, and kms:Decrypt on its key, to the function's role".into(),
                ],
            ));
            return;
        }
    };
    let Some(kind) = exam.kind else { return };
    let reader = match kind {
        Kind::Rds => Reader::Rds,
        Kind::Oauth => Reader::Oauth,
        Kind::Redis => Reader::Redis,
        Kind::Ldap => Reader::Ldap(ldap_rotation::secret::ManagedKeys::from_lookup(env_lookup(
            exam,
        ))),
        Kind::Iam => Reader::Iam,
        Kind::Generic => match generic_settings(options, exam) {
            Some(settings) => Reader::Generic(Box::new(settings)),
            None => return,
        },
        Kind::Scheduler => return,
    };
    let pending_version = exam.facts.in_flight.as_ref().map(|f| f.version.clone());
    let mut check = |label: &str, value: &SecretString| -> bool {
        let Some(problem) = reader.problem(&arn, label, value) else {
            return true;
        };
        exam.findings.push(Finding::new(
            if label == AWSCURRENT {
                "current-unparsable"
            } else {
                "pending-unparsable"
            },
            Health::Misconfigured,
            format!(
                "{label}'s value is not a valid {} secret: {problem}",
                kind.name()
            ),
            "the function refuses to rotate a value it cannot parse",
            vec![put_fixed(options, &arn, label, pending_version.as_deref())],
        ));
        false
    };
    let parsed = check(AWSCURRENT, current);
    if let Some(Ok(Some(value))) = pending {
        check(AWSPENDING, value);
    }
    if !parsed {
        return;
    }
    match reader {
        Reader::Rds => rds_links(clients, options, exam, current).await,
        Reader::Redis => redis_links(clients, options, exam, current).await,
        Reader::Ldap(keys) => ldap_links(clients, options, exam, current, &keys).await,
        Reader::Generic(settings) => webhook_key(clients, exam, &settings).await,
        Reader::Iam => iam_keys(clients, exam, current, pending).await,
        Reader::Oauth => {}
    }
}

/// PutSecretValue of a fixed value (`fixed.json`, which the person writes),
/// as AWSCURRENT, or under AWSPENDING with the pending version's token.
fn put_fixed(options: &Options, arn: &str, label: &str, pending: Option<&str>) -> String {
    let mut args = vec![
        "secretsmanager",
        "put-secret-value",
        "--secret-id",
        arn,
        "--secret-string",
        "file://fixed.json",
    ];
    if label != AWSCURRENT {
        args.extend([
            "--version-stages",
            AWSPENDING,
            "--client-request-token",
            pending.unwrap_or("VERSION"),
        ]);
    }
    options.commands.aws(args)
}

pub(super) fn env_lookup(exam: &Examination) -> impl Fn(&str) -> Option<String> + '_ {
    move |var: &str| match &exam.function {
        Some(Function::Found(f)) => f.env.get(var).cloned(),
        _ => None,
    }
}

/// The deployer's admin secret for secrets that name none: the function's
/// variable, when its metadata is known.
fn deployer_admin(exam: &Examination, variable: &str) -> Option<String> {
    env_lookup(exam)(variable).filter(|v| !v.trim().is_empty())
}

/// The master secret of an rds secret with the alternating strategy (its
/// `masterarn`, else the deployment's MASTER_SECRET_ARN) must agree to serve
/// it (the core's rule, `rotor_core::linked`), be readable, and parse. Without
/// the function's metadata the strategy is unknown, so a `masterarn` is checked.
pub(super) async fn rds_links(
    clients: &Clients,
    options: &Options,
    exam: &mut Examination,
    current: &SecretString,
) {
    let Ok(secret) = rds_rotation::secret::DbSecret::parse(current) else {
        return;
    };
    let known = matches!(exam.function, Some(Function::Found(_)));
    let config = rds_rotation::Config::from_lookup(env_lookup(exam)).ok();
    let alternating = config
        .as_ref()
        .is_some_and(|c| c.strategy() == rds_rotation::Strategy::Alternating);
    if known && !alternating {
        return;
    }
    let deployer = config
        .as_ref()
        .and_then(|c| c.master_secret().map(str::to_owned));
    if secret.masterarn.is_none() && deployer.is_none() {
        if alternating {
            exam.findings.push(Finding::new(
                "master-missing",
                Health::Misconfigured,
                "the alternating strategy needs a master secret, and none is named",
                "the function cannot create or update the alternate user",
                vec![
                    "add \"masterarn\" to the secret's value, or set the stack's masterSecretArn"
                        .into(),
                ],
            ));
        }
        return;
    }
    let admin = Admin {
        named: secret.masterarn.clone(),
        deployer,
        why: "setSecret logs in with the master credentials to manage the alternate user; without them every rotation fails at that step",
    };
    let arn = exam.arn.clone();
    admin_link(clients, options, exam, admin, |master| {
        let value = &master.secret.value;
        // A master secret that RDS manages holds only a user name and password.
        let admin_user = match rds_rotation::secret::DbSecret::parse(value) {
            Ok(parsed) => parsed.username,
            Err(e) if !rds_rotation::rds_api::is_credentials_only(value) => {
                return Some(format!(
                    "the master secret {} does not parse: {e}",
                    master.secret.arn
                ));
            }
            Err(_) => rds_rotation::rds_api::credentials(value)?.0,
        };
        let base = rds_rotation::secret::base_username(&secret.username);
        master
            .require_manages(&arn, &admin_user, base, Names::CaseSensitive)
            .err()
            .map(|e| e.to_string())
    })
    .await;
}

/// A self-managed Redis user's admin secret (its `masterarn`, else the
/// deployment's MASTER_SECRET_ARN), when one is named: it must agree to serve
/// the secret, be readable, and parse as redis-rotation parses it. Without
/// one the user changes its own password, which needs nothing else.
pub(super) async fn redis_links(
    clients: &Clients,
    options: &Options,
    exam: &mut Examination,
    current: &SecretString,
) {
    use redis_rotation::secret::{RedisSecret, UserSecret};
    use rotor_core::SecretValue;
    let secret = match UserSecret::parse(current) {
        Ok(UserSecret::SelfManaged(secret)) => secret,
        Ok(UserSecret::Managed(secret)) => return managed_user(exam, secret),
        Err(_) => return,
    };
    let deployer = deployer_admin(exam, ADMIN_VAR);
    if secret.masterarn.is_none() && deployer.is_none() {
        return;
    }
    let admin = Admin {
        named: secret.masterarn.clone(),
        deployer,
        why: "setSecret and finishSecret log in as the admin to add and remove the user's passwords; without it every rotation fails at setSecret",
    };
    let arn = exam.arn.clone();
    admin_link(clients, options, exam, admin, |master| {
        let parsed = match RedisSecret::parse(&master.secret.value) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Some(format!(
                    "the master secret {} does not parse: {e}",
                    master.secret.arn
                ));
            }
        };
        master
            .require_same_endpoint(&arn, &parsed.server(), &secret.server())
            .and_then(|()| {
                master.require_manages(
                    &arn,
                    &parsed.username,
                    &secret.username,
                    Names::CaseSensitive,
                )
            })
            .err()
            .map(|e| e.to_string())
    })
    .await;
}

/// A self-managed directory account's admin secret (its `masterarn`, else
/// the deployment's MASTER_SECRET_ARN), when one is named: it must agree to
/// serve the secret, be readable, parse as ldap-rotation parses it, name the
/// same directory server and may act on the account (checks that need the
/// directory itself, privileged groups and the proof bind, are setSecret's).
pub(super) async fn ldap_links(
    clients: &Clients,
    options: &Options,
    exam: &mut Examination,
    current: &SecretString,
    keys: &ldap_rotation::secret::ManagedKeys,
) {
    use ldap_rotation::secret::{AccountSecret, DirectorySecret};
    let Ok(AccountSecret::Directory(secret)) = AccountSecret::parse_with(current, keys) else {
        return;
    };
    let deployer = deployer_admin(exam, ADMIN_VAR);
    if secret.masterarn.is_none() && deployer.is_none() {
        return;
    }
    let admin = Admin {
        named: secret.masterarn.clone(),
        deployer,
        why: "setSecret binds as the admin to reset the account's password; without it every rotation fails at setSecret",
    };
    let arn = exam.arn.clone();
    admin_link(clients, options, exam, admin, |master| {
        let parsed = match DirectorySecret::parse(&master.secret.value) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Some(format!(
                    "the master secret {} does not parse: {}",
                    master.secret.arn, e.0
                ));
            }
        };
        let name = |s: &DirectorySecret| ldap_rotation::directory::account_name(s);
        master
            .require_same_endpoint(&arn, &parsed.primary().endpoint, &secret.primary().endpoint)
            .and_then(|()| {
                master.require_manages(&arn, &name(&parsed), &name(&secret), Names::CaseInsensitive)
            })
            .err()
            .map(|e| e.to_string())
    })
    .await;
}

/// An ElastiCache or MemoryDB user's secret: the deployer must list the
/// user (redis-rotation's own check, `MANAGED_USER_ARNS` and the rest), or
/// the function refuses it before anything changes. Checked only where the
/// function's settings are known.
fn managed_user(exam: &mut Examination, secret: redis_rotation::secret::ManagedSecret) {
    use redis_rotation::managed::ManagedSettings;
    exam.notes.push(format!(
        "AWSCURRENT is {} user {} ({:?}); its passwords change through the {} API",
        secret.user.service(),
        secret.user_arn,
        secret.username,
        secret.user.service()
    ));
    if !matches!(exam.function, Some(Function::Found(_))) {
        return;
    }
    let Ok(settings) = ManagedSettings::from_lookup(env_lookup(exam)) else {
        return; // reported as function-settings
    };
    if let Err(refused) = settings.authorize(&exam.arn, AWSCURRENT, &secret) {
        exam.findings.push(Finding::new(
            "managed-user-not-allowed",
            Health::Misconfigured,
            format!("the rotation function may not change this user: {refused}"),
            "redis-rotation changes only the ElastiCache and MemoryDB users its deployer lists, so every rotation of this secret fails at createSecret",
            vec![format!(
                "add {} to the stack's redisManagedUserArns (the function's {}) and redeploy, or rotate the secret with the function deployed for that user",
                secret.user_arn,
                redis_rotation::managed::MANAGED_USER_ARNS_VAR
            )],
        ));
    }
}

/// An admin secret a secret relies on: the one it names, else the deployer's.
struct Admin {
    /// The secret's own `masterarn`.
    named: Option<String>,
    /// The deployer's `MASTER_SECRET_ARN`.
    deployer: Option<String>,
    /// What fails without it.
    why: &'static str,
}

/// Reads the admin secret as the functions do (`rotor_core::admin::read`:
/// the core's consent rule) and hands it to `check`, which returns what the
/// function would refuse (a value that does not parse, another server, a
/// user the admin may not manage); a finding when any of it fails.
async fn admin_link(
    clients: &Clients,
    options: &Options,
    exam: &mut Examination,
    admin: Admin,
    check: impl Fn(&rotor_core::admin::Admin) -> Option<String>,
) {
    let Some(choice) = rotor_core::admin::choose(admin.named.as_deref(), admin.deployer.as_deref())
    else {
        return;
    };
    let target = choice.id.to_owned();
    let store = rotor_core::AwsStore::new(clients.secrets.clone());
    let read = match rotor_core::SecretStore::describe(&store, &exam.arn).await {
        Err(source) => Err(LinkError::Describe {
            arn: exam.arn.clone(),
            source,
        }),
        Ok(pointing) => rotor_core::admin::read(
            &store,
            &pointing,
            admin.named.as_deref(),
            admin.deployer.as_deref(),
        )
        .await
        .map_err(LinkError::Refused),
    };
    let problem = match read {
        Err(error) => Some(error.to_string()),
        Ok(None) => None,
        Ok(Some(master)) => check(&master),
    };
    if let Some(problem) = problem {
        exam.findings.push(Finding::new(
            "master-unreadable",
            Health::Misconfigured,
            format!("the master secret {target} cannot be used: {problem}"),
            admin.why,
            vec![
                format!(
                    "the message names the fix; then grant the function's role secretsmanager:GetSecretValue on {target} (and kms:Decrypt on its key)"
                ),
                format!(
                    "its own state: `{}`",
                    options.commands.rotor(["doctor", target.as_str()])
                ),
            ],
        ));
    }
}

/// generic-rotation's per-secret settings (tags over the deployment's), or
/// `None` after a finding when they do not resolve.
fn generic_settings(
    options: &Options,
    exam: &mut Examination,
) -> Option<generic_rotation::settings::Settings> {
    use generic_rotation::settings::Defaults;
    // Invalid defaults are reported as function-settings.
    let defaults = Defaults::from_lookup(env_lookup(exam)).ok()?;
    match defaults.resolve(&exam.arn, &exam.tags) {
        Ok(settings) => Some(settings),
        Err(problem) => {
            exam.findings.push(Finding::new(
                "settings-invalid",
                Health::Misconfigured,
                format!("the secret's rotation settings are invalid: {problem}"),
                "generic-rotation refuses the secret until its rotor:* tags are fixed",
                vec![options.commands.aws([
                    "secretsmanager",
                    "tag-resource",
                    "--secret-id",
                    &exam.arn,
                    "--tags",
                    "Key=TAG,Value=VALUE",
                ])],
            ));
            None
        }
    }
}

/// A webhook's signing-key secret must agree to serve the secret (or the
/// deployer name it) and be readable.
async fn webhook_key(
    clients: &Clients,
    exam: &mut Examination,
    settings: &generic_rotation::settings::Settings,
) {
    use generic_rotation::settings::{Defaults, names};
    let Some(hook) = &settings.webhook else {
        return;
    };
    let Ok(defaults) = Defaults::from_lookup(env_lookup(exam)) else {
        return;
    };
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
        exam.findings.push(Finding::new(
            "webhook-key-unreadable",
            Health::Misconfigured,
            format!(
                "the webhook's signing-key secret {} cannot be used: {problem}",
                hook.key_secret
            ),
            "every step that calls the webhook signs its request with that key; without it the rotation fails",
            vec![format!(
                "the message names the fix; then grant the function's role secretsmanager:GetSecretValue on {}",
                hook.key_secret
            )],
        ));
    }
}

/// Reads a secret that `arn` points at, by the core's consent rule
/// ([`rotor_core::linked::read`]); the error says why it may not be used.
pub(super) async fn linked(
    clients: &Clients,
    arn: &str,
    link: rotor_core::linked::Link<'_>,
) -> Result<rotor_core::linked::LinkedSecret, LinkError> {
    let store = rotor_core::AwsStore::new(clients.secrets.clone());
    let pointing = rotor_core::SecretStore::describe(&store, arn)
        .await
        .map_err(|source| LinkError::Describe {
            arn: arn.to_owned(),
            source,
        })?;
    rotor_core::linked::read(&store, &pointing, link)
        .await
        .map_err(LinkError::Refused)
}

/// iam-rotation's secrets: what IAM says about the user's keys, asked with
/// the caller's own credentials (`AWS_ENDPOINT_URL_IAM` where set), read-only.
pub(super) async fn iam_keys(
    clients: &Clients,
    exam: &mut Examination,
    current: &SecretString,
    pending: Option<&Result<Option<SecretString>, Unreadable>>,
) {
    use iam_rotation::doctor::KeyFinding;
    use iam_rotation::secret::KeySecret;
    let Ok(current) = KeySecret::parse(current) else {
        return;
    };
    let previous = match read(clients, &exam.arn, rotor_core::labels::AWSPREVIOUS).await {
        Ok(Some(value)) => KeySecret::parse(&value).ok(),
        _ => None,
    };
    let pending = match pending {
        Some(Ok(Some(value))) => KeySecret::parse(value).ok(),
        _ => None,
    };
    let config = rotor_core::store::aws::sdk_loader().load().await;
    let user = current.user_name.clone();
    let found = iam_rotation::doctor::inspect(
        &config,
        &current,
        previous.as_ref(),
        pending.as_ref(),
        exam.facts.every_days,
    )
    .await;
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            exam.notes.push(format!(
                "IAM user {user}'s keys were not read ({}); doctor needs iam:ListAccessKeys and iam:GetAccessKeyLastUsed on the user to report them",
                e.problem
            ));
            return;
        }
    };
    for finding in found {
        exam.findings.push(match finding {
            KeyFinding::Foreign { id, active } => Finding::new(
                "iam-key-outside-rotation",
                Health::Warning,
                format!(
                    "IAM user {user} holds access key {id} ({}), which no version of the secret holds",
                    if active { "active" } else { "inactive" }
                ),
                "it was made outside rotation; while it and AWSCURRENT's key take the user's two places, iam-rotation refuses to make a new key (it never removes a key it did not make)",
                vec![
                    format!("aws iam get-access-key-last-used --access-key-id {id}"),
                    format!("aws iam delete-access-key --user-name {user} --access-key-id {id}"),
                ],
            ),
            KeyFinding::Old { id, days } => Finding::new(
                "iam-key-old",
                Health::Warning,
                format!("AWSCURRENT's access key {id} is {days} days old, older than the rotation period"),
                "rotations have not been replacing it",
                vec![format!("aws secretsmanager rotate-secret --secret-id {}", exam.arn)],
            ),
            KeyFinding::PreviousInUse { id, at, service } => Finding::new(
                "iam-previous-key-in-use",
                Health::Warning,
                format!(
                    "AWSPREVIOUS's access key {id} was used (with {service}) {} after AWSCURRENT's key was made",
                    ago(at)
                ),
                "a consumer still uses the old key; it fails once the key is retired (REVOKE_PREVIOUS=at-finish, or the next rotation)",
                vec![format!(
                    "make the consumers read the secret again (aws secretsmanager get-secret-value --secret-id {})",
                    exam.arn
                )],
            ),
            KeyFinding::PreviousDeactivated { id } => {
                exam.notes.push(format!(
                    "AWSPREVIOUS's access key {id} is inactive (REVOKE_PREVIOUS=at-finish); the next rotation deletes it"
                ));
                continue;
            }
            _ => continue,
        });
    }
}

/// "3 hours ago", for a finding.
fn ago(at: std::time::SystemTime) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(at)
        .map_or(0, |d| d.as_secs());
    match secs {
        0..120 => format!("{secs} s ago"),
        120..7200 => format!("{} min ago", secs / 60),
        7200..172_800 => format!("{} hours ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}
