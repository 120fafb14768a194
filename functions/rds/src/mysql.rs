//! MySQL and MariaDB: connect (verified TLS unless the secret says otherwise),
//! change a password with each server's own correct syntax, and keep the
//! alternate user's accounts, privileges and TLS requirements equal to the
//! original's.

use std::sync::OnceLock;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, SslOpts};
use rotor_core::{ExposeSecret, SecretString};

use crate::connect::ConnectError;
use crate::secret::{DbSecret, Transport};
use crate::tls;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `mysql.user`'s ssl_type, ssl_cipher, x509_issuer and x509_subject.
type TlsRequirement = (String, Vec<u8>, Vec<u8>, Vec<u8>);

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
fn verified_tls() -> Result<&'static Opts, String> {
    static OPTS: OnceLock<Result<Opts, String>> = OnceLock::new();
    OPTS.get_or_init(|| {
        let roots = tls::roots()?;
        // mysql_async builds its rustls configuration on the process's default.
        tls::install_default_provider();
        // mysql_async refuses every root if one does not parse; the PostgreSQL
        // path skips such a certificate, and so does this one.
        let certs = roots
            .certs
            .iter()
            .filter(|c| rustls::RootCertStore::empty().add((*c).clone()).is_ok())
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

/// Logs in as `user` with `password` at the secret's host.
pub async fn connect(
    secret: &DbSecret,
    user: &str,
    password: &SecretString,
) -> Result<Session, ConnectError> {
    let base = match secret.transport {
        Transport::VerifiedTls => OptsBuilder::from_opts(
            verified_tls()
                .map_err(|e| ConnectError::classify(format!("TLS setup: {e}"), false))?
                .clone(),
        ),
        Transport::Plaintext => OptsBuilder::default(),
    };
    let opts = base
        .ip_or_hostname(secret.host.clone())
        .tcp_port(secret.port)
        .user(Some(user))
        .pass(Some(password.expose_secret()))
        .db_name(secret.dbname.clone())
        .prefer_socket(false);
    let connecting = Conn::new(opts);
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => {
            return Err(ConnectError::classify(
                format!(
                    "no answer within {} s (timed out)",
                    CONNECT_TIMEOUT.as_secs()
                ),
                false,
            ));
        }
        Ok(Err(e)) => {
            let credentials =
                matches!(&e, mysql_async::Error::Server(s) if s.code == 1045 || s.code == 1698);
            return Err(ConnectError::classify(e.to_string(), credentials));
        }
        Ok(Ok(conn)) => conn,
    };
    let (version, sql_mode): (String, String) = conn
        .query_first("SELECT VERSION(), @@SESSION.sql_mode")
        .await
        .map_err(|e| ConnectError::classify(e.to_string(), false))?
        .unwrap_or_default();
    Ok(Session {
        conn,
        mariadb: version.to_ascii_lowercase().contains("mariadb"),
        backslash_escapes: !sql_mode.contains("NO_BACKSLASH_ESCAPES"),
    })
}

impl Session {
    /// The query AWS's functions use to prove a login works.
    pub async fn ping(&mut self) -> Result<(), String> {
        self.conn
            .query_drop("SELECT NOW()")
            .await
            .map_err(|e| e.to_string())
    }

    /// Changes the logged-in account's own password, which needs no privilege.
    pub async fn set_own_password(&mut self, password: &SecretString) -> Result<(), String> {
        let literal = self.quote(password.expose_secret());
        // MySQL 8 and 9 removed PASSWORD(); MariaDB's self-service form keeps it.
        let statement = if self.mariadb {
            format!("SET PASSWORD = PASSWORD({literal})")
        } else {
            format!("ALTER USER USER() IDENTIFIED BY {literal}")
        };
        self.conn
            .query_drop(statement)
            .await
            .map_err(|e| e.to_string())
    }

    /// Through a master session: gives `pending` an account on every host the
    /// original user `base` has, with `password`. When `pending` is the clone,
    /// it also gets exactly `base`'s privileges (grants added to `base` since the
    /// last rotation are copied, grants `base` no longer has are revoked) and
    /// `base`'s TLS requirements. Privileges always flow from the original user,
    /// never back, so they cannot drift between the two.
    pub async fn set_alternate(
        &mut self,
        base: &str,
        pending: &str,
        password: &SecretString,
    ) -> Result<(), String> {
        let hosts: Vec<String> = self
            .conn
            .exec("SELECT Host FROM mysql.user WHERE User = ?", (base,))
            .await
            .map_err(|e| e.to_string())?;
        if hosts.is_empty() {
            return Err(format!(
                "user {base:?} has no account on this server; the original user must exist"
            ));
        }
        let existing: Vec<String> = self
            .conn
            .exec("SELECT Host FROM mysql.user WHERE User = ?", (pending,))
            .await
            .map_err(|e| e.to_string())?;
        let secret = self.quote(password.expose_secret());
        for host in &hosts {
            let account = self.account(pending, host);
            if existing.contains(host) {
                self.run(format!("ALTER USER {account} IDENTIFIED BY {secret}"))
                    .await?;
            } else {
                self.run(format!("CREATE USER {account} IDENTIFIED BY {secret}"))
                    .await?;
            }
            if pending == base {
                continue; // the original keeps its own privileges
            }
            self.run(format!(
                "REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}"
            ))
            .await?;
            let grants: Vec<String> = self
                .conn
                .query(format!("SHOW GRANTS FOR {}", self.account(base, host)))
                .await
                .map_err(|e| e.to_string())?;
            for grant in grants {
                if let Some(statement) = retarget_grant(&grant, base, &account) {
                    self.run(statement).await?;
                }
            }
            let require: Option<TlsRequirement> = self
                .conn
                .exec_first(
                    "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user WHERE User = ? AND Host = ?",
                    (base, host),
                )
                .await
                .map_err(|e| e.to_string())?;
            let clause = match require {
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
            };
            self.run(format!("ALTER USER {account} REQUIRE {clause}"))
                .await?;
        }
        Ok(())
    }

    /// Closes the session politely.
    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }

    async fn run(&mut self, statement: String) -> Result<(), String> {
        self.conn
            .query_drop(statement)
            .await
            .map_err(|e| e.to_string())
    }

    fn account(&self, user: &str, host: &str) -> String {
        format!("{}@{}", self.quote(user), self.quote(host))
    }

    fn quote(&self, text: &str) -> String {
        quote_string(text, self.backslash_escapes)
    }
}

