//! A throwaway Samba Active Directory domain controller for ldap-rotation's
//! tests: provisioned offline into a temp dir (`samba-tool domain provision`,
//! a few seconds), then serving LDAP, LDAPS (a certificate from its own
//! [`TestCa`]) and Kerberos on 127.0.0.1.
//!
//! Samba's ports are fixed (389, 636, 88): one DC per machine at a time, so a
//! test binary starts one and shares it (see `rotor_tests::samba`). Its
//! domain keeps AD's defaults but two: the old password stops binding at
//! once (`old password allowed period = 0`, so a test sees that a change
//! happened) and [`SambaDc::start`] leaves the minimum password age as AD
//! has it (one day) for the tests of that refusal; [`SambaDc::set_min_age`]
//! changes it.
//!
//! Independent clients prove what binds: `ldapsearch` (a simple bind over
//! LDAPS; Samba has no whoami operation) and `kinit`. Passwords reach them
//! on stdin or in 0600 files, never on a command line. Dropping the DC stops
//! it and removes its temp dir.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::ca::{HOST, ServerCert, TestCa, TlsFiles};
use crate::process::{
    ServerCommand, ServerProcess, make_dir, path_str, spawn_with_input, write_private,
};

const SAMBA: &str = "/usr/sbin/samba";
const SAMBA_TOOL: &str = "/usr/bin/samba-tool";
const LDAPSEARCH: &str = "/usr/bin/ldapsearch";
const LDAPMODIFY: &str = "/usr/bin/ldapmodify";
const KINIT: &str = "/usr/bin/kinit";

/// The domain's DNS name (and the name its certificate also carries).
pub const DNS_NAME: &str = "rotor.test";
/// The Kerberos realm.
pub const REALM: &str = "ROTOR.TEST";
/// The NetBIOS domain.
pub const NETBIOS: &str = "ROTOR";
/// The naming context.
pub const BASE_DN: &str = "DC=rotor,DC=test";
/// The built-in administrator.
pub const ADMINISTRATOR: &str = "Administrator";
/// Samba's LDAP and LDAPS ports (fixed).
pub const LDAP_PORT: u16 = 389;
/// Samba's LDAPS port (fixed).
pub const LDAPS_PORT: u16 = 636;

/// A running domain controller.
pub struct SambaDc {
    server: ServerProcess,
    conf: PathBuf,
    ca_path: PathBuf,
    krb5_conf: PathBuf,
    admin_file: PathBuf,
    admin: SecretString,
    _ca: TestCa,
}

