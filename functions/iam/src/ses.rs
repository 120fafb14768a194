//! The SES SMTP password of an access key, as AWS documents its derivation
//! ("Obtaining Amazon SES SMTP credentials", converting a secret access key):
//! a chain of HMAC-SHA256 over a fixed date, the region, `ses`,
//! `aws4_request` and `SendRawEmail`, keyed first with `AWS4` and the secret
//! access key; the version byte 4 and the result, base64-encoded. The
//! password is as secret as the key: it stays in a [`SecretString`].

use base64::Engine;
use hmac::{Hmac, Mac};
use rotor_core::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The password format's version byte.
const VERSION: u8 = 0x04;

fn sign(key: &[u8], message: &str) -> Zeroizing<Vec<u8>> {
    // HMAC accepts a key of any length: new_from_slice cannot fail.
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

/// The SES SMTP password of `secret_access_key` in `region`.
pub fn smtp_password(secret_access_key: &SecretString, region: &str) -> SecretString {
    let first = Zeroizing::new(format!("AWS4{}", secret_access_key.expose_secret()));
    let mut key = sign(first.as_bytes(), "11111111");
    for part in [region, "ses", "aws4_request", "SendRawEmail"] {
        key = sign(&key, part);
    }
    let mut versioned = Zeroizing::new(Vec::with_capacity(key.len() + 1));
    versioned.push(VERSION);
    versioned.extend_from_slice(&key);
    SecretString::from(base64::engine::general_purpose::STANDARD.encode(versioned.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_derivation() {
        // Computed independently (Python's hmac and base64) from AWS's
        // documented steps, for AWS's example secret key in eu-west-1.
        let key = SecretString::from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let password = smtp_password(&key, "eu-west-1");
        assert_eq!(
            password.expose_secret(),
            "BMW5RDrXmmVs0lV7GpI4oLkHXpZ4stDsk6q91z1g38Pk"
        );
        assert_ne!(
            smtp_password(&key, "us-east-1").expose_secret(),
            password.expose_secret()
        );
    }
}