/// Quotes a string literal; with backslash escapes on (the default sql_mode),
/// backslashes and quotes are escaped, else quotes are doubled.
pub fn quote_string(text: &str, backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' if backslash_escapes => out.push_str("\\'"),
            '\'' => out.push_str("''"),
            '\\' if backslash_escapes => out.push_str("\\\\"),
            '\0' if backslash_escapes => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Rewrites one line of `SHOW GRANTS FOR current` to grant the same to
/// `account`: everything before ` TO <current>@` is kept, the password clause
/// that MariaDB prints on the USAGE line is dropped, `WITH GRANT OPTION` kept.
pub fn retarget_grant(grant: &str, current: &str, account: &str) -> Option<String> {
    let quoted = [
        format!(" TO `{}`@", current.replace('`', "``")),
        format!(" TO '{}'@", current.replace('\'', "''")),
    ];
    let cut = quoted
        .iter()
        .filter_map(|q| grant.rfind(q.as_str()))
        .max()?;
    let head = &grant[..cut];
    let tail = if grant.trim_end().ends_with("WITH GRANT OPTION") {
        " WITH GRANT OPTION"
    } else {
        ""
    };
    Some(format!("{head} TO {account}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_strings_in_both_sql_modes() {
        assert_eq!(quote_string(r"a'b\c", true), r"'a\'b\\c'");
        assert_eq!(quote_string(r"a'b\c", false), r"'a''b\c'");
        assert_eq!(quote_string("žluť", true), "'žluť'");
    }

    #[test]
    fn retargets_grants() {
        let to = "'app_clone'@'%'";
        assert_eq!(
            retarget_grant("GRANT SELECT, INSERT ON `shop`.* TO `app`@`%`", "app", to).unwrap(),
            "GRANT SELECT, INSERT ON `shop`.* TO 'app_clone'@'%'"
        );
        assert_eq!(
            retarget_grant(
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC'",
                "app",
                to
            )
            .unwrap(),
            "GRANT USAGE ON *.* TO 'app_clone'@'%'"
        );
        assert_eq!(
            retarget_grant(
                "GRANT ALL PRIVILEGES ON `a TO b`.* TO `app`@`%` WITH GRANT OPTION",
                "app",
                to
            )
            .unwrap(),
            "GRANT ALL PRIVILEGES ON `a TO b`.* TO 'app_clone'@'%' WITH GRANT OPTION"
        );
        assert_eq!(
            retarget_grant("GRANT SELECT ON x.* TO 'o''k'@'%'", "o'k", to).unwrap(),
            "GRANT SELECT ON x.* TO 'app_clone'@'%'"
        );
        assert!(retarget_grant("GRANT SELECT ON x.* TO `other`@`%`", "app", to).is_none());
    }
}
