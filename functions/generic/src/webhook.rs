//! The webhook that registers a new value with an external system (setSecret)
//! and reports whether that system has validated it (testSecret).
//!
//! Every request is signed so its receiver can authenticate rotor, as
//! [`rotor_core::signature`] says (the after-rotation webhook signs alike):
//! `X-Rotor-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>` with the
//! Unix time in `X-Rotor-Timestamp`; receivers should refuse stale timestamps.
//! The key is the AWSCURRENT value of the secret the settings name. Messages name
//! the webhook's origin and path, never the secret value or the query string.

use rotor_core::http::{client, display_url, send_error, status_cause};
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
    rotor_core::progress::waiting_for(|| target(url));
    let timestamp = rotor_core::signature::now();
    let signature = sign(
        key.expose_secret().as_bytes(),
        timestamp,
        body.expose_secret().as_bytes(),
    );
    let response = client()
        .map_err(|e| TargetError::from(e).at(TargetKind::Webhook, target(url)))?
        .post(url)
        .header("Content-Type", "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body.expose_secret().to_owned())
        .send()
        .await
        .map_err(|e| send_error(&e).at(TargetKind::Webhook, target(url)))?;
    let cause = status_cause(response.status());
    let status = response.status().as_u16();
    let problem = match status {
        200 | 204 => return Ok(Reply::Done),
        202 => return Ok(Reply::NotYet),
        401 | 403 => format!(
            "refused rotor's signature (HTTP {status}); the receiver and the key secret must hold the same key"
        ),
        408 | 429 | 500..=599 => format!("answered HTTP {status}; the step can be retried"),
        _ => format!("refused the new value (HTTP {status}); see the receiver's logs"),
    };
    Err(failure(url, cause, problem))
}
