//! One LDAP connection, with rotor's rules: TLS verified against
//! `rotor_core::tls`'s roots (ring, `SSL_CERT_FILE`), host names checked,
//! plaintext only when the secret says so, and every failure sorted by the
//! protocol's own result codes into a [`TargetError`] that never carries a
//! server's text (it may echo what it was sent).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use rotor_core::{Cause, ExposeSecret, SecretString, TargetError};

use crate::secret::{Server, Transport};

/// How long a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
/// How long one operation may take.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// LDAP result codes (RFC 4511) the function acts on.
pub mod rc {
    /// A compare or a search found nothing to say.
    pub const NO_SUCH_OBJECT: u32 = 32;
    /// The server wants a stronger bind (Samba: a simple bind over plaintext).
    pub const STRONGER_AUTH_REQUIRED: u32 = 8;
    /// The server wants an encrypted connection.
    pub const CONFIDENTIALITY_REQUIRED: u32 = 13;
    /// A password policy (age, history, length, complexity) refused the value.
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    /// The credentials were refused.
    pub const INVALID_CREDENTIALS: u32 = 49;
    /// The bound account may not do this.
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    /// The server is busy.
    pub const BUSY: u32 = 51;
    /// The server is not available (shutting down, not ready).
    pub const UNAVAILABLE: u32 = 52;
    /// The server will not do it (a policy, a missing secure channel).
    pub const UNWILLING: u32 = 53;
}

/// A failed LDAP operation: its result code, when the server answered.
#[derive(Debug)]
pub struct Failure {
    /// The result code (RFC 4511), `None` for a failure below LDAP.
    pub rc: Option<u32>,
    /// Active Directory's Win32 error code from the diagnostic message
    /// (`data 52e`, `0000052D:`), when there is one.
    pub ad_code: Option<u32>,
    /// The sorted failure, naming what was done; never a server's text.
    pub error: TargetError,
}

/// An open connection.
pub struct Connection {
    ldap: ldap3::Ldap,
    server: Server,
}

/// Connects to `server` as its transport says, verifying its certificate
/// and host name.
pub async fn connect(server: &Server) -> Result<Connection, Failure> {
    let mut settings = LdapConnSettings::new().set_conn_timeout(CONNECT_TIMEOUT);
    match server.transport {
        Transport::Plaintext => {}
        Transport::Ldaps | Transport::StartTls => {
            let config = rotor_core::tls::client_config().map_err(|e| Failure {
                rc: None,
                ad_code: None,
                error: e.into(),
            })?;
            settings = settings
                .set_config(config)
                .set_starttls(server.transport == Transport::StartTls);
        }
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &server.url())
        .await
        .map_err(|e| sort(e, "connecting"))?;
    tokio::spawn(async move {
        // The connection's end is the operations' error; nothing to add here.
        let _ = conn.drive().await;
    });
    ldap.with_timeout(OPERATION_TIMEOUT);
    Ok(Connection {
        ldap,
        server: server.clone(),
    })
}

impl Connection {
    /// The server this connection is to.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// A simple bind: `Ok(true)` when the server accepts the credentials,
    /// `Ok(false)` when it refuses them (invalid credentials), an error
    /// otherwise.
    pub async fn bind(&mut self, name: &str, password: &SecretString) -> Result<bool, Failure> {
        match self.try_bind(name, password).await {
            Ok(()) => Ok(true),
            Err(f) if f.rc == Some(rc::INVALID_CREDENTIALS) => Ok(false),
            Err(f) => Err(f),
        }
    }

    /// A simple bind whose refusal is an error (with AD's code).
    pub async fn try_bind(&mut self, name: &str, password: &SecretString) -> Result<(), Failure> {
        // An empty password is an unauthenticated bind, which servers accept
        // without checking anything: the secret's parser refuses one, and so
        // does this.
        if password.expose_secret().is_empty() {
            return Err(Failure {
                rc: Some(rc::INVALID_CREDENTIALS),
                ad_code: None,
                error: TargetError::new(Cause::Auth, "an empty password is never sent"),
            });
        }
        let result = self
            .ldap
            .simple_bind(name, password.expose_secret())
            .await
            .map_err(|e| sort(e, "binding"))?;
        checked(result, "binding")
    }

