//! What to generate for a secret, and how to register it: environment defaults
//! (read once per process) overridden per secret by its tags, so that a secret's
//! rotation can change without redeploying the function.
//!
//! Tag values may hold only letters, digits, spaces and `_ . : / = + - @`, so the
//! syntax is space-separated words: `rotor:fields` = `password api_key`,
//! `rotor:generate:api_key` = `hex bytes=32`. A webhook from a tag must start with
//! one of the prefixes the deployment allows: whoever may tag a secret must not be
//! able to send its new value elsewhere.

use std::collections::BTreeMap;
use std::time::Duration;

use rotor_core::Error;
use rotor_core::http::UrlPrefix;
use rotor_core::password::PasswordPolicy;
use rotor_core::settings::{REVOKE_VAR, RevokePrevious};

pub use crate::generator::{Generator, GeneratorError, parse_generator};
use crate::keypair::KeyPairSpec;

/// Tag and variable names.
pub mod names {
    /// Space- or comma-separated JSON fields to regenerate.
    pub const FIELDS_TAG: &str = "rotor:fields";
    /// The generator for every field (`password ...`, `hex bytes=N`, `base64 bytes=N`, `base64url bytes=N`).
    pub const GENERATE_TAG: &str = "rotor:generate";
    /// Prefix of a per-field generator tag: `rotor:generate:<field>`.
    pub const GENERATE_FIELD_TAG_PREFIX: &str = "rotor:generate:";
    /// `single` (default), `multi` or `issue`.
    pub const MODE_TAG: &str = "rotor:mode";
    /// Issuer mode: the JSON field that holds the id the issuer reported for
    /// the key in the other fields (default `key_id`).
    pub const KEY_ID_FIELD_TAG: &str = "rotor:key-id-field";
    /// The webhook URL.
    pub const WEBHOOK_TAG: &str = "rotor:webhook";
    /// The secret (ARN or name) whose value is the webhook's signing key; it
    /// must serve this secret (its `rotor:serves` tag), unless it is the one
    /// the deployer named in `ROTOR_WEBHOOK_KEY_SECRET`.
    pub const WEBHOOK_KEY_TAG: &str = "rotor:webhook-key-secret";
    /// How long a multi-call rotation may wait for validation, such as `24h`.
    pub const VALIDATION_WINDOW_TAG: &str = "rotor:validation-window";
    /// What the value is: `plain` (replaced whole, whatever it looks like) or
    /// `json` (a JSON object); unset, rotor reads it (see [`super::Format`]).
    pub const FORMAT_TAG: &str = "rotor:format";

    /// Environment defaults for the tags above.
    pub const FIELDS_VAR: &str = "ROTOR_FIELDS";
    /// Default generator.
    pub const GENERATE_VAR: &str = "ROTOR_GENERATE";
    /// Default mode.
    pub const MODE_VAR: &str = "ROTOR_MODE";
    /// Default webhook.
    pub const WEBHOOK_VAR: &str = "ROTOR_WEBHOOK_URL";
    /// Default webhook key secret.
    pub const WEBHOOK_KEY_VAR: &str = "ROTOR_WEBHOOK_KEY_SECRET";
    /// Default validation window.
    pub const VALIDATION_WINDOW_VAR: &str = "ROTOR_VALIDATION_WINDOW";
    /// Comma-separated URL prefixes that a `rotor:webhook` tag may name.
    pub const WEBHOOK_PREFIXES_VAR: &str = "ROTOR_WEBHOOK_ALLOWED_PREFIXES";
    /// Default key id field.
    pub const KEY_ID_FIELD_VAR: &str = "ROTOR_KEY_ID_FIELD";
    /// `true`: the issuer's `issue` request carries AWSCURRENT's value (for
    /// issuers that mint a new key with the old one). The deployer's choice
    /// only: no tag can turn it on.
    pub const ISSUER_SENDS_CURRENT_VAR: &str = "ROTOR_ISSUER_SENDS_CURRENT";
    /// The key id field when none is set.
    pub const DEFAULT_KEY_ID_FIELD: &str = "key_id";
}

use names::*;

/// Whether the new value becomes current in one rotation or waits for an
/// external system to register and validate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Generate, store, promote.
    Single,
    /// Generate, store, register with the webhook, wait for its validation, promote.
    Multi,
    /// The webhook issues the new credential (an API key the provider mints),
    /// tests it, and revokes the old one; rotor generates nothing.
    Issue,
}

