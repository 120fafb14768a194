//! Test certificate authorities: a CA made for one test ([`TestCa`]) that
//! issues server certificates (valid or expired) for the throwaway servers of
//! [`crate::db`] and [`crate::oauth_server`], and the TLS files a server reads
//! ([`TlsFiles`]). A certificate from one `TestCa` fails verification against any
//! other, which is how a test proves a "wrong CA" refusal.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::process::{OsUser, write_private};

/// The only address the servers listen on.
pub const HOST: &str = "127.0.0.1";
/// The names the server certificates are issued for.
/// And the form of the DB instance endpoints moto's RDS API returns, which the
/// rds tests resolve to 127.0.0.1 (see rotor_tests::start_function_resolving).
pub const SERVER_NAMES: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "*.aaaaaaaaaa.us-east-1.rds.amazonaws.com",
];

// ---------------------------------------------------------------------------
// Test CA
// ---------------------------------------------------------------------------

/// A certificate authority made for one test: a self-signed CA certificate and its
/// key, which issues server certificates. Every `TestCa::new()` is a different CA
/// (its own key and name), so a certificate from one fails verification against
/// any other: that is how a test proves a "wrong CA" refusal.
///
/// Keys are ECDSA P-256, which OpenSSL (both servers, both CLI clients) and
/// rustls accept.
pub struct TestCa {
    id: String,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A new CA, valid from the start of last year to the start of the year after next.
    pub fn new() -> TestCa {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("rotor test CA {id}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "rotor tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(this_year() - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(this_year() + 2, 1, 1);
        let key = KeyPair::generate().expect("generate the test CA's key");
        let cert = params.self_signed(&key).expect("self-sign the test CA");
        TestCa {
            id,
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// Writes the CA certificate into `dir` as `rotor-test-ca-<id>.pem` (a name no
    /// other `TestCa` uses) and returns its path. Panics if it cannot write.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("rotor-test-ca-{}.pem", self.id));
        fs::write(&path, &self.cert_pem)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// A server certificate and its key, PEM: `(cert_pem, key_pem)`. `names` become
    /// the subject alternative names (IP addresses where they parse as one, DNS
    /// names otherwise; the first is also the common name). Valid from the start of
    /// last year to the start of next year. Panics on a name that is neither.
    pub fn server_cert(&self, names: &[&str]) -> (String, String) {
        self.issue(names, -1, 1)
    }

    /// Like [`server_cert`](Self::server_cert), but expired: its validity ended
    /// at the start of last year.
    pub fn expired_server_cert(&self, names: &[&str]) -> (String, String) {
        self.issue(names, -3, -1)
    }

    /// Issues a certificate valid from January 1st of this year plus `from` years
    /// to January 1st of this year plus `to` years.
    fn issue(&self, names: &[&str], from: i32, to: i32) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone())
            .unwrap_or_else(|e| panic!("bad certificate names {names:?}: {e}"));
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = rcgen::date_time_ymd(this_year() + from, 1, 1);
        params.not_after = rcgen::date_time_ymd(this_year() + to, 1, 1);
        let key = KeyPair::generate().expect("generate a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign a server certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// The current year (UTC, give or take a day at New Year: certificate validity
/// here is measured in whole years).
fn this_year() -> i32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    1970 + (seconds / 31_556_952) as i32
}

/// Which certificate a server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCert {
    /// Issued by the server's test CA for 127.0.0.1 and localhost, valid now.
    Valid,
    /// The same, but expired (see [`TestCa::expired_server_cert`]).
    Expired,
    /// Valid now, for [`SERVER_NAMES`] and these names too (names a test
    /// learns at run time, such as the endpoints moto gives a DB cluster).
    ValidAlsoFor(&'static [&'static str]),
}

/// Where a server's TLS material lives in its temp dir. The paths are known
/// before the files are written, because they go on the server's command line or
/// into its configuration while the dir is being set up.
pub(crate) struct TlsFiles {
    /// The CA certificate (0644: clients read it).
    pub ca_path: PathBuf,
    /// The server certificate (0600).
    pub cert_path: PathBuf,
    /// The server key (0600, as PostgreSQL insists).
    pub key_path: PathBuf,
}

impl TlsFiles {
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca_path: dir.join("ca.pem"),
            cert_path: dir.join("server.crt"),
            key_path: dir.join("server.key"),
        }
    }

    /// Makes a new test CA and writes its certificate, and a server certificate
    /// and key it issued for [`SERVER_NAMES`] (and any names `cert` adds), for
    /// the server's `user`.
    pub fn write(&self, cert: ServerCert, user: Option<&OsUser>) -> anyhow::Result<TestCa> {
        let ca = TestCa::new();
        let (cert_pem, key_pem) = match cert {
            ServerCert::Valid => ca.server_cert(SERVER_NAMES),
            ServerCert::Expired => ca.expired_server_cert(SERVER_NAMES),
            ServerCert::ValidAlsoFor(extra) => {
                let names: Vec<&str> = SERVER_NAMES.iter().chain(extra).copied().collect();
                ca.server_cert(&names)
            }
        };
        write_private(&self.ca_path, ca.ca_pem(), user)?;
        fs::set_permissions(&self.ca_path, fs::Permissions::from_mode(0o644))?;
        write_private(&self.cert_path, cert_pem, user)?;
        write_private(&self.key_path, key_pem, user)?;
        Ok(ca)
    }
}
