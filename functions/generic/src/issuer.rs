//! Issuer mode: the credential is minted elsewhere (an API key a provider
//! issues) and rotor only asks for it, stores it, has it tested and has the
//! old one revoked, through the secret's webhook. Every request is signed as
//! [`crate::webhook`] says and names the secret and a version id.
//!
//! | action | when | request names | 200 answer |
//! | --- | --- | --- | --- |
//! | `issue` | createSecret | the new version, AWSCURRENT's version (and its value only if the deployer allows) | `{"keyId": "...", "fields": {...}}` |
//! | `list` | setSecret | the new version | `{"keyIds": [...]}`: live keys issued for it |
//! | `test` | testSecret | the new version and its key id | (any) |
//! | `revoke` | setSecret (orphans), finishSecret or the next createSecret (the previous key) | the version and the key id | (any) |
//!
//! The issuer never sees a value it did not issue unless the deployer sets
//! [`crate::settings::names::ISSUER_SENDS_CURRENT_VAR`]. Its answer may set exactly the fields the
//! secret's settings give it and nothing else; the key id, which messages
//! and logs show, must be short plain text.

use rotor_core::{Cause, Error, ExposeSecret, SecretStore, SecretString, StepContext};
use serde_json::{Map, Value};

use crate::settings::{Settings, Webhook};
use crate::webhook::{self, Reply};

/// The longest key id rotor accepts.
pub const MAX_KEY_ID: usize = 128;

/// A credential the issuer minted: its id and the fields that hold it.
pub struct Issued {
    /// The issuer's id of the key: shown in messages, never secret.
    pub key_id: String,
    /// The fields to store, each one the settings give the issuer.
    pub fields: Map<String, Value>,
}

/// Whether `id` may be a key id: 1 to [`MAX_KEY_ID`] characters of letters,
/// digits and `_ . : / = + - @`, so that it can be shown in any message.
pub fn valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:/=+-@".contains(c))
}

/// Reads the issuer's answer to `issue`: a JSON object with a valid `keyId`
/// and `fields` holding a string for each of `owned` and nothing more. The
/// error says what is wrong, naming fields, never their values.
pub fn parse_issued(answer: &str, owned: &[String]) -> Result<Issued, String> {
    let Ok(Value::Object(mut answer)) = serde_json::from_str::<Value>(answer) else {
        return Err("answered something that is not a JSON object".into());
    };
    let key_id = match answer.remove("keyId") {
        Some(Value::String(id)) if valid_key_id(&id) => id,
        Some(_) => {
            return Err(format!(
                "answered a keyId that is not 1 to {MAX_KEY_ID} letters, digits or _ . : / = + - @"
            ));
        }
        None => return Err("answered no keyId".into()),
    };
    let Some(Value::Object(fields)) = answer.remove("fields") else {
        return Err("answered no fields object".into());
    };
    if let Some(other) = fields.keys().find(|f| !owned.contains(f)) {
        return Err(format!(
            "answered a field {other:?} that the secret's settings do not give it (rotor:fields); nothing was stored"
        ));
    }
    for field in owned {
        match fields.get(field) {
            Some(Value::String(text)) if !text.is_empty() => {}
            Some(_) => return Err(format!("answered field {field:?} empty or not as a string")),
            None => return Err(format!("answered no field {field:?}")),
        }
    }
    Ok(Issued { key_id, fields })
}

/// The key id a stored value holds in `field`, if it is a JSON object with one.
pub fn key_id_of(value: &SecretString, field: &str) -> Option<String> {
    match serde_json::from_str::<Value>(value.expose_secret()) {
        Ok(Value::Object(mut object)) => match object.remove(field) {
            Some(Value::String(id)) if valid_key_id(&id) => Some(id),
            _ => None,
        },
        _ => None,
    }
}

/// What every request carries: the action, the secret, a version.
fn request<S: SecretStore>(ctx: &StepContext<'_, S>, action: &str, version: &str) -> Value {
    serde_json::json!({
        "action": action,
        "secretArn": ctx.secret_arn(),
        "secretName": ctx.secret.name,
        "versionId": version,
    })
}

fn body(request: Value) -> SecretString {
    SecretString::from(request.to_string())
}

/// Asks the issuer for a new credential for the version being rotated to.
pub async fn issue<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    hook: &Webhook,
    key: &SecretString,
    settings: &Settings,
    current: &rotor_core::store::StoredValue,
) -> Result<Issued, Error> {
    let mut request = request(ctx, "issue", &ctx.event.version_id);
    request["currentVersionId"] = Value::String(current.version_id.clone());
    request["fields"] = serde_json::json!(settings.fields.clone().unwrap_or_default());
    if let Some(id) = key_id_of(&current.value, &settings.key_id_field) {
        request["currentKeyId"] = Value::String(id);
    }
    if settings.issuer_sends_current {
        request["currentSecretString"] = Value::String(current.value.expose_secret().to_owned());
    }
    let (reply, answer) = webhook::call_for_json(&hook.url, key, body(request)).await?;
    if reply != Reply::Done || answer.expose_secret().is_empty() {
        let problem = "answered issue without a credential (it must answer 200 with a JSON object); nothing was stored";
        return Err(webhook::failure(&hook.url, Cause::Protocol, problem));
    }
    let owned = settings.fields.clone().unwrap_or_default();
    parse_issued(answer.expose_secret(), &owned)
        .map_err(|problem| webhook::failure(&hook.url, Cause::Protocol, problem))
}

