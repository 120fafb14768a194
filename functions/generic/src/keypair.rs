//! Key pairs: an Ed25519, ECDSA P-256 or RSA private key written to one field
//! of a JSON secret and its public key to another, as PEM (PKCS#8 and SPKI) or
//! in OpenSSH's formats.
//!
//! Keys come from the operating system's CSPRNG. A private key exists only in
//! the [`SecretString`] handed back; no error here carries key material (the
//! crates' errors are replaced by words of our own).

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rand_core::OsRng;
use rotor_core::SecretString;
use ssh_key::LineEnding;
use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};

/// The RSA sizes rotor generates, in bits.
pub const RSA_BITS: [usize; 3] = [2048, 3072, 4096];

/// What kind of key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519.
    Ed25519,
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// RSA with a modulus of this many bits (one of [`RSA_BITS`]).
    Rsa(usize),
}

/// How both keys are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8) and `-----BEGIN PUBLIC KEY-----` (SPKI).
    Pem,
    /// `-----BEGIN OPENSSH PRIVATE KEY-----` (unencrypted) and an
    /// `authorized_keys` line such as `ssh-ed25519 AAAA...`.
    OpenSsh,
}

/// A key-pair generator: which key, in which format, and the field that gets
/// the public key (none: only the private key is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairSpec {
    /// The key.
    pub algorithm: KeyAlgorithm,
    /// Its format.
    pub format: KeyFormat,
    /// The JSON field for the public key.
    pub public_field: Option<String>,
}

/// A new key pair.
pub struct KeyPair {
    /// The private key, as the spec's format writes it.
    pub private: SecretString,
    /// The public key, which is no secret.
    pub public: String,
}

/// Why no key pair could be made: a failure of the key library or of the
/// operating system's random source, in words that hold no key material.
#[derive(Debug, thiserror::Error)]
#[error("could not generate a {algorithm} key pair in {format} format ({what})")]
pub struct KeyPairError {
    algorithm: &'static str,
    format: &'static str,
    what: &'static str,
}

impl KeyAlgorithm {
    /// The name the generator spec uses.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Rsa(_) => "rsa",
        }
    }
}

impl KeyFormat {
    /// The name the generator spec uses.
    pub fn name(self) -> &'static str {
        match self {
            KeyFormat::Pem => "pem",
            KeyFormat::OpenSsh => "openssh",
        }
    }
}

impl KeyPairSpec {
    /// A fresh key pair.
    pub fn generate(&self) -> Result<KeyPair, KeyPairError> {
        let fail = |what| KeyPairError {
            algorithm: self.algorithm.name(),
            format: self.format.name(),
            what,
        };
        match (self.algorithm, self.format) {
            (KeyAlgorithm::Ed25519, format) => {
                let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
                match format {
                    KeyFormat::Pem => {
                        // PKCS#8 version 1 (RFC 8410's form, the private key
                        // alone): OpenSSL 3.0 refuses the version 2 that
                        // ed25519-dalek writes, with the public key inside.
                        let v1 = ed25519_dalek::pkcs8::KeypairBytes {
                            secret_key: key.to_bytes(),
                            public_key: None,
                        };
                        pem(&v1, &key.verifying_key()).map_err(fail)
                    }
                    KeyFormat::OpenSsh => openssh(Ed25519Keypair::from(&key).into()).map_err(fail),
                }
            }
            (KeyAlgorithm::EcdsaP256, format) => {
                let key = p256::SecretKey::random(&mut OsRng);
                match format {
                    KeyFormat::Pem => pem(&key, &key.public_key()).map_err(fail),
                    KeyFormat::OpenSsh => {
                        let pair = EcdsaKeypair::NistP256 {
                            public: key.public_key().into(),
                            private: key.into(),
                        };
                        openssh(pair.into()).map_err(fail)
                    }
                }
            }
            (KeyAlgorithm::Rsa(bits), format) => {
                let key = rsa::RsaPrivateKey::new(&mut OsRng, bits)
                    .map_err(|_| fail("the RSA key generation failed"))?;
                match format {
                    KeyFormat::Pem => pem(&key, &key.to_public_key()).map_err(fail),
                    KeyFormat::OpenSsh => {
                        let pair = RsaKeypair::try_from(&key)
                            .map_err(|_| fail("the key could not be converted"))?;
                        openssh(pair.into()).map_err(fail)
                    }
                }
            }
        }
    }
}

/// PKCS#8 and SPKI PEM.
fn pem(
    private: &impl EncodePrivateKey,
    public: &impl EncodePublicKey,
) -> Result<KeyPair, &'static str> {
    let private = private
        .to_pkcs8_pem(pkcs8_line_ending())
        .map_err(|_| "PKCS#8 encoding failed")?;
    let public = public
        .to_public_key_pem(pkcs8_line_ending())
        .map_err(|_| "SPKI encoding failed")?;
    Ok(KeyPair {
        private: SecretString::from(private.as_str()),
        public,
    })
}

/// PEM's line ending (the one type ssh-key and the PKCS#8 crates share).
fn pkcs8_line_ending() -> LineEnding {
    LineEnding::LF
}

/// OpenSSH's private key file format (no passphrase) and its public key line.
fn openssh(data: KeypairData) -> Result<KeyPair, &'static str> {
    let key = ssh_key::PrivateKey::new(data, "").map_err(|_| "the key is not usable")?;
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|_| "OpenSSH encoding failed")?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|_| "OpenSSH encoding failed")?;
    Ok(KeyPair {
        private: SecretString::from(private.as_str()),
        public,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_core::ExposeSecret;

    fn spec(algorithm: KeyAlgorithm, format: KeyFormat) -> KeyPairSpec {
        KeyPairSpec {
            algorithm,
            format,
            public_field: None,
        }
    }

    #[test]
    fn every_kind_and_format_is_written_as_its_standard_says() {
        for algorithm in [
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::Rsa(2048),
        ] {
            let pem = spec(algorithm, KeyFormat::Pem).generate().unwrap();
            assert!(
                pem.private
                    .expose_secret()
                    .starts_with("-----BEGIN PRIVATE KEY-----\n")
            );
            assert!(pem.public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            let ssh = spec(algorithm, KeyFormat::OpenSsh).generate().unwrap();
            assert!(
                ssh.private
                    .expose_secret()
                    .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
            );
            let prefix = match algorithm {
                KeyAlgorithm::Ed25519 => "ssh-ed25519 ",
                KeyAlgorithm::EcdsaP256 => "ecdsa-sha2-nistp256 ",
                KeyAlgorithm::Rsa(_) => "ssh-rsa ",
            };
            assert!(ssh.public.starts_with(prefix), "{}", ssh.public);
            let again = spec(algorithm, KeyFormat::OpenSsh).generate().unwrap();
            assert_ne!(again.public, ssh.public, "each key is fresh");
        }
    }
}