    /// Entries under `base` matching `filter` (RFC 4515, values escaped by
    /// the caller), with `attrs`.
    pub async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, Failure> {
        let result = self
            .ldap
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| sort(e, "searching"))?;
        if result.1.rc == rc::NO_SUCH_OBJECT {
            return Ok(Vec::new());
        }
        let (entries, _) = result.success().map_err(|e| sort(e, "searching"))?;
        entries
            .into_iter()
            .map(|entry| {
                // ldap3 panics on an entry it cannot parse: a malformed answer
                // is a protocol error, never a crash of the function.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    SearchEntry::construct(entry)
                }))
                .map_err(|_| Failure {
                    rc: None,
                    ad_code: None,
                    error: TargetError::new(
                        Cause::Protocol,
                        "answered a search with an entry that is not LDAP",
                    ),
                })
            })
            .collect()
    }

    /// One modify of `dn` with byte-valued changes.
    pub async fn modify(
        &mut self,
        dn: &str,
        mods: Vec<Mod<Vec<u8>>>,
        doing: &str,
    ) -> Result<(), Failure> {
        let result = self
            .ldap
            .modify(dn, mods)
            .await
            .map_err(|e| sort(e, doing))?;
        checked(result, doing)
    }

    /// RFC 3062's password modify: `user` (`None`: the bound account),
    /// `old` (`None`: an administrator's reset), `new`.
    pub async fn password_modify(
        &mut self,
        user: Option<&str>,
        old: Option<&SecretString>,
        new: &SecretString,
        doing: &str,
    ) -> Result<(), Failure> {
        let exop = ldap3::exop::PasswordModify {
            user_id: user,
            old_pass: old.map(|o| o.expose_secret()),
            new_pass: Some(new.expose_secret()),
        };
        let result = self.ldap.extended(exop).await.map_err(|e| sort(e, doing))?;
        checked(result.1, doing)
    }

    /// Closes the connection (best effort).
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// A modification that replaces nothing and holds values as bytes.
pub fn values(items: Vec<Vec<u8>>) -> HashSet<Vec<u8>> {
    items.into_iter().collect()
}

/// The first value of `attr` (case-insensitive name) as text.
pub fn first<'a>(entry: &'a SearchEntry, attr: &str) -> Option<&'a str> {
    find(&entry.attrs, attr)
        .and_then(|v| v.first())
        .map(String::as_str)
}

/// The binary values of `attr` (case-insensitive name).
pub fn binary<'a>(entry: &'a SearchEntry, attr: &str) -> &'a [Vec<u8>] {
    find(&entry.bin_attrs, attr).map_or(&[], Vec::as_slice)
}

fn find<'a, T>(map: &'a HashMap<String, Vec<T>>, attr: &str) -> Option<&'a Vec<T>> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map(|(_, v)| v)
}

fn checked(result: ldap3::LdapResult, doing: &str) -> Result<(), Failure> {
    if result.rc == 0 {
        return Ok(());
    }
    Err(from_result(&result, doing))
}

/// Active Directory's Win32 code in a diagnostic message: the hexadecimal
/// after `data ` in a bind's, or the eight digits before the first `:`
/// elsewhere (MS-ADTS). Only the code is read; the text is never kept.
fn ad_code(text: &str) -> Option<u32> {
    if let Some(rest) = text.split("data ").nth(1) {
        let code: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        return u32::from_str_radix(&code, 16).ok();
    }
    let (head, _) = text.split_once(':')?;
    (head.len() == 8 && head.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(head, 16).ok())
        .flatten()
}

fn from_result(result: &ldap3::LdapResult, doing: &str) -> Failure {
    let code = result.rc;
    let cause = match code {
        rc::INVALID_CREDENTIALS => Cause::Auth,
        rc::INSUFFICIENT_ACCESS => Cause::Permission,
        rc::CONSTRAINT_VIOLATION | rc::UNWILLING => Cause::Rejected,
        rc::CONFIDENTIALITY_REQUIRED | rc::STRONGER_AUTH_REQUIRED => Cause::Tls,
        rc::BUSY | rc::UNAVAILABLE | 80 => Cause::Unavailable,
        rc::NO_SUCH_OBJECT => Cause::NotFound,
        _ => Cause::Rejected,
    };
    let hint = match code {
        rc::CONFIDENTIALITY_REQUIRED | rc::STRONGER_AUTH_REQUIRED => {
            "; the server wants TLS for this: use ldaps:// or ldap:// with StartTLS (remove \"ssl\": false)"
        }
        rc::UNWILLING => {
            "; Active Directory changes a password only over TLS, and a server may refuse a change its policy forbids"
        }
        _ => "",
    };
    let problem = format!(
        "{doing} failed with LDAP result {code} ({}){hint}",
        name(code)
    );
    Failure {
        rc: Some(code),
        ad_code: ad_code(&result.text),
        error: TargetError::new(cause, problem),
    }
}

