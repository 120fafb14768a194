//! Finding a credential in text a function wrote: its logs, its step errors.
//!
//! A credential can leave in other shapes than its own text: escaped inside a
//! JSON body, percent-encoded in a form, base64 in a Basic header, or as the
//! verifier a server keeps of it (Redis's SHA-256, MySQL's double SHA-1,
//! PostgreSQL's SCRAM keys). [`forms`] lists those shapes, and a credential is
//! any string field whose name says it holds one, not only the five names the
//! first check knew.

use base64::Engine;
use rotor_core::ExposeSecret;
use rotor_core::SecretString;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Whether a field of that name holds a credential: its name mentions a
/// password, secret, token, key, credential or passphrase, and it is not an
/// ARN, id, name, URL or endpoint that merely mentions one
/// (`management_secret_arn`, `key_id`, `AccessKeyId`).
pub fn is_credential_field(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let mentions = [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "key",
        "credential",
        "passphrase",
        "private",
    ]
    .iter()
    .any(|word| lower.contains(word));
    let names_something = [
        "arn", "id", "ids", "name", "url", "uri", "endpoint", "label",
    ]
    .iter()
    .any(|end| {
        lower.ends_with(&format!("_{end}"))
            || lower.ends_with(&format!("-{end}"))
            || name.ends_with(&end_camel(end))
            || lower == *end
    });
    mentions && !names_something
}

fn end_camel(end: &str) -> String {
    let mut chars = end.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The credentials a stored value holds: every credential field's text (in
/// nested objects too), or the whole value when it is not a JSON object.
pub fn credentials_in(value: &SecretString) -> Vec<String> {
    fn walk(value: &Value, found: &mut Vec<String>) {
        if let Value::Object(fields) = value {
            for (name, field) in fields {
                match field {
                    Value::String(text) if is_credential_field(name) && !text.is_empty() => {
                        found.push(text.clone())
                    }
                    Value::Object(_) => walk(field, found),
                    _ => {}
                }
            }
        }
    }
    match serde_json::from_str::<Value>(value.expose_secret()) {
        Ok(object @ Value::Object(_)) => {
            let mut found = Vec::new();
            walk(&object, &mut found);
            found
        }
        _ => vec![value.expose_secret().to_owned()],
    }
}

/// The shapes in which `credential` could appear in text: itself, and, for
/// credentials long enough not to occur by chance (8 characters or more),
/// JSON-escaped, percent-encoded, base64, and the verifiers servers keep
/// (SHA-256 hex as Redis's ACL lists it, SHA-1 hex, MySQL's `*` double SHA-1).
pub fn forms(credential: &str) -> Vec<String> {
    let mut forms = vec![credential.to_owned()];
    if credential.chars().count() < 8 {
        return forms;
    }
    let json = serde_json::to_string(credential).unwrap_or_default();
    forms.push(json.trim_matches('"').to_owned());
    forms.push(form_urlencoded::byte_serialize(credential.as_bytes()).collect());
    forms.push(base64::engine::general_purpose::STANDARD.encode(credential));
    forms.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(credential));
    let sha256 = hex::encode(Sha256::digest(credential.as_bytes()));
    forms.push(sha256.to_ascii_uppercase());
    forms.push(sha256);
    let sha1 = Sha1::digest(credential.as_bytes());
    forms.push(hex::encode(sha1));
    forms.push(format!(
        "*{}",
        hex::encode(Sha1::digest(sha1)).to_ascii_uppercase()
    ));
    forms.sort();
    forms.dedup();
    forms
}

/// The first form of any of `credentials` that `text` holds, as the index of
/// the credential (never the form itself, which a failure must not print).
pub fn find_any(credentials: &[String], text: &str) -> Option<usize> {
    credentials
        .iter()
        .position(|c| forms(c).iter().any(|form| text.contains(form.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_fields_are_found_by_name() {
        for yes in [
            "password",
            "client_secret",
            "registration_access_token",
            "okta_api_token",
            "SecretAccessKey",
            "private_key",
            "apiKey",
            "awsSeamlessDomainPassword",
        ] {
            assert!(is_credential_field(yes), "{yes}");
        }
        for no in [
            "username",
            "host",
            "masterarn",
            "management_secret_arn",
            "AccessKeyId",
            "key_id",
            "registration_client_uri",
            "token_endpoint",
            "rotor:webhook-key-secret-arn",
        ] {
            assert!(!is_credential_field(no), "{no}");
        }
    }

    #[test]
    fn the_forms_of_a_credential_are_found() {
        let credential = "pa\"ss/word+1234".to_owned();
        let credentials = [credential.clone()];
        let body = format!(
            "{{\"password\":{}}}",
            serde_json::to_string(&credential).unwrap()
        );
        assert_eq!(find_any(&credentials, &body), Some(0));
        let form = format!(
            "client_secret={}",
            form_urlencoded::byte_serialize(credential.as_bytes()).collect::<String>()
        );
        assert_eq!(find_any(&credentials, &form), Some(0));
        let basic = base64::engine::general_purpose::STANDARD.encode(&credential);
        assert_eq!(find_any(&credentials, &basic), Some(0));
        let acl = hex::encode(Sha256::digest(credential.as_bytes()));
        assert_eq!(find_any(&credentials, &format!("#{acl}")), Some(0));
        assert_eq!(find_any(&credentials, "nothing here"), None);
    }
}
