//! Password generation for rotation functions.
//!
//! Mirrors AWS Secrets Manager's `GetRandomPassword` as AWS's official Python
//! rotation functions drive it — the same character classes, the same
//! environment variables (`PASSWORD_LENGTH`, `EXCLUDE_CHARACTERS`,
//! `EXCLUDE_NUMBERS`, `EXCLUDE_PUNCTUATION`, `EXCLUDE_UPPERCASE`,
//! `EXCLUDE_LOWERCASE`, `INCLUDE_SPACE`, `REQUIRE_EACH_INCLUDED_TYPE`) — but
//! draws locally from the operating system's CSPRNG, so rotating a secret
//! costs no API call and needs no `secretsmanager:GetRandomPassword`
//! permission.
//!
//! This module must never print, log or otherwise expose a password it makes:
//! passwords leave it only inside a [`SecretString`](secrecy::SecretString), and no error message
//! carries one. It must never call any API either; its only source of
//! randomness is the OS.

use std::num::IntErrorKind;
use std::ops::RangeInclusive;

mod generate;

pub use generate::random_text;

/// `GetRandomPassword`'s punctuation set: every printable ASCII symbol.
pub const PUNCTUATION: &str = r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##;

const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
const DIGITS: &str = "0123456789";
/// The lengths `GetRandomPassword` accepts.
const LENGTHS: RangeInclusive<usize> = 1..=4096;

/// What a generated password may contain, with `GetRandomPassword`'s defaults.
///
/// ```
/// use rotor_core::ExposeSecret;
/// use rotor_core::password::{PasswordPolicy, PolicyError};
///
/// // The variables AWS's rotation functions read, from any lookup.
/// let env = [("PASSWORD_LENGTH", "20"), ("EXCLUDE_PUNCTUATION", "true")];
/// let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
/// let policy = PasswordPolicy::from_lookup(PasswordPolicy::default(), lookup).unwrap();
///
/// let password = policy.generate().unwrap();
/// assert_eq!(password.expose_secret().chars().count(), 20);
/// assert!(password.expose_secret().chars().all(|c| c.is_ascii_alphanumeric()));
///
/// // An impossible policy is an error that names the setting, not a panic.
/// let empty = PasswordPolicy {
///     exclude_uppercase: true,
///     exclude_lowercase: true,
///     exclude_numbers: true,
///     exclude_punctuation: true,
///     ..PasswordPolicy::default()
/// };
/// assert!(matches!(empty.generate(), Err(PolicyError::EmptyAlphabet { .. })));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Number of characters (`PASSWORD_LENGTH`, default 32, allowed 1..=4096).
    pub length: usize,
    /// Characters never to use (`EXCLUDE_CHARACTERS`, default empty).
    pub exclude_characters: String,
    /// Leave out digits (`EXCLUDE_NUMBERS`).
    pub exclude_numbers: bool,
    /// Leave out [`PUNCTUATION`] (`EXCLUDE_PUNCTUATION`).
    pub exclude_punctuation: bool,
    /// Leave out `A-Z` (`EXCLUDE_UPPERCASE`).
    pub exclude_uppercase: bool,
    /// Leave out `a-z` (`EXCLUDE_LOWERCASE`).
    pub exclude_lowercase: bool,
    /// Allow the space character (`INCLUDE_SPACE`).
    pub include_space: bool,
    /// Use at least one character of every included class
    /// (`REQUIRE_EACH_INCLUDED_TYPE`, default true).
    pub require_each_included_type: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            length: 32,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