impl SambaDc {
    /// Provisions a domain and starts its DC; fails with the log's tail if it
    /// does not answer LDAPS within 30 s.
    pub fn start() -> anyhow::Result<SambaDc> {
        for tool in [SAMBA, SAMBA_TOOL, LDAPSEARCH, LDAPMODIFY, KINIT] {
            if !Path::new(tool).exists() {
                bail!(
                    "{tool} is missing: install samba, samba-ad-dc, ldap-utils and krb5-user (scripts/setup.sh does)"
                );
            }
        }
        let dir = make_dir("samba", None)?;
        let tls = TlsFiles::in_dir(&dir);
        let ca = tls.write(ServerCert::ValidAlsoFor(&[DNS_NAME]), None)?;
        // Meets AD's complexity: four classes, 24 characters.
        let admin = SecretString::from(format!(
            "Ad-{}-9x",
            &uuid::Uuid::new_v4().simple().to_string()[..18]
        ));
        let target = dir.join("dc");
        let provision = Command::new(SAMBA_TOOL)
            .args([
                "domain",
                "provision",
                "--server-role=dc",
                "--dns-backend=NONE",
            ])
            .arg(format!("--targetdir={}", path_str(&target)?))
            .arg(format!("--realm={REALM}"))
            .arg(format!("--domain={NETBIOS}"))
            .arg("--option=interfaces=lo")
            .arg("--option=bind interfaces only=yes")
            .arg("--option=server services = ldap, kdc")
            .arg(format!("--adminpass={}", admin.expose_secret()))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .context("running samba-tool domain provision")?;
        if !provision.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            bail!(
                "samba-tool domain provision failed: {}",
                String::from_utf8_lossy(&provision.stderr)
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        let conf = target.join("etc/smb.conf");
        let provisioned = std::fs::read_to_string(&conf).context("reading smb.conf")?;
        // The [global] section as provisioned, with TLS, a log and pid files of
        // its own, and no shares.
        let global: String = provisioned
            .lines()
            .take_while(|l| !l.trim_start().starts_with("[homes]"))
            .filter(|l| !l.trim_start().starts_with("log file"))
            .map(|l| format!("{l}\n"))
            .collect();
        write_private(
            &conf,
            format!(
                "{global}\ttls enabled = yes\n\ttls keyfile = {}\n\ttls certfile = {}\n\ttls cafile = {}\n\
                 \told password allowed period = 0\n\tpid directory = {}\n\tlog file = {}\n\tlog level = 1\n",
                path_str(&tls.key_path)?,
                path_str(&tls.cert_path)?,
                path_str(&tls.ca_path)?,
                path_str(&target)?,
                path_str(&dir.join("samba.log"))?,
            ),
            None,
        )?;
        let krb5_conf = dir.join("krb5.conf");
        write_private(
            &krb5_conf,
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n rdns = false\n\
                 [realms]\n {REALM} = {{\n  kdc = {HOST}:88\n }}\n"
            ),
            None,
        )?;
        let admin_file = dir.join("admin.pw");
        write_private(&admin_file, admin.expose_secret(), None)?;
        let args: Vec<OsString> = vec![
            "--foreground".into(),
            "--no-process-group".into(),
            "-s".into(),
            conf.clone().into(),
        ];
        let mut server = ServerProcess::prepare(
            dir.clone(),
            dir.join("samba.log"),
            &ServerCommand {
                name: "rotor-samba-dc",
                program: Path::new(SAMBA),
                args: &args,
                stop_signal: "TERM",
                user: None,
                scrub_env: &["LDAP", "KRB5"],
                log_noise: &[],
            },
        )?;
        server.go()?;
        let mut dc = SambaDc {
            server,
            conf,
            ca_path: tls.ca_path.clone(),
            krb5_conf,
            admin_file,
            admin,
            _ca: ca,
        };
        let mut probe = dc.ldapsearch_command(&format!("{ADMINISTRATOR}@{REALM}"));
        probe.arg("-y").arg(&dc.admin_file);
        let mut last = String::new();
        let ready = dc.server.wait_until("answer LDAPS binds", || {
            let log = std::fs::read_to_string(dir.join("samba.log")).unwrap_or_default();
            if log.contains("Address already in use") || log.contains("Failed to bind") {
                bail!("Samba's ports (389, 636, 88) are taken: another DC runs on this machine");
            }
            let out = probe.output()?;
            last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            Ok(out.status.success())
        });
        ready.with_context(|| format!("ldapsearch said: {last}"))?;
        Ok(dc)
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }
    /// `ldaps://127.0.0.1:636`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{HOST}:{LDAPS_PORT}")
    }
    /// `ldap://127.0.0.1:389` (StartTLS).
    pub fn ldap_url(&self) -> String {
        format!("ldap://{HOST}:{LDAP_PORT}")
    }
    /// The CA certificate's file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }
    /// The administrator's password.
    pub fn admin_password(&self) -> SecretString {
        self.admin.clone()
    }
    /// `user@REALM`.
    pub fn principal(&self, user: &str) -> String {
        format!("{user}@{REALM}")
    }
    /// The DN of a user made by [`SambaDc::create_user`] in `ou` (or CN=Users).
    pub fn user_dn(&self, user: &str, ou: Option<&str>) -> String {
        match ou {
            Some(ou) => format!("CN={user},OU={ou},{BASE_DN}"),
            None => format!("CN={user},CN=Users,{BASE_DN}"),
        }
    }
    /// The last lines of the DC's log.
    pub fn log_tail(&self) -> String {
        crate::process::tail_lines(&self.server.dir.join("samba.log"), 40, &[])
    }

    fn ldapsearch_command(&self, bind: &str) -> Command {
        let mut command = Command::new(LDAPSEARCH);
        command
            .args(["-x", "-LLL", "-o", "nettimeout=5", "-H"])
            .arg(self.ldaps_url())
            .args(["-D", bind, "-b", "", "-s", "base", "dn"])
            .env("LDAPTLS_CACERT", &self.ca_path)
            .env("LDAPTLS_REQCERT", "demand")
            .env("LDAPCONF", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Whether `bind` (`user@REALM`, `DOMAIN\user` or a DN) binds with
    /// `password` over LDAPS: ldapsearch's simple bind, an independent client.
    pub fn binds(&self, bind: &str, password: &SecretString) -> bool {
        let dir = &self.server.dir;
        let file = dir.join(format!("bind-{}.pw", uuid::Uuid::new_v4().simple()));
        if write_private(&file, password.expose_secret(), None).is_err() {
            return false;
        }
        let ok = self
            .ldapsearch_command(bind)
            .arg("-y")
            .arg(&file)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let _ = std::fs::remove_file(&file);
        ok
    }

    /// Whether Kerberos issues `user@REALM` a ticket for `password`
    /// (`kinit`, the password on stdin, a ticket cache of its own).
    pub fn kinit(&self, user: &str, password: &SecretString) -> bool {
        let cache = self
            .server
            .dir
            .join(format!("ccache-{}", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(KINIT);
        command
            .arg("-c")
            .arg(&cache)
            .arg(self.principal(user))
            .env("KRB5_CONFIG", &self.krb5_conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let ok = spawn_with_input(
            &mut command,
            "kinit",
            format!("{}\n", password.expose_secret()),
        )
        .and_then(|(mut child, writer)| {
            let _ = writer.join();
            Ok(child.wait()?.success())
        })
        .unwrap_or(false);
        let _ = std::fs::remove_file(&cache);
        ok
    }

    /// Applies LDIF as the administrator over LDAPS (ldapmodify, the LDIF on
    /// stdin): its error output when it fails.
    pub fn ldif(&self, ldif: &str) -> anyhow::Result<()> {
        let mut command = Command::new(LDAPMODIFY);
        command
            .args(["-x", "-H"])
            .arg(self.ldaps_url())
            .args(["-D", &format!("{ADMINISTRATOR}@{REALM}"), "-y"])
            .arg(&self.admin_file)
            .env("LDAPTLS_CACERT", &self.ca_path)
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

    /// The DN of the account whose sAMAccountName is `name`, if there is one.
    pub fn find_dn(&self, name: &str) -> anyhow::Result<Option<String>> {
        let out = Command::new(LDAPSEARCH)
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H"])
            .arg(self.ldaps_url())
            .args(["-D", &format!("{ADMINISTRATOR}@{REALM}"), "-y"])
            .arg(&self.admin_file)
            .args(["-b", BASE_DN])
            .arg(format!("(sAMAccountName={})", filter_escape(name)))
            .arg("dn")
            .env("LDAPTLS_CACERT", &self.ca_path)
            .env("LDAPCONF", "/dev/null")
            .stdin(Stdio::null())
            .output()
            .context("ldapsearch")?;
        if !out.status.success() {
            bail!(
                "ldapsearch failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("dn: "))
            .map(str::to_owned))
    }

    /// Creates an organizational unit under the domain (if it is missing).
    pub fn create_ou(&self, ou: &str) -> anyhow::Result<()> {
        let ldif =
            format!("dn: OU={ou},{BASE_DN}\nchangetype: add\nobjectClass: organizationalUnit\n");
        match self.ldif(&ldif) {
            Err(e) if format!("{e}").contains("Already exists") => Ok(()),
            other => other,
        }
    }

    /// Creates an enabled user `name` with `password` (in `ou`, else
    /// CN=Users), whose user principal name is `name@REALM`.
    pub fn create_user(
        &self,
        name: &str,
        password: &SecretString,
        ou: Option<&str>,
    ) -> anyhow::Result<()> {
        let ldif = format!(
            "dn: {}\nchangetype: add\nobjectClass: user\nsAMAccountName: {name}\nuserPrincipalName: {name}@{REALM}\n\
             unicodePwd:: {}\nuserAccountControl: 512\n",
            self.user_dn(name, ou),
            unicode_pwd_base64(password)
        );
        self.ldif(&ldif)
    }

    /// Sets `user`'s password as the administrator (a reset).
    pub fn reset_password(&self, dn: &str, password: &SecretString) -> anyhow::Result<()> {
        let ldif = format!(
            "dn: {dn}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
            unicode_pwd_base64(password)
        );
        self.ldif(&ldif)
    }

    /// Adds `user` (a sAMAccountName) to the group `group` ("Domain Admins").
    pub fn add_to_group(&self, group: &str, user: &str) -> anyhow::Result<()> {
        self.samba_tool(&["group", "addmembers", group, user])
    }

    /// Sets the domain's minimum password age, in days.
    pub fn set_min_age(&self, days: u32) -> anyhow::Result<()> {
        self.samba_tool(&[
            "domain",
            "passwordsettings",
            "set",
            &format!("--min-pwd-age={days}"),
        ])
    }

    /// Runs samba-tool on the DC's database (no secrets on its command line).
    fn samba_tool(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(SAMBA_TOOL)
            .args(args)
            .arg("-s")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .output()
            .context("running samba-tool")?;
        if !out.status.success() {
            bail!(
                "samba-tool {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// RFC 4515's escaping of a filter value.
fn filter_escape(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '*' | '(' | ')' | '\\' | '\0' => format!("\\{:02x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// A password as unicodePwd takes it, base64 for LDIF.
fn unicode_pwd_base64(password: &SecretString) -> String {
    let quoted = format!("\"{}\"", password.expose_secret());
    let bytes: Vec<u8> = quoted.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
