//! Secret values as a function reads them: parsed once, in a type of the
//! function's own, and refused with the label they came from when they do not
//! parse.
//!
//! A function says what its secret looks like by implementing
//! [`SecretValue`] for one type; the step context then reads any version as
//! that type ([`crate::StepContext::current_as`] and the like), and the driver
//! uses [`SecretValue::target`] to refuse, before setSecret, a pending value
//! that names another target than the current one: a rotation changes a
//! credential, never where it is used or for whom.

use std::fmt::{self, Display};

use secrecy::SecretString;

use crate::error::Error;

/// A secret value of one function: its fields, parsed.
///
/// ```
/// use rotor_core::value::{self, SecretValue};
/// use rotor_core::{ExposeSecret, SecretString};
///
/// /// An API key for one account of a service.
/// struct ApiKey {
///     account: String,
///     key: SecretString,
/// }
///
/// impl SecretValue for ApiKey {
///     type Invalid = &'static str;
///     type Target = String;
///
///     fn parse(value: &SecretString) -> Result<Self, Self::Invalid> {
///         let (account, key) = value
///             .expose_secret()
///             .split_once(':')
///             .ok_or("is not account:key")?;
///         Ok(ApiKey { account: account.to_owned(), key: SecretString::from(key) })
///     }
///
///     fn target(&self) -> String {
///         format!("account {}", self.account)
///     }
/// }
///
/// let parsed: ApiKey = value::parse_version("s", "AWSCURRENT", &"acme:k3y".into()).unwrap();
/// assert_eq!(parsed.target(), "account acme");
/// let refused = value::parse_version::<ApiKey>("s", "AWSPENDING", &"k3y".into()).err().unwrap();
/// assert_eq!(refused.to_string(), "the AWSPENDING value of secret s is not account:key");
/// ```
pub trait SecretValue: Sized {
    /// Why a value does not parse, as a predicate that names the field at
    /// fault and the fix (`has no host field; add it`), never the value.
    type Invalid: Display;

    /// Where, and for whom, the value's credential works: the parts a
    /// rotation must not change (a server and a user, a client at a
    /// provider). Shown in messages: never a secret.
    type Target: PartialEq + Display;

    /// Parses a stored value.
    fn parse(value: &SecretString) -> Result<Self, Self::Invalid>;

    /// The value's target.
    fn target(&self) -> Self::Target;
}

/// Parses the value of secret `secret` under `label`, or fails with
/// [`Error::InvalidSecretValue`] naming both.
pub fn parse_version<T: SecretValue>(
    secret: &str,
    label: &str,
    value: &SecretString,
) -> Result<T, Error> {
    T::parse(value).map_err(|problem| Error::InvalidSecretValue {
        secret: secret.to_owned(),
        label: label.to_owned(),
        problem: problem.to_string(),
    })
}

/// Refuses a pending value whose target differs from the current one's.
pub fn require_same_target<T: SecretValue>(
    secret: &str,
    pending_label: &str,
    current: &T,
    pending: &T,
) -> Result<(), Error> {
    let (was, now) = (current.target(), pending.target());
    if was == now {
        return Ok(());
    }
    Err(Error::InvalidSecretValue {
        secret: secret.to_owned(),
        label: pending_label.to_owned(),
        problem: format!(
            "names {now}, but AWSCURRENT names {was}; a rotation changes a credential, not where it is used or for whom. Cancel this rotation and store the change as a new AWSCURRENT value, then rotate"
        ),
    })
}

/// A value taken whole, whatever it holds: for a function whose secret has
/// no fields the driver needs to read (a token, a key), and whose target
/// does not change.
pub struct Opaque(pub SecretString);

impl SecretValue for Opaque {
    type Invalid = std::convert::Infallible;
    type Target = Anywhere;

    fn parse(value: &SecretString) -> Result<Self, Self::Invalid> {
        use secrecy::ExposeSecret;
        Ok(Opaque(SecretString::from(value.expose_secret())))
    }

    fn target(&self) -> Anywhere {
        Anywhere
    }
}

/// The target of a value whose credential is not tied to one place (a
/// generated token that only its consumers check).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anywhere;

impl Display for Anywhere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no particular target")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Login {
        host: String,
        user: String,
    }

    impl SecretValue for Login {
        type Invalid = String;
        type Target = String;

        fn parse(value: &SecretString) -> Result<Self, String> {
            use secrecy::ExposeSecret;
            let mut parts = value.expose_secret().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(host), Some(user), Some(_password)) => Ok(Login {
                    host: host.into(),
                    user: user.into(),
                }),
                _ => Err("is not `host user password`".into()),
            }
        }

        fn target(&self) -> String {
            format!("user {:?} at {}", self.user, self.host)
        }
    }

    #[test]
    fn a_pending_value_for_another_target_is_refused_naming_both() {
        let parse = |v: &str| parse_version::<Login>("s", "AWSPENDING", &v.into()).unwrap();
        let current = parse("db app pw1");
        assert!(require_same_target("s", "AWSPENDING", &current, &parse("db app pw2")).is_ok());
        let refused =
            require_same_target("s", "AWSPENDING", &current, &parse("db admin pw2")).unwrap_err();
        assert_eq!(refused.error_type(), "NotRetryable.InvalidSecretValue");
        let text = refused.to_string();
        assert!(
            text.contains("user \"admin\" at db") && text.contains("user \"app\" at db"),
            "{text}"
        );
        assert!(!text.contains("pw"), "{text}");
    }
}
