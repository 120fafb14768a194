//! The generic rotation function: for secrets whose new value rotor makes itself.
//!
//! A plain-string secret is replaced whole; in a JSON secret the chosen fields
//! are regenerated and every other field is kept as it was. With a webhook the
//! new value is registered with an external system (setSecret) and validated by
//! it (testSecret) before it becomes current; in multi-call mode that validation
//! may arrive later, within a window, and the rotation is resumed on the same
//! pending version.
//!
//! In issuer mode ([`issuer`]) rotor makes nothing: the webhook mints the new
//! credential, rotor stores it exactly once (the core's [`IssuedValues`]),
//! has it tested, and has the old one, and any key minted but never stored,
//! revoked. Key pairs ([`keypair`]) register their public key only.

use std::time::SystemTime;

use std::sync::Mutex;

use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::linked::{Deployer, Link};
use rotor_core::settings::{EnvSettings, RevokePrevious};
use rotor_core::store::StoredValue;
use rotor_core::{
    Cause, Error, ExposeSecret, IssuedValues, Rotator, SecretStore, SecretString, StepContext,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

pub mod generator;
pub mod issuer;
pub mod keypair;
pub mod settings;
mod shape;
pub mod webhook;

use keypair::KeyPairSpec;
use settings::names::{FORMAT_TAG, GENERATE_TAG, WEBHOOK_KEY_TAG, WEBHOOK_KEY_VAR};
use settings::{Defaults, Format, Generator, Mode, Settings};
use shape::{Shape, starts_like_json};
use webhook::Reply;

/// Rotates generated values, or values an issuer mints.
pub struct GenericRotator {
    defaults: EnvSettings<Defaults>,
    /// Digests of the values this process had an issuer mint, so that the
    /// driver treats them as issued ([`IssuedValues`]): never asked for twice.
    issued: Mutex<Vec<[u8; 32]>>,
}

/// How many digests of issued values a process remembers.
const ISSUED_REMEMBERED: usize = 64;

impl GenericRotator {
    /// Reads the deployment's defaults once; a bad variable fails every step
    /// with a message naming it, rather than crashing the process.
    pub fn from_env() -> Self {
        GenericRotator {
            defaults: EnvSettings::new(Defaults::from_env()),
            issued: Mutex::default(),
        }
    }

    /// With defaults given by the caller (tests).
    pub fn with_defaults(defaults: Defaults) -> Self {
        GenericRotator {
            defaults: EnvSettings::ready(defaults),
            issued: Mutex::default(),
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

/// What the webhook may see of a value to register: all of it, less every
/// private key (a key pair registers its public key). A plain value made by
/// a key-pair generator is a private key: nothing is sent.
fn registered_value(settings: &Settings, value: &SecretString) -> Option<SecretString> {
    let private = settings.private_key_fields();
    if private.is_empty() {
        return Some(SecretString::from(value.expose_secret()));
    }
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(value.expose_secret()) else {
        return None;
    };
    for field in private {
        object.remove(&field);
    }
    Some(SecretString::from(Value::Object(object).to_string()))
}

/// Fills the fields of a JSON value: a key pair's private key and public
/// key, or one drawn value.
fn regenerate<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    settings: &Settings,
    object: &mut Map<String, Value>,
    fields: Vec<String>,
) -> Result<(), Error> {
    for field in fields {
        let value = match settings.generator_for(&field) {
            Generator::KeyPair(spec) => {
                let pair = Generator::key_pair(ctx, spec)?;
                if let Some(public) = &spec.public_field {
                    object.insert(public.clone(), Value::String(pair.public));
                }
                pair.private
            }
            generator => generator.draw(ctx)?,
        };
        object.insert(field, Value::String(value.expose_secret().to_owned()));
    }
    Ok(())
}

impl GenericRotator {
    fn remember_issued(&self, value: &SecretString) {
        if let Ok(mut issued) = self.issued.lock() {
            if issued.len() == ISSUED_REMEMBERED {
                issued.remove(0);
            }
            issued.push(Sha256::digest(value.expose_secret().as_bytes()).into());
        }
    }

    /// Issuer mode's createSecret: revokes the previous key first when it
    /// lives until the next rotation, then asks the issuer for a new one.
    async fn issue<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        settings: &Settings,
        hook: &settings::Webhook,
    ) -> Result<SecretString, Error> {
        let key = self.key(ctx, hook).await?;
        let current = ctx.current().await?;
        let Shape::Json(mut object, _) =
            Shape::read(ctx.secret_arn(), AWSCURRENT, &current.value, settings)?
        else {
            return Err(
                ctx.invalid_value(AWSCURRENT, "is not a JSON object, which issuer mode needs")
            );
        };
        if settings.revoke == Some(RevokePrevious::NextRotation) {
            let previous = ctx.previous().await?;
            self.revoke_previous(ctx, settings, hook, &key, current, previous.as_ref())
                .await?;
        }
        let issued = issuer::issue(ctx, hook, &key, settings, current).await?;
        info!(secret = %ctx.secret_arn(), version = %ctx.event.version_id, key_id = %issued.key_id, "the issuer minted a key");
        object.extend(issued.fields);
        object.insert(settings.key_id_field.clone(), Value::String(issued.key_id));
        let value = SecretString::from(Value::Object(object).to_string());
        self.remember_issued(&value);
        Ok(value)
    }

    /// Has the webhook revoke the credential `previous` holds, unless it is
    /// the one `current` holds. In issuer mode by its key id (a value without
    /// one is left alone, with a warning); otherwise by its version.
    async fn revoke_previous<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        settings: &Settings,
        hook: &settings::Webhook,
        key: &SecretString,
        current: &StoredValue,
        previous: Option<&StoredValue>,
    ) -> Result<(), Error> {
        let Some(previous) = previous.filter(|p| p.version_id != current.version_id) else {
            return Ok(());
        };
        if settings.mode != Mode::Issue {
            return issuer::revoke(ctx, hook, key, &previous.version_id, None).await;
        }
        let field = &settings.key_id_field;
        let Some(old) = issuer::key_id_of(&previous.value, field) else {
            warn!(secret = %ctx.secret_arn(), version = %previous.version_id, field = %field,
                "the previous value has no key id: rotor cannot have it revoked; revoke it at the issuer yourself");
            return Ok(());
        };
        if issuer::key_id_of(&current.value, field).as_deref() == Some(old.as_str()) {
            return Ok(()); // never the key AWSCURRENT holds
        }
        issuer::revoke(ctx, hook, key, &previous.version_id, Some(&old)).await?;
        info!(secret = %ctx.secret_arn(), version = %previous.version_id, key_id = %old, "revoked the previous key");
        Ok(())
    }

    /// Issuer mode's setSecret: every key the issuer lists as minted for the
    /// pending version but not stored there (an earlier attempt's, whose
    /// process died or whose write lost a race) is revoked; never the key
    /// the pending or the current value holds.
    async fn revoke_orphans<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        settings: &Settings,
        hook: &settings::Webhook,
    ) -> Result<(), Error> {
        let key = self.key(ctx, hook).await?;
        let (pending, current) = (ctx.pending().await?, ctx.current().await?);
        let field = &settings.key_id_field;
        let Some(kept) = issuer::key_id_of(&pending.value, field) else {
            let problem =
                format!("has no key id in field {field}; cancel this rotation and start a new one");
            return Err(ctx.invalid_value(ctx.pending_label, problem));
        };
        let live = issuer::key_id_of(&current.value, field);
        let version = &pending.version_id;
        for orphan in issuer::list(ctx, hook, &key, version).await? {
            if orphan == kept || live.as_deref() == Some(orphan.as_str()) {
                continue;
            }
            issuer::revoke(ctx, hook, &key, version, Some(&orphan)).await?;
            warn!(secret = %ctx.secret_arn(), version = %version, key_id = %orphan,
                "revoked a key the issuer minted for this version in an earlier attempt that was never stored");
        }
        Ok(())
    }
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
        if let (Mode::Issue, Some(hook)) = (settings.mode, &settings.webhook) {
            return self.issue(ctx, &settings, hook).await;
        }
        if let Some(hook) = &settings.webhook {
            // A key secret that does not serve this secret is refused before
            // anything is staged, not one step later.
            let key = self.key(ctx, hook).await?;
            if settings.revoke == Some(RevokePrevious::NextRotation) {
                let (current, previous) = (ctx.current().await?, ctx.previous().await?);
                self.revoke_previous(ctx, &settings, hook, &key, current, previous.as_ref())
                    .await?;
            }
        }
        let current = ctx.current().await?;
        match Shape::read(ctx.secret_arn(), AWSCURRENT, &current.value, &settings)? {
            Shape::Plain => {
                if let Generator::KeyPair(KeyPairSpec {
                    public_field: Some(public),
                    ..
                }) = &settings.generator
                {
                    let problem = format!(
                        "a plain secret holds one value, so it has no field {public} for the public key; store a JSON object, or drop public={public}"
                    );
                    return Err(Error::InvalidSettings {
                        secret: ctx.secret_arn().to_owned(),
                        setting: GENERATE_TAG.into(),
                        problem,
                    });
                }
                new_plain_value(ctx, &settings)
            }
            Shape::Json(mut object, fields) => {
                regenerate(ctx, &settings, &mut object, fields)?;
                Ok(SecretString::from(Value::Object(object).to_string()))
            }
        }
    }

    async fn set_value<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let settings = self.settings(ctx)?;
        let Some(hook) = &settings.webhook else {
            return Ok(()); // nothing outside the secret holds the value
        };
        if settings.mode == Mode::Issue {
            return self.revoke_orphans(ctx, &settings, hook).await;
        }
        let pending = ctx.pending().await?;
        let registered = registered_value(&settings, &pending.value);
        let body = request_body(ctx, "setSecret", registered.as_ref());
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
        if settings.mode == Mode::Issue {
            let field = &settings.key_id_field;
            let Some(key_id) = issuer::key_id_of(&pending.value, field) else {
                let problem = format!(
                    "has no key id in field {field}; cancel this rotation and start a new one"
                );
                return Err(ctx.invalid_value(label, problem));
            };
            let key = self.key(ctx, hook).await?;
            return match issuer::test(ctx, hook, &key, version, &key_id).await? {
                Reply::Done => Ok(()),
                Reply::NotYet => {
                    let problem = format!(
                        "has not activated key {key_id} of version {version} yet; it stays staged as {label}: rotate again with the same ClientRequestToken"
                    );
                    Err(webhook::failure(&hook.url, Cause::Pending, problem))
                }
            };
        }
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

    /// With `REVOKE_PREVIOUS=at-finish` (issuer mode's default), the webhook
    /// revokes what AWSPREVIOUS holds, read afresh: on a replay too, which
    /// the webhook must answer as done.
    async fn after_finish<S: SecretStore>(&self, ctx: &StepContext<'_, S>) -> Result<(), Error> {
        let settings = self.settings(ctx)?;
        let (Some(RevokePrevious::AtFinish), Some(hook)) = (settings.revoke, &settings.webhook)
        else {
            return Ok(());
        };
        let Some(current) = ctx.read_label(AWSCURRENT).await? else {
            return Ok(());
        };
        let previous = ctx.read_label(AWSPREVIOUS).await?;
        let key = self.key(ctx, hook).await?;
        self.revoke_previous(ctx, &settings, hook, &key, &current, previous.as_ref())
            .await
    }

    fn issued_values(&self) -> Option<&impl IssuedValues> {
        Some(self)
    }
}

/// Issuer mode: a minted key exists only at the issuer until it is stored,
/// so the driver stores it exactly once (retrying the write, keeping it in
/// this process for a retry of the step) and never asks for another while
/// this process keeps it.
impl IssuedValues for GenericRotator {
    fn issued_at_target(&self, value: &SecretString) -> bool {
        let digest: [u8; 32] = Sha256::digest(value.expose_secret().as_bytes()).into();
        self.issued
            .lock()
            .is_ok_and(|issued| issued.contains(&digest))
    }

    async fn recovery<S: SecretStore>(
        &self,
        ctx: &StepContext<'_, S>,
        value: &SecretString,
    ) -> String {
        let key_id = self
            .settings(ctx)
            .ok()
            .and_then(|settings| issuer::key_id_of(value, &settings.key_id_field));
        issuer::recovery(ctx.secret_arn(), &ctx.event.version_id, key_id.as_deref())
    }
}

#[cfg(test)]
mod tests;
