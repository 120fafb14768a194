//! The generic rotation function: for secrets whose new value rotor makes itself.
//!
//! A plain-string secret is replaced whole; in a JSON secret the chosen fields
//! are regenerated and every other field is kept as it was. With a webhook the
//! new value is registered with an external system (setSecret) and validated by
//! it (testSecret) before it becomes current; in multi-call mode that validation
//! may arrive later, within a window, and the rotation is resumed on the same
//! pending version.

use std::time::SystemTime;

use rotor_core::labels::AWSCURRENT;
use rotor_core::settings::EnvSettings;
use rotor_core::{
    Cause, Error, ExposeSecret, Rotator, SecretStore, SecretString, StepContext, TargetError,
    TargetKind,
};
use serde_json::{Map, Value};
use tracing::info;

pub mod generator;
pub mod settings;
pub mod webhook;

pub use generator::generate;
use settings::names::{FIELDS_TAG, FIELDS_VAR, FORMAT_TAG};
use settings::{Defaults, Format, Mode, Settings};
use webhook::Reply;

/// Rotates generated values.
pub struct GenericRotator {
    defaults: EnvSettings<Defaults>,
}

impl GenericRotator {
    /// Reads the deployment's defaults once; a bad variable fails every step
    /// with a message naming it, rather than crashing the process.
    pub fn from_env() -> Self {
        GenericRotator {
            defaults: EnvSettings::new(Defaults::from_env()),
        }
    }

    /// With defaults given by the caller (tests).
    pub fn with_defaults(defaults: Defaults) -> Self {
        GenericRotator {
            defaults: EnvSettings::ready(defaults),
        }
    }

    fn settings<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<Settings, Error> {
        let defaults = self.defaults.get(ctx.secret_arn())?;
        defaults.resolve(ctx.secret_arn(), &ctx.secret.tags)
    }

    /// The webhook's signing key, for a secret whose settings name a webhook.
    async fn key<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        hook: &settings::Webhook,
    ) -> Result<SecretString, Error> {
        let deployer = self.defaults.get(ctx.secret_arn())?.deployer_key_secrets();
        signing_key(ctx, &hook.key_secret, &deployer).await
    }
}

/// The shape of a stored value, as far as rotation is concerned.
enum Shape {
    /// Not JSON: replaced whole.
    Plain,
    /// A JSON object whose listed fields are regenerated.
    Json(Map<String, Value>, Vec<String>),
}

/// Whether a value reads as JSON to a person: its first character, after
/// white space (and a byte order mark), opens an object or an array.
fn starts_like_json(text: &str) -> bool {
    text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .starts_with(['{', '['])
}

/// Where and how a text fails to parse as JSON: a position, never the text
/// (serde_json's own message may quote what it found).
fn json_problem(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Eof => "the JSON ends too early",
        _ => "a JSON syntax error",
    };
    format!("{what} at line {}, column {}", error.line(), error.column())
}

/// What a JSON value is, in words, for a value that is JSON but no object.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "a JSON array",
        Value::String(_) => "a JSON string",
        Value::Number(_) => "a JSON number",
        Value::Bool(_) => "a JSON boolean",
        Value::Null => "JSON null",
        Value::Object(_) => "a JSON object",
    }
}

fn shape(
    secret: &str,
    label: &str,
    value: &SecretString,
    settings: &Settings,
) -> Result<Shape, Error> {
    let invalid = |problem: String| Error::InvalidSecretValue {
        secret: secret.to_owned(),
        label: label.to_owned(),
        problem,
    };
    let text = value.expose_secret();
    // Why the value is no JSON object, when it is not; a plain string is one
    // only where the settings allow it.
    let not_object = match settings.format {
        Format::Plain => return Ok(Shape::Plain),
        _ => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(other) => Err(format!(
                "is not a JSON object (it is {})",
                json_kind(&other)
            )),
            Err(e) => Err(format!("is not a JSON object ({})", json_problem(&e))),
        },
    };
    let (object, fields) = match (not_object, &settings.fields) {
        (Ok(object), None) => (object, vec!["password".to_owned()]),
        (Ok(object), Some(fields)) => (object, fields.clone()),
        (Err(why), Some(fields)) => {
            return Err(invalid(format!(
                "{why}, but the settings name fields to regenerate ({}); store a JSON object, or remove the {FIELDS_TAG} tag / {FIELDS_VAR} to replace the whole value",
                fields.join(", ")
            )));
        }
        (Err(why), None) if settings.format == Format::Json => {
            return Err(invalid(format!(
                "{why}, but the secret's {FORMAT_TAG} tag says json; store a JSON object, or remove the tag"
            )));
        }
        (Err(why), None) if starts_like_json(text) => {
            return Err(invalid(format!(
                "starts with {{ or [ but {why}; rotor does not replace it whole, which would drop every field. Fix the value (put-secret-value), or tag the secret {FORMAT_TAG}=plain if it is a plain string"
            )));
        }
        (Err(_), None) => return Ok(Shape::Plain),
    };
    for field in &fields {
        match object.get(field) {
            Some(Value::String(_)) => {}
            Some(_) => {
                return Err(invalid(format!(
                    "has a field {field:?} that is not a string; rotor regenerates string fields only"
                )));
            }
            None => {
                return Err(invalid(format!(
                    "has no field {field:?} to regenerate; add it to the secret, or list the fields to regenerate in the rotor:fields tag"
                )));
            }
        }
    }
    Ok(Shape::Json(object, fields))
}

