//! How one value is made: the generator spec a setting or tag names
//! (`password length=40`, `hex bytes=32`, `ed25519 format=openssh public=public_key`...),
//! parsed, and the value drawn.

use base64::Engine;
use rotor_core::password::{PasswordPolicy, PolicyError, parse_bool, random_text};
use rotor_core::{Error, SecretStore, SecretString, StepContext};

use crate::keypair::{KeyAlgorithm, KeyFormat, KeyPair, KeyPairSpec, RSA_BITS};

/// How one value is generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generator {
    /// A password under a GetRandomPassword-style policy.
    Password(PasswordPolicy),
    /// N random bytes, hex encoded.
    Hex(usize),
    /// N random bytes, standard base64 with padding.
    Base64(usize),
    /// N random bytes, URL-safe base64 without padding.
    Base64Url(usize),
    /// A private key, and its public key for another field.
    KeyPair(KeyPairSpec),
}

/// The most random bytes a token may have: 4 KiB of entropy is far past any use.
const MAX_TOKEN_BYTES: usize = 4096;

/// Why a generator spec is refused.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// A word after the kind has no `=`.
    #[error("{0:?} is not of the form option=value")]
    NotAnOption(String),
    /// `bytes=` out of range or not a number.
    #[error("bytes={0} must be a whole number from 1 to {MAX_TOKEN_BYTES}")]
    Bytes(String),
    /// A token generator given another option than `bytes`.
    #[error("{kind} takes only bytes=N, not {option}")]
    TokenOption {
        /// The generator.
        kind: String,
        /// The option refused.
        option: String,
    },
    /// `length=` not a number.
    #[error("length={0} is not a whole number")]
    Length(String),
    /// A password option rotor does not know.
    #[error(
        "unknown password option {0}; use length, exclude, numbers, punctuation, uppercase, lowercase, space or require-each"
    )]
    PasswordOption(String),
    /// The resulting password policy is unusable (or a flag is not a boolean).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The kind is none of the generators.
    #[error(
        "{0:?} is not a generator; use password, hex, base64, base64url, ed25519, ecdsa-p256 or rsa (for example \"hex bytes=32\")"
    )]
    Kind(String),
    /// A key-pair option rotor does not know, or a bad value of one.
    #[error(
        "{kind} takes format=pem or format=openssh, public=FIELD{rsa}; {option} is not one of them"
    )]
    KeyOption {
        /// The generator.
        kind: String,
        /// The option refused, as written.
        option: String,
        /// `, bits=...` for RSA.
        rsa: &'static str,
    },
}

/// Parses `password [length=N] [numbers=false] ...`, `hex bytes=N`, `base64 bytes=N`
/// or `base64url bytes=N`; password options start from the environment's policy.
pub fn parse_generator(spec: &str, base: &PasswordPolicy) -> Result<Generator, GeneratorError> {
    let mut words = spec.split_whitespace();
    let kind = words.next().unwrap_or("");
    let options: Vec<(&str, &str)> = words
        .map(|w| {
            w.split_once('=')
                .ok_or_else(|| GeneratorError::NotAnOption(w.to_owned()))
        })
        .collect::<Result<_, _>>()?;
    let bytes = || -> Result<usize, GeneratorError> {
        let mut bytes = 32;
        for (key, value) in &options {
            match *key {
                "bytes" => {
                    bytes = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_TOKEN_BYTES).contains(n))
                        .ok_or_else(|| GeneratorError::Bytes((*value).to_owned()))?;
                }
                other => {
                    return Err(GeneratorError::TokenOption {
                        kind: kind.to_owned(),
                        option: other.to_owned(),
                    });
                }
            }
        }
        Ok(bytes)
    };
    match kind {
        "hex" => Ok(Generator::Hex(bytes()?)),
        "base64" => Ok(Generator::Base64(bytes()?)),
        "base64url" => Ok(Generator::Base64Url(bytes()?)),
        "ed25519" | "ecdsa-p256" | "rsa" => parse_key_pair(kind, &options).map(Generator::KeyPair),
        "password" => {
            let mut policy = base.clone();
            for (key, value) in options {
                let flag = |name| parse_bool(name, value);
                match key {
                    "length" => {
                        policy.length = value
                            .parse()
                            .map_err(|_| GeneratorError::Length(value.to_owned()))?
                    }
                    "exclude" => policy.exclude_characters = value.to_owned(),
                    "numbers" => policy.exclude_numbers = !flag("numbers")?,
                    "punctuation" => policy.exclude_punctuation = !flag("punctuation")?,
                    "uppercase" => policy.exclude_uppercase = !flag("uppercase")?,
                    "lowercase" => policy.exclude_lowercase = !flag("lowercase")?,
                    "space" => policy.include_space = flag("space")?,
                    "require-each" => policy.require_each_included_type = flag("require-each")?,
                    other => {
                        return Err(GeneratorError::PasswordOption(other.to_owned()));
                    }
                }
            }
            policy.validate()?;
            Ok(Generator::Password(policy))
        }
        other => Err(GeneratorError::Kind(other.to_owned())),
    }
}

