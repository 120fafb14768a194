//! How rotor signs the requests it sends to webhooks, so that a receiver can
//! tell them from anyone else's: generic-rotation's registration webhook and
//! the after-rotation actions' webhook (the `after` feature) sign alike.
//!
//! `X-Rotor-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>`, with
//! the Unix time in `X-Rotor-Timestamp`; receivers should refuse stale
//! timestamps. The key is a secret's value and never leaves this function.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header with the request's Unix time.
pub const TIMESTAMP_HEADER: &str = "X-Rotor-Timestamp";
/// Header with the request's signature.
pub const SIGNATURE_HEADER: &str = "X-Rotor-Signature";

/// The signature of `body` sent at `timestamp` under `key`.
///
/// ```
/// use rotor_core::signature::sign;
/// let signature = sign(b"key", 1_700_000_000, br#"{"action":"finished"}"#);
/// assert!(signature.starts_with("v1=") && signature.len() == 3 + 64);
/// assert_ne!(signature, sign(b"key", 1_700_000_001, br#"{"action":"finished"}"#));
/// ```
pub fn sign(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The current Unix time, as the timestamp header carries it.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231, test case 2, with the message split as rotor frames it:
        // "what do ya want for nothing?" has no '.', so the timestamp is
        // checked by recomputing the framing by hand.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut framed = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        framed.update(b"7.{}");
        let expected = format!("v1={}", hex::encode(framed.finalize().into_bytes()));
        assert_eq!(sign(b"Jefe", 7, b"{}"), expected);
        assert_eq!(sign(b"Jefe", 1, b"{}"), sign(b"Jefe", 1, b"{}"));
        assert_ne!(sign(b"Jefe", 1, b"{}"), sign(b"Jeff", 1, b"{}"));
    }
}
