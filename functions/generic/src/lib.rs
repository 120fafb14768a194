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
use rotor_core::linked::{Deployer, Link};
use rotor_core::settings::EnvSettings;
use rotor_core::{Cause, Error, ExposeSecret, Rotator, SecretStore, SecretString, StepContext};
use serde_json::Value;
use tracing::info;

pub mod generator;
pub mod settings;
mod shape;
pub mod webhook;

use settings::names::{FORMAT_TAG, WEBHOOK_KEY_TAG, WEBHOOK_KEY_VAR};
use settings::{Defaults, Format, Mode, Settings};
use shape::{Shape, starts_like_json};
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

    /// The webhook's signing key: the AWSCURRENT value of the key secret, read
    /// only if that secret agrees to serve this one (its `rotor:serves` tag) or
    /// the deployer named it in `ROTOR_WEBHOOK_KEY_SECRET`. Whoever tags a
    /// secret must not be able to sign requests with another team's key.
    async fn key<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        hook: &settings::Webhook,
    ) -> Result<SecretString, Error> {
        let deployer = self.defaults.get(ctx.secret_arn())?.deployer_key_secrets();
        let link = Link {
            setting: WEBHOOK_KEY_TAG,
            target: &hook.key_secret,
            deployer: Deployer {
                variable: WEBHOOK_KEY_VAR,
                secrets: &deployer,
            },
        };
        let linked = rotor_core::linked::read(ctx.store(), ctx.secret, link).await?;
        Ok(linked.value)
    }
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
    Shape::read(secret, label, value, settings).map(|_| ())
}

/// How many draws a whole plain value gets to avoid a first `{` or `[`.
const PLAIN_ATTEMPTS: u32 = 16;

/// A new whole value for a plain secret. Unless the secret is tagged
/// `rotor:format=plain`, it does not start with `{` or `[`: the next rotation
/// would take it for broken JSON and refuse it.
fn new_plain_value<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    settings: &Settings,
) -> Result<SecretString, Error> {
    for _ in 0..PLAIN_ATTEMPTS {
        let value = settings.generator.draw(ctx)?;
        if settings.format == Format::Plain || !starts_like_json(value.expose_secret()) {
            return Ok(value);
        }
    }
    let problem = format!(
        "every one of {PLAIN_ATTEMPTS} values the password policy drew starts with {{ or [, which the next rotation would read as broken JSON; allow more characters (EXCLUDE_CHARACTERS, rotor:generate), or tag the secret {FORMAT_TAG}=plain"
    );
    Err(Error::InvalidSettings {
        secret: ctx.secret_arn().to_owned(),
        setting: FORMAT_TAG.into(),
        problem,
    })
}

/// A request to the webhook: the action, the secret and version, and (to
/// register it) the new value.
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
    if let Some(value) = value {
        body["secretString"] = Value::String(value.expose_secret().to_owned());
    }
    SecretString::from(body.to_string())
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
        match Shape::read(ctx.secret_arn(), AWSCURRENT, &current.value, &settings)? {
            Shape::Plain => new_plain_value(ctx, &settings),
            Shape::Json(mut object, fields) => {
                for field in fields {
                    let value = settings.generator_for(&field).draw(ctx)?;
                    object.insert(field, Value::String(value.expose_secret().to_owned()));
                }
                Ok(SecretString::from(Value::Object(object).to_string()))
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
        Shape::read(
            ctx.secret_arn(),
            ctx.pending_label,
            &pending.value,
            &settings,
        )?;
        let Some(hook) = &settings.webhook else {
            return Ok(());
        };
        let (version, label) = (&ctx.event.version_id, ctx.pending_label);
        let window = settings.validation_window;
        let window_end = pending.created.map(|t| t + window);
        if settings.mode == Mode::Multi && window_end.is_some_and(|end| SystemTime::now() > end) {
            let problem = format!(
                "did not validate version {version} within the validation window ({} s); cancel this rotation (remove {label} from that version) and start a new one",
                window.as_secs()
            );
            return Err(webhook::failure(&hook.url, Cause::Mismatch, problem));
        }
        let body = request_body(ctx, "testSecret", None);
        match webhook::call(&hook.url, &self.key(ctx, hook).await?, body).await? {
            Reply::Done => Ok(()),
            Reply::NotYet if settings.mode == Mode::Multi => {
                info!(secret = %ctx.secret_arn(), version = %version, "awaiting validation");
                let problem = format!(
                    "has not validated version {version} yet; it stays staged as {label}: rotate again with the same ClientRequestToken once it is validated"
                );
                Err(webhook::failure(&hook.url, Cause::Pending, problem))
            }
            Reply::NotYet => {
                let problem = concat!(
                    "answered 202 (not validated yet), but this secret rotates in one call; ",
                    "tag it rotor:mode=multi to wait for validation"
                );
                Err(webhook::failure(&hook.url, Cause::Mismatch, problem))
            }
        }
    }
}

#[cfg(test)]
mod tests;