/// Why a policy could not be read or cannot produce a password.
///
/// Messages name the setting at fault and how to fix it; none ever contains
/// a generated password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `PASSWORD_LENGTH` is not a whole number.
    #[error("PASSWORD_LENGTH={value:?} is not a whole number; set it to a length from 1 to 4096")]
    LengthNotANumber {
        /// The value as given.
        value: String,
    },
    /// `PASSWORD_LENGTH` is a number outside 1..=4096.
    #[error("PASSWORD_LENGTH={value} is out of range; set it to a length from 1 to 4096")]
    LengthOutOfRange {
        /// The value as given.
        value: String,
    },
    /// A boolean variable holds something other than true/false/yes/no/1/0.
    #[error("{name}={value:?} is not a boolean; set it to true or false")]
    InvalidBool {
        /// The variable's name.
        name: String,
        /// The value as given.
        value: String,
    },
    /// Flags and exclusions together leave no character to draw from.
    #[error(
        "no characters left to make a password from ({detail}); unset one of these \
         EXCLUDE_* flags or remove characters from EXCLUDE_CHARACTERS"
    )]
    EmptyAlphabet {
        /// Which setting emptied each character class.
        detail: String,
    },
    /// The password is too short to hold one character of each required class.
    #[error(
        "PASSWORD_LENGTH={length} is too short: REQUIRE_EACH_INCLUDED_TYPE=true needs one \
         character from each of {required} character classes; raise PASSWORD_LENGTH to at \
         least {required} or set REQUIRE_EACH_INCLUDED_TYPE=false"
    )]
    TooShort {
        /// The policy's length.
        length: usize,
        /// How many classes must each appear.
        required: usize,
    },
    /// The operating system's random source failed.
    #[error(
        "the operating system's random source failed ({reason}); no password was made, \
         retry the rotation"
    )]
    RandomSource {
        /// The OS's description of the failure.
        reason: String,
    },
}

/// One character class after the policy's flags and exclusions are applied.
struct Class {
    /// How error messages call the class.
    name: &'static str,
    /// The flag setting that drops the whole class, as error messages show it.
    dropped_by: &'static str,
    /// Whether that flag dropped it.
    dropped: bool,
    /// What is left of the class; empty when dropped.
    chars: Vec<char>,
    /// Whether REQUIRE_EACH_INCLUDED_TYPE applies (never to space, as with AWS).
    requirable: bool,
}

impl Class {
    /// Whether REQUIRE_EACH_INCLUDED_TYPE demands a character of this class:
    /// a class emptied by EXCLUDE_CHARACTERS cannot be, so it is not required.
    fn required(&self) -> bool {
        self.requirable && !self.chars.is_empty()
    }
}

