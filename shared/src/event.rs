//! The rotation event that Secrets Manager sends to a rotation function.
//!
//! We parse it ourselves rather than through `aws_lambda_events`, because that type
//! has no `RotationToken` (needed for cross-account rotation) and accepts only one
//! spelling of each step. Parsing never panics: anything unexpected is an
//! [`Error::InvalidEvent`] that says which field is wrong.

use std::fmt;

use serde_json::Value;

use crate::error::Error;

/// One of the four steps of a rotation, in the order Secrets Manager runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Generate the new value and store it as the pending version.
    CreateSecret,
    /// Make the target (database, provider, external system) accept the pending value.
    SetSecret,
    /// Prove that the pending value works at the target.
    TestSecret,
    /// Promote the pending version to AWSCURRENT.
    FinishSecret,
}

impl Step {
    /// All steps, in the order Secrets Manager runs them.
    pub const ALL: [Step; 4] = [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ];

    /// The spelling AWS uses in events (`createSecret`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }

    /// Accepts `createSecret` and `create_secret` (and likewise for every step),
    /// which are the two spellings that AWS's own functions and clients use.
    pub fn parse(text: &str) -> Option<Step> {
        Step::ALL
            .into_iter()
            .find(|step| text == step.as_str() || text == step.snake_case())
    }

    fn snake_case(self) -> &'static str {
        match self {
            Step::CreateSecret => "create_secret",
            Step::SetSecret => "set_secret",
            Step::TestSecret => "test_secret",
            Step::FinishSecret => "finish_secret",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed rotation event.
///
/// ```
/// use rotor_core::{RotationEvent, Step};
/// use serde_json::json;
///
/// let event = RotationEvent::from_json(&json!({
///     "SecretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf",
///     "ClientRequestToken": "3b6f2a90-3c1e-4d8e-9a57-0f5f6c2d8e11",
///     "Step": "createSecret",
/// }))
/// .unwrap();
/// assert_eq!(event.step, Step::CreateSecret);
/// assert_eq!(Step::parse("finish_secret"), Some(Step::FinishSecret));
///
/// // A payload that is no rotation event says which field is wrong.
/// let error = RotationEvent::from_json(&json!({ "SecretId": "app", "Step": "createSecret" }))
///     .unwrap_err();
/// assert_eq!(error.error_type(), "NotRetryable.InvalidEvent");
/// assert!(error.to_string().contains("ClientRequestToken is missing"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationEvent {
    /// The secret's ARN or name (`SecretId`).
    pub secret_id: String,
    /// The id of the version being rotated to (the event's `ClientRequestToken`).
    pub version_id: String,
    /// Which step to run (`Step`).
    pub step: Step,
    /// Present when the rotation function runs under an assumed role in another
    /// account; passed on to PutSecretValue.
    pub rotation_token: Option<String>,
}

/// The longest secret id and token we accept: ARNs are at most 2048 characters and
/// version ids 64; anything longer is not from Secrets Manager.
const MAX_FIELD_LEN: usize = 2048;

impl RotationEvent {
    /// Parses the event's JSON, naming the field at fault when it does not fit.
    pub fn from_json(value: &Value) -> Result<Self, Error> {
        let object = value.as_object().ok_or_else(|| Error::InvalidEvent {
            reason: format!(
                "expected a JSON object with SecretId, ClientRequestToken and Step, got {}",
                json_kind(value)
            ),
        })?;
        let text = |field: &str| -> Result<String, Error> {
            match object.get(field) {
                Some(Value::String(s)) if s.is_empty() => Err(Error::InvalidEvent {
                    reason: format!("{field} is empty"),
                }),
                Some(Value::String(s)) if s.len() > MAX_FIELD_LEN => Err(Error::InvalidEvent {
                    reason: format!("{field} is {} bytes long; at most {MAX_FIELD_LEN}", s.len()),
                }),
                Some(Value::String(s)) if s.chars().any(char::is_control) => {
                    Err(Error::InvalidEvent {
                        reason: format!(
                            "{field} contains control characters; Secrets Manager names, ARNs and tokens never do"
                        ),
                    })
                }
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(Error::InvalidEvent {
                    reason: format!("{field} must be a string, got {}", json_kind(other)),
                }),
                None => Err(Error::InvalidEvent {
                    reason: format!("{field} is missing"),
                }),
            }
        };
        let secret_id = text("SecretId")?;
        let token = text("ClientRequestToken")?;
        let step_text = text("Step")?;
        let step = Step::parse(&step_text).ok_or_else(|| Error::InvalidEvent {
            reason: format!(
                "Step {step_text:?} is not one of createSecret, setSecret, testSecret, finishSecret"
            ),
        })?;
        let rotation_token = match object.get("RotationToken") {
            None | Some(Value::Null) => None,
            Some(_) => Some(text("RotationToken")?),
        };
        Ok(RotationEvent {
            secret_id,
            version_id: token,
            step,
            rotation_token,
        })
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_both_spellings_of_every_step() {
        for step in Step::ALL {
            for spelling in [step.as_str(), step.snake_case()] {
                let event = RotationEvent::from_json(&json!({
                    "SecretId": "arn:aws:secretsmanager:us-east-1:1:secret:s",
                    "ClientRequestToken": "t1",
                    "Step": spelling,
                }))
                .unwrap();
                assert_eq!(event.step, step);
                assert_eq!(event.rotation_token, None);
            }
        }
    }

    #[test]
    fn keeps_the_rotation_token() {
        let event = RotationEvent::from_json(&json!({
            "SecretId": "s", "ClientRequestToken": "t", "Step": "setSecret", "RotationToken": "rt"
        }))
        .unwrap();
        assert_eq!(event.rotation_token.as_deref(), Some("rt"));
    }

    #[test]
    fn rejects_bad_events_naming_the_field() {
        let cases = [
            (json!([]), "JSON object"),
            (
                json!({"ClientRequestToken": "t", "Step": "createSecret"}),
                "SecretId is missing",
            ),
            (
                json!({"SecretId": 5, "ClientRequestToken": "t", "Step": "createSecret"}),
                "SecretId must be a string",
            ),
            (
                json!({"SecretId": "s", "ClientRequestToken": "", "Step": "createSecret"}),
                "ClientRequestToken is empty",
            ),
            (
                json!({"SecretId": "s", "ClientRequestToken": "t", "Step": "deleteSecret"}),
                "\"deleteSecret\" is not one of",
            ),
            (
                json!({"SecretId": "s", "ClientRequestToken": "t", "Step": "CreateSecret"}),
                "is not one of",
            ),
            (
                json!({"SecretId": "s", "ClientRequestToken": "t", "Step": "testSecret", "RotationToken": 1}),
                "RotationToken must be a string",
            ),
            (
                json!({"SecretId": "x".repeat(3000), "ClientRequestToken": "t", "Step": "testSecret"}),
                "at most 2048",
            ),
        ];
        for (event, expected) in cases {
            let error = RotationEvent::from_json(&event).unwrap_err();
            assert!(matches!(error, Error::InvalidEvent { .. }), "{error:?}");
            assert!(
                error.to_string().contains(expected),
                "{error} lacks {expected}"
            );
            assert!(!error.is_retryable());
        }
    }
}
