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

/// The variable that says when the previous credential stops working, in
/// every function whose target holds the old and the new one side by side.
pub const REVOKE_VAR: &str = "REVOKE_PREVIOUS";

/// When the previous credential stops working: [`REVOKE_VAR`]'s value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokePrevious {
    /// `at-finish`: finishSecret retires it once the new one is AWSCURRENT.
    AtFinish,
    /// `next-rotation`: it keeps working until the next rotation, the
    /// overlap consumers that cache the old value need.
    NextRotation,
}

/// [`REVOKE_VAR`] holds neither value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{REVOKE_VAR}={0:?}; use next-rotation or at-finish")]
pub struct UnknownRevoke(pub String);

impl RevokePrevious {
    /// Reads [`REVOKE_VAR`] from `lookup`; unset or empty is the function's
    /// documented `default`.
    ///
    /// ```
    /// use rotor_core::settings::RevokePrevious;
    /// let env = |v: &str| (v == "REVOKE_PREVIOUS").then(|| "at-finish".to_owned());
    /// let read = RevokePrevious::from_lookup(env, RevokePrevious::NextRotation);
    /// assert_eq!(read, Ok(RevokePrevious::AtFinish));
    /// assert!(RevokePrevious::from_lookup(|_| Some("never".into()), RevokePrevious::AtFinish).is_err());
    /// ```
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        default: RevokePrevious,
    ) -> Result<RevokePrevious, UnknownRevoke> {
        match lookup(REVOKE_VAR).as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some("at-finish") => Ok(RevokePrevious::AtFinish),
            Some("next-rotation") => Ok(RevokePrevious::NextRotation),
            Some(other) => Err(UnknownRevoke(other.to_owned())),
        }
    }
}

/// The entries of a comma-separated variable (`MANAGEMENT_SECRET_ARNS`,
/// `ROTOR_WEBHOOK_ALLOWED_PREFIXES`, ...): trimmed, blanks dropped; none when
/// it is unset.
///
/// ```
/// let env = |v: &str| (v == "LIST").then(|| " a, ,b ,".to_owned());
/// assert_eq!(rotor_core::settings::list(env, "LIST"), ["a", "b"]);
/// assert!(rotor_core::settings::list(env, "OTHER").is_empty());
/// ```
pub fn list(lookup: impl Fn(&str) -> Option<String>, variable: &str) -> Vec<String> {
    lookup(variable)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}