/// What a secret's value is, as far as rotation is concerned: the
/// `rotor:format` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// No tag: a JSON object if the value parses as one; refused if it starts
    /// with `{` or `[` (after white space) and is no JSON object, so that a
    /// JSON secret with a syntax error is never replaced whole; a plain string
    /// otherwise.
    Auto,
    /// `plain`: replaced whole, whatever it looks like.
    Plain,
    /// `json`: a JSON object; anything else is refused.
    Json,
}

/// A webhook that registers and validates new values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Where to POST.
    pub url: String,
    /// The secret whose value signs the requests.
    pub key_secret: String,
}

/// The settings for one secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Fields to regenerate; `None` means the default (whole value, or `password`).
    pub fields: Option<Vec<String>>,
    /// The generator of every field without its own.
    pub generator: Generator,
    /// Per-field generators.
    pub field_generators: BTreeMap<String, Generator>,
    /// Single- or multi-call.
    pub mode: Mode,
    /// The webhook, required in multi-call mode.
    pub webhook: Option<Webhook>,
    /// How long a staged value may wait for validation.
    pub validation_window: Duration,
    /// What the value is.
    pub format: Format,
    /// Issuer mode: the field that holds the issuer's key id.
    pub key_id_field: String,
    /// Whether the issuer's `issue` request carries AWSCURRENT's value.
    pub issuer_sends_current: bool,
    /// When the webhook is told to revoke AWSPREVIOUS: always set in issuer
    /// mode (`at-finish` by default); with a registering webhook only when
    /// the deployer sets `REVOKE_PREVIOUS`.
    pub revoke: Option<RevokePrevious>,
}

/// The deployment's defaults, read from the environment once per process.
#[derive(Clone, Debug)]
pub struct Defaults {
    policy: PasswordPolicy,
    values: BTreeMap<&'static str, String>,
    allowed_webhook_prefixes: Vec<UrlPrefix>,
    issuer_sends_current: bool,
    revoke: Option<RevokePrevious>,
}

/// The characters AWS's rotation template (SecretsManagerRotationTemplate)
/// excludes when `EXCLUDE_CHARACTERS` is unset, so a secret moved here gets no
/// character its consumers never had to handle.
pub const DEFAULT_EXCLUDED_CHARACTERS: &str = "/@\"'\\";

