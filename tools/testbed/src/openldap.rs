//! A throwaway OpenLDAP server (slapd 2.5) for ldap-rotation's tests: on
//! 127.0.0.1, an `ldap://` port (StartTLS or plaintext) and an `ldaps://`
//! port with a certificate from its own [`TestCa`], an mdb database under
//! `dc=rotor,dc=test`, users under `ou=people` that may change their own
//! `userPassword`, and an admin entry ([`ADMIN_DN`]) that may reset anyone's.
//! `ldapsearch`, an independent client, proves which passwords bind.
//! Dropping it stops the server and removes its temp dir.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::ca::{HOST, ServerCert, TestCa, TlsFiles};
use crate::db::random_password;
use crate::process::{
    ServerCommand, ServerProcess, free_port, make_dir, path_str, retry_on_port_clash,
    spawn_with_input, write_private,
};

const SLAPD: &str = "/usr/sbin/slapd";
const LDAPSEARCH: &str = "/usr/bin/ldapsearch";
const LDAPMODIFY: &str = "/usr/bin/ldapmodify";

/// The suffix.
pub const BASE_DN: &str = "dc=rotor,dc=test";
/// The entry that may reset every user's password (not the root DN).
pub const ADMIN_DN: &str = "cn=admin,dc=rotor,dc=test";
const ROOT_DN: &str = "cn=root,dc=rotor,dc=test";
/// The schemas and the mdb backend, as Debian installs them.
const SCHEMAS: &str = concat!(
    "include /etc/ldap/schema/core.schema\n",
    "include /etc/ldap/schema/cosine.schema\n",
    "include /etc/ldap/schema/inetorgperson.schema\n",
    "modulepath /usr/lib/ldap\nmoduleload back_mdb\n",
);

/// A running slapd.
pub struct OpenLdap {
    server: ServerProcess,
    ldap_port: u16,
    ldaps_port: u16,
    ca_path: PathBuf,
    root_file: PathBuf,
    admin: SecretString,
    _ca: TestCa,
}

impl OpenLdap {
    /// Starts a server with the admin entry and `ou=people`.
    pub fn start() -> anyhow::Result<OpenLdap> {
        retry_on_port_clash("a test OpenLDAP server", Self::try_start)
    }

