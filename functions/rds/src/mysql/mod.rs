//! MySQL and MariaDB: connect (verified TLS unless the secret says otherwise),
//! change a password with each server's own correct syntax, and keep the
//! alternate user's accounts, privileges and TLS requirements equal to the
//! original's.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, SslOpts};
use rotor_core::{ExposeSecret, SecretString};

use rotor_core::TargetError;

use crate::connect::{
    self, CONNECT_TIMEOUT, ConnectError, ConnectFailure, WITHHELD, statement_cause,
};
use crate::secret::{DbSecret, Transport};
use rotor_core::tls::{self, TlsSetupError};

mod grants;

use grants::{Held, granted_roles, has_masters_grants};
pub use grants::{copy_grants, normalise_grants, quote_string};

/// `mysql.user`'s ssl_type, ssl_cipher, x509_issuer and x509_subject.
type TlsRequirement = (String, Vec<u8>, Vec<u8>, Vec<u8>);

/// The most roles followed from one account (roles granted to roles).
const MAX_ROLES: usize = 64;

/// Authentication plugins whose stored string is the same for the same
/// password, so that two accounts' strings can be compared.
const DETERMINISTIC_PLUGINS: [&str; 2] = ["mysql_native_password", "ed25519"];

/// Server errors that mean "this login may not read that table":
/// ER_DBACCESS_DENIED, ER_TABLEACCESS_DENIED, ER_COLUMNACCESS_DENIED.
const NOT_VISIBLE: [u16; 3] = [1044, 1142, 1143];

/// An account name as a master sees it before changing its password.
#[derive(Debug)]
pub struct Accounts {
    /// The hosts of its accounts (`user@host`); none when it has no account.
    pub hosts: Vec<String>,
    /// Why one of them is privileged, each naming the account (or its role)
    /// and what it holds; empty when none is.
    pub privileged: Vec<String>,
}

/// An open session and what the server is.
pub struct Session {
    conn: Conn,
    mariadb: bool,
    backslash_escapes: bool,
}