/// The default validation window of multi-call rotations.
pub const DEFAULT_VALIDATION_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl Defaults {
    /// Reads the environment; bad values are reported at the first step, naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let start = PasswordPolicy {
            exclude_characters: DEFAULT_EXCLUDED_CHARACTERS.to_owned(),
            ..PasswordPolicy::default()
        };
        let policy = PasswordPolicy::from_lookup(start, &lookup).map_err(|source| {
            Error::PasswordPolicy {
                secret: "(every secret: environment)".into(),
                source,
            }
        })?;
        let values = [
            FIELDS_VAR,
            GENERATE_VAR,
            MODE_VAR,
            WEBHOOK_VAR,
            WEBHOOK_KEY_VAR,
            VALIDATION_WINDOW_VAR,
            KEY_ID_FIELD_VAR,
        ]
        .into_iter()
        .filter_map(|var| Some((var, lookup(var).filter(|v| !v.trim().is_empty())?)))
        .collect();
        let allowed_webhook_prefixes = lookup(WEBHOOK_PREFIXES_VAR)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(UrlPrefix::parse)
            .collect::<Result<_, _>>()
            .map_err(|problem| Error::InvalidSettings {
                secret: "(every secret: environment)".into(),
                setting: WEBHOOK_PREFIXES_VAR.into(),
                problem: problem.to_string(),
            })?;
        let environment = |setting: &str, problem: String| Error::InvalidSettings {
            secret: "(every secret: environment)".into(),
            setting: setting.to_owned(),
            problem,
        };
        let issuer_sends_current = match lookup(ISSUER_SENDS_CURRENT_VAR) {
            None => false,
            Some(text) => rotor_core::password::parse_bool(ISSUER_SENDS_CURRENT_VAR, &text)
                .map_err(|e| environment(ISSUER_SENDS_CURRENT_VAR, e.to_string()))?,
        };
        let revoke = match lookup(REVOKE_VAR).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(_) => Some(
                RevokePrevious::from_lookup(&lookup, RevokePrevious::AtFinish)
                    .map_err(|e| environment(REVOKE_VAR, e.to_string()))?,
            ),
        };
        Ok(Defaults {
            policy,
            values,
            allowed_webhook_prefixes,
            issuer_sends_current,
            revoke,
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// The password policy of the environment.
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// The key secret the deployer named in `ROTOR_WEBHOOK_KEY_SECRET`: any
    /// secret this function rotates may use it. Any other key secret must agree
    /// to serve the secret that names it (its `rotor:serves` tag).
    pub fn deployer_key_secrets(&self) -> Vec<String> {
        self.values
            .get(WEBHOOK_KEY_VAR)
            .map(|id| vec![id.trim().to_owned()])
            .unwrap_or_default()
    }

    /// Resolves a secret's settings: its tags over these defaults.
    pub fn resolve(
        &self,
        secret: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Settings, Error> {
        let setting = |tag: &'static str, var: &'static str| -> Option<(&'static str, &str)> {
            match tags.get(tag) {
                Some(value) => Some((tag, value.as_str())),
                None => self.values.get(var).map(|v| (var, v.as_str())),
            }
        };
        let invalid = |setting: &str, problem: String| Error::InvalidSettings {
            secret: secret.to_owned(),
            setting: setting.to_owned(),
            problem,
        };

        let fields = setting(FIELDS_TAG, FIELDS_VAR).map(|(_, v)| {
            v.split([' ', ','])
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        if fields.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                FIELDS_TAG,
                "names no field; list the JSON fields to regenerate, separated by spaces".into(),
            ));
        }

        let format = match tags.get(FORMAT_TAG).map(|v| v.trim()) {
            None => Format::Auto,
            Some("plain") => Format::Plain,
            Some("json") => Format::Json,
            Some(other) => {
                return Err(invalid(
                    FORMAT_TAG,
                    format!("{other:?} is not a format; use plain or json, or remove the tag"),
                ));
            }
        };
        if format == Format::Plain && fields.is_some() {
            return Err(invalid(
                FORMAT_TAG,
                format!(
                    "is plain (replace the whole value), but fields to regenerate are named ({FIELDS_TAG} or {FIELDS_VAR}); remove one of the two"
                ),
            ));
        }

        let generator = match setting(GENERATE_TAG, GENERATE_VAR) {
            Some((name, spec)) => {
                parse_generator(spec, &self.policy).map_err(|p| invalid(name, p.to_string()))?
            }
            None => Generator::Password(self.policy.clone()),
        };
        let mut field_generators = BTreeMap::new();
        for (tag, spec) in tags {
            if let Some(field) = tag.strip_prefix(GENERATE_FIELD_TAG_PREFIX) {
                let generator =
                    parse_generator(spec, &self.policy).map_err(|p| invalid(tag, p.to_string()))?;
                field_generators.insert(field.to_owned(), generator);
            }
        }

        let mode = match setting(MODE_TAG, MODE_VAR) {
            None => Mode::Single,
            Some((_, "single")) => Mode::Single,
            Some((_, "multi")) => Mode::Multi,
            Some((_, "issue")) => Mode::Issue,
            Some((name, other)) => {
                return Err(invalid(
                    name,
                    format!("{other:?} is not a mode; use single, multi or issue"),
                ));
            }
        };

        let url = match (tags.get(WEBHOOK_TAG), self.values.get(WEBHOOK_VAR)) {
            (Some(url), _) => {
                // Parsed, then compared as scheme, host, port and path segments:
                // `https://hooks.example.com@evil.example/` is not under
                // `https://hooks.example.com`, whatever its text starts with.
                let parsed = rotor_core::http::parse_endpoint(url)
                    .map_err(|p| invalid(WEBHOOK_TAG, p.to_string()))?;
                if !self
                    .allowed_webhook_prefixes
                    .iter()
                    .any(|p| p.admits(&parsed))
                {
                    return Err(invalid(
                        WEBHOOK_TAG,
                        format!(
                            "{} is not under a prefix listed in {WEBHOOK_PREFIXES_VAR} (same scheme, host and port, and a path at or below the prefix's); add its prefix to that variable of the function, or set {WEBHOOK_VAR}",
                            rotor_core::http::display_url(url)
                        ),
                    ));
                }
                Some((WEBHOOK_TAG, url.clone()))
            }
            (None, Some(url)) => Some((WEBHOOK_VAR, url.clone())),
            (None, None) => None,
        };
        let webhook = match url {
            None => None,
            Some((name, url)) => {
                rotor_core::http::require_tls(&url).map_err(|p| invalid(name, p.to_string()))?;
                let Some((_, key_secret)) = setting(WEBHOOK_KEY_TAG, WEBHOOK_KEY_VAR) else {
                    let problem = format!(
                        "a webhook needs a signing key so its receiver can authenticate rotor; store a random key in a secret and name it in the {WEBHOOK_KEY_TAG} tag or {WEBHOOK_KEY_VAR}"
                    );
                    return Err(invalid(WEBHOOK_KEY_TAG, problem));
                };
                let key_secret = key_secret.to_owned();
                Some(Webhook { url, key_secret })
            }
        };
        if mode == Mode::Multi && webhook.is_none() {
            return Err(invalid(
                MODE_TAG,
                format!(
                    "multi-call rotation needs a webhook to register and validate the new value; set the {WEBHOOK_TAG} tag or {WEBHOOK_VAR}"
                ),
            ));
        }
        let key_id_field = setting(KEY_ID_FIELD_TAG, KEY_ID_FIELD_VAR)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_KEY_ID_FIELD.to_owned());
        if mode == Mode::Issue {
            issuer_settings(
                &invalid,
                webhook.is_some(),
                format,
                fields.as_deref(),
                &key_id_field,
            )?;
        }
        public_fields(&invalid, fields.as_deref(), &field_generators, &generator)?;

        let validation_window = match setting(VALIDATION_WINDOW_TAG, VALIDATION_WINDOW_VAR) {
            None => DEFAULT_VALIDATION_WINDOW,
            Some((name, text)) => parse_duration(text).map_err(|p| invalid(name, p.to_string()))?,
        };

        Ok(Settings {
            fields,
            generator,
            field_generators,
            mode,
            webhook,
            validation_window,
            format,
            key_id_field,
            issuer_sends_current: self.issuer_sends_current,
            revoke: match mode {
                Mode::Issue => Some(self.revoke.unwrap_or(RevokePrevious::AtFinish)),
                Mode::Single | Mode::Multi => self.revoke,
            },
        })
    }
}

