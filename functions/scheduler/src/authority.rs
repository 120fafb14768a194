//! Which secrets the scheduler may rotate, and how: by the deployer's
//! configuration, never by a tag.
//!
//! Whoever may tag a secret is not whoever may configure its rotation: tagging
//! is the lower privilege. A RotateSecret that names a function points the
//! secret's rotation at that function, which then gains read and write on the
//! secret (the template grants rotor's functions access to the secrets whose
//! rotation names them). So the scheduler starts a rotation only where the
//! deployer said so ([`Authority::decide`]):
//!
//! * rotation is enabled with one of the deployment's functions
//!   (`ROTATION_FUNCTION_ARNS`, and `ROTATION_LAMBDA_ARN`): RotateSecret names
//!   no function, so the secret keeps the one it has;
//! * the secret is in the deployer's allow-list (`ROTATION_ALLOWED_SECRETS`)
//!   and has no rotation function yet (or already `ROTATION_LAMBDA_ARN`):
//!   RotateSecret names `ROTATION_LAMBDA_ARN`.
//!
//! Anything else is skipped with the reason and the deployer's fix. This
//! module never re-points a secret whose rotation names another function,
//! allow-listed or not.
//!
//! With neither `ROTATION_FUNCTION_ARNS` nor `ROTATION_LAMBDA_ARN` set, the
//! deployment names no function, so none can be re-pointed to: the scheduler
//! rotates only secrets whose rotation is enabled, each with its own function,
//! and names no function. A tag writer can then only bring forward a rotation
//! that the secret's owner configured.

use std::fmt;

/// A Lambda function's ARN, parsed:
/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
///
/// Two ARNs name the same function when partition, region, account and name
/// are equal and so is the qualifier, where no qualifier and `$LATEST` are the
/// same: Lambda runs `$LATEST` for an unqualified ARN, the same code under the
/// same permissions. A version or alias (`:7`, `:live`) is not the function
/// the deployer named: it may run other code, and the template's IAM
/// conditions compare the ARN as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionArn {
    text: String,
    partition: String,
    region: String,
    account: String,
    name: String,
    qualifier: Option<String>,
}

/// Why a text is not a Lambda function ARN (the text is a setting, never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionArnError {
    /// It does not start with `arn:`.
    #[error("{0:?} is not an ARN; give a rotation function's ARN, {FUNCTION_EXAMPLE}")]
    NotAnArn(String),
    /// It is an ARN, but not of a Lambda function.
    #[error("{0:?} is not a Lambda function ARN; give one {FUNCTION_EXAMPLE}")]
    NotAFunction(String),
}

const FUNCTION_EXAMPLE: &str =
    "such as arn:aws:lambda:us-east-1:123456789012:function:generic-rotation";

/// Why a text is neither a secret's ARN nor a secret name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowedSecretError {
    /// It starts with `arn:` but is not a secret's ARN.
    #[error(
        "{0:?} is not a secret's ARN; give the full ARN, such as arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app-AbCdEf, or the secret's exact name"
    )]
    NotASecretArn(String),
    /// It holds characters a secret name cannot, or is empty or too long.
    #[error(
        "{0:?} is neither a secret's ARN nor a secret name (1 to 512 of the letters, digits and /_+=.@-)"
    )]
    NotAName(String),
}

impl FunctionArn {
    /// Parses a Lambda function ARN; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<FunctionArn, FunctionArnError> {
        let text = text.trim();
        let parts: Vec<&str> = text.split(':').collect();
        if parts.first() != Some(&"arn") {
            return Err(FunctionArnError::NotAnArn(text.to_owned()));
        }
        let (partition, service, region, account, kind, name, qualifier) = match parts[..] {
            [_, p, s, r, a, k, n] => (p, s, r, a, k, n, None),
            [_, p, s, r, a, k, n, q] => (p, s, r, a, k, n, Some(q)),
            _ => {
                return Err(FunctionArnError::NotAFunction(text.to_owned()));
            }
        };
        let word = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let valid = !partition.is_empty()
            && service == "lambda"
            && word(region, 64)
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && kind == "function"
            && word(name, 64)
            && qualifier.is_none_or(|q| q == "$LATEST" || word(q, 128));
        if !valid {
            return Err(FunctionArnError::NotAFunction(text.to_owned()));
        }
        Ok(FunctionArn {
            text: text.to_owned(),
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
            qualifier: qualifier.filter(|q| *q != "$LATEST").map(str::to_owned),
        })
    }

    /// The ARN as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether both name the same function (see the type's documentation).
    pub fn same_function(&self, other: &FunctionArn) -> bool {
        (
            &self.partition,
            &self.region,
            &self.account,
            &self.name,
            &self.qualifier,
        ) == (
            &other.partition,
            &other.region,
            &other.account,
            &other.name,
            &other.qualifier,
        )
    }
}

