//! The certificates every rotor function trusts, and its TLS client
//! configuration: the system's CA bundle plus the bundle `SSL_CERT_FILE`
//! names (Amazon RDS's global bundle, a company CA, a test CA), verified with
//! rustls on ring. Loaded once, on the first TLS connection, never on the
//! cold path. Databases, caches and web APIs all use this one
//! configuration, so `SSL_CERT_FILE` means the same thing everywhere.
//!
//! There is no "try TLS, then plaintext" here: a certificate that does not
//! verify is an error, and plaintext happens only when the secret that owns
//! the login says so.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{self, PemObject};

use crate::error::{Cause, TargetError};

/// The variable naming an extra CA bundle (PEM).
pub const CA_FILE_VAR: &str = "SSL_CERT_FILE";

/// Where Linux distributions keep their CA bundle; the first that exists is used.
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/pki/tls/certs/ca-bundle.crt", // Amazon Linux (Lambda), Fedora
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem", // openSUSE
    "/etc/ssl/cert.pem",
];

/// The trusted roots, as DER certificates.
pub struct Roots {
    /// The certificates.
    pub certs: Vec<CertificateDer<'static>>,
}

/// Why no TLS connection can be made: the trusted certificates could not be
/// loaded, or the TLS library refused its configuration. Each message names
/// the file at fault and the fix.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// `SSL_CERT_FILE` could not be read or parsed.
    #[error(
        "{CA_FILE_VAR}={path} could not be read as a PEM bundle: {cause}; point it at the server's CA bundle"
    )]
    Unreadable {
        /// The file.
        path: String,
        /// What the PEM reader said.
        cause: Arc<pem::Error>,
    },
    /// `SSL_CERT_FILE` holds no certificate.
    #[error("{CA_FILE_VAR}={0} holds no certificate; point it at the server's CA bundle")]
    NoCertificate(String),
    /// Neither the system nor `SSL_CERT_FILE` gave a certificate.
    #[error("no CA certificates found (looked in {} and {CA_FILE_VAR}); set {CA_FILE_VAR} to the server's CA bundle", SYSTEM_BUNDLES.join(", "))]
    NoRoots,
    /// The TLS library refused the protocol versions asked of it.
    #[error("the TLS library refused its configuration: {0}")]
    Config(#[from] rustls::Error),
}

impl From<TlsSetupError> for TargetError {
    fn from(error: TlsSetupError) -> Self {
        TargetError::new(Cause::Tls, error.to_string())
    }
}

/// The roots, loaded on first use; an unreadable `SSL_CERT_FILE` is an error
/// every time it is asked for, with the path and the fix.
pub fn roots() -> Result<&'static Roots, TlsSetupError> {
    static ROOTS: OnceLock<Result<Roots, TlsSetupError>> = OnceLock::new();
    ROOTS.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Roots, TlsSetupError> {
    let mut certs = Vec::new();
    if let Some(system) = SYSTEM_BUNDLES.iter().find(|p| Path::new(p).is_file()) {
        // A broken system bundle is not fatal: SSL_CERT_FILE may be all that is needed.
        if let Ok(found) = read_bundle(system) {
            certs.extend(found);
        }
    }
    if let Some(extra) = std::env::var_os(CA_FILE_VAR).filter(|v| !v.is_empty()) {
        let path = Path::new(&extra);
        let found = read_bundle(path).map_err(|cause| TlsSetupError::Unreadable {
            path: path.display().to_string(),
            cause: Arc::new(cause),
        })?;
        if found.is_empty() {
            return Err(TlsSetupError::NoCertificate(path.display().to_string()));
        }
        certs.extend(found);
    }
    if certs.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    Ok(Roots { certs })
}

fn read_bundle(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, pem::Error> {
    CertificateDer::pem_file_iter(path.as_ref())?.collect()
}

/// The roots that parse as certificates: for a library that refuses every
/// root if one does not (mysql_async), where rustls itself skips it.
pub fn parsable_roots() -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    Ok(roots()?
        .certs
        .iter()
        .filter(|c| RootCertStore::empty().add((*c).clone()).is_ok())
        .cloned()
        .collect())
}

/// The cryptography under every TLS connection rotor makes: ring, never
/// aws-lc (whose first handshake costs a cold start ~27 ms seeding its
/// generator from CPU jitter).
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Makes [`provider`] the process's default, for libraries that build their
/// rustls configuration on the default (mysql_async and reqwest do).
pub fn install_default_provider() {
    // An error means a default is installed already: those libraries use that one.
    let _ = provider().install_default();
}

/// The rustls client configuration over [`roots`], built once. Certificates
/// that do not parse in a bundle are skipped (the others still verify).
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, TlsSetupError>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = roots()?;
            let mut store = RootCertStore::empty();
            let (_added, _ignored) = store.add_parsable_certificates(roots.certs.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(store)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_errors_name_the_file_and_the_fix() {
        let missing = "/nonexistent/rds-bundle.pem";
        let error = TlsSetupError::Unreadable {
            path: missing.into(),
            cause: Arc::new(read_bundle(missing).unwrap_err()),
        }
        .to_string();
        assert!(
            error.starts_with("SSL_CERT_FILE=/nonexistent/rds-bundle.pem could not be read")
                && error.ends_with("point it at the server's CA bundle"),
            "{error}"
        );
        let none = TlsSetupError::NoRoots.to_string();
        assert!(
            none.contains("/etc/ssl/certs/ca-certificates.crt")
                && none.ends_with("set SSL_CERT_FILE to the server's CA bundle"),
            "{none}"
        );
        let target = TargetError::from(TlsSetupError::NoCertificate("/x.pem".into()));
        assert_eq!(target.cause, Cause::Tls);
    }
}