/// The live keys the issuer reports it minted for `version`.
pub async fn list<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    hook: &Webhook,
    key: &SecretString,
    version: &str,
) -> Result<Vec<String>, Error> {
    let (reply, answer) =
        webhook::call_for_json(&hook.url, key, body(request(ctx, "list", version))).await?;
    let malformed = || {
        webhook::failure(
            &hook.url,
            Cause::Protocol,
            "answered list without {\"keyIds\": [...]} of valid key ids",
        )
    };
    if reply != Reply::Done {
        return Err(malformed());
    }
    let Ok(Value::Object(mut answer)) = serde_json::from_str::<Value>(answer.expose_secret())
    else {
        return Err(malformed());
    };
    let Some(Value::Array(ids)) = answer.remove("keyIds") else {
        return Err(malformed());
    };
    ids.into_iter()
        .map(|id| match id {
            Value::String(id) if valid_key_id(&id) => Ok(id),
            _ => Err(malformed()),
        })
        .collect()
}

/// Asks the issuer whether the key `key_id` of `version` works.
pub async fn test<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    hook: &Webhook,
    key: &SecretString,
    version: &str,
    key_id: &str,
) -> Result<Reply, Error> {
    let mut request = request(ctx, "test", version);
    request["keyId"] = Value::String(key_id.to_owned());
    webhook::call(&hook.url, key, body(request)).await
}

/// Has the issuer revoke key `key_id`, which `version` holds (or was issued
/// for). Revoking a revoked key must answer 200 or 204 (or 410 Gone).
pub async fn revoke<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    hook: &Webhook,
    key: &SecretString,
    version: &str,
    key_id: Option<&str>,
) -> Result<(), Error> {
    let mut request = request(ctx, "revoke", version);
    if let Some(id) = key_id {
        request["keyId"] = Value::String(id.to_owned());
    }
    webhook::call_revoke(&hook.url, key, body(request))
        .await
        .map_err(|e| {
            e.map_target_problem(|p| {
                let what = key_id.map(|id| format!("key {id} of ")).unwrap_or_default();
                format!("revoking {what}version {version}: {p}")
            })
        })
}

/// How to recover a minted key that could not be stored.
pub fn recovery(secret: &str, version: &str, key_id: Option<&str>) -> String {
    let key = key_id
        .map(|id| format!("key {id}"))
        .unwrap_or_else(|| "the key".into());
    format!(
        "The issuer minted {key} for version {version}, and it is not stored in Secrets Manager; AWSCURRENT still holds a working key. This function keeps it until its process ends: retry the rotation (aws secretsmanager rotate-secret --secret-id {secret}: while version {version} is pending, Secrets Manager reattempts it) to store it. If the process has ended, the retry asks the issuer for another key, and its setSecret revokes {key}, which the issuer lists for version {version}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned() -> Vec<String> {
        vec!["api_key".into(), "api_secret".into()]
    }

    #[test]
    fn an_answer_sets_exactly_the_fields_it_owns() {
        let ok = parse_issued(
            r#"{"keyId":"k-1","fields":{"api_key":"AK","api_secret":"S3CR3T"}}"#,
            &owned(),
        )
        .unwrap();
        assert_eq!(ok.key_id, "k-1");
        assert_eq!(ok.fields.len(), 2);
        for (answer, expect) in [
            (
                r#"{"keyId":"k","fields":{"api_key":"a","api_secret":"b","password":"x"}}"#,
                "\"password\"",
            ),
            (
                r#"{"keyId":"k","fields":{"api_key":"a"}}"#,
                "no field \"api_secret\"",
            ),
            (
                r#"{"keyId":"k","fields":{"api_key":"a","api_secret":7}}"#,
                "not as a string",
            ),
            (r#"{"fields":{"api_key":"a","api_secret":"b"}}"#, "no keyId"),
            (r#"{"keyId":"k k\n","fields":{}}"#, "keyId"),
            (r#"{"keyId":"k"}"#, "no fields"),
            ("S3CR3T-not-json", "not a JSON object"),
            ("[1]", "not a JSON object"),
        ] {
            let problem = parse_issued(answer, &owned()).err().unwrap();
            assert!(problem.contains(expect), "{answer}: {problem}");
            assert!(!problem.contains("S3CR3T"));
        }
    }

    #[test]
    fn key_ids_are_short_plain_text() {
        assert!(valid_key_id("AKIA0123:abc/def=+-@_."));
        assert!(!valid_key_id(""));
        assert!(!valid_key_id("a b"));
        assert!(!valid_key_id("a\"b"));
        assert!(!valid_key_id(&"k".repeat(MAX_KEY_ID + 1)));
        let value = SecretString::from(r#"{"key_id":"k-9","api_key":"x"}"#);
        assert_eq!(key_id_of(&value, "key_id").as_deref(), Some("k-9"));
        assert_eq!(key_id_of(&value, "other"), None);
        assert_eq!(key_id_of(&SecretString::from("plain"), "key_id"), None);
    }
}