/// Issuer mode needs a webhook, a JSON secret, the fields the issuer fills
/// (which it owns, with the key id field), and a key id field of its own.
fn issuer_settings(
    invalid: &impl Fn(&str, String) -> Error,
    webhook: bool,
    format: Format,
    fields: Option<&[String]>,
    key_id_field: &str,
) -> Result<(), Error> {
    if !webhook {
        let problem = format!(
            "issuer mode needs the issuer's webhook; set the {WEBHOOK_TAG} tag or {WEBHOOK_VAR}"
        );
        return Err(invalid(MODE_TAG, problem));
    }
    if format == Format::Plain {
        let problem = concat!(
            "is plain, but issuer mode stores the issuer's fields and key id in a JSON object; ",
            "remove the tag or set it to json"
        )
        .to_owned();
        return Err(invalid(FORMAT_TAG, problem));
    }
    let Some(fields) = fields else {
        let problem = format!(
            "issuer mode needs the JSON fields the issuer fills, such as api_key; list them in the {FIELDS_TAG} tag or {FIELDS_VAR}"
        );
        return Err(invalid(FIELDS_TAG, problem));
    };
    if key_id_field.is_empty() || key_id_field.contains(' ') {
        let problem = "names no field; name the one JSON field for the issuer's key id".into();
        return Err(invalid(KEY_ID_FIELD_TAG, problem));
    }
    if fields.iter().any(|f| f == key_id_field) {
        let problem = format!(
            "{key_id_field} is also listed in {FIELDS_TAG}; the key id is not one of the issuer's fields: choose another key id field or remove it from the list"
        );
        return Err(invalid(KEY_ID_FIELD_TAG, problem));
    }
    Ok(())
}

/// A key pair's public key goes to a field of its own: not one regenerated
/// by another generator, and not another key pair's.
fn public_fields(
    invalid: &impl Fn(&str, String) -> Error,
    fields: Option<&[String]>,
    field_generators: &BTreeMap<String, Generator>,
    generator: &Generator,
) -> Result<(), Error> {
    let listed = fields.unwrap_or_default();
    let mut taken: Vec<&str> = listed.iter().map(String::as_str).collect();
    for field in listed {
        let (setting, chosen) = match field_generators.get(field) {
            Some(own) => (format!("{GENERATE_FIELD_TAG_PREFIX}{field}"), own),
            None => (GENERATE_TAG.to_owned(), generator),
        };
        let Generator::KeyPair(KeyPairSpec {
            public_field: Some(public),
            ..
        }) = chosen
        else {
            continue;
        };
        if taken.contains(&public.as_str()) {
            let problem = format!(
                "writes the public key of field {field} to field {public}, which another setting also writes; give each key pair a public field of its own"
            );
            return Err(invalid(&setting, problem));
        }
        taken.push(public);
    }
    Ok(())
}

