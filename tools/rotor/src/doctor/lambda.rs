//! What a rotation function's Lambda metadata says: does it exist, may Secrets
//! Manager invoke it, which rotor function and strategy it is, its timeout.
//!
//! Which rotor function it runs comes from its identity first: the
//! description the template gives it (`rotor redis-rotation: ...`), else its
//! name (`<stack>-redis-rotation`). Without either, its settings narrow the
//! choice to the functions that read them; several functions read
//! `MASTER_SECRET_ARN` or `REVOKE_PREVIOUS`, so the value's shape decides
//! between those (doctor does, `super::findings`), never the settings alone.

use std::collections::BTreeMap;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use serde_json::Value;

/// The service principal that invokes rotation functions.
pub const SECRETS_MANAGER: &str = "secretsmanager.amazonaws.com";

/// Which of rotor's functions a Lambda function runs: every one the template
/// deploys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// rds-rotation.
    Rds,
    /// oauth-rotation.
    Oauth,
    /// redis-rotation (self-managed servers, ElastiCache and MemoryDB users).
    Redis,
    /// generic-rotation.
    Generic,
    /// ldap-rotation (self-managed AD and LDAP, AWS Managed Microsoft AD).
    Ldap,
    /// iam-rotation (IAM users' access keys).
    Iam,
    /// rotation-scheduler (not a rotation function).
    Scheduler,
}

impl Kind {
    /// Every function the template deploys.
    pub const ALL: [Kind; 7] = [
        Kind::Rds,
        Kind::Oauth,
        Kind::Redis,
        Kind::Generic,
        Kind::Ldap,
        Kind::Iam,
        Kind::Scheduler,
    ];

    /// The binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rds => "rds-rotation",
            Kind::Oauth => "oauth-rotation",
            Kind::Redis => "redis-rotation",
            Kind::Generic => "generic-rotation",
            Kind::Ldap => "ldap-rotation",
            Kind::Iam => "iam-rotation",
            Kind::Scheduler => "rotation-scheduler",
        }
    }

    /// Whether it runs a rotation's steps (every function but the scheduler).
    pub fn runs_rotations(self) -> bool {
        self != Kind::Scheduler
    }

    /// From a binary name, or its first word (`rds`, `redis`...).
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == text || k.name().split('-').next() == Some(text))
    }

    /// The variables this function reads (beyond those every function reads).
    fn variables(self) -> &'static [&'static str] {
        use generic_rotation::settings::names as generic;
        use redis_rotation::managed as cache;
        match self {
            Kind::Rds => &[
                rds_rotation::STRATEGY_VAR,
                rotor_core::admin::ADMIN_VAR,
                rds_rotation::config::USERNAME_LIMIT_VAR,
            ],
            Kind::Oauth => &[
                rotor_core::settings::REVOKE_VAR,
                oauth_rotation::MANAGEMENT_SECRETS_VAR,
            ],
            Kind::Redis => &[
                rotor_core::admin::ADMIN_VAR,
                rotor_core::settings::REVOKE_VAR,
                cache::MANAGED_USER_ARNS_VAR,
                cache::MAX_WAIT_VAR,
                cache::WAIT_INTERVAL_VAR,
                cache::SECRET_ARN_VAR,
                cache::USER_NAME_VAR,
            ],
            Kind::Generic => &[
                generic::FIELDS_VAR,
                generic::GENERATE_VAR,
                generic::MODE_VAR,
                generic::WEBHOOK_VAR,
                generic::WEBHOOK_KEY_VAR,
                generic::VALIDATION_WINDOW_VAR,
                generic::WEBHOOK_PREFIXES_VAR,
                generic::KEY_ID_FIELD_VAR,
                generic::ISSUER_SENDS_CURRENT_VAR,
                rotor_core::settings::REVOKE_VAR,
            ],
            Kind::Ldap => &[
                rotor_core::admin::ADMIN_VAR,
                ldap_rotation::secret::KEY_VARS[0],
                ldap_rotation::secret::KEY_VARS[1],
                ldap_rotation::secret::KEY_VARS[2],
            ],
            Kind::Iam => &[
                iam_rotation::settings::USER_ARNS_VAR,
                iam_rotation::settings::TRUST_ALL_WRITERS_VAR,
                rotor_core::settings::REVOKE_VAR,
                iam_rotation::settings::REVOKE_ACTION_VAR,
            ],
            Kind::Scheduler => &[
                "TAG_FILTER",
                "POLICY_TAG",
                "DEFAULT_POLICY",
                "MAX_ROTATIONS_PER_SECRET_PER_HOUR",
                "MAX_CONCURRENCY",
                "RATE_PER_SECOND",
                "ROTATION_LAMBDA_ARN",
            ],
        }
    }

    /// The timeout the template gives the function; less risks a step cut short.
    pub fn recommended_timeout(self) -> i32 {
        match self {
            Kind::Oauth => 120,
            Kind::Scheduler => 600,
            Kind::Rds | Kind::Redis | Kind::Generic | Kind::Ldap | Kind::Iam => 60,
        }
    }
}

