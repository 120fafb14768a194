//! What every call to a provider shares on the wire: the `Authorization`
//! header, marked sensitive so that no `Debug` of a request or header map
//! prints it, and the error code of an answer, the one part of a provider's
//! error that a step's error may quote when the call carries a secret.

use reqwest::header::HeaderValue;
use rotor_core::{Cause, TargetError};
use serde_json::Value;

/// An `Authorization` header value (`Bearer …`, `SSWS …`, `Basic …`), marked
/// sensitive. A value that is not a valid header (a line break, a control
/// character) is refused without being shown.
pub fn authorization(value: &str) -> Result<HeaderValue, TargetError> {
    let refused = concat!(
        "the credential is not a valid HTTP header value (it holds a line break or another ",
        "control character); check the secret that holds it"
    );
    let mut header =
        HeaderValue::from_str(value).map_err(|_| TargetError::new(Cause::Rejected, refused))?;
    header.set_sensitive(true);
    Ok(header)
}

/// The error code of a provider's error answer, if it has one that looks
/// like a code: Okta's and Auth0's `errorCode`, OAuth's and Keycloak's
/// `error`, Graph's `error.code`. Anything longer than 32 characters, or with
/// characters other than letters, digits and `_.:-`, is not a code (it may be
/// text that quotes the request) and is left out.
pub fn error_code(body: &Value) -> Option<&str> {
    ["errorCode", "error", "code"].iter().find_map(|k| {
        body[k]
            .as_str()
            .or_else(|| body["error"][k].as_str())
            .filter(|c| is_code(c))
    })
}

/// The items of a JSON array in an answer that `item` reads (Okta's
/// `errorCauses`, Entra's `error_codes`), joined with `separator`; `None`
/// when there are none.
pub fn listed<'a, T: std::fmt::Display>(
    array: &'a Value,
    item: impl Fn(&'a Value) -> Option<T>,
    separator: &str,
) -> Option<String> {
    let items: Vec<String> = array
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(item)
        .map(|i| i.to_string())
        .collect();
    (!items.is_empty()).then(|| items.join(separator))
}

fn is_code(text: &str) -> bool {
    (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn authorization_headers_are_sensitive() {
        for value in ["Bearer t0k3n", "SSWS t0k3n", "Basic YTpi"] {
            let header = authorization(value).unwrap();
            assert!(header.is_sensitive(), "{value}");
            assert!(!format!("{header:?}").contains("t0k3n"));
        }
        let refused = authorization("Bearer t0k3n\r\nX-Evil: 1").unwrap_err();
        assert!(!refused.problem.contains("t0k3n"), "{}", refused.problem);
    }

    #[test]
    fn listed_items_are_joined_or_none() {
        let body = json!({"error_codes": [7000215, "x", 50011], "errorCauses": []});
        let codes = listed(&body["error_codes"], Value::as_u64, ", ");
        assert_eq!(codes.as_deref(), Some("7000215, 50011"));
        let causes = listed(&body["errorCauses"], |c| c["errorSummary"].as_str(), "; ");
        assert_eq!(causes, None);
        assert_eq!(listed(&body["missing"], Value::as_u64, ", "), None);
    }

    #[test]
    fn only_code_shaped_error_codes_are_quoted() {
        let cases = [
            (
                json!({"errorCode": "E0000001", "errorSummary": "s3cr3t"}),
                Some("E0000001"),
            ),
            (
                json!({"error": "invalid_client", "error_description": "s3cr3t"}),
                Some("invalid_client"),
            ),
            (
                json!({"error": {"code": "Request_BadRequest", "message": "s3cr3t"}}),
                Some("Request_BadRequest"),
            ),
            (json!({"error": "HTTP 401 Unauthorized"}), None),
            (
                json!({"error": "client_secret 's3cr3t' is not valid"}),
                None,
            ),
            (json!({"errorCode": "a".repeat(33)}), None),
            (json!("s3cr3t"), None),
            (Value::Null, None),
        ];
        for (body, expected) in cases {
            assert_eq!(error_code(&body), expected, "{body}");
        }
    }
}