impl PasswordPolicy {
    /// Reads the environment variables above (missing ones keep the given defaults).
    ///
    /// This only parses; call [`validate`](Self::validate) to reject an
    /// impossible policy early (e.g. at cold start).
    pub fn from_env_with(defaults: PasswordPolicy) -> Result<Self, PolicyError> {
        // A value that is not UTF-8 is read lossily rather than ignored, so a
        // garbled flag is reported instead of silently keeping its default.
        Self::from_lookup(defaults, |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// Same, from any lookup (tests use a HashMap); `from_env_with` calls this
    /// with the process environment.
    pub fn from_lookup(
        defaults: PasswordPolicy,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, PolicyError> {
        let mut policy = defaults;
        if let Some(value) = lookup("PASSWORD_LENGTH") {
            policy.length = parse_length(&value)?;
        }
        // Taken verbatim: a space or quote in it is a character to exclude.
        if let Some(value) = lookup("EXCLUDE_CHARACTERS") {
            policy.exclude_characters = value;
        }
        let flags = [
            ("EXCLUDE_NUMBERS", &mut policy.exclude_numbers),
            ("EXCLUDE_PUNCTUATION", &mut policy.exclude_punctuation),
            ("EXCLUDE_UPPERCASE", &mut policy.exclude_uppercase),
            ("EXCLUDE_LOWERCASE", &mut policy.exclude_lowercase),
            ("INCLUDE_SPACE", &mut policy.include_space),
            (
                "REQUIRE_EACH_INCLUDED_TYPE",
                &mut policy.require_each_included_type,
            ),
        ];
        for (name, flag) in flags {
            if let Some(value) = lookup(name) {
                *flag = parse_bool(name, &value)?;
            }
        }
        Ok(policy)
    }

    /// Checks the policy can produce a password; an impossible policy is an error.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !LENGTHS.contains(&self.length) {
            return Err(PolicyError::LengthOutOfRange {
                value: self.length.to_string(),
            });
        }
        let classes = self.classes();
        if classes.iter().all(|class| class.chars.is_empty()) {
            return Err(PolicyError::EmptyAlphabet {
                detail: describe_empty(&classes),
            });
        }
        let required = self.required_count(&classes);
        if self.length < required {
            return Err(PolicyError::TooShort {
                length: self.length,
                required,
            });
        }
        Ok(())
    }

    /// The characters the policy may draw from, in a fixed order
    /// (uppercase, lowercase, digits, punctuation, space).
    pub fn alphabet(&self) -> Vec<char> {
        self.classes()
            .into_iter()
            .flat_map(|class| class.chars)
            .collect()
    }

    fn classes(&self) -> [Class; 5] {
        let class = |name, dropped_by, source: &str, dropped, requirable| Class {
            name,
            dropped_by,
            dropped,
            chars: if dropped {
                Vec::new()
            } else {
                source
                    .chars()
                    .filter(|c| !self.exclude_characters.contains(*c))
                    .collect()
            },
            requirable,
        };
        [
            class(
                "uppercase letters",
                "EXCLUDE_UPPERCASE=true",
                UPPERCASE,
                self.exclude_uppercase,
                true,
            ),
            class(
                "lowercase letters",
                "EXCLUDE_LOWERCASE=true",
                LOWERCASE,
                self.exclude_lowercase,
                true,
            ),
            class(
                "digits",
                "EXCLUDE_NUMBERS=true",
                DIGITS,
                self.exclude_numbers,
                true,
            ),
            class(
                "punctuation",
                "EXCLUDE_PUNCTUATION=true",
                PUNCTUATION,
                self.exclude_punctuation,
                true,
            ),
            class(
                "space",
                "INCLUDE_SPACE=false",
                " ",
                !self.include_space,
                false,
            ),
        ]
    }

    /// How many classes must each appear at least once.
    fn required_count(&self, classes: &[Class]) -> usize {
        if self.require_each_included_type {
            classes.iter().filter(|c| c.required()).count()
        } else {
            0
        }
    }
}

/// Says, for an empty alphabet, what removed each class.
fn describe_empty(classes: &[Class]) -> String {
    classes
        .iter()
        .map(|class| {
            if class.dropped {
                class.dropped_by.to_owned()
            } else {
                format!("EXCLUDE_CHARACTERS removes all {}", class.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `PASSWORD_LENGTH`, telling a non-number from a number out of range.
fn parse_length(value: &str) -> Result<usize, PolicyError> {
    let trimmed = value.trim();
    let out_of_range = || PolicyError::LengthOutOfRange {
        value: trimmed.to_owned(),
    };
    // Parsing signed and wide lets "-1" or a huge number count as out of range.
    let number: i128 = trimmed
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => out_of_range(),
            _ => PolicyError::LengthNotANumber {
                value: value.to_owned(),
            },
        })?;
    usize::try_from(number)
        .ok()
        .filter(|length| LENGTHS.contains(length))
        .ok_or_else(out_of_range)
}

/// Parses a boolean variable: true/1/y/yes are true, false/0/n/no and the
/// empty string are false (case-insensitive, trimmed); anything else is an
/// error naming the variable rather than a silent false.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, PolicyError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "y" | "yes" => Ok(true),
        "false" | "0" | "n" | "no" | "" => Ok(false),
        _ => Err(PolicyError::InvalidBool {
            name: name.to_owned(),
            value: value.to_owned(),
        }),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::TryRngCore;
    use secrecy::ExposeSecret;
    use secrecy::SecretString;
    use std::collections::HashMap;

    /// Reads a policy from the given variables over the defaults.
    fn read(vars: &[(&str, &str)]) -> Result<PasswordPolicy, PolicyError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PasswordPolicy::from_lookup(PasswordPolicy::default(), |name| map.get(name).cloned())
    }

    fn chars_of(secret: &SecretString) -> Vec<char> {
        secret.expose_secret().chars().collect()
    }

    #[test]
    fn defaults_match_get_random_password() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.length, 32);
        assert!(policy.require_each_included_type);
        assert!(policy.exclude_characters.is_empty());
        assert!(!policy.include_space);
        assert_eq!(read(&[]).unwrap(), policy);
        // 26 + 26 + 10 + 32, no space.
        assert_eq!(policy.alphabet().len(), 94);
        assert_eq!(PUNCTUATION.len(), 32);
    }

    #[test]
    fn missing_variables_keep_caller_defaults() {
        let defaults = PasswordPolicy {
            length: 20,
            exclude_characters: "/@\"'\\".into(),
            ..PasswordPolicy::default()
        };
        let got = PasswordPolicy::from_lookup(defaults.clone(), |_| None).unwrap();
        assert_eq!(got, defaults);
    }