/// A function's settings, read by `kind`'s own parser: what they say (for a
/// note), or why the function refuses every step until they are fixed.
pub fn read_settings(kind: Kind, env: &BTreeMap<String, String>) -> Result<String, String> {
    let lookup = |var: &str| env.get(var).cloned();
    match kind {
        Kind::Rds => rds_rotation::Config::from_lookup(lookup)
            .map(|config| {
                format!(
                    "rds-rotation, strategy {}",
                    match config.strategy() {
                        rds_rotation::Strategy::Single => "single",
                        rds_rotation::Strategy::Alternating => "alternating",
                    }
                )
            })
            .map_err(|e| e.to_string()),
        Kind::Oauth => oauth_rotation::Config::from_lookup(lookup)
            .map(|_| kind.name().to_owned())
            .map_err(|e| e.to_string()),
        Kind::Redis => redis_rotation::Config::from_lookup(lookup)
            .map(|_| kind.name().to_owned())
            .map_err(|e| e.to_string()),
        Kind::Generic => generic_rotation::settings::Defaults::from_lookup(lookup)
            .map(|_| kind.name().to_owned())
            .map_err(|e| e.to_string()),
        Kind::Ldap => ldap_rotation::Config::from_lookup(lookup)
            .map(|_| kind.name().to_owned())
            .map_err(|e| e.to_string()),
        Kind::Iam => iam_rotation::settings::Settings::from_lookup(lookup)
            .map(|_| kind.name().to_owned())
            .map_err(|e| e.to_string()),
        Kind::Scheduler => Ok(kind.name().to_owned()),
    }
}

/// What GetFunctionConfiguration and GetPolicy told.
#[derive(Clone, Debug)]
pub enum Function {
    /// The function does not exist.
    Missing,
    /// Lambda would not tell (access denied, throttled, unreachable).
    Unknown(String),
    /// The function exists.
    Found(Box<FunctionFacts>),
}

/// A function that exists.
#[derive(Clone, Debug)]
pub struct FunctionFacts {
    /// Its ARN.
    pub arn: String,
    /// Which rotor function, when its description, its name or its settings
    /// say so.
    pub kind: Option<Kind>,
    /// Without `kind`: the rotor functions whose settings these are, when
    /// several read them (`MASTER_SECRET_ARN`: rds or redis); the value's
    /// shape decides.
    pub candidates: Vec<Kind>,
    /// Its environment (settings only; rotor's functions keep no secret there).
    pub env: BTreeMap<String, String>,
    /// Its timeout in seconds.
    pub timeout: Option<i32>,
    /// Whether its resource policy lets Secrets Manager invoke it; `None` when
    /// the policy could not be read.
    pub invocable: Option<bool>,
}

/// Reads a function's configuration and policy (two calls) from Lambda at
/// `endpoint` (AWS's when `None`).
pub async fn inspect(
    client: &aws_sdk_lambda::Client,
    endpoint: Option<&str>,
    arn: &str,
) -> Function {
    let config = match client
        .get_function_configuration()
        .function_name(arn)
        .send()
        .await
    {
        Ok(config) => config,
        Err(e) if e.code() == Some("ResourceNotFoundException") => return Function::Missing,
        Err(e) => {
            let call = crate::endpoint::Call {
                service: crate::endpoint::Service::Lambda,
                endpoint,
                operation: "GetFunctionConfiguration",
                subject: Some(arn),
            };
            return Function::Unknown(crate::endpoint::explain(&call, &e).to_string());
        }
    };
    let env: BTreeMap<String, String> = config
        .environment()
        .and_then(|e| e.variables())
        .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let identity = kind_from_identity(config.description(), config.function_name());
    let candidates = match identity {
        Some(kind) => vec![kind],
        None => kinds_from_env(&env),
    };
    let kind = match candidates.as_slice() {
        [only] => Some(*only),
        _ => None,
    };
    let invocable = match client.get_policy().function_name(arn).send().await {
        Ok(policy) => Some(policy.policy().is_some_and(allows_secrets_manager)),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Some(false),
        Err(_) => None,
    };
    Function::Found(Box::new(FunctionFacts {
        arn: config.function_arn().unwrap_or(arn).to_owned(),
        kind,
        candidates: if kind.is_some() {
            Vec::new()
        } else {
            candidates
        },
        env,
        timeout: config.timeout(),
        invocable,
    }))
}

/// The template's description (`rotor <binary>: ...`), else the function's
/// name: the binary's, or the template's `<stack>-<binary>`.
fn kind_from_identity(description: Option<&str>, name: Option<&str>) -> Option<Kind> {
    let described = description
        .and_then(|d| d.strip_prefix("rotor "))
        .and_then(|d| d.split([':', ' ']).next())
        .and_then(Kind::parse);
    described.or_else(|| {
        let name = name?;
        Kind::ALL.into_iter().find(|k| {
            name == k.name()
                || name
                    .strip_suffix(k.name())
                    .is_some_and(|stack| stack.ends_with('-'))
        })
    })
}