/// `ed25519|ecdsa-p256|rsa [bits=2048|3072|4096] [format=pem|openssh] [public=FIELD]`.
fn parse_key_pair(kind: &str, options: &[(&str, &str)]) -> Result<KeyPairSpec, GeneratorError> {
    let mut spec = KeyPairSpec {
        algorithm: match kind {
            "ed25519" => KeyAlgorithm::Ed25519,
            "ecdsa-p256" => KeyAlgorithm::EcdsaP256,
            _ => KeyAlgorithm::Rsa(3072),
        },
        format: KeyFormat::Pem,
        public_field: None,
    };
    let refused = |key: &str, value: &str| GeneratorError::KeyOption {
        kind: kind.to_owned(),
        option: format!("{key}={value}"),
        rsa: if kind == "rsa" {
            ", bits=2048, 3072 or 4096"
        } else {
            ""
        },
    };
    for (key, value) in options {
        match (*key, *value) {
            ("format", "pem") => spec.format = KeyFormat::Pem,
            ("format", "openssh") => spec.format = KeyFormat::OpenSsh,
            ("public", field) if !field.is_empty() => spec.public_field = Some(field.to_owned()),
            ("bits", bits) if kind == "rsa" => match bits.parse() {
                Ok(bits) if RSA_BITS.contains(&bits) => spec.algorithm = KeyAlgorithm::Rsa(bits),
                _ => return Err(refused(key, value)),
            },
            _ => return Err(refused(key, value)),
        }
    }
    Ok(spec)
}

impl Generator {
    /// A fresh value for the secret `ctx` rotates, or
    /// [`Error::PasswordPolicy`] naming it when none can be made.
    pub fn draw<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<SecretString, Error> {
        let bytes = match self {
            Generator::Password(policy) => return ctx.generate_password(policy),
            Generator::KeyPair(spec) => return Self::key_pair(ctx, spec).map(|pair| pair.private),
            Generator::Hex(n) | Generator::Base64(n) | Generator::Base64Url(n) => *n,
        };
        let encode = |raw: &[u8]| match self {
            Generator::Hex(_) => hex::encode(raw),
            Generator::Base64(_) => base64::engine::general_purpose::STANDARD.encode(raw),
            _ => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        };
        // The operating system's random source failed: no policy is at fault.
        random_text(bytes, encode).map_err(|source| Error::PasswordPolicy {
            secret: ctx.secret_arn().to_owned(),
            source,
        })
    }
}

impl Generator {
    /// A fresh key pair for the secret `ctx` rotates; a failure names the
    /// secret and what failed, never any key.
    pub fn key_pair<S: SecretStore>(
        ctx: &StepContext<'_, S>,
        spec: &KeyPairSpec,
    ) -> Result<KeyPair, Error> {
        spec.generate().map_err(|e| {
            Error::target(
                rotor_core::TargetKind::Service,
                rotor_core::Cause::Unavailable,
                format!("the key generator of secret {}", ctx.secret_arn()),
                e.to_string(),
            )
        })
    }
}