/// Options asking for TLS verified against [`tls::roots`], built once per
/// process. mysql_async turns them into a TLS connector (root store, rustls
/// configuration) on the first connection and keeps it in the options, shared
/// by their clones: every verified connection starts from a clone of these.
fn verified_tls() -> Result<&'static Opts, TlsSetupError> {
    static OPTS: OnceLock<Result<Opts, TlsSetupError>> = OnceLock::new();
    OPTS.get_or_init(|| {
        // mysql_async builds its rustls configuration on the process's default,
        // and refuses every root if one does not parse: it gets those that do.
        tls::install_default_provider();
        let certs = tls::parsable_roots()?
            .iter()
            .map(|c| c.to_vec().into())
            .collect();
        let ssl = SslOpts::default()
            .with_root_certs(certs)
            .with_disable_built_in_roots(true);
        Ok(OptsBuilder::default().ssl_opts(Some(ssl)).into())
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Logs in as `user` with `password` at the secret's host, which the
/// function resolves itself ([`connect::resolve`]); the driver connects to
/// those addresses and verifies TLS against the host name.
pub async fn connect(
    secret: &DbSecret,
    user: &str,
    password: &SecretString,
) -> Result<Session, ConnectError> {
    let base = match secret.transport {
        Transport::VerifiedTls => {
            OptsBuilder::from_opts(verified_tls().map_err(ConnectError::tls_setup)?.clone())
        }
        Transport::Plaintext => OptsBuilder::default(),
    };
    let addresses = connect::resolve(&secret.host, secret.port).await?;
    let opts = base
        .ip_or_hostname(secret.host.clone())
        .resolved_ips(Some(addresses.iter().map(|a| a.ip()).collect::<Vec<_>>()))
        .tcp_port(secret.port)
        .user(Some(user))
        .pass(Some(password.expose_secret()))
        .db_name(secret.dbname.clone())
        .prefer_socket(false);
    let driver = |e: mysql_async::Error| ConnectError::from_driver(&e, e.to_string());
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Err(_) => return Err(ConnectError::timed_out()),
        Ok(connected) => connected.map_err(driver)?,
    };
    // Quoting (backslash escapes) is safe only in a character set where no
    // character's bytes hold a quote or a backslash: not GBK, Big5 or SJIS.
    // The handshake asks for utf8mb4, but a server may ignore that
    // (character_set_client_handshake) or change it (init_connect), so the
    // session sets it, and checks it, before anything is quoted.
    conn.query_drop("SET NAMES utf8mb4").await.map_err(driver)?;
    let (version, sql_mode, charset): (String, String, String) = conn
        .query_first("SELECT VERSION(), @@SESSION.sql_mode, @@SESSION.character_set_client")
        .await
        .map_err(driver)?
        .unwrap_or_default();
    if charset != "utf8mb4" {
        return Err(ConnectError {
            failure: ConnectFailure::Other,
            detail: format!(
                concat!(
                    "the session's client character set is {:?} after SET NAMES utf8mb4; ",
                    "rds-rotation quotes names and passwords for utf8mb4 only"
                ),
                charset
            ),
        });
    }
    Ok(Session {
        conn,
        mariadb: version.to_ascii_lowercase().contains("mariadb"),
        backslash_escapes: !sql_mode.contains("NO_BACKSLASH_ESCAPES"),
    })
}

impl Session {
    /// The query AWS's functions use to prove a login works.
    pub async fn ping(&mut self) -> Result<(), TargetError> {
        self.conn
            .query_drop("SELECT NOW()")
            .await
            .map_err(|e| failure(&e))
    }

    /// The logged-in account's `SHOW GRANTS`, normalised (see [`normalise_grants`]).
    pub async fn own_grants(&mut self, user: &str) -> Result<BTreeSet<String>, TargetError> {
        let lines: Vec<String> = self
            .conn
            .query("SHOW GRANTS FOR CURRENT_USER()")
            .await
            .map_err(|e| failure(&e))?;
        Ok(normalise_grants(&lines, user))
    }

    /// The accounts of `user` as this master session (logged in as `master`)
    /// sees them, and why any is privileged: a global privilege that acts on
    /// other accounts or the server (SUPER, CREATE USER, FILE, PROCESS,
    /// RELOAD, SHUTDOWN, replication, any `*ADMIN*`), a privilege that
    /// writes to the `mysql` schema, a GRANT or ADMIN OPTION, PROXY, every
    /// global privilege the master has; in the account's own grants or in
    /// a role's it holds.
    pub async fn accounts(&mut self, user: &str, master: &str) -> Result<Accounts, TargetError> {
        let hosts = self.hosts(user).await?;
        let master_lines: Vec<String> = self
            .conn
            .query("SHOW GRANTS FOR CURRENT_USER()")
            .await
            .map_err(|e| failure(&e))?;
        let master_global = Held::of(&master_lines, master).global;
        let mut privileged = Vec::new();
        for host in &hosts {
            let who = format!("'{user}'@'{host}'");
            let held = Held::of(&self.show_grants(user, host).await?, user);
            privileged.extend(held.why_privileged(&who));
            let mut global = held.global.clone();
            for (role, role_held) in self.roles_of(&held).await? {
                privileged.extend(role_held.why_privileged(&format!("the role {role:?} of {who}")));
                global.extend(role_held.global);
            }
            if has_masters_grants(&global, &master_global) {
                privileged.push(format!("{who} has every global privilege the master has"));
            }
        }
        Ok(Accounts { hosts, privileged })
    }

    /// The roles granted to what `held` describes, and to those roles in
    /// turn, each with what it holds.
    async fn roles_of(&mut self, held: &Held) -> Result<Vec<(String, Held)>, TargetError> {
        let mut queue = held.roles.clone();
        let mut seen = Vec::new();
        let mut roles = Vec::new();
        while let Some((name, host)) = queue.pop() {
            if seen.contains(&(name.clone(), host.clone())) || seen.len() >= MAX_ROLES {
                continue;
            }
            seen.push((name.clone(), host.clone()));
            let role = match &host {
                Some(host) => self.account(&name, host),
                None => self.quote(&name),
            };
            let lines: Vec<String> = self
                .conn
                .query(format!("SHOW GRANTS FOR {role}"))
                .await
                .map_err(|e| failure(&e))?;
            let held = Held::of(&lines, &name);
            queue.extend(held.roles.iter().cloned());
            roles.push((name, held));
        }
        Ok(roles)
    }

    /// The hosts of `user`'s accounts when this session may read
    /// `mysql.user`; `None` when it may not (an application user usually
    /// may not, and then cannot tell whether its name has other accounts).
    pub async fn visible_hosts(&mut self, user: &str) -> Result<Option<Vec<String>>, TargetError> {
        match self
            .conn
            .exec("SELECT Host FROM mysql.user WHERE User = ?", (user,))
            .await
        {
            Ok(hosts) => Ok(Some(hosts)),
            Err(mysql_async::Error::Server(e)) if NOT_VISIBLE.contains(&e.code) => Ok(None),
            Err(e) => Err(failure(&e)),
        }
    }

    /// The host part of the account this session is (`CURRENT_USER()`).
    pub async fn current_host(&mut self) -> Result<String, TargetError> {
        let current: Option<String> = self
            .conn
            .query_first("SELECT CURRENT_USER()")
            .await
            .map_err(|e| failure(&e))?;
        Ok(current
            .as_deref()
            .and_then(|c| c.rsplit_once('@'))
            .map(|(_, host)| host.to_owned())
            .unwrap_or_default())
    }

    /// The accounts of `user` (`'user'@'host'`) whose stored password
    /// differs from the one of the account this session logged in as, as
    /// far as this session can tell: it may read `mysql.user`, and both
    /// accounts use a plugin that stores the same string for the same
    /// password. Empty when it cannot tell. The stored strings are compared
    /// here and go nowhere else.
    pub async fn accounts_with_another_password(
        &mut self,
        user: &str,
    ) -> Result<Vec<String>, TargetError> {
        let rows: Vec<(String, String, String)> = match self
            .conn
            .exec(
                "SELECT Host, plugin, authentication_string FROM mysql.user WHERE User = ?",
                (user,),
            )
            .await
        {
            Ok(rows) => rows,
            Err(mysql_async::Error::Server(e)) if NOT_VISIBLE.contains(&e.code) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(failure(&e)),
        };
        if rows.len() < 2 {
            return Ok(Vec::new());
        }
        let own = self.current_host().await?;
        let Some((_, plugin, stored)) = rows.iter().find(|(host, ..)| *host == own) else {
            return Ok(Vec::new());
        };
        if !DETERMINISTIC_PLUGINS.contains(&plugin.as_str()) {
            return Ok(Vec::new());
        }
        Ok(rows
            .iter()
            .filter(|(host, p, s)| *host != own && p == plugin && s != stored)
            .map(|(host, ..)| format!("'{user}'@'{host}'"))
            .collect())
    }

    /// Through the user's own session: gives every account of `user` on
    /// `hosts` the password, the other accounts first (`ALTER USER`, which
    /// needs CREATE USER: a permission error, with nothing changed, when
    /// the user may not), then its own.
    pub async fn set_password_of_every_account(
        &mut self,
        user: &str,
        hosts: &[String],
        password: &SecretString,
    ) -> Result<(), TargetError> {
        let own = self.current_host().await?;
        let secret = self.quote(password.expose_secret());
        for host in hosts.iter().filter(|h| **h != own) {
            let account = self.account(user, host);
            self.run_with_password(format!("ALTER USER {account} IDENTIFIED BY {secret}"))
                .await?;
        }
        self.set_own_password(password).await
    }

    /// Through a master session: gives every account of `user` the
    /// password with `ALTER USER`, and changes nothing else.
    pub async fn set_password_everywhere(
        &mut self,
        user: &str,
        password: &SecretString,
    ) -> Result<(), TargetError> {
        let hosts = self.hosts(user).await?;
        if hosts.is_empty() {
            return Err(TargetError::new(
                rotor_core::Cause::NotFound,
                format!("user {user:?} has no account on this server; the user must exist"),
            ));
        }
        let secret = self.quote(password.expose_secret());
        for host in &hosts {
            let account = self.account(user, host);
            self.run_with_password(format!("ALTER USER {account} IDENTIFIED BY {secret}"))
                .await?;
        }
        Ok(())
    }

    /// Changes the logged-in account's own password, which needs no privilege.
    pub async fn set_own_password(&mut self, password: &SecretString) -> Result<(), TargetError> {
        let literal = self.quote(password.expose_secret());
        // MySQL 8 and 9 removed PASSWORD(); MariaDB's self-service form keeps it.
        let statement = if self.mariadb {
            format!("SET PASSWORD = PASSWORD({literal})")
        } else {
            format!("ALTER USER USER() IDENTIFIED BY {literal}")
        };
        self.run_with_password(statement).await
    }

    /// Through a master session: gives `pending` an account on every host the
    /// original user `base` has, with `password`. When `pending` is the clone,
    /// it is brought to exactly `base`'s state whatever state it is in:
    /// accounts on hosts `base` lacks are dropped, and on each host its
    /// privileges (grants with their GRANT OPTION, MySQL's partial revokes,
    /// roles and default roles) and TLS requirements become `base`'s. Privileges
    /// always flow from the original user, never back, so they cannot drift
    /// between the two. The engine has no transactions for account statements:
    /// instead every call converges again, and the password is set last on an
    /// existing account, so that a working pending password means its
    /// privileges were synchronised at least once.
    pub async fn set_alternate(
        &mut self,
        base: &str,
        pending: &str,
        password: &SecretString,
    ) -> Result<(), TargetError> {
        let hosts = self.hosts(base).await?;
        if hosts.is_empty() {
            return Err(TargetError::new(
                rotor_core::Cause::NotFound,
                format!(
                    "user {base:?} has no account on this server; the original user must exist"
                ),
            ));
        }
        if pending == base {
            // The original keeps its own privileges; only its password changes.
            return self.set_password_everywhere(pending, password).await;
        }
        let existing = self.hosts(pending).await?;
        let secret = self.quote(password.expose_secret());
        for host in existing.iter().filter(|h| !hosts.contains(h)) {
            let account = self.account(pending, host);
            self.run(format!("DROP USER {account}")).await?;
        }
        for host in &hosts {
            let account = self.account(pending, host);
            let require = self.require_clause(base, host).await?;
            let created = !existing.contains(host);
            if created {
                self.run_with_password(format!(
                    "CREATE USER {account} IDENTIFIED BY {secret} REQUIRE {require}"
                ))
                .await?;
            }
            self.sync_privileges(base, pending, host).await?;
            if !created {
                self.run_with_password(format!(
                    "ALTER USER {account} IDENTIFIED BY {secret} REQUIRE {require}"
                ))
                .await?;
            }
        }
        Ok(())
    }

    /// Makes `pending@host`'s privileges `base@host`'s: nothing is done when
    /// the normalised grants already agree, else everything is revoked and
    /// `base`'s grants, partial revokes, roles and default roles replayed.
    async fn sync_privileges(
        &mut self,
        base: &str,
        pending: &str,
        host: &str,
    ) -> Result<(), TargetError> {
        let account = self.account(pending, host);
        let want = self.show_grants(base, host).await?;
        let have = self.show_grants(pending, host).await?;
        let want_roles = self.default_roles(base, host).await?;
        let have_roles = self.default_roles(pending, host).await?;
        if normalise_grants(&want, base) == normalise_grants(&have, pending)
            && want_roles == have_roles
        {
            return Ok(());
        }
        // Roles first: MySQL's REVOKE ALL leaves them in place, MariaDB's takes
        // them too (and then refuses to revoke them again).
        for line in &have {
            if let Some(roles) = granted_roles(line, pending) {
                self.run(format!("REVOKE {roles} FROM {account}")).await?;
            }
        }
        self.run(format!(
            "REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}"
        ))
        .await?;
        let has_default = have.iter().any(|l| l.starts_with("SET DEFAULT ROLE "));
        if has_default || !have_roles.is_empty() {
            self.run(self.default_role_statement("NONE", &account))
                .await?;
        }
        for statement in copy_grants(&want, base, &account) {
            self.run(statement).await?;
        }
        if !want_roles.is_empty() {
            let roles = want_roles
                .iter()
                .map(|(user, host)| self.account(user, host))
                .collect::<Vec<_>>()
                .join(", ");
            self.run(self.default_role_statement(&roles, &account))
                .await?;
        }
        Ok(())
    }

    /// `SET DEFAULT ROLE` in the server's dialect.
    fn default_role_statement(&self, roles: &str, account: &str) -> String {
        if self.mariadb {
            format!("SET DEFAULT ROLE {roles} FOR {account}")
        } else {
            format!("SET DEFAULT ROLE {roles} TO {account}")
        }
    }

    /// MySQL's default roles of an account (MariaDB shows its one default role
    /// in `SHOW GRANTS`; MySQL 5.7 has no roles).
    async fn default_roles(
        &mut self,
        user: &str,
        host: &str,
    ) -> Result<Vec<(String, String)>, TargetError> {
        if self.mariadb {
            return Ok(Vec::new());
        }
        let found = self
            .conn
            .exec(
                concat!(
                    "SELECT DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles ",
                    "WHERE USER = ? AND HOST = ? ORDER BY 1, 2"
                ),
                (user, host),
            )
            .await;
        match found {
            Ok(roles) => Ok(roles),
            // ER_NO_SUCH_TABLE: a server without roles.
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => Ok(Vec::new()),
            Err(e) => Err(failure(&e)),
        }
    }

    /// The hosts of `user`'s accounts (a master session may read them).
    pub async fn hosts(&mut self, user: &str) -> Result<Vec<String>, TargetError> {
        self.conn
            .exec("SELECT Host FROM mysql.user WHERE User = ?", (user,))
            .await
            .map_err(|e| failure(&e))
    }

    async fn show_grants(&mut self, user: &str, host: &str) -> Result<Vec<String>, TargetError> {
        self.conn
            .query(format!("SHOW GRANTS FOR {}", self.account(user, host)))
            .await
            .map_err(|e| failure(&e))
    }

    /// The `REQUIRE` clause that gives an account `user@host`'s TLS requirements.
    async fn require_clause(&mut self, user: &str, host: &str) -> Result<String, TargetError> {
        let require: Option<TlsRequirement> = self
            .conn
            .exec_first(
                concat!(
                    "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user ",
                    "WHERE User = ? AND Host = ?"
                ),
                (user, host),
            )
            .await
            .map_err(|e| failure(&e))?;
        Ok(match require {
            Some((kind, cipher, issuer, subject)) => match kind.as_str() {
                "ANY" => "SSL".to_owned(),
                "X509" => "X509".to_owned(),
                "SPECIFIED" => {
                    let mut parts = Vec::new();
                    for (name, value) in
                        [("CIPHER", cipher), ("ISSUER", issuer), ("SUBJECT", subject)]
                    {
                        if !value.is_empty() {
                            parts.push(format!(
                                "{name} {}",
                                self.quote(&String::from_utf8_lossy(&value))
                            ));
                        }
                    }
                    parts.join(" AND ")
                }
                _ => "NONE".to_owned(),
            },
            None => "NONE".to_owned(),
        })
    }

    /// Closes the session politely.
    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }

    async fn run(&mut self, statement: String) -> Result<(), TargetError> {
        self.conn
            .query_drop(statement)
            .await
            .map_err(|e| failure(&e))
    }

    /// Runs a statement that carries a password: a failure reports the
    /// server's error code and SQLSTATE, never its message, which can quote
    /// the statement (a syntax error's "near '...'").
    async fn run_with_password(&mut self, statement: String) -> Result<(), TargetError> {
        self.conn
            .query_drop(statement)
            .await
            .map_err(|e| withheld(&e))
    }

    fn account(&self, user: &str, host: &str) -> String {
        format!("{}@{}", self.quote(user), self.quote(host))
    }

    fn quote(&self, text: &str) -> String {
        quote_string(text, self.backslash_escapes)
    }
}