impl fmt::Display for FunctionArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A secret in `ROTATION_ALLOWED_SECRETS`: its full ARN, or its exact name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedSecret {
    /// The full ARN, as DescribeSecret shows it (with the six-character suffix).
    Arn(String),
    /// The exact name. Weaker than an ARN: a secret deleted and created again
    /// under the same name, by whoever may create it, matches too.
    Name(String),
}

impl AllowedSecret {
    /// Parses one entry; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<AllowedSecret, AllowedSecretError> {
        let text = text.trim();
        if text.starts_with("arn:") {
            let parts: Vec<&str> = text.splitn(7, ':').collect();
            let valid = match parts[..] {
                [_, partition, service, region, account, kind, name] => {
                    !partition.is_empty()
                        && service == "secretsmanager"
                        && !region.is_empty()
                        && account.len() == 12
                        && account.bytes().all(|b| b.is_ascii_digit())
                        && kind == "secret"
                        && !name.is_empty()
                }
                _ => false,
            };
            return if valid {
                Ok(AllowedSecret::Arn(text.to_owned()))
            } else {
                Err(AllowedSecretError::NotASecretArn(text.to_owned()))
            };
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
        if text.is_empty() || text.len() > 512 || !text.chars().all(allowed) {
            return Err(AllowedSecretError::NotAName(text.to_owned()));
        }
        Ok(AllowedSecret::Name(text.to_owned()))
    }

    fn matches(&self, arn: &str, name: &str) -> bool {
        match self {
            AllowedSecret::Arn(allowed) => allowed == arn,
            AllowedSecret::Name(allowed) => allowed == name,
        }
    }
}

/// The deployer's settings about rotation functions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authority {
    /// `ROTATION_FUNCTION_ARNS`: the deployment's rotation functions.
    pub functions: Vec<FunctionArn>,
    /// `ROTATION_LAMBDA_ARN`: the function given to allow-listed secrets that
    /// have none; one of the deployment's functions too.
    pub assign: Option<FunctionArn>,
    /// `ROTATION_ALLOWED_SECRETS`: the secrets that may be given `assign`.
    pub allowed: Vec<AllowedSecret>,
}

/// How to call RotateSecret for a secret the scheduler may rotate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Name no function: the secret's own rotation runs.
    ItsOwnFunction,
    /// Name this function (`ROTATION_LAMBDA_ARN`, for an allow-listed secret).
    Assign(FunctionArn),
}

impl Rotation {
    /// The RotationLambdaARN to send, if any.
    pub fn function(&self) -> Option<&str> {
        match self {
            Rotation::ItsOwnFunction => None,
            Rotation::Assign(function) => Some(function.as_str()),
        }
    }
}

/// Why a secret may not be rotated by the scheduler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Rotation is not enabled, and the deployer did not allow-list the secret.
    NotConfigured {
        /// The function its rotation names while turned off, if any.
        function: Option<String>,
    },
    /// Rotation names a function that is not the deployment's (or, for an
    /// allow-listed secret, not `ROTATION_LAMBDA_ARN`), or no function.
    ForeignFunction {
        /// The function, or `None` for rotation with no Lambda function.
        function: Option<String>,
    },
}

impl Authority {
    /// Whether the deployment names any function.
    pub fn names_functions(&self) -> bool {
        !self.functions.is_empty() || self.assign.is_some()
    }

    /// The deployment's functions, for messages: `a, b`, or a phrase saying none is set.
    pub fn describe_functions(&self) -> String {
        let all: Vec<&str> = self
            .functions
            .iter()
            .chain(&self.assign)
            .map(FunctionArn::as_str)
            .collect();
        if all.is_empty() {
            "none: ROTATION_FUNCTION_ARNS and ROTATION_LAMBDA_ARN are not set".to_owned()
        } else {
            all.join(", ")
        }
    }

