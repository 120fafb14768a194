//! The `client_credentials` grant (RFC 6749 §4.4): how testSecret proves a
//! client secret works, and how management credentials become an access token.

use base64::Engine;
use reqwest::header::AUTHORIZATION;
use rotor_core::http::{client, display_url, send_error};
use rotor_core::{Cause, ExposeSecret, SecretString, TargetError};
use serde_json::Value;

use crate::secret::{AuthMethod, ClientSecret};
use crate::wire;

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

impl<'a> Grant<'a> {
    /// The grant of a client's secret, as its secret asks for it.
    pub fn for_client(client: &'a ClientSecret) -> Grant<'a> {
        Grant {
            endpoint: &client.token_endpoint,
            client_id: &client.client_id,
            secret: &client.client_secret,
            method: client.auth_method,
            scope: client.scope.as_deref(),
            audience: client.audience.as_deref(),
        }
    }
}

/// Requests a token; returns the access token.
///
/// A failure's cause: [`Cause::Auth`] when the server refused the client's
/// credentials (401, `invalid_client`, `unauthorized_client`, or a bare 403,
/// which some servers answer a wrong secret with), [`Cause::Unavailable`] for
/// 408/429/5xx, [`Cause::Protocol`] for a 200 without a token, the send
/// failure's own cause ([`rotor_core::http::send_cause`]) when no answer came,
/// and otherwise the status's cause ([`rotor_core::http::status_cause`]).
///
/// The request carries the client secret, so a failure quotes the server's
/// error code (`invalid_client`) and numeric `error_codes`, never its
/// `error_description`, which may repeat the request. An answer over
/// [`rotor_core::http::MAX_BODY`] is a [`Cause::Protocol`] failure.
pub async fn client_credentials(grant: &Grant<'_>) -> Result<SecretString, TargetError> {
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
    let url = rotor_core::http::parse_endpoint(grant.endpoint)
        .map_err(|problem| TargetError::new(Cause::Rejected, problem.to_string()))?;
    let mut request = client()?.post(url).header("Accept", "application/json");
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
            request = request.header(AUTHORIZATION, wire::authorization(&header)?);
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
        .map_err(|e| send_error(&e))?;
    let http_status = response.status();
    let status = http_status.as_u16();
    let where_ = display_url(grant.endpoint);
    let parsed: Value = rotor_core::http::read_json(response)
        .await
        .map_err(|e| TargetError::new(e.cause, format!("{where_} {}", e.problem)))?;
    let oauth_error = || {
        let code = wire::error_code(&parsed).unwrap_or("no error code");
        // Entra's AADSTS numbers: digits cannot quote the request.
        let numbers = wire::listed(&parsed["error_codes"], Value::as_u64, ", ")
            .map(|numbers| format!(" (error codes {numbers})"))
            .unwrap_or_default();
        format!("{where_} answered HTTP {status}: {code}{numbers}")
    };
    match status {
        200 => parsed["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| {
                TargetError::new(
                    Cause::Protocol,
                    format!("{where_} answered 200 without an access_token"),
                )
            }),
        // 403: some servers (glewlwyd) refuse a wrong secret so, with no body.
        401 | 403 => Err(TargetError::new(Cause::Auth, oauth_error())),
        400 if parsed["error"] == "invalid_client" || parsed["error"] == "unauthorized_client" => {
            Err(TargetError::new(Cause::Auth, oauth_error()))
        }
        _ => Err(TargetError::new(
            rotor_core::http::status_cause(http_status),
            oauth_error(),
        )),
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
