//! The generic rotation function: for secrets whose new value rotor makes itself.
//!
//! A plain-string secret is replaced whole; in a JSON secret the chosen fields
//! are regenerated and every other field is kept as it was. With a webhook the
//! new value is registered with an external system (setSecret) and validated by
//! it (testSecret) before it becomes current; in multi-call mode that validation
//! may arrive later, within a window, and the rotation is resumed on the same
//! pending version.

use std::time::SystemTime;

use base64::Engine;
use rand::TryRngCore;
use rand::rngs::OsRng;
use rotor_core::labels::AWSCURRENT;
use rotor_core::store::VersionSelector;
use rotor_core::{Error, ExposeSecret, Rotator, SecretStore, SecretString, StepContext};
use serde_json::{Map, Value};
use tracing::info;

pub mod settings;
pub mod webhook;

use settings::{Defaults, Generator, Mode, Settings};
use webhook::Reply;

/// Rotates generated values.
pub struct GenericRotator {
    defaults: Result<Defaults, String>,
}

impl GenericRotator {
    /// Reads the deployment's defaults once; a bad variable fails every step
    /// with a message naming it, rather than crashing the process.
    pub fn from_env() -> Self {
        GenericRotator {
            defaults: Defaults::from_env().map_err(|e| e.to_string()),
        }
    }

    /// With defaults given by the caller (tests).
    pub fn with_defaults(defaults: Defaults) -> Self {
        GenericRotator {
            defaults: Ok(defaults),
        }
    }

    fn settings<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<Settings, Error> {
        let defaults = self
            .defaults
            .as_ref()
            .map_err(|problem| Error::InvalidSettings {
                secret: ctx.secret_arn().to_owned(),
                setting: "the function's environment".into(),
                problem: problem.clone(),
            })?;
        defaults.resolve(ctx.secret_arn(), &ctx.secret.tags)
    }
}

/// The shape of a stored value, as far as rotation is concerned.
enum Shape {
    /// Not JSON: replaced whole.
    Plain,
    /// A JSON object whose listed fields are regenerated.
    Json(Map<String, Value>, Vec<String>),
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
    let object = match serde_json::from_str::<Value>(value.expose_secret()) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    };
    let (object, fields) = match (object, &settings.fields) {
        (None, None) => return Ok(Shape::Plain),
        (None, Some(fields)) => {
            return Err(invalid(format!(
                "is not a JSON object, but the settings name fields to regenerate ({}); store a JSON object, or remove the rotor:fields tag / ROTOR_FIELDS to replace the whole value",
                fields.join(", ")
            )));
        }
        (Some(object), None) => (object, vec!["password".to_owned()]),
        (Some(object), Some(fields)) => (object, fields.clone()),
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

/// A fresh value from a generator.
pub fn generate(generator: &Generator) -> Result<SecretString, rotor_core::password::PolicyError> {
    let bytes = match generator {
        Generator::Password(policy) => return policy.generate(),
        Generator::Hex(n) | Generator::Base64(n) | Generator::Base64Url(n) => *n,
    };
    let mut raw = vec![0u8; bytes];
    OsRng.try_fill_bytes(&mut raw).map_err(|e| {
        rotor_core::password::PolicyError::RandomSource {
            reason: e.to_string(),
        }
    })?;
    let text = match generator {
        Generator::Hex(_) => hex::encode(&raw),
        Generator::Base64(_) => base64::engine::general_purpose::STANDARD.encode(&raw),
        _ => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw),
    };
    raw.fill(0);
    Ok(SecretString::from(text))
}

impl Rotator for GenericRotator {
    async fn create_value<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
    ) -> Result<SecretString, Error> {
        let settings = self.settings(ctx)?;
        let current = ctx.current().await?;
        let secret = ctx.secret_arn();
        let policy_error = |source| Error::PasswordPolicy {
            secret: secret.to_owned(),
            source,
        };
        match shape(secret, AWSCURRENT, &current.value, &settings)? {
            Shape::Plain => generate(&settings.generator).map_err(policy_error),
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
        match webhook::call(&hook.url, &signing_key(ctx, &hook.key_secret).await?, body).await? {
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
            return Err(Error::Target {
                target: format!("webhook {}", webhook::display_url(&hook.url)),
                problem: format!(
                    "did not validate version {} within the validation window ({} s); cancel this rotation (remove {} from that version) and start a new one",
                    ctx.event.token,
                    settings.validation_window.as_secs(),
                    ctx.pending_label
                ),
                retryable: false,
            });
        }
        let body = request_body(ctx, "testSecret", None);
        match webhook::call(&hook.url, &signing_key(ctx, &hook.key_secret).await?, body).await? {
            Reply::Done => Ok(()),
            Reply::NotYet if settings.mode == Mode::Multi => {
                info!(secret = %ctx.secret_arn(), version = %ctx.event.token, "awaiting validation");
                Err(Error::Target {
                    target: format!("webhook {}", webhook::display_url(&hook.url)),
                    problem: format!(
                        "has not validated version {} yet; it stays staged as {}: rotate again with the same ClientRequestToken once it is validated",
                        ctx.event.token, ctx.pending_label
                    ),
                    retryable: true,
                })
            }
            Reply::NotYet => Err(Error::Target {
                target: format!("webhook {}", webhook::display_url(&hook.url)),
                problem: "answered 202 (not validated yet), but this secret rotates in one call; tag it rotor:mode=multi to wait for validation".into(),
                retryable: false,
            }),
        }
    }
}

async fn signing_key<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    key_secret: &str,
) -> Result<SecretString, Error> {
    let stored = ctx
        .store()
        .get_value(key_secret, VersionSelector::Label(AWSCURRENT))
        .await
        .map_err(|source| Error::Store {
            secret: key_secret.to_owned(),
            operation: "GetSecretValue (webhook signing key)",
            source,
        })?;
    stored
        .map(|s| s.value)
        .ok_or_else(|| Error::InvalidSettings {
            secret: ctx.secret_arn().to_owned(),
            setting: settings::names::WEBHOOK_KEY_TAG.into(),
            problem: format!("the key secret {key_secret} has no AWSCURRENT value"),
        })
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
        "versionId": ctx.event.token,
    });
    if let (Some(value), Some(object)) = (value, body.as_object_mut()) {
        object.insert(
            "secretString".into(),
            Value::String(value.expose_secret().to_owned()),
        );
    }
    SecretString::from(body.to_string())
}