/// Checks that a stored value has the shape `settings` rotate, as
/// createSecret (for AWSCURRENT) and testSecret (for the pending value)
/// require; the error is theirs. For tools that diagnose a secret
/// (`rotor doctor`).
pub fn check_value(
    secret: &str,
    label: &str,
    value: &SecretString,
    settings: &Settings,
) -> Result<(), Error> {
    shape(secret, label, value, settings).map(|_| ())
}

/// How many draws a whole plain value gets to avoid a first `{` or `[`.
const PLAIN_ATTEMPTS: u32 = 16;

/// A new whole value for a plain secret. Unless the secret is tagged
/// `rotor:format=plain`, it does not start with `{` or `[`: the next rotation
/// would take it for broken JSON and refuse it.
fn new_plain_value(secret: &str, settings: &Settings) -> Result<SecretString, Error> {
    for _ in 0..PLAIN_ATTEMPTS {
        let value = generate(&settings.generator).map_err(|source| Error::PasswordPolicy {
            secret: secret.to_owned(),
            source,
        })?;
        if settings.format == Format::Plain || !starts_like_json(value.expose_secret()) {
            return Ok(value);
        }
    }
    Err(Error::InvalidSettings {
        secret: secret.to_owned(),
        setting: FORMAT_TAG.into(),
        problem: format!(
            "every one of {PLAIN_ATTEMPTS} values the password policy drew starts with {{ or [, which the next rotation would read as broken JSON; allow more characters (EXCLUDE_CHARACTERS, rotor:generate), or tag the secret {FORMAT_TAG}=plain"
        ),
    })
}

