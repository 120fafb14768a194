//! A throwaway Redis 7 server for redis-rotation's tests: on 127.0.0.1, a TLS
//! port with a certificate from its own [`TestCa`] and a plaintext port, an ACL
//! file, the `default` user off and an `admin` user with every permission.
//! `redis-cli`, an independent client, proves which passwords log in.
//! Dropping it stops the server and removes its temp dir.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::ca::{HOST, TestCa, TlsFiles};
use crate::db::random_password;
use crate::process::{
    ServerCommand, ServerProcess, free_port, make_dir, path_str, retry_on_port_clash, write_private,
};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";
/// The admin user's name.
pub const ADMIN_USER: &str = "admin";

/// How the test client connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The TLS port, the certificate verified against the test CA.
    Tls,
    /// The plaintext port.
    Plaintext,
}

/// A running throwaway Redis.
pub struct RedisServer {
    server: ServerProcess,
    tls_port: u16,
    plain_port: u16,
    admin: SecretString,
    ca_path: PathBuf,
    acl_path: PathBuf,
    _ca: TestCa,
}

impl RedisServer {
    /// Starts a server; fails with the log's tail if it does not get ready.
    pub fn start() -> anyhow::Result<RedisServer> {
        retry_on_port_clash("a test Redis server", Self::try_start)
    }

    fn try_start() -> anyhow::Result<RedisServer> {
        if !Path::new(REDIS_SERVER).exists() || !Path::new(REDIS_CLI).exists() {
            bail!("{REDIS_SERVER} or {REDIS_CLI} is missing: install redis-server and redis-tools");
        }
        let (tls_port, plain_port) = (free_port()?, free_port()?);
        let dir = make_dir("redis", None)?;
        let log = dir.join("server.log");
        let tls = TlsFiles::in_dir(&dir);
        let ca = tls.write(crate::ca::ServerCert::Valid, None)?;
        let admin = random_password();
        let acl_path = dir.join("users.acl");
        write_private(
            &acl_path,
            format!(
                "user default off resetchannels -@all\nuser {ADMIN_USER} on >{} ~* &* +@all\n",
                admin.expose_secret()
            ),
            None,
        )?;
        let conf = dir.join("redis.conf");
        write_private(
            &conf,
            format!(
                "bind {HOST}\nport {plain_port}\ntls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\n\
                 tls-ca-cert-file {}\ntls-auth-clients no\naclfile {}\ndir {}\nsave \"\"\nappendonly no\n\
                 daemonize no\nlogfile \"\"\n",
                path_str(&tls.cert_path)?,
                path_str(&tls.key_path)?,
                path_str(&tls.ca_path)?,
                path_str(&acl_path)?,
                path_str(&dir)?,
            ),
            None,
        )?;
        let args: Vec<OsString> = vec![conf.clone().into()];
        let mut server = ServerProcess::prepare(
            dir.clone(),
            log,
            &ServerCommand {
                name: "rotor-redis-server",
                program: Path::new(REDIS_SERVER),
                args: &args,
                stop_signal: "KILL",
                user: None,
                scrub_env: &["REDISCLI_"],
                log_noise: &[],
            },
        )?;
        server.go()?;
        let mut redis = RedisServer {
            server,
            tls_port,
            plain_port,
            admin,
            ca_path: tls.ca_path.clone(),
            acl_path,
            _ca: ca,
        };
        let (admin, ca_path) = (redis.admin.clone(), redis.ca_path.clone());
        redis.server.wait_until("answer PING", || {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            if log.contains("Address already in use") {
                bail!("Address already in use");
            }
            Ok(
                cli(&ca_path, tls_port, Via::Tls, ADMIN_USER, &admin, &["PING"])
                    .map(|out| out == "PONG")
                    .unwrap_or(false),
            )
        })?;
        Ok(redis)
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }
    /// The TLS port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }
    /// The plaintext port.
    pub fn plain_port(&self) -> u16 {
        self.plain_port
    }
    /// The admin's password.
    pub fn admin_password(&self) -> SecretString {
        self.admin.clone()
    }
    /// The CA certificate's file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }
    /// The ACL file's contents.
    pub fn acl_file(&self) -> String {
        std::fs::read_to_string(&self.acl_path).unwrap_or_default()
    }
    /// The ACL file's path.
    pub fn acl_path(&self) -> &Path {
        &self.acl_path
    }
    /// redis-server's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid
    }
    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }

    /// Runs a command as the admin over TLS; its output, trimmed.
    pub fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        cli(
            &self.ca_path,
            self.tls_port,
            Via::Tls,
            ADMIN_USER,
            &self.admin,
            args,
        )
    }

    /// Runs a command as `user` with `password`.
    pub fn cli_as(
        &self,
        via: Via,
        user: &str,
        password: &SecretString,
        args: &[&str],
    ) -> anyhow::Result<String> {
        let port = match via {
            Via::Tls => self.tls_port,
            Via::Plaintext => self.plain_port,
        };
        cli(&self.ca_path, port, via, user, password, args)
    }

    /// Whether `user` logs in with `password` over TLS and can PING.
    pub fn logs_in(&self, user: &str, password: &SecretString) -> bool {
        self.cli_as(Via::Tls, user, password, &["PING"])
            .is_ok_and(|out| out == "PONG")
    }

    /// Creates (or resets) `user` with `password`, able to PING and use keys.
    pub fn create_user(
        &self,
        user: &str,
        password: &SecretString,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        let rule = format!(">{}", password.expose_secret());
        let mut args = vec![
            "ACL",
            "SETUSER",
            user,
            "reset",
            "on",
            rule.as_str(),
            "~*",
            "+@connection",
            "+get",
            "+set",
        ];
        args.extend_from_slice(extra);
        let out = self.admin(&args)?;
        if out != "OK" {
            bail!("ACL SETUSER answered {out:?}");
        }
        let out = self.admin(&["ACL", "SAVE"])?;
        if out != "OK" {
            bail!("ACL SAVE answered {out:?}");
        }
        Ok(())
    }

    /// How many passwords `user` holds.
    pub fn password_count(&self, user: &str) -> anyhow::Result<usize> {
        let out = self.admin(&["--json", "ACL", "GETUSER", user])?;
        let value: serde_json::Value = serde_json::from_str(&out).context("ACL GETUSER as JSON")?;
        Ok(value["passwords"].as_array().map_or(0, Vec::len))
    }
}

/// `redis-cli` as `user` (the password through REDISCLI_AUTH, never argv).
fn cli(
    ca: &Path,
    port: u16,
    via: Via,
    user: &str,
    password: &SecretString,
    args: &[&str],
) -> anyhow::Result<String> {
    let mut command = Command::new(REDIS_CLI);
    command
        .args([
            "-h",
            HOST,
            "-p",
            &port.to_string(),
            "--user",
            user,
            "--no-auth-warning",
        ])
        .env("REDISCLI_AUTH", password.expose_secret())
        .stdin(Stdio::null());
    if via == Via::Tls {
        command.arg("--tls").arg("--cacert").arg(ca);
    }
    let out = command.args(args).output().context("running redis-cli")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        bail!(
            "redis-cli failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text)
}
