//! The webhook that registers a new value with an external system (setSecret)
//! and reports whether that system has validated it (testSecret).
//!
//! Every request is signed so its receiver can authenticate rotor, as
//! [`rotor_core::signature`] says (the after-rotation webhook signs alike):
//! `X-Rotor-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>` with the
//! Unix time in `X-Rotor-Timestamp`; receivers should refuse stale timestamps.
//! The key is the AWSCURRENT value of the secret the settings name. Messages name
//! the webhook's origin and path, never the secret value or the query string.

use reqwest::Response;
use rotor_core::http::{MAX_BODY, client, display_url, read_body, send_error, status_cause};
pub use rotor_core::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use rotor_core::{Cause, Error, TargetError, TargetKind};
use secrecy::{ExposeSecret, SecretString};

/// What the receiver said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// 200 or 204: done (registered, or validated).
    Done,
    /// 202: accepted, but not validated yet.
    NotYet,
}

/// A failure of the webhook at `url`, named by its origin and path.
pub fn failure(url: &str, cause: Cause, problem: impl Into<String>) -> Error {
    Error::target(TargetKind::Webhook, cause, target(url), problem)
}

/// The webhook at `url` as messages name it: `webhook https://host/path`.
fn target(url: &str) -> String {
    format!("webhook {}", display_url(url))
}

/// POSTs a signed JSON body and sorts the answer.
pub async fn call(url: &str, key: &SecretString, body: SecretString) -> Result<Reply, Error> {
    let response = send(url, key, body).await?;
    sort(
        url,
        response.status().as_u16(),
        status_cause(response.status()),
    )
}

/// POSTs a signed JSON body and reads the JSON answer of a 200, at most
/// [`MAX_BODY`] bytes: a longer body, or one that is no JSON object, is a
/// protocol failure. The answer may hold a credential: it is read into a
/// [`SecretString`] and parsed by the caller, never shown.
pub async fn call_for_json(
    url: &str,
    key: &SecretString,
    body: SecretString,
) -> Result<(Reply, SecretString), Error> {
    let response = send(url, key, body).await?;
    let status = response.status();
    let reply = sort(url, status.as_u16(), status_cause(status))?;
    if status.as_u16() != 200 {
        return Ok((reply, SecretString::from("")));
    }
    let body = read_body(response, MAX_BODY)
        .await
        .map_err(|e| e.at(TargetKind::Webhook, target(url)))?;
    match String::from_utf8(body) {
        Ok(text) => Ok((reply, SecretString::from(text))),
        Err(_) => Err(failure(
            url,
            Cause::Protocol,
            "answered with a body that is not UTF-8 text; it must answer a JSON object",
        )),
    }
}

/// POSTs a signed request to revoke something: done on 200 or 204, and on
/// 410 Gone (already revoked), so that a replayed revoke converges.
pub async fn call_revoke(url: &str, key: &SecretString, body: SecretString) -> Result<(), Error> {
    let response = send(url, key, body).await?;
    let status = response.status();
    match status.as_u16() {
        410 => Ok(()),
        202 => Err(failure(
            url,
            Cause::Protocol,
            "answered 202 to revoke; it must revoke at once and answer 200, 204 or 410",
        )),
        code => sort(url, code, status_cause(status)).map(|_| ()),
    }
}

async fn send(url: &str, key: &SecretString, body: SecretString) -> Result<Response, Error> {
    rotor_core::progress::waiting_for(|| target(url));
    let timestamp = rotor_core::signature::now();
    let signature = sign(
        key.expose_secret().as_bytes(),
        timestamp,
        body.expose_secret().as_bytes(),
    );
    client()
        .map_err(|e| TargetError::from(e).at(TargetKind::Webhook, target(url)))?
        .post(url)
        .header("Content-Type", "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body.expose_secret().to_owned())
        .send()
        .await
        .map_err(|e| send_error(&e).at(TargetKind::Webhook, target(url)))
}

/// The reply an HTTP status stands for, or the failure it is.
fn sort(url: &str, status: u16, cause: Cause) -> Result<Reply, Error> {
    let problem = match status {
        200 | 204 => return Ok(Reply::Done),
        202 => return Ok(Reply::NotYet),
        401 | 403 => format!(
            "refused rotor's signature (HTTP {status}); the receiver and the key secret must hold the same key"
        ),
        300..=399 => format!(
            "answered with a redirect (HTTP {status}), which rotor never follows; configure the final URL"
        ),
        408 | 429 | 500..=599 => format!("answered HTTP {status}; the step can be retried"),
        _ => format!("refused the request (HTTP {status}); see the receiver's logs"),
    };
    Err(failure(url, cause, problem))
}
