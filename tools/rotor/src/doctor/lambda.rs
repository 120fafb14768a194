//! What a rotation function's Lambda metadata says: does it exist, may Secrets
//! Manager invoke it, which rotor function and strategy it is, its timeout.

use std::collections::BTreeMap;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use serde_json::Value;

/// The service principal that invokes rotation functions.
pub const SECRETS_MANAGER: &str = "secretsmanager.amazonaws.com";

/// Which of rotor's functions a Lambda function runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// rds-rotation.
    Rds,
    /// oauth-rotation.
    Oauth,
    /// generic-rotation.
    Generic,
    /// rotation-scheduler (not a rotation function).
    Scheduler,
}

impl Kind {
    /// The binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rds => "rds-rotation",
            Kind::Oauth => "oauth-rotation",
            Kind::Generic => "generic-rotation",
            Kind::Scheduler => "rotation-scheduler",
        }
    }

    /// From a binary name.
    pub fn parse(text: &str) -> Option<Kind> {
        [Kind::Rds, Kind::Oauth, Kind::Generic, Kind::Scheduler]
            .into_iter()
            .find(|k| k.name() == text || k.name().split('-').next() == Some(text))
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
    /// Which rotor function, if it is one we recognise.
    pub kind: Option<Kind>,
    /// Its environment (settings only; rotor's functions keep no secret there).
    pub env: BTreeMap<String, String>,
    /// Its timeout in seconds.
    pub timeout: Option<i32>,
    /// Whether its resource policy lets Secrets Manager invoke it; `None` when
    /// the policy could not be read.
    pub invocable: Option<bool>,
}

/// Reads a function's configuration and policy (two calls).
pub async fn inspect(client: &aws_sdk_lambda::Client, arn: &str) -> Function {
    let config = match client
        .get_function_configuration()
        .function_name(arn)
        .send()
        .await
    {
        Ok(config) => config,
        Err(e) if e.code() == Some("ResourceNotFoundException") => return Function::Missing,
        Err(e) => {
            return Function::Unknown(format!(
                "GetFunctionConfiguration: {}",
                e.message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| aws_sdk_lambda::error::DisplayErrorContext(&e).to_string())
            ));
        }
    };
    let env: BTreeMap<String, String> = config
        .environment()
        .and_then(|e| e.variables())
        .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let kind = config
        .description()
        .and_then(|d| d.strip_prefix("rotor "))
        .and_then(|d| d.split([':', ' ']).next())
        .and_then(Kind::parse)
        .or_else(|| kind_from_env(&env));
    let invocable = match client.get_policy().function_name(arn).send().await {
        Ok(policy) => Some(policy.policy().is_some_and(allows_secrets_manager)),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Some(false),
        Err(_) => None,
    };
    Function::Found(Box::new(FunctionFacts {
        arn: config.function_arn().unwrap_or(arn).to_owned(),
        kind,
        env,
        timeout: config.timeout(),
        invocable,
    }))
}

/// A function deployed without the template's description: its settings say
/// which it is.
fn kind_from_env(env: &BTreeMap<String, String>) -> Option<Kind> {
    let has = |var: &str| env.contains_key(var);
    if has(rds_rotation::STRATEGY_VAR) || has(rds_rotation::MASTER_SECRET_VAR) {
        Some(Kind::Rds)
    } else if has("MANAGEMENT_SECRET_ARNS") || has("REVOKE_PREVIOUS") {
        Some(Kind::Oauth)
    } else if has("ROTOR_FIELDS") || has("ROTOR_MODE") || has("ROTOR_WEBHOOK_URL") {
        Some(Kind::Generic)
    } else {
        None
    }
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
        assert_eq!(Kind::parse("other"), None);
    }
}