    fn try_start() -> anyhow::Result<OpenLdap> {
        for tool in [SLAPD, LDAPSEARCH, LDAPMODIFY] {
            if !Path::new(tool).exists() {
                bail!("{tool} is missing: install slapd and ldap-utils (scripts/setup.sh does)");
            }
        }
        let (ldap_port, ldaps_port) = (free_port()?, free_port()?);
        let dir = make_dir("openldap", None)?;
        let tls = TlsFiles::in_dir(&dir);
        let ca = tls.write(ServerCert::Valid, None)?;
        let root = random_password();
        let root_file = dir.join("root.pw");
        write_private(&root_file, root.expose_secret(), None)?;
        std::fs::create_dir(dir.join("db")).context("the database directory")?;
        let conf = dir.join("slapd.conf");
        write_private(
            &conf,
            format!(
                "{SCHEMAS}\
                 pidfile {dir}/slapd.pid\nTLSCACertificateFile {ca}\nTLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\n\
                 password-hash {{SSHA}}\ndatabase mdb\nmaxsize 16777216\nsuffix \"{BASE_DN}\"\nrootdn \"{ROOT_DN}\"\n\
                 rootpw \"{root}\"\ndirectory {dir}/db\n\
                 access to attrs=userPassword\n by self write\n by dn.exact=\"{ADMIN_DN}\" write\n by anonymous auth\n by * none\n\
                 access to *\n by * read\n",
                dir = path_str(&dir)?,
                ca = path_str(&tls.ca_path)?,
                cert = path_str(&tls.cert_path)?,
                key = path_str(&tls.key_path)?,
                root = root.expose_secret(),
            ),
            None,
        )?;
        let args: Vec<OsString> = vec![
            "-d".into(),
            "0".into(),
            "-f".into(),
            conf.into(),
            "-h".into(),
            format!("ldap://{HOST}:{ldap_port}/ ldaps://{HOST}:{ldaps_port}/").into(),
        ];
        let log = dir.join("slapd.log");
        let mut server = ServerProcess::prepare(
            dir.clone(),
            log.clone(),
            &ServerCommand {
                name: "rotor-openldap",
                program: Path::new(SLAPD),
                args: &args,
                stop_signal: "TERM",
                user: None,
                scrub_env: &["LDAP"],
                log_noise: &[],
            },
        )?;
        server.go()?;
        let admin = random_password();
        let mut slapd = OpenLdap {
            server,
            ldap_port,
            ldaps_port,
            ca_path: tls.ca_path.clone(),
            root_file,
            admin,
            _ca: ca,
        };
        slapd.server.wait_until("answer searches", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Address already in use") {
                bail!("Address already in use");
            }
            Ok(Command::new(LDAPSEARCH)
                .args(["-x", "-LLL", "-H"])
                .arg(format!("ldap://{HOST}:{ldap_port}"))
                .args(["-b", "", "-s", "base", "dn"])
                .env("LDAPCONF", "/dev/null")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()))
        })?;
        slapd.as_root(&format!(
            "dn: {BASE_DN}\nchangetype: add\nobjectClass: dcObject\nobjectClass: organization\ndc: rotor\no: rotor\n\n\
             dn: ou=people,{BASE_DN}\nchangetype: add\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=other,{BASE_DN}\nchangetype: add\nobjectClass: organizationalUnit\nou: other\n\n\
             dn: {ADMIN_DN}\nchangetype: add\nobjectClass: person\ncn: admin\nsn: admin\nuserPassword: {}\n",
            slapd.admin.expose_secret()
        ))?;
        Ok(slapd)
    }

    /// `ldap://127.0.0.1:PORT` (StartTLS, or plaintext).
    pub fn ldap_url(&self) -> String {
        format!("ldap://{HOST}:{}", self.ldap_port)
    }
    /// `ldaps://127.0.0.1:PORT`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{HOST}:{}", self.ldaps_port)
    }
    /// The `ldap://` port.
    pub fn ldap_port(&self) -> u16 {
        self.ldap_port
    }
    /// The `ldaps://` port.
    pub fn ldaps_port(&self) -> u16 {
        self.ldaps_port
    }
    /// The CA certificate's file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }
    /// The admin entry's password.
    pub fn admin_password(&self) -> SecretString {
        self.admin.clone()
    }
    /// The DN of user `uid` in `ou`.
    pub fn user_dn(&self, uid: &str, ou: &str) -> String {
        format!("uid={uid},ou={ou},{BASE_DN}")
    }
    /// The last lines of slapd's log.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }

    /// Applies LDIF as the root DN (ldapmodify, LDIF on stdin).
    fn as_root(&self, ldif: &str) -> anyhow::Result<()> {
        let mut command = Command::new(LDAPMODIFY);
        command
            .args(["-x", "-H"])
            .arg(self.ldap_url())
            .args(["-D", ROOT_DN, "-y"])
            .arg(&self.root_file)
            .env("LDAPCONF", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let (child, writer) = spawn_with_input(&mut command, "ldapmodify", ldif.to_owned())?;
        let out = child.wait_with_output().context("ldapmodify")?;
        let _ = writer.join();
        if !out.status.success() {
            bail!(
                "ldapmodify failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Creates user `uid` in `ou` (`people` or `other`) with `password`.
    pub fn create_user(&self, uid: &str, ou: &str, password: &SecretString) -> anyhow::Result<()> {
        self.as_root(&format!(
            "dn: {}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {}\n",
            self.user_dn(uid, ou),
            password.expose_secret()
        ))
    }

    /// Whether `dn` binds with `password` over LDAPS (ldapsearch's simple bind).
    pub fn binds(&self, dn: &str, password: &SecretString) -> bool {
        let file = self
            .server
            .dir
            .join(format!("bind-{}.pw", uuid::Uuid::new_v4().simple()));
        if write_private(&file, password.expose_secret(), None).is_err() {
            return false;
        }
        let ok = Command::new(LDAPSEARCH)
            .args(["-x", "-LLL", "-H"])
            .arg(self.ldaps_url())
            .args(["-D", dn, "-y"])
            .arg(&file)
            .args(["-b", "", "-s", "base", "dn"])
            .env("LDAPTLS_CACERT", &self.ca_path)
            .env("LDAPTLS_REQCERT", "demand")
            .env("LDAPCONF", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let _ = std::fs::remove_file(&file);
        ok
    }
}