impl Rotator for GenericRotator {
    /// Whole: its shape depends on the secret's settings (plain, or JSON
    /// with the fields they name), which [`check_value`] checks, and its
    /// credential is tied to no target the driver could compare.
    type Secret = rotor_core::value::Opaque;

    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let settings = self.settings(ctx)?;
        if let Some(hook) = &settings.webhook {
            // A key secret that does not serve this secret is refused before
            // anything is staged, not one step later.
            self.key(ctx, hook).await?;
        }
        let current = ctx.current().await?;
        let secret = ctx.secret_arn();
        let policy_error = |source| Error::PasswordPolicy {
            secret: secret.to_owned(),
            source,
        };
        match shape(secret, AWSCURRENT, &current.value, &settings)? {
            Shape::Plain => new_plain_value(secret, &settings),
            Shape::Json(mut object, fields) => {
                for field in &fields {
                    let value = generate(settings.generator_for(field)).map_err(policy_error)?;
                    object.insert(
                        field.clone(),
                        Value::String(value.expose_secret().to_owned()),
                    );
                }
                let text =
                    serde_json::to_string(&object).map_err(|e| Error::InvalidSecretValue {
                        secret: secret.to_owned(),
                        label: AWSCURRENT.into(),
                        problem: format!("could not be written back as JSON: {e}"),
                    })?;
                Ok(SecretString::from(text))
            }
        }
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let settings = self.settings(ctx)?;
        let Some(hook) = &settings.webhook else {
            return Ok(()); // nothing outside the secret holds the value
        };
        let pending = ctx.pending().await?;
        let body = request_body(ctx, "setSecret", Some(&pending.value));
        match webhook::call(&hook.url, &self.key(ctx, hook).await?, body).await? {
            Reply::Done | Reply::NotYet => Ok(()),
        }
    }

    async fn test_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let settings = self.settings(ctx)?;
        let pending = ctx.pending().await?;
        // The staged value must still have the shape the rotation gave it.
        shape(
            ctx.secret_arn(),
            ctx.pending_label,
            &pending.value,
            &settings,
        )?;
        let Some(hook) = &settings.webhook else {
            return Ok(());
        };
        let window_end = pending.created.map(|t| t + settings.validation_window);
        if settings.mode == Mode::Multi && window_end.is_some_and(|end| SystemTime::now() > end) {
            return Err(TargetError::new(Cause::Mismatch, format!(
                    "did not validate version {} within the validation window ({} s); cancel this rotation (remove {} from that version) and start a new one",
                    ctx.event.version_id,
                    settings.validation_window.as_secs(),
                    ctx.pending_label
                )).at(TargetKind::Webhook, format!("webhook {}", rotor_core::http::display_url(&hook.url))));
        }
        let body = request_body(ctx, "testSecret", None);
        match webhook::call(&hook.url, &self.key(ctx, hook).await?, body).await? {
            Reply::Done => Ok(()),
            Reply::NotYet if settings.mode == Mode::Multi => {
                info!(secret = %ctx.secret_arn(), version = %ctx.event.version_id, "awaiting validation");
                Err(TargetError::new(Cause::Pending, format!(
                        "has not validated version {} yet; it stays staged as {}: rotate again with the same ClientRequestToken once it is validated",
                        ctx.event.version_id, ctx.pending_label
                    )).at(TargetKind::Webhook, format!("webhook {}", rotor_core::http::display_url(&hook.url))))
            }
            Reply::NotYet => Err(TargetError::new(Cause::Mismatch, "answered 202 (not validated yet), but this secret rotates in one call; tag it rotor:mode=multi to wait for validation").at(TargetKind::Webhook, format!("webhook {}", rotor_core::http::display_url(&hook.url)))),
        }
    }
}

/// The webhook's signing key: the AWSCURRENT value of the key secret, read only
/// if that secret agrees to serve this one (its `rotor:serves` tag) or the
/// deployer named it in `ROTOR_WEBHOOK_KEY_SECRET`. Whoever tags a secret must
/// not be able to sign requests with another team's key.
async fn signing_key<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    key_secret: &str,
    deployer: &[String],
) -> Result<SecretString, Error> {
    let link = rotor_core::linked::Link {
        setting: settings::names::WEBHOOK_KEY_TAG,
        target: key_secret,
        deployer: rotor_core::linked::Deployer {
            variable: settings::names::WEBHOOK_KEY_VAR,
            secrets: deployer,
        },
    };
    let linked = rotor_core::linked::read(ctx.store(), ctx.secret, link).await?;
    Ok(linked.value)
}