    #[test]
    fn each_variable_is_read() {
        let policy = read(&[
            ("PASSWORD_LENGTH", " 64 "),
            ("EXCLUDE_CHARACTERS", "abc "),
            ("EXCLUDE_NUMBERS", "true"),
            ("EXCLUDE_PUNCTUATION", "yes"),
            ("EXCLUDE_UPPERCASE", "1"),
            ("EXCLUDE_LOWERCASE", "Y"),
            ("INCLUDE_SPACE", "TRUE"),
            ("REQUIRE_EACH_INCLUDED_TYPE", "false"),
        ])
        .unwrap();
        assert_eq!(
            policy,
            PasswordPolicy {
                length: 64,
                exclude_characters: "abc ".into(),
                exclude_numbers: true,
                exclude_punctuation: true,
                exclude_uppercase: true,
                exclude_lowercase: true,
                include_space: true,
                require_each_included_type: false,
            }
        );
    }

    #[test]
    fn bool_spellings() {
        for yes in [
            "true", "TRUE", "True", "1", "y", "Y", "yes", "YES", " yes\n",
        ] {
            assert!(parse_bool("X", yes).unwrap(), "{yes:?}");
        }
        for no in ["false", "FALSE", "0", "n", "N", "no", "No", "", "  "] {
            assert!(!parse_bool("X", no).unwrap(), "{no:?}");
        }
    }

    #[test]
    fn unrecognised_bool_is_an_error_naming_the_variable() {
        for bad in ["maybe", "2", "on", "tru"] {
            let err = read(&[("INCLUDE_SPACE", bad)]).unwrap_err();
            assert!(matches!(err, PolicyError::InvalidBool { .. }), "{err:?}");
            assert!(err.to_string().contains("INCLUDE_SPACE"), "{err}");
        }
    }