/// The result code's name in RFC 4511.
fn name(code: u32) -> &'static str {
    match code {
        1 => "operationsError",
        2 => "protocolError",
        rc::STRONGER_AUTH_REQUIRED => "strongerAuthRequired",
        rc::CONFIDENTIALITY_REQUIRED => "confidentialityRequired",
        16 => "noSuchAttribute",
        rc::CONSTRAINT_VIOLATION => "constraintViolation",
        20 => "attributeOrValueExists",
        rc::NO_SUCH_OBJECT => "noSuchObject",
        rc::INVALID_CREDENTIALS => "invalidCredentials",
        rc::INSUFFICIENT_ACCESS => "insufficientAccessRights",
        rc::BUSY => "busy",
        rc::UNAVAILABLE => "unavailable",
        rc::UNWILLING => "unwillingToPerform",
        80 => "other",
        _ => "see RFC 4511",
    }
}

/// Sorts a client-side failure by its type (I/O kind, TLS, timeout).
fn sort(error: LdapError, doing: &str) -> Failure {
    let (cause, problem) = match &error {
        LdapError::LdapResult { result } => return from_result(result, doing),
        LdapError::Io { source } => (
            match source.kind() {
                std::io::ErrorKind::InvalidData => Cause::Tls,
                _ => Cause::Unreachable,
            },
            format!("{doing}: {}", io_problem(source)),
        ),
        LdapError::Timeout { .. } => (
            Cause::Unreachable,
            format!(
                "{doing}: no answer within {} s",
                OPERATION_TIMEOUT.as_secs()
            ),
        ),
        LdapError::Rustls { source } => (Cause::Tls, format!("{doing}: {}", tls_failed(source))),
        LdapError::DNSName { .. } => (
            Cause::Tls,
            format!("{doing}: the host is not a name a certificate can be checked against"),
        ),
        LdapError::EndOfStream | LdapError::ResultRecv { .. } | LdapError::OpSend { .. } => (
            Cause::Unreachable,
            format!("{doing}: the server closed the connection"),
        ),
        _ => (
            Cause::Protocol,
            format!("{doing}: the LDAP exchange failed"),
        ),
    };
    Failure {
        rc: None,
        ad_code: None,
        error: TargetError::new(cause, problem),
    }
}

/// An I/O failure in words of its kind (a TLS failure from rustls arrives
/// as `InvalidData` with the rustls error inside).
fn io_problem(error: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    if let Some(inner) = error.get_ref()
        && let Some(tls) = inner.downcast_ref::<rustls::Error>()
    {
        return tls_failed(tls);
    }
    match error.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
            "the connection was cut".into()
        }
        TimedOut => format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
        NotFound => "the host name does not resolve".into(),
        _ => format!("{:?}", error.kind()),
    }
}

/// RFC 4515's escaping of a value in a search filter.
pub fn escape(value: &str) -> String {
    ldap3::ldap_escape(value).into_owned()
}

/// A failed TLS handshake, and what to check.
fn tls_failed(error: &rustls::Error) -> String {
    format!(
        "TLS failed ({error}); check that the server's certificate is issued for this host name \
         by a CA in SSL_CERT_FILE or the system's bundle"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_codes_are_read_from_diagnostics_without_keeping_them() {
        assert_eq!(
            ad_code(
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1"
            ),
            Some(0x52e)
        );
        assert_eq!(
            ad_code("0000052D: Constraint violation - check_password_restrictions: x"),
            Some(0x52d)
        );
        assert_eq!(ad_code("no code here"), None);
        assert_eq!(ad_code(""), None);
    }

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(escape("a*)(b"), "a\\2a\\29\\28b");
    }
}