fn request_body<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    action: &str,
    value: Option<&SecretString>,
) -> SecretString {
    let mut body = serde_json::json!({
        "action": action,
        "secretArn": ctx.secret_arn(),
        "secretName": ctx.secret.name,
        "versionId": ctx.event.version_id,
    });
    if let (Some(value), Some(object)) = (value, body.as_object_mut()) {
        object.insert(
            "secretString".into(),
            Value::String(value.expose_secret().to_owned()),
        );
    }
    SecretString::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rotor_core::labels::{AWSPENDING, AWSPREVIOUS};
    use rotor_core::store::{RotationService, VersionSelector};
    use rotor_core::{Driver, MemoryStore, Outcome, RotationEvent, Step};

    use super::*;

    fn rotator(env: &[(&str, &str)]) -> GenericRotator {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GenericRotator::with_defaults(Defaults::from_lookup(|k| env.get(k).cloned()).unwrap())
    }

    async fn secret(store: &MemoryStore, value: &str, tags: &[(&str, &str)]) -> String {
        let arn = store
            .create_secret("s", &SecretString::from(value), tags)
            .await
            .unwrap();
        store.begin_rotation(&arn, "v2").await.unwrap();
        arn
    }

    fn event(arn: &str, step: Step) -> RotationEvent {
        RotationEvent {
            secret_id: arn.into(),
            version_id: "v2".into(),
            step,
            rotation_token: None,
        }
    }

    async fn value(store: &MemoryStore, arn: &str, label: &str) -> String {
        let stored = store
            .get_value(arn, VersionSelector::Label(label))
            .await
            .unwrap()
            .unwrap();
        stored.value.expose_secret().to_owned()
    }

    async fn rotate(driver: &Driver<MemoryStore, GenericRotator>, arn: &str) -> Result<(), Error> {
        for step in Step::ALL {
            driver.run(&event(arn, step)).await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn plain_secret_is_replaced_whole_with_the_environment_policy() {
        let driver = Driver::new(MemoryStore::new(), rotator(&[("PASSWORD_LENGTH", "40")]));
        let arn = secret(driver.store(), "old-password", &[]).await;
        rotate(&driver, &arn).await.unwrap();
        let new = value(driver.store(), &arn, AWSCURRENT).await;
        assert_eq!(new.len(), 40);
        assert_eq!(
            value(driver.store(), &arn, AWSPREVIOUS).await,
            "old-password"
        );
    }

    /// Someone stores a new current value between createSecret and setSecret:
    /// setSecret refuses to apply the older rotation's value, and says how to
    /// cancel it.
    #[tokio::test]
    async fn a_current_value_stored_during_the_rotation_is_not_undone() {
        let driver = Driver::new(MemoryStore::new(), rotator(&[]));
        let arn = secret(driver.store(), "old-password", &[]).await;
        driver.run(&event(&arn, Step::CreateSecret)).await.unwrap();
        let theirs = SecretString::from("set-by-an-operator");
        let put = rotor_core::store::NewVersion {
            version_id: "v3",
            value: &theirs,
            labels: &[AWSCURRENT],
            rotation_token: None,
        };
        driver.store().put_value(&arn, put).await.unwrap();
        let error = driver.run(&event(&arn, Step::SetSecret)).await.unwrap_err();
        assert_eq!(error.error_type(), "NotRetryable.CurrentChanged");
        let message = error.to_string();
        assert!(
            message.contains("version v3") && message.contains("--remove-from-version-id v2"),
            "{message}"
        );
        assert_eq!(
            value(driver.store(), &arn, AWSCURRENT).await,
            "set-by-an-operator"
        );
    }

    #[tokio::test]
    async fn json_secret_keeps_every_other_field_exactly() {
        let driver = Driver::new(MemoryStore::new(), rotator(&[]));
        let old = r#"{"username":"app","password":"x","port":123456789012345678901234567890,"nested":{"b":1,"a":[true,null]},"zeta":1.50}"#;
        let arn = secret(
            driver.store(),
            old,
            &[
                ("rotor:fields", "password api_key"),
                ("rotor:generate:api_key", "hex bytes=16"),
            ],
        )
        .await;
        let error = rotate(&driver, &arn).await.unwrap_err();
        assert!(error.to_string().contains("\"api_key\""), "{error}");

        let driver = Driver::new(MemoryStore::new(), rotator(&[]));
        let arn = secret(driver.store(), old, &[]).await;
        rotate(&driver, &arn).await.unwrap();
        let new: Value =
            serde_json::from_str(&value(driver.store(), &arn, AWSCURRENT).await).unwrap();
        let mut expected: Value = serde_json::from_str(old).unwrap();
        assert_ne!(new["password"], expected["password"]);
        expected["password"] = new["password"].clone();
        assert_eq!(
            new.to_string(),
            expected.to_string(),
            "field order, numbers and nesting are kept"
        );
    }

    #[tokio::test]
    async fn tokens_per_field() {
        let driver = Driver::new(MemoryStore::new(), rotator(&[]));
        let arn = secret(
            driver.store(),
            r#"{"key":"a","sig":"b","keep":"c"}"#,
            &[
                ("rotor:fields", "key sig"),
                ("rotor:generate:key", "hex bytes=16"),
                ("rotor:generate:sig", "base64url bytes=30"),
            ],
        )
        .await;
        rotate(&driver, &arn).await.unwrap();
        let new: Value =
            serde_json::from_str(&value(driver.store(), &arn, AWSCURRENT).await).unwrap();
        let key = new["key"].as_str().unwrap();
        assert!(key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(new["sig"].as_str().unwrap().len(), 40);
        assert_eq!(new["keep"], "c");
    }

    #[tokio::test]
    async fn every_step_replayed_gives_the_same_result() {
        let driver = Driver::new(MemoryStore::new(), rotator(&[]));
        let arn = secret(driver.store(), "old", &[]).await;
        let mut staged = None;
        for step in Step::ALL {
            let first = driver.run(&event(&arn, step)).await.unwrap();
            let second = driver.run(&event(&arn, step)).await.unwrap();
            if step == Step::CreateSecret {
                assert_eq!(
                    (first.outcome, second.outcome),
                    (Outcome::Done, Outcome::PendingKept)
                );
                staged = Some(value(driver.store(), &arn, AWSPENDING).await);
            }
            if step == Step::FinishSecret {
                assert_eq!(second.outcome, Outcome::AlreadyCurrent);
            }
        }
        assert_eq!(Some(value(driver.store(), &arn, AWSCURRENT).await), staged);
        let described = driver.store().describe(&arn).await.unwrap();
        assert_eq!(
            described.versions.with_label(AWSPENDING),
            None,
            "no stale AWSPENDING"
        );
        assert_eq!(described.versions.current(), Some("v2"));
    }

    #[tokio::test]
    async fn bad_secrets_are_refused_and_nothing_changes() {
        type Tags = &'static [(&'static str, &'static str)];
        let cases: [(&str, Tags, &str); 4] = [
            (
                "plain",
                &[("rotor:fields", "password")],
                "not a JSON object",
            ),
            (r#"{"user":"u"}"#, &[], "no field \"password\""),
            (r#"{"password":5}"#, &[], "not a string"),
            (
                "plain",
                &[("rotor:generate", "password length=2 numbers=true")],
                "rotor:generate",
            ),
        ];
        for (old, tags, expected) in cases {
            let driver = Driver::new(MemoryStore::new(), rotator(&[]));
            let arn = secret(driver.store(), old, tags).await;
            let error = driver
                .run(&event(&arn, Step::CreateSecret))
                .await
                .unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            assert!(!error.is_retryable());
            let described = driver.store().describe(&arn).await.unwrap();
            assert!(
                driver
                    .store()
                    .get_value(&arn, VersionSelector::Label(AWSPENDING))
                    .await
                    .unwrap()
                    .is_none()
            );
            assert_eq!(value(driver.store(), &arn, AWSCURRENT).await, old);
            assert_eq!(described.versions.with_label(AWSPENDING), Some("v2"));
        }
    }

    /// Issue 21, item 19: a value that looks like JSON but does not parse (a
    /// syntax error, a value cut short), or JSON that is not an object, is
    /// refused, never rotated as a plain string that would replace every field.
    /// The message says where the JSON breaks, never what it holds.
    #[tokio::test]
    async fn values_that_look_like_json_but_are_no_object_are_refused() {
        let cases = [
            (
                r#"{"username":"app","password":"hunter2-hunter2","host":"db.internal","#,
                "line 1, column 68",
            ),
            (
                "  {\"password\":\"hunter2-hunter2\" \"x\":1}",
                "line 1, column 33",
            ),
            ("[\"hunter2-hunter2\", 1", "line 1, column 21"),
            (r#"["hunter2-hunter2"]"#, "a JSON array"),
            (
                "\u{feff}{\"password\":\"hunter2-hunter2\"}",
                "line 1, column 1",
            ),
        ];
        for (old, position) in cases {
            let driver = Driver::new(MemoryStore::new(), rotator(&[]));
            let arn = secret(driver.store(), old, &[]).await;
            let error = driver
                .run(&event(&arn, Step::CreateSecret))
                .await
                .unwrap_err();
            let message = error.to_string();
            assert_eq!(error.error_type(), "NotRetryable.InvalidSecretValue");
            assert!(
                message.contains(position)
                    && message.contains("rotor:format=plain")
                    && !message.contains("hunter2"),
                "{message}"
            );
            assert!(
                driver
                    .store()
                    .get_value(&arn, VersionSelector::Label(AWSPENDING))
                    .await
                    .unwrap()
                    .is_none()
            );
            assert_eq!(value(driver.store(), &arn, AWSCURRENT).await, old);
        }
    }

    /// A plain string that merely starts with `{` or `[` is rotated whole when
    /// the secret says it is plain, and rotor's own whole-value passwords
    /// never start with either, so they never need that tag.
    #[tokio::test]
    async fn plain_values_that_start_like_json() {
        let driver = Driver::new(MemoryStore::new(), rotator(&[]));
        let arn = secret(driver.store(), "{not-json", &[("rotor:format", "plain")]).await;
        rotate(&driver, &arn).await.unwrap();
        assert_eq!(value(driver.store(), &arn, AWSCURRENT).await.len(), 32);

        // Only `{` and `[`: every draw starts like JSON, so none can be used.
        let driver = Driver::new(
            MemoryStore::new(),
            rotator(&[
                ("PASSWORD_LENGTH", "4"),
                ("EXCLUDE_UPPERCASE", "true"),
                ("EXCLUDE_LOWERCASE", "true"),
                ("EXCLUDE_NUMBERS", "true"),
                ("EXCLUDE_CHARACTERS", "!\"#$%&'()*+,-./:;<=>?@\\]^_`|}~"),
            ]),
        );
        let arn = secret(driver.store(), "old", &[]).await;
        let error = rotate(&driver, &arn).await.unwrap_err();
        assert!(error.to_string().contains("rotor:format=plain"), "{error}");

        // Two characters, one lowercase and one of `{` `[`: half of all
        // draws start like JSON.
        let policy = [
            ("PASSWORD_LENGTH", "2"),
            ("EXCLUDE_UPPERCASE", "true"),
            ("EXCLUDE_NUMBERS", "true"),
            ("EXCLUDE_CHARACTERS", "!\"#$%&'()*+,-./:;<=>?@\\]^_`|}~"),
        ];
        for _ in 0..20 {
            let driver = Driver::new(MemoryStore::new(), rotator(&policy));
            let arn = secret(driver.store(), "old", &[]).await;
            rotate(&driver, &arn).await.unwrap();
            let new = value(driver.store(), &arn, AWSCURRENT).await;
            assert!(!new.starts_with(['{', '[']));
        }

        // The secret may insist on JSON: a plain value is then refused.
        let driver = Driver::new(MemoryStore::new(), rotator(&[]));
        let arn = secret(driver.store(), "plain", &[("rotor:format", "json")]).await;
        let error = rotate(&driver, &arn).await.unwrap_err();
        assert!(error.to_string().contains("rotor:format"), "{error}");
    }

    #[tokio::test]
    async fn a_warm_process_does_not_read_what_it_already_holds() {
        let driver = Driver::new(MemoryStore::new(), rotator(&[]));
        let arn = secret(driver.store(), "old", &[]).await;
        driver.run(&event(&arn, Step::CreateSecret)).await.unwrap();
        let after_create = driver.store().reads();
        for step in [Step::SetSecret, Step::TestSecret, Step::FinishSecret] {
            driver.run(&event(&arn, step)).await.unwrap();
        }
        assert_eq!(
            driver.store().reads(),
            after_create,
            "the pending value stored by createSecret is not read again"
        );
        // A second rotation knows the (new) current value already.
        driver.store().begin_rotation(&arn, "v3").await.unwrap();
        let before = driver.store().reads();
        let mut e = event(&arn, Step::CreateSecret);
        e.version_id = "v3".into();
        driver.run(&e).await.unwrap();
        // Only the pending check (a miss) reaches the store: the new current and
        // the previous value were written or read by this process before.
        assert_eq!(
            driver.store().reads() - before,
            1,
            "current and previous come from the cache"
        );
    }

    #[tokio::test]
    async fn impossible_environment_policy_fails_every_step_clearly() {
        let driver = Driver::new(MemoryStore::new(), rotator(&[("PASSWORD_LENGTH", "2")]));
        let arn = secret(driver.store(), "old", &[]).await;
        let error = driver
            .run(&event(&arn, Step::CreateSecret))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("PASSWORD_LENGTH"), "{error}");
    }

    #[tokio::test]
    async fn a_tiny_password_space_still_yields_a_new_value() {
        // One digit: ten possible values, two of them taken by current and previous.
        let driver = Driver::new(
            MemoryStore::new(),
            rotator(&[
                ("PASSWORD_LENGTH", "1"),
                ("EXCLUDE_PUNCTUATION", "y"),
                ("EXCLUDE_UPPERCASE", "yes"),
                ("EXCLUDE_LOWERCASE", "1"),
            ]),
        );
        let arn = secret(driver.store(), "7", &[]).await;
        for round in 0..5 {
            // The first rotation was staged by `secret`; stage the later ones.
            let token = if round == 0 {
                "v2".to_owned()
            } else {
                format!("r{round}")
            };
            if round > 0 {
                driver.store().begin_rotation(&arn, &token).await.unwrap();
            }
            let before = value(driver.store(), &arn, AWSCURRENT).await;
            for step in Step::ALL {
                let mut e = event(&arn, step);
                e.version_id = token.clone();
                match driver.run(&e).await {
                    Ok(_) => {}
                    // Ten values, two excluded: eight draws fail together with
                    // probability (2/10)^8; tolerate it rather than flake.
                    Err(Error::NoDistinctValue { .. }) => return,
                    Err(other) => panic!("{other}"),
                }
            }
            assert_ne!(value(driver.store(), &arn, AWSCURRENT).await, before);
        }
    }
}

#[cfg(test)]
mod custom_label_tests {
    use rotor_core::labels::{AWSPENDING, LabelMove};
    use rotor_core::store::{NewVersion, RotationService, VersionSelector};
    use rotor_core::{Driver, MemoryStore, Outcome, RotationEvent, Step};

    use super::*;

    /// With a custom label, a version staged as AWSPENDING (as RotateSecret
    /// stages every rotation) is refused at every step, saying why.
    #[tokio::test]
    async fn a_rotation_secrets_manager_staged_is_refused_with_the_reason() {
        let store = MemoryStore::new();
        let arn = store
            .create_secret("s", &SecretString::from("v1"), &[])
            .await
            .unwrap();
        store.begin_rotation(&arn, "v2").await.unwrap();
        let defaults = settings::Defaults::from_lookup(|_| None).unwrap();
        let driver = Driver::new(store, GenericRotator::with_defaults(defaults))
            .with_pending_label("MyPendingLabel");
        for step in Step::ALL {
            let event = RotationEvent {
                secret_id: arn.clone(),
                version_id: "v2".into(),
                step,
                rotation_token: None,
            };
            let error = driver.run(&event).await.unwrap_err();
            assert_eq!(error.error_type(), "NotRetryable.PendingLabelMismatch");
            assert!(
                error
                    .to_string()
                    .contains("ROTOR_PENDING_LABEL=MyPendingLabel"),
                "{error}"
            );
        }
        let versions = driver.store().describe(&arn).await.unwrap().versions;
        assert_eq!(versions.current(), versions.with_label(AWSCURRENT));
        assert_eq!(versions.with_label(AWSPENDING), Some("v2"));
        assert_eq!(versions.with_label("MyPendingLabel"), None);
    }

    /// A value staged under a custom label (as Alibaba's multi-call rotation
    /// does) is kept by createSecret and promoted by finishSecret, which also
    /// takes the custom label off.
    #[tokio::test]
    async fn a_value_staged_under_a_custom_label_is_promoted_later() {
        let store = MemoryStore::new();
        let arn = store
            .create_secret("s", &SecretString::from("v1"), &[])
            .await
            .unwrap();
        // Turn rotation on the way the service does, then clear its pending label.
        store.begin_rotation(&arn, "ignored").await.unwrap();
        let clear = LabelMove {
            label: AWSPENDING.into(),
            to: None,
            from: Some("ignored".into()),
        };
        store.move_label(&arn, &clear).await.unwrap();
        let staged = SecretString::from("staged-by-someone-else");
        let put = NewVersion {
            version_id: "v2",
            value: &staged,
            labels: &["MyPendingLabel"],
            rotation_token: None,
        };
        store.put_value(&arn, put).await.unwrap();

        let defaults = settings::Defaults::from_lookup(|_| None).unwrap();
        let driver = Driver::new(store, GenericRotator::with_defaults(defaults))
            .with_pending_label("MyPendingLabel");
        let event = |step| RotationEvent {
            secret_id: arn.clone(),
            version_id: "v2".into(),
            step,
            rotation_token: None,
        };
        let outcomes: Vec<Outcome> = {
            let mut outcomes = Vec::new();
            for step in Step::ALL {
                outcomes.push(driver.run(&event(step)).await.unwrap().outcome);
            }
            outcomes
        };
        assert_eq!(
            outcomes,
            [
                Outcome::PendingKept,
                Outcome::Done,
                Outcome::Done,
                Outcome::Done
            ]
        );
        let versions = driver.store().describe(&arn).await.unwrap().versions;
        assert_eq!(versions.current(), Some("v2"));
        assert_eq!(versions.with_label("MyPendingLabel"), None);
        let current = driver
            .store()
            .get_value(&arn, VersionSelector::Label(AWSCURRENT))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.value.expose_secret(), "staged-by-someone-else");
    }
}