    fn is_deployment_function(&self, function: &FunctionArn) -> bool {
        self.functions
            .iter()
            .chain(&self.assign)
            .any(|f| f.same_function(function))
    }

    /// Whether the deployer allow-listed this secret.
    pub fn allows(&self, arn: &str, name: &str) -> bool {
        self.allowed.iter().any(|a| a.matches(arn, name))
    }

    /// Decides from the secret's rotation settings (DescribeSecret's
    /// RotationEnabled and RotationLambdaARN) whether and how the scheduler
    /// may rotate it.
    pub fn decide(
        &self,
        arn: &str,
        name: &str,
        enabled: bool,
        function: Option<&str>,
    ) -> Result<Rotation, Refusal> {
        let function = function.map(str::trim).filter(|f| !f.is_empty());
        let parsed = function.and_then(|f| FunctionArn::parse(f).ok());
        let refuse = |function: Option<&str>| Refusal::ForeignFunction {
            function: function.map(str::to_owned),
        };
        if enabled {
            if !self.names_functions() {
                return Ok(Rotation::ItsOwnFunction);
            }
            return match &parsed {
                Some(f) if self.is_deployment_function(f) => Ok(Rotation::ItsOwnFunction),
                _ => Err(refuse(function)),
            };
        }
        match (&self.assign, function) {
            (Some(assign), None) if self.allows(arn, name) => Ok(Rotation::Assign(assign.clone())),
            (Some(assign), Some(_))
                if self.allows(arn, name)
                    && parsed.as_ref().is_some_and(|f| f.same_function(assign)) =>
            {
                Ok(Rotation::Assign(assign.clone()))
            }
            (_, Some(_)) if self.allows(arn, name) => Err(refuse(function)),
            _ => Err(Refusal::NotConfigured {
                function: function.map(str::to_owned),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENERIC: &str = "arn:aws:lambda:us-east-1:123456789012:function:generic-rotation";
    const RDS: &str = "arn:aws:lambda:us-east-1:123456789012:function:rds-rotation";
    const OTHER: &str = "arn:aws:lambda:us-east-1:123456789012:function:team-b";
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf";

    fn arn(text: &str) -> FunctionArn {
        FunctionArn::parse(text).unwrap()
    }

    fn authority(allowed: &[&str]) -> Authority {
        Authority {
            functions: vec![arn(GENERIC)],
            assign: Some(arn(RDS)),
            allowed: allowed
                .iter()
                .map(|a| AllowedSecret::parse(a).unwrap())
                .collect(),
        }
    }

    #[test]
    fn function_arns_are_parsed_and_compared_by_part() {
        let plain = arn(GENERIC);
        assert!(plain.same_function(&arn(&format!("{GENERIC}:$LATEST"))));
        assert!(!plain.same_function(&arn(&format!("{GENERIC}:7"))));
        assert!(!plain.same_function(&arn(&format!("{GENERIC}:live"))));
        assert!(arn(&format!("{GENERIC}:live")).same_function(&arn(&format!("{GENERIC}:live"))));
        assert!(!plain.same_function(&arn(
            "arn:aws:lambda:eu-west-1:123456789012:function:generic-rotation"
        )));
        assert!(!plain.same_function(&arn(
            "arn:aws:lambda:us-east-1:210987654321:function:generic-rotation"
        )));
        assert!(!plain.same_function(&arn(
            "arn:aws-cn:lambda:us-east-1:123456789012:function:generic-rotation"
        )));
        assert!(!plain.same_function(&arn(
            "arn:aws:lambda:us-east-1:123456789012:function:Generic-rotation"
        )));
        assert_eq!(arn(&format!(" {GENERIC} ")).as_str(), GENERIC);
        for bad in [
            "generic-rotation",
            "arn:aws:lambda:us-east-1:123456789012:function:",
            "arn:aws:lambda:us-east-1:123456789012:layer:x",
            "arn:aws:secretsmanager:us-east-1:123456789012:function:x",
            "arn:aws:lambda:us-east-1:1234:function:x",
            "arn:aws:lambda:us-east-1:123456789012:function:x:1:2",
            "arn:aws:lambda:us-east-1:123456789012:function:a b",
            "arn:aws:lambda:us-east-1:123456789012:function:x:",
        ] {
            let error = FunctionArn::parse(bad).unwrap_err().to_string();
            assert!(error.contains("ARN"), "{bad}: {error}");
        }
    }

    #[test]
    fn allowed_secrets_are_full_arns_or_exact_names() {
        assert_eq!(
            AllowedSecret::parse(SECRET).unwrap(),
            AllowedSecret::Arn(SECRET.into())
        );
        assert_eq!(
            AllowedSecret::parse(" prod/app ").unwrap(),
            AllowedSecret::Name("prod/app".into())
        );
        for bad in [
            "",
            "prod app",
            "arn:aws:lambda:us-east-1:123456789012:function:x",
            "arn:aws:secretsmanager:us-east-1:1:secret:x",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
        ] {
            assert!(AllowedSecret::parse(bad).is_err(), "{bad}");
        }
        let a = authority(&["prod/app", SECRET]);
        assert!(a.allows("arn:other", "prod/app"));
        assert!(a.allows(SECRET, "app"));
        assert!(!a.allows("arn:other", "prod/app-copy"));
        assert!(!a.allows("arn:other", "prod/ap"));
        assert!(!a.allows(&SECRET[..SECRET.len() - 7], "x"));
    }

    #[test]
    fn rotation_enabled_with_a_deployment_function_keeps_it() {
        let a = authority(&[]);
        for function in [GENERIC, RDS, &format!("{GENERIC}:$LATEST")] {
            assert_eq!(
                a.decide(SECRET, "app", true, Some(function)),
                Ok(Rotation::ItsOwnFunction),
                "{function}"
            );
        }
    }

    #[test]
    fn another_function_is_never_re_pointed_even_when_allow_listed() {
        for allowed in [&[][..], &["app"][..]] {
            let a = authority(allowed);
            for enabled in [true, false] {
                for function in [OTHER, &format!("{GENERIC}:7"), "not an arn"] {
                    let decision = a.decide(SECRET, "app", enabled, Some(function));
                    let expected = if enabled || !allowed.is_empty() {
                        Refusal::ForeignFunction {
                            function: Some(function.to_owned()),
                        }
                    } else {
                        Refusal::NotConfigured {
                            function: Some(function.to_owned()),
                        }
                    };
                    assert_eq!(decision, Err(expected), "{allowed:?} {enabled} {function}");
                }
            }
        }
        // Allow-listed and turned off, with another deployment function: still
        // not re-pointed to ROTATION_LAMBDA_ARN.
        let a = authority(&["app"]);
        assert!(matches!(
            a.decide(SECRET, "app", false, Some(GENERIC)),
            Err(Refusal::ForeignFunction { .. })
        ));
        // Enabled with no Lambda function (rotation managed by a service).
        assert_eq!(
            a.decide(SECRET, "app", true, None),
            Err(Refusal::ForeignFunction { function: None })
        );
    }

    #[test]
    fn only_allow_listed_secrets_without_rotation_are_given_the_function() {
        let a = authority(&["app"]);
        assert_eq!(
            a.decide(SECRET, "app", false, None),
            Ok(Rotation::Assign(arn(RDS)))
        );
        assert_eq!(
            a.decide(SECRET, "app", false, Some(&format!("{RDS}:$LATEST"))),
            Ok(Rotation::Assign(arn(RDS)))
        );
        assert_eq!(
            a.decide(SECRET, "app", false, Some("")),
            Ok(Rotation::Assign(arn(RDS)))
        );
        assert_eq!(
            a.decide(SECRET, "other", false, None),
            Err(Refusal::NotConfigured { function: None })
        );
        // Turned off with a deployment function, not allow-listed: not started.
        assert_eq!(
            a.decide(SECRET, "other", false, Some(GENERIC)),
            Err(Refusal::NotConfigured {
                function: Some(GENERIC.into())
            })
        );
    }

    #[test]
    fn without_deployment_functions_only_enabled_rotation_runs() {
        let a = Authority::default();
        assert!(!a.names_functions());
        assert_eq!(
            a.decide(SECRET, "app", true, Some(OTHER)),
            Ok(Rotation::ItsOwnFunction)
        );
        assert_eq!(
            a.decide(SECRET, "app", true, None),
            Ok(Rotation::ItsOwnFunction)
        );
        assert_eq!(
            a.decide(SECRET, "app", false, None),
            Err(Refusal::NotConfigured { function: None })
        );
        assert_eq!(Rotation::ItsOwnFunction.function(), None);
        assert!(a.describe_functions().contains("not set"));
    }
}