/// A failed password-carrying statement in words that hold no server text.
fn withheld(error: &mysql_async::Error) -> TargetError {
    TargetError::new(statement_cause(error), withheld_text(error))
}

fn withheld_text(error: &mysql_async::Error) -> String {
    match error {
        mysql_async::Error::Server(e) => {
            let hint = match e.code {
                1044 | 1045 | 1142 | 1227 | 1410 => concat!(
                    "; the login lacks a privilege this needs (the master user needs CREATE USER ",
                    "and, with GRANT OPTION, every privilege of the original user)"
                ),
                1819 => concat!(
                    "; the server's password policy refused the generated password: align ",
                    "PASSWORD_LENGTH and the EXCLUDE_* settings with the policy"
                ),
                1064 => concat!(
                    "; the server does not accept this statement's syntax: check that the ",
                    "secret's engine names the server's (mysql or mariadb)"
                ),
                1396 => "; the account operation failed: check the user's accounts (mysql.user)",
                _ => "",
            };
            format!(
                "server error {} (SQLSTATE {}); {WITHHELD}{hint}",
                e.code, e.state
            )
        }
        // The connection or the driver: their text holds no statement.
        other => other.to_string(),
    }
}

/// A failed statement: its cause from the driver's typed error, and the
/// driver's message (for statements that carry no password).
fn failure(error: &mysql_async::Error) -> TargetError {
    TargetError::new(statement_cause(error), error.to_string())
}