impl Settings {
    /// The generator of a field.
    pub fn generator_for(&self, field: &str) -> &Generator {
        self.field_generators.get(field).unwrap_or(&self.generator)
    }

    /// The fields that hold a private key: never sent to a webhook. For a
    /// plain secret made by a key-pair generator, the empty name stands for
    /// the whole value.
    pub fn private_key_fields(&self) -> Vec<String> {
        if self.mode == Mode::Issue {
            return Vec::new();
        }
        match &self.fields {
            Some(fields) => fields
                .iter()
                .filter(|f| matches!(self.generator_for(f), Generator::KeyPair(_)))
                .cloned()
                .collect(),
            // The default: the whole plain value, or a JSON value's password.
            None if matches!(self.generator_for("password"), Generator::KeyPair(_)) => {
                vec![String::new(), "password".to_owned()]
            }
            None => Vec::new(),
        }
    }
}

/// Why a duration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// An unknown unit.
    #[error("{0:?} is not a duration; write a number with s, m, h or d, such as 24h")]
    Unit(String),
    /// Zero, too large, or no number.
    #[error("{0:?} is not a positive duration such as 24h")]
    NotPositive(String),
}

/// Parses `30m`, `24h`, `7d` or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(DurationError::Unit(text.to_owned()));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| DurationError::NotPositive(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(env: &[(&str, &str)]) -> Defaults {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Defaults::from_lookup(|k| env.get(k).cloned()).unwrap()
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_settings_means_a_password_from_the_environment_policy() {
        let settings = defaults(&[("PASSWORD_LENGTH", "20")])
            .resolve("s", &tags(&[]))
            .unwrap();
        assert_eq!(settings.fields, None);
        assert_eq!(settings.mode, Mode::Single);
        match settings.generator {
            Generator::Password(p) => assert_eq!(p.length, 20),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn passwords_exclude_what_aws_template_excludes_unless_told() {
        use rotor_core::ExposeSecret;
        let policy = |env: &[(&str, &str)]| match defaults(env)
            .resolve("s", &tags(&[]))
            .unwrap()
            .generator
        {
            Generator::Password(p) => p,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(policy(&[]).exclude_characters, "/@\"'\\");
        let many = policy(&[("PASSWORD_LENGTH", "4096")]).generate().unwrap();
        assert!(!many.expose_secret().chars().any(|c| "/@\"'\\".contains(c)));
        assert_eq!(policy(&[("EXCLUDE_CHARACTERS", "")]).exclude_characters, "");
    }

    #[test]
    fn tags_override_the_environment() {
        let d = defaults(&[
            ("ROTOR_FIELDS", "password"),
            ("ROTOR_GENERATE", "hex bytes=8"),
        ]);
        let s = d
            .resolve(
                "s",
                &tags(&[
                    ("rotor:fields", "password api_key"),
                    ("rotor:generate:api_key", "base64url bytes=24"),
                    (
                        "rotor:generate:password",
                        "password length=12 punctuation=false",
                    ),
                ]),
            )
            .unwrap();
        assert_eq!(
            s.fields.as_deref(),
            Some(&["password".to_string(), "api_key".to_string()][..])
        );
        assert_eq!(s.generator, Generator::Hex(8));
        assert_eq!(s.generator_for("api_key"), &Generator::Base64Url(24));
        match s.generator_for("password") {
            Generator::Password(p) => assert!(p.length == 12 && p.exclude_punctuation),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let d = defaults(&[]);
        let cases = [
            (tags(&[("rotor:generate", "rot13")]), "rotor:generate"),
            (
                tags(&[("rotor:generate:k", "hex bytes=0")]),
                "rotor:generate:k",
            ),
            (
                tags(&[("rotor:generate", "password length=3 require-each=true")]),
                "rotor:generate",
            ),
            (
                tags(&[("rotor:generate", "password numbers=perhaps")]),
                "rotor:generate",
            ),
            (tags(&[("rotor:mode", "double")]), "rotor:mode"),
            (tags(&[("rotor:format", "yaml")]), "rotor:format"),
            (
                tags(&[("rotor:format", "plain"), ("rotor:fields", "password")]),
                "rotor:format",
            ),
            (tags(&[("rotor:mode", "multi")]), "rotor:mode"),
            (tags(&[("rotor:fields", " ")]), "rotor:fields"),
            (
                tags(&[("rotor:webhook", "https://evil.example/")]),
                "rotor:webhook",
            ),
            (
                tags(&[("rotor:validation-window", "soon")]),
                "rotor:validation-window",
            ),
        ];
        for (tags, setting) in cases {
            let error = d.resolve("my-secret", &tags).unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains(setting) && text.contains("my-secret"),
                "{text}"
            );
        }
    }

    #[test]
    fn webhooks_must_be_allowed_signed_and_encrypted() {
        let d = defaults(&[(
            "ROTOR_WEBHOOK_ALLOWED_PREFIXES",
            "https://hooks.example.com/, http://127.0.0.1",
        )]);
        let ok = d
            .resolve(
                "s",
                &tags(&[
                    ("rotor:mode", "multi"),
                    ("rotor:webhook", "https://hooks.example.com/rotor"),
                    ("rotor:webhook-key-secret", "hook-key"),
                    ("rotor:validation-window", "2h"),
                ]),
            )
            .unwrap();
        assert_eq!(ok.webhook.unwrap().key_secret, "hook-key");
        assert_eq!(ok.validation_window, Duration::from_secs(7200));
        let unsigned = d.resolve(
            "s",
            &tags(&[("rotor:webhook", "https://hooks.example.com/x")]),
        );
        assert!(unsigned.unwrap_err().to_string().contains("signing key"));
        let plain = defaults(&[
            ("ROTOR_WEBHOOK_URL", "http://hooks.example.com/"),
            ("ROTOR_WEBHOOK_KEY_SECRET", "k"),
        ])
        .resolve("s", &tags(&[]));
        assert!(plain.unwrap_err().to_string().contains("https://"));
    }

    #[test]
    fn webhook_prefixes_are_compared_as_parsed_urls() {
        let d = defaults(&[(
            "ROTOR_WEBHOOK_ALLOWED_PREFIXES",
            "https://hooks.example.com, https://10.0.0.7:8080/rotor, http://127.0.0.1:8080/rotor",
        )]);
        let key = ("rotor:webhook-key-secret", "hook-key");
        for url in [
            "https://hooks.example.com@evil.example/",
            "https://hooks.example.com.evil.example/",
            "https://10.0.0.7:8080@evil.example/rotor",
            "https://10.0.0.7:8080/rotorx",
            "https://10.0.0.7:9090/rotor",
            "https://10.0.0.7:8080/rotor/..%2Fadmin",
            "https://10.0.0.7:8080/rotor%5C..%5Cadmin",
            // Under a prefix, but this machine: refused without the deployer's
            // ROTOR_ALLOW_LOOPBACK_URLS, which this test process does not set.
            "http://127.0.0.1:8080/rotor/app",
        ] {
            let refused = d.resolve("s", &tags(&[("rotor:webhook", url), key]));
            let text = refused.unwrap_err().to_string();
            assert!(text.contains("rotor:webhook"), "{url}: {text}");
        }
        for url in [
            "https://hooks.example.com/any",
            "https://10.0.0.7:8080/rotor/app",
        ] {
            assert!(
                d.resolve("s", &tags(&[("rotor:webhook", url), key]))
                    .is_ok(),
                "{url}"
            );
        }
        let bad = Defaults::from_lookup(|v| {
            (v == "ROTOR_WEBHOOK_ALLOWED_PREFIXES").then(|| "https://u@hooks.example.com".into())
        });
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("ROTOR_WEBHOOK_ALLOWED_PREFIXES")
        );
    }

    #[test]
    fn issuer_mode_needs_a_webhook_fields_and_a_key_id_field_of_its_own() {
        let d = defaults(&[
            ("ROTOR_WEBHOOK_URL", "https://issuer.example.com/rotor"),
            ("ROTOR_WEBHOOK_KEY_SECRET", "issuer-key"),
        ]);
        let ok = d
            .resolve(
                "s",
                &tags(&[("rotor:mode", "issue"), ("rotor:fields", "api_key")]),
            )
            .unwrap();
        assert_eq!(ok.mode, Mode::Issue);
        assert_eq!(ok.key_id_field, "key_id");
        assert_eq!(ok.revoke, Some(RevokePrevious::AtFinish));
        assert!(!ok.issuer_sends_current);
        let issue = ("rotor:mode", "issue");
        for (tags, setting, says) in [
            (tags(&[issue]), "rotor:fields", "fields the issuer fills"),
            (
                tags(&[issue, ("rotor:fields", "api_key key_id")]),
                "rotor:key-id-field",
                "also listed",
            ),
            (
                tags(&[
                    issue,
                    ("rotor:fields", "api_key"),
                    ("rotor:format", "plain"),
                ]),
                "rotor:format",
                "is plain",
            ),
        ] {
            let text = d.resolve("my-secret", &tags).unwrap_err().to_string();
            assert!(text.contains(setting) && text.contains(says), "{text}");
        }
        let without = defaults(&[]).resolve("s", &tags(&[issue, ("rotor:fields", "api_key")]));
        assert!(
            without
                .unwrap_err()
                .to_string()
                .contains("issuer's webhook")
        );
        // The deployer's variables.
        let d = defaults(&[
            ("ROTOR_WEBHOOK_URL", "https://issuer.example.com/rotor"),
            ("ROTOR_WEBHOOK_KEY_SECRET", "issuer-key"),
            ("REVOKE_PREVIOUS", "next-rotation"),
            ("ROTOR_ISSUER_SENDS_CURRENT", "true"),
            ("ROTOR_KEY_ID_FIELD", "access_key_id"),
        ]);
        let s = d
            .resolve("s", &tags(&[issue, ("rotor:fields", "api_key")]))
            .unwrap();
        assert_eq!(s.revoke, Some(RevokePrevious::NextRotation));
        assert!(s.issuer_sends_current);
        assert_eq!(s.key_id_field, "access_key_id");
        // Without REVOKE_PREVIOUS, a registering webhook is never told to revoke.
        let plain_hook = defaults(&[
            ("ROTOR_WEBHOOK_URL", "https://issuer.example.com/rotor"),
            ("ROTOR_WEBHOOK_KEY_SECRET", "issuer-key"),
        ]);
        assert_eq!(plain_hook.resolve("s", &tags(&[])).unwrap().revoke, None);
        let bad = Defaults::from_lookup(|v| (v == "REVOKE_PREVIOUS").then(|| "never".into()));
        assert!(bad.unwrap_err().to_string().contains("REVOKE_PREVIOUS"));
    }

    #[test]
    fn key_pair_generators_and_their_public_fields() {
        let d = defaults(&[]);
        let s = d
            .resolve(
                "s",
                &tags(&[
                    ("rotor:fields", "private_key signing_key"),
                    (
                        "rotor:generate:private_key",
                        "ed25519 format=openssh public=public_key",
                    ),
                    (
                        "rotor:generate:signing_key",
                        "rsa bits=2048 public=signing_public",
                    ),
                ]),
            )
            .unwrap();
        assert_eq!(s.private_key_fields(), ["private_key", "signing_key"]);
        match s.generator_for("private_key") {
            Generator::KeyPair(spec) => {
                assert_eq!(spec.format, crate::keypair::KeyFormat::OpenSsh);
                assert_eq!(spec.public_field.as_deref(), Some("public_key"));
            }
            other => panic!("unexpected {other:?}"),
        }
        for (tags, setting) in [
            (
                tags(&[
                    ("rotor:fields", "a b"),
                    ("rotor:generate:a", "ed25519 public=b"),
                ]),
                "rotor:generate:a",
            ),
            (
                tags(&[
                    ("rotor:fields", "a b"),
                    ("rotor:generate:a", "ed25519 public=p"),
                    ("rotor:generate:b", "ecdsa-p256 public=p"),
                ]),
                "rotor:generate:b",
            ),
            (
                tags(&[("rotor:generate:a", "rsa bits=1024")]),
                "rotor:generate:a",
            ),
            (
                tags(&[("rotor:generate:a", "ed25519 bits=2048")]),
                "rotor:generate:a",
            ),
            (
                tags(&[("rotor:generate:a", "ed25519 format=der")]),
                "rotor:generate:a",
            ),
        ] {
            let text = d.resolve("my-secret", &tags).unwrap_err().to_string();
            assert!(text.contains(setting), "{text}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("1w").is_err());
    }
}