/// A function deployed without the template's description or name: the
/// rotor functions that read every rotor setting it has (one, several, or
/// none when they fit no single function).
fn kinds_from_env(env: &BTreeMap<String, String>) -> Vec<Kind> {
    let mut candidates = Kind::ALL.to_vec();
    let mut any = false;
    for var in env.keys() {
        let readers: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| k.variables().contains(&var.as_str()))
            .collect();
        if !readers.is_empty() {
            any = true;
            candidates.retain(|k| readers.contains(k));
        }
    }
    if any { candidates } else { Vec::new() }
}

/// Whether a resource policy has an Allow statement for Secrets Manager to
/// invoke the function.
pub fn allows_secrets_manager(policy: &str) -> bool {
    let Ok(policy) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let statements = match &policy["Statement"] {
        Value::Array(items) => items.clone(),
        single @ Value::Object(_) => vec![single.clone()],
        _ => return false,
    };
    let matches = |value: &Value, want: &dyn Fn(&str) -> bool| match value {
        Value::String(s) => want(s),
        Value::Array(items) => items.iter().filter_map(Value::as_str).any(want),
        _ => false,
    };
    statements.iter().any(|s| {
        s["Effect"] == "Allow"
            && matches(&s["Action"], &|a| {
                a == "lambda:InvokeFunction" || a == "lambda:*" || a == "*"
            })
            && (matches(&s["Principal"]["Service"], &|p| p == SECRETS_MANAGER)
                || matches(&s["Principal"], &|p| p == "*"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resource_policies() {
        let allow = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"secretsmanager.amazonaws.com"},"Action":"lambda:InvokeFunction"}]}"#;
        assert!(allows_secrets_manager(allow));
        let other = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"lambda:InvokeFunction"}]}"#;
        assert!(!allows_secrets_manager(other));
        let deny = allow.replace("Allow", "Deny");
        assert!(!allows_secrets_manager(&deny));
        assert!(!allows_secrets_manager("not json"));
    }

    #[test]
    fn names_rotor_functions() {
        assert_eq!(Kind::parse("rds-rotation"), Some(Kind::Rds));
        assert_eq!(Kind::parse("oauth"), Some(Kind::Oauth));
        assert_eq!(Kind::parse("redis"), Some(Kind::Redis));
        assert_eq!(Kind::parse("other"), None);
    }

    #[test]
    fn identity_before_settings() {
        let described = Some("rotor redis-rotation: Redis and Valkey ACL users");
        assert_eq!(kind_from_identity(described, Some("x")), Some(Kind::Redis));
        assert_eq!(
            kind_from_identity(Some("caches"), Some("prod-redis-rotation")),
            Some(Kind::Redis)
        );
        assert_eq!(
            kind_from_identity(None, Some("rotation-scheduler")),
            Some(Kind::Scheduler)
        );
        assert_eq!(kind_from_identity(None, Some("myredis-rotationx")), None);
        assert_eq!(kind_from_identity(None, Some("xredis-rotation")), None);
    }

    #[test]
    fn settings_narrow_the_choice() {
        let env = |vars: &[&str]| -> BTreeMap<String, String> {
            vars.iter()
                .map(|v| (v.to_string(), String::new()))
                .collect()
        };
        assert_eq!(
            kinds_from_env(&env(&["MASTER_SECRET_ARN"])),
            [Kind::Rds, Kind::Redis, Kind::Ldap]
        );
        assert_eq!(
            kinds_from_env(&env(&["MASTER_SECRET_ARN", "DICT_KEY_USERNAME"])),
            [Kind::Ldap]
        );
        // generic-rotation reads it too (its webhook's and issuer's revoke).
        assert_eq!(
            kinds_from_env(&env(&["REVOKE_PREVIOUS"])),
            [Kind::Oauth, Kind::Redis, Kind::Generic, Kind::Iam]
        );
        assert_eq!(
            kinds_from_env(&env(&["IAM_USER_ARNS", "REVOKE_PREVIOUS"])),
            [Kind::Iam]
        );
        assert_eq!(
            kinds_from_env(&env(&["MASTER_SECRET_ARN", "REVOKE_PREVIOUS"])),
            [Kind::Redis]
        );
        assert_eq!(
            kinds_from_env(&env(&["ROTATION_STRATEGY", "MASTER_SECRET_ARN"])),
            [Kind::Rds]
        );
        assert_eq!(kinds_from_env(&env(&["MANAGED_USER_ARNS"])), [Kind::Redis]);
        assert_eq!(kinds_from_env(&env(&["ROTOR_FIELDS"])), [Kind::Generic]);
        assert_eq!(kinds_from_env(&env(&["PASSWORD_LENGTH"])), []);
        assert_eq!(
            kinds_from_env(&env(&["ROTOR_FIELDS", "MANAGED_USER_ARNS"])),
            []
        );
    }
}
