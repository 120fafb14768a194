//! A function's settings, read from the environment once per process.
//!
//! A bad variable must not crash the process (Lambda would only say
//! `Runtime.ExitError`); instead every step fails with an error that names the
//! secret, the variable and the fix, which Secrets Manager shows the operator.

use crate::error::Error;

/// The deployer's variable that lets URLs name this machine (`true`): set by
/// the tests and the demo, whose receivers listen on 127.0.0.1. Unset in
/// production, where 127.0.0.1 is the Lambda Runtime API's and extensions'.
/// Read by [`crate::http`].
pub const LOOPBACK_VAR: &str = "ROTOR_ALLOW_LOOPBACK_URLS";

/// Settings, or why the environment could not be read into them.
#[derive(Clone, Debug)]
pub struct EnvSettings<T>(Result<T, Unusable>);

/// Why the environment could not be read: the reader's error, as its message.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(String);

impl<T> EnvSettings<T> {
    /// Wraps the outcome of reading the environment; the error is kept as its
    /// message, which names the variable and the fix.
    pub fn new<E: std::fmt::Display>(read: Result<T, E>) -> Self {
        EnvSettings(read.map_err(|e| Unusable(e.to_string())))
    }

    /// Settings given outright (tests, the local runner).
    pub fn ready(settings: T) -> Self {
        EnvSettings(Ok(settings))
    }

    /// The settings, or an error for the step on `secret`.
    pub fn get(&self, secret: &str) -> Result<&T, Error> {
        self.0.as_ref().map_err(|problem| Error::InvalidSettings {
            secret: secret.to_owned(),
            setting: "the function's environment".into(),
            problem: problem.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_environment_fails_each_step_naming_the_secret() {
        let bad: EnvSettings<u8> =
            EnvSettings::new(Err("ROTATION_STRATEGY=\"x\" is not a strategy"));
        let error = bad.get("arn:s").unwrap_err();
        assert!(
            error.to_string().contains("arn:s") && error.to_string().contains("ROTATION_STRATEGY")
        );
        assert_eq!(EnvSettings::ready(7).get("s").ok(), Some(&7));
    }
}
