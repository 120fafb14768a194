//! The `client_credentials` grant (RFC 6749 §4.4): how testSecret proves a
//! client secret works, and how management credentials become an access token.

use base64::Engine;
use rotor_core::http::{client, describe, display_url};
use rotor_core::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::client::AuthMethod;

/// Why a token request failed.
#[derive(Debug)]
pub enum GrantError {
    /// The server refused the client's credentials (`invalid_client`, 401).
    Refused(String),
    /// The server or the network failed; worth retrying.
    Unavailable(String),
    /// Anything else the server said.
    Other(String),
}

impl GrantError {
    /// The text of the failure.
    pub fn text(&self) -> &str {
        match self {
            GrantError::Refused(t) | GrantError::Unavailable(t) | GrantError::Other(t) => t,
        }
    }
}

/// What a token request needs.
pub struct Grant<'a> {
    /// The token endpoint.
    pub endpoint: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// The client secret.
    pub secret: &'a SecretString,
    /// Basic or post.
    pub method: AuthMethod,
    /// Optional scope.
    pub scope: Option<&'a str>,
    /// Optional audience (Auth0 and others).
    pub audience: Option<&'a str>,
}

/// Requests a token; returns the access token.
pub async fn client_credentials(grant: &Grant<'_>) -> Result<SecretString, GrantError> {
    rotor_core::progress::waiting_for(|| {
        format!(
            "the token endpoint {} (client_credentials grant)",
            rotor_core::http::display_url(grant.endpoint)
        )
    });
    let mut form = vec![("grant_type", "client_credentials".to_owned())];
    if let Some(scope) = grant.scope {
        form.push(("scope", scope.to_owned()));
    }
    if let Some(audience) = grant.audience {
        form.push(("audience", audience.to_owned()));
    }
    // Parsed here, where the secret leaves: https (or loopback http), no user info.
    let url = rotor_core::http::parse_endpoint(grant.endpoint).map_err(GrantError::Other)?;
    let mut request = client()
        .map_err(GrantError::Other)?
        .post(url)
        .header("Accept", "application/json");
    match grant.method {
        AuthMethod::Basic => {
            // RFC 6749 §2.3.1: both parts form-encoded before Base64.
            let pair = format!(
                "{}:{}",
                form_encode(grant.client_id),
                form_encode(grant.secret.expose_secret())
            );
            let header = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            );
            request = request.header("Authorization", header);
        }
        AuthMethod::Post => {
            form.push(("client_id", grant.client_id.to_owned()));
            form.push(("client_secret", grant.secret.expose_secret().to_owned()));
        }
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let response = request
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| GrantError::Unavailable(describe(&e)))?;
    let status = response.status().as_u16();
    let parsed: Value = response.json().await.unwrap_or(Value::Null);
    let where_ = display_url(grant.endpoint);
    let oauth_error = || {
        let code = parsed["error"].as_str().unwrap_or("no error code");
        let description = parsed["error_description"]
            .as_str()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        format!("{where_} answered HTTP {status}: {code}{description}")
    };
    match status {
        200 => parsed["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| {
                GrantError::Other(format!("{where_} answered 200 without an access_token"))
            }),
        // 403: some servers (glewlwyd) refuse a wrong secret so, with no body.
        401 | 403 => Err(GrantError::Refused(oauth_error())),
        400 if parsed["error"] == "invalid_client" || parsed["error"] == "unauthorized_client" => {
            Err(GrantError::Refused(oauth_error()))
        }
        429 | 500..=599 => Err(GrantError::Unavailable(oauth_error())),
        _ => Err(GrantError::Other(oauth_error())),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b+c/d:é"), "a+b%2Bc%2Fd%3A%C3%A9");
    }
}
