//! Rotation steps as the functions know them ([`Step`]), not as their names:
//! a step's event, running a step ([`crate::step`] for any other event),
//! replaying steps as Secrets Manager's retries may, and "run the steps until
//! one is refused".

use rotor_cli::function::LocalFunction;
use rotor_core::Step;
use serde_json::{Value, json};

/// The event of `step` of the rotation of `secret` to version `token`.
pub fn event(secret: &str, token: &str, step: Step) -> Value {
    json!({ "SecretId": secret, "ClientRequestToken": token, "Step": step.as_str() })
}

/// Invokes `step` of the rotation of `secret` to version `token`; Ok(outcome
/// field) or Err((error type, message)).
pub async fn run(
    function: &LocalFunction,
    secret: &str,
    token: &str,
    step: Step,
) -> Result<String, (String, String)> {
    crate::step(function, &event(secret, token, step)).await
}

/// Runs each of `steps` twice in a row, as Secrets Manager's retries may;
/// both runs must succeed.
pub async fn replay(function: &LocalFunction, secret: &str, token: &str, steps: &[Step]) {
    for &step in steps {
        let first = run(function, secret, token, step).await;
        let second = run(function, secret, token, step).await;
        assert!(
            first.is_ok() && second.is_ok(),
            "{step}: {first:?} / {second:?}\n{}",
            function.output()
        );
    }
}

/// Runs every step in order, as Secrets Manager does, until one fails: that
/// step and its (error type, message), or None when the rotation completed.
pub async fn until_refused(
    function: &LocalFunction,
    secret: &str,
    token: &str,
) -> Option<(Step, (String, String))> {
    for step in Step::ALL {
        if let Err(failure) = run(function, secret, token, step).await {
            return Some((step, failure));
        }
    }
    None
}

/// The steps from `step` on, in order: what is left of a rotation whose
/// earlier steps have run.
pub fn from(step: Step) -> &'static [Step] {
    let at = Step::ALL.iter().position(|s| *s == step).unwrap_or(0);
    &Step::ALL[at..]
}