    #[test]
    fn non_numeric_length_is_an_error() {
        for bad in ["abc", "", "3.5", "32x"] {
            let err = read(&[("PASSWORD_LENGTH", bad)]).unwrap_err();
            assert!(
                matches!(err, PolicyError::LengthNotANumber { .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("PASSWORD_LENGTH"), "{err}");
        }
    }

    #[test]
    fn out_of_range_length_is_an_error() {
        for bad in [
            "0",
            "4097",
            "-1",
            "99999999999999999999999999999999999999999999",
        ] {
            let err = read(&[("PASSWORD_LENGTH", bad)]).unwrap_err();
            assert!(
                matches!(err, PolicyError::LengthOutOfRange { .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("PASSWORD_LENGTH"), "{err}");
        }
        assert_eq!(read(&[("PASSWORD_LENGTH", "1")]).unwrap().length, 1);
        assert_eq!(read(&[("PASSWORD_LENGTH", "4096")]).unwrap().length, 4096);
        // A policy built in code is checked too.
        let policy = PasswordPolicy {
            length: 0,
            ..PasswordPolicy::default()
        };
        assert!(matches!(
            policy.generate(),
            Err(PolicyError::LengthOutOfRange { .. })
        ));
    }

    #[test]
    fn empty_alphabet_is_an_error_saying_why() {
        let policy = PasswordPolicy {
            exclude_numbers: true,
            exclude_punctuation: true,
            exclude_uppercase: true,
            exclude_characters: LOWERCASE.into(),
            ..PasswordPolicy::default()
        };
        let err = policy.validate().unwrap_err();
        assert!(matches!(err, PolicyError::EmptyAlphabet { .. }), "{err:?}");
        let message = err.to_string();
        for part in [
            "EXCLUDE_NUMBERS=true",
            "EXCLUDE_PUNCTUATION=true",
            "EXCLUDE_UPPERCASE=true",
            "EXCLUDE_CHARACTERS removes all lowercase letters",
            "INCLUDE_SPACE=false",
        ] {
            assert!(message.contains(part), "{message}");
        }
    }

    #[test]
    fn too_short_for_required_classes_is_an_error() {
        let policy = PasswordPolicy {
            length: 3,
            ..PasswordPolicy::default()
        };
        let err = policy.validate().unwrap_err();
        assert!(
            matches!(
                err,
                PolicyError::TooShort {
                    length: 3,
                    required: 4
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("PASSWORD_LENGTH=3"), "{message}");
        assert!(
            message.contains("REQUIRE_EACH_INCLUDED_TYPE=false"),
            "{message}"
        );
        // Either fix works.
        let relaxed = PasswordPolicy {
            require_each_included_type: false,
            ..policy.clone()
        };
        assert_eq!(relaxed.generate().unwrap().expose_secret().len(), 3);
        // A class emptied by EXCLUDE_CHARACTERS is not required.
        let emptied = PasswordPolicy {
            exclude_characters: DIGITS.into(),
            ..policy
        };
        assert_eq!(emptied.generate().unwrap().expose_secret().len(), 3);
    }

    /// An RNG that always fails, standing in for a broken OS source.
    struct BrokenRng;

    impl TryRngCore for BrokenRng {
        type Error = std::io::Error;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Err(std::io::Error::other("entropy unavailable"))
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Err(std::io::Error::other("entropy unavailable"))
        }
        fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Self::Error> {
            Err(std::io::Error::other("entropy unavailable"))
        }
    }

    #[test]
    fn failing_random_source_is_an_error() {
        let err = PasswordPolicy::default()
            .generate_with(BrokenRng)
            .unwrap_err();
        assert!(matches!(err, PolicyError::RandomSource { .. }), "{err:?}");
        assert!(err.to_string().contains("entropy unavailable"), "{err}");
    }

    #[test]
    fn space_is_drawn_but_never_required() {
        let policy = PasswordPolicy {
            length: 4,
            include_space: true,
            ..PasswordPolicy::default()
        };
        assert_eq!(policy.alphabet().last(), Some(&' '));
        assert!(policy.validate().is_ok());
    }

    #[test]
    fn two_passwords_differ() {
        let policy = PasswordPolicy::default();
        let (a, b) = (policy.generate().unwrap(), policy.generate().unwrap());
        assert_eq!(a.expose_secret().len(), 32);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn long_password_uses_whole_alphabet() {
        // 4096 draws over 94 characters miss one with probability ~1e-17.
        let policy = PasswordPolicy {
            length: 4096,
            ..PasswordPolicy::default()
        };
        let password = chars_of(&policy.generate().unwrap());
        assert_eq!(password.len(), 4096);
        assert!(policy.alphabet().iter().all(|c| password.contains(c)));
    }

    fn policies() -> impl Strategy<Value = PasswordPolicy> {
        (
            prop_oneof![1..=5usize, 1..=200usize],
            // Long exclusion lists empty whole classes now and then.
            prop_oneof!["[ -~]{0,20}", "[ -~]{100,300}"],
            any::<[bool; 6]>(),
        )
            .prop_map(|(length, exclude_characters, f)| PasswordPolicy {
                length,
                exclude_characters,
                exclude_numbers: f[0],
                exclude_punctuation: f[1],
                exclude_uppercase: f[2],
                exclude_lowercase: f[3],
                include_space: f[4],
                require_each_included_type: f[5],
            })
    }

    proptest! {
        #[test]
        fn generated_passwords_obey_the_policy(policy in policies()) {
            match policy.validate() {
                Err(expected) => {
                    let got = policy.generate().unwrap_err();
                    prop_assert_eq!(format!("{got:?}"), format!("{expected:?}"));
                }
                Ok(()) => {
                    let password = chars_of(&policy.generate().unwrap());
                    let alphabet = policy.alphabet();
                    prop_assert_eq!(password.len(), policy.length);
                    prop_assert!(password.iter().all(|c| alphabet.contains(c)));
                    prop_assert!(!password.iter().any(|c| policy.exclude_characters.contains(*c)));
                    // Checked against the class sets directly, not via classes().
                    let classes = [
                        (policy.exclude_uppercase, UPPERCASE),
                        (policy.exclude_lowercase, LOWERCASE),
                        (policy.exclude_numbers, DIGITS),
                        (policy.exclude_punctuation, PUNCTUATION),
                    ];
                    let allowed = |c: &char| {
                        (*c == ' ' && policy.include_space)
                            || classes.iter().any(|(excluded, set)| !excluded && set.contains(*c))
                    };
                    prop_assert!(password.iter().all(allowed));
                    if policy.require_each_included_type {
                        for (_, set) in classes.iter().filter(|(excluded, _)| !excluded) {
                            let left = || set.chars().filter(|c| !policy.exclude_characters.contains(*c));
                            if left().next().is_some() {
                                prop_assert!(left().any(|c| password.contains(&c)), "none of {}", set);
                            }
                        }
                    }
                }
            }
        }
    }
}
