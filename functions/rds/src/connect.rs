//! Why a connection failed, in words an operator can act on: the few
//! failures that have different fixes (name resolution, nothing listening,
//! no answer, TLS, credentials, a busy server), each with the fix and the
//! host and port at fault.
//!
//! Every failure is known by a typed value, never by a driver's message:
//! the function resolves the host itself ([`resolve`]) and times its own
//! connection attempts, PostgreSQL's answer to its TLS request is a byte it
//! reads itself, and the rest is the drivers' typed errors ([`failure_of`]):
//! the I/O error's kind, a rustls error, PostgreSQL's SQLSTATE, MySQL's
//! server error code.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use rotor_core::tls::{CA_FILE_VAR, TlsSetupError};
use rotor_core::{Cause, Error, TargetError, TargetKind};

use crate::secret::Engine;

/// How long name resolution, and each connection attempt, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a failed statement that carries a password reports only the
/// server's error code and SQLSTATE: its message can quote the statement.
pub const WITHHELD: &str =
    "the server's message is withheld because the statement carries a password";

/// What kind of failure a connection attempt met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The host name did not resolve.
    Dns,
    /// Nothing listens at the address.
    Refused,
    /// No answer in time.
    Timeout,
    /// The connection broke: reset, closed or cut mid-conversation.
    Dropped,
    /// The TLS handshake or certificate check failed, or the server has no TLS.
    Tls,
    /// The server refused the user name or password.
    Credentials,
    /// The server is up but takes no session now: too many connections, or
    /// starting up or shutting down.
    Busy,
    /// Anything else.
    Other,
}

impl ConnectFailure {
    /// Whether the same login may work a moment later: a new password that
    /// has not reached every node yet, a server that is busy or slow.
    pub fn may_pass_soon(self) -> bool {
        use ConnectFailure::*;
        matches!(self, Credentials | Timeout | Refused | Busy)
    }
}

/// A failed connection attempt.
#[derive(Debug)]
pub struct ConnectError {
    /// What kind of failure.
    pub failure: ConnectFailure,
    /// The driver's account of it (never holds a password).
    pub detail: String,
}

/// The failure the drivers' typed errors give, walking `error`'s source
/// chain: PostgreSQL's SQLSTATE, MySQL's server error code, the I/O error
/// kind, a rustls error. `None` when none of them says.
pub fn failure_of(error: &(dyn std::error::Error + 'static)) -> Option<ConnectFailure> {
    use ConnectFailure::*;
    use tokio_postgres::error::SqlState;
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(pg) = error.downcast_ref::<tokio_postgres::Error>() {
            if let Some(code) = pg.code() {
                let credentials = [
                    SqlState::INVALID_PASSWORD,
                    SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                ];
                let busy = [SqlState::TOO_MANY_CONNECTIONS, SqlState::CANNOT_CONNECT_NOW];
                return Some(if credentials.contains(code) {
                    Credentials
                } else if busy.contains(code) {
                    Busy
                } else {
                    Other
                });
            }
            if pg.is_closed() {
                return Some(Dropped);
            }
        }
        if let Some(my) = error.downcast_ref::<mysql_async::Error>() {
            use mysql_async::{DriverError, Error as My, IoError};
            match my {
                // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR.
                My::Server(e) if e.code == 1045 || e.code == 1698 => return Some(Credentials),
                // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS.
                My::Server(e) if e.code == 1040 || e.code == 1203 => return Some(Busy),
                My::Server(_) => return Some(Other),
                My::Io(IoError::Tls(_)) => return Some(Tls),
                My::Driver(DriverError::NoClientSslFlagFromServer) => return Some(Tls),
                My::Driver(DriverError::ConnectionClosed) => return Some(Dropped),
                _ => {}
            }
        }
        if error.downcast_ref::<rustls::Error>().is_some() {
            return Some(Tls);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            let inner = io.get_ref();
            if inner.is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) {
                return Some(Tls);
            }
            match io.kind() {
                ErrorKind::ConnectionRefused => return Some(Refused),
                ErrorKind::TimedOut => return Some(Timeout),
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
                | ErrorKind::NotConnected => return Some(Dropped),
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                    return Some(Timeout);
                }
                _ => {}
            }
        }
        next = error.source();
    }
    None
}

/// The addresses of `host`, resolved here rather than by a driver, so that
/// a name that does not resolve is known as such ([`ConnectFailure::Dns`]).
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    let dns = |detail: String| ConnectError {
        failure: ConnectFailure::Dns,
        detail,
    };
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(CONNECT_TIMEOUT, lookup).await {
        Ok(Ok(found)) => {
            let addresses: Vec<SocketAddr> = found.collect();
            if addresses.is_empty() {
                return Err(dns("the name has no address".into()));
            }
            Ok(addresses)
        }
        Ok(Err(e)) => Err(dns(e.to_string())),
        Err(_) => Err(dns(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

impl ConnectError {
    /// A driver's error, sorted by its typed values ([`failure_of`]).
    pub fn from_driver(error: &(dyn std::error::Error + 'static), detail: String) -> ConnectError {
        ConnectError {
            failure: failure_of(error).unwrap_or(ConnectFailure::Other),
            detail,
        }
    }

    /// No TLS connection can be made at all: the trusted certificates or the
    /// TLS configuration are at fault, whatever the host.
    pub fn tls_setup(error: TlsSetupError) -> ConnectError {
        ConnectError {
            failure: ConnectFailure::Tls,
            detail: format!("TLS setup: {error}"),
        }
    }

    /// The server said it has no TLS, to a secret that asks for it.
    pub fn no_tls() -> ConnectError {
        ConnectError {
            failure: ConnectFailure::Tls,
            detail: "the server does not offer TLS".into(),
        }
    }

    /// No connection within [`CONNECT_TIMEOUT`].
    pub fn timed_out() -> ConnectError {
        ConnectError {
            failure: ConnectFailure::Timeout,
            detail: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        }
    }

    /// The rotation error, naming the engine, address and user, and the fix.
    pub fn into_error(self, engine: Engine, address: &str, user: &str) -> Error {
        let detail = self.detail;
        let (cause, problem) = match self.failure {
            ConnectFailure::Dns => (
                Cause::Unreachable,
                format!(
                    concat!(
                        "could not resolve the host name ({}); check the secret's host field ",
                        "and DNS in the function's VPC"
                    ),
                    detail
                ),
            ),
            ConnectFailure::Refused => (
                Cause::Unreachable,
                format!(
                    concat!(
                        "refused the connection ({}); check that the database runs and that ",
                        "the secret's port is right"
                    ),
                    detail
                ),
            ),
            ConnectFailure::Timeout => (
                Cause::Unreachable,
                format!(
                    concat!(
                        "did not answer in time ({}); check the security groups, the ",
                        "function's VPC subnets and that the database runs"
                    ),
                    detail
                ),
            ),
            ConnectFailure::Dropped => (
                Cause::Unavailable,
                format!(
                    concat!(
                        "dropped the connection ({}); the database may be restarting or ",
                        "failing over, or something between (a proxy, a NAT gateway) cut the ",
                        "link. The step can be retried"
                    ),
                    detail
                ),
            ),
            ConnectFailure::Tls => (
                Cause::Tls,
                format!(
                    concat!(
                        "TLS failed ({}); if the certificate does not verify, set {} to the ",
                        "CA bundle that signed it: for RDS, Amazon RDS's global bundle, ",
                        "shipped in a layer (template parameters caBundleLayerArn and ",
                        "sslCertFile, e.g. /opt/global-bundle.pem). Plaintext is used only ",
                        "when the secret says \"ssl\": false"
                    ),
                    detail, CA_FILE_VAR
                ),
            ),
            ConnectFailure::Busy => (
                Cause::Unavailable,
                format!(
                    concat!(
                        "takes no session now ({}); the server is at its connection limit, ",
                        "or starting or stopping. The step can be retried"
                    ),
                    detail
                ),
            ),
            ConnectFailure::Credentials => (
                Cause::Auth,
                format!("refused the credentials of user {user:?} ({detail})"),
            ),
            ConnectFailure::Other => (Cause::Rejected, detail),
        };
        let target = format!("{engine} at {address}");
        TargetError::new(cause, problem).at(TargetKind::Database, target)
    }
}

/// Why a statement failed on an open session, from the drivers' typed values:
/// the connection broke under it, or the server is busy or rolled the
/// transaction back (retryable), or the server refused it (a missing
/// privilege, anything else).
pub fn statement_cause(error: &(dyn std::error::Error + 'static)) -> Cause {
    if let Some(pg) = error.downcast_ref::<tokio_postgres::Error>() {
        if let Some(db) = pg.as_db_error() {
            return postgres_statement_cause(db.code().code());
        }
        if pg.is_closed() || failure_of(error).is_some_and(broke) {
            return Cause::Unavailable;
        }
        return Cause::Protocol;
    }
    if let Some(my) = error.downcast_ref::<mysql_async::Error>() {
        return match my {
            mysql_async::Error::Server(e) => mysql_statement_cause(e.code),
            mysql_async::Error::Io(_)
            | mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => {
                Cause::Unavailable
            }
            _ => Cause::Protocol,
        };
    }
    match failure_of(error) {
        Some(failure) if broke(failure) => Cause::Unavailable,
        _ => Cause::Rejected,
    }
}

/// Whether a connection-level failure means the link broke or the server
/// was busy: something a retry can get past.
fn broke(failure: ConnectFailure) -> bool {
    use ConnectFailure::*;
    matches!(failure, Dropped | Refused | Timeout | Busy | Tls)
}

/// A PostgreSQL SQLSTATE's cause for a failed statement.
pub fn postgres_statement_cause(code: &str) -> Cause {
    match code {
        // insufficient_privilege.
        "42501" => Cause::Permission,
        // Admin or crash shutdown, cannot connect now.
        "57P01" | "57P02" | "57P03" => Cause::Unavailable,
        // Connection exceptions, rolled-back transactions (serialization,
        // deadlock), insufficient resources.
        _ if code.starts_with("08") || code.starts_with("40") || code.starts_with("53") => {
            Cause::Unavailable
        }
        _ if code.starts_with("28") => Cause::Auth,
        _ => Cause::Rejected,
    }
}

/// A MySQL or MariaDB server error code's cause for a failed statement.
pub fn mysql_statement_cause(code: u16) -> Cause {
    match code {
        // ER_DBACCESS_DENIED, ER_ACCESS_DENIED, ER_TABLEACCESS_DENIED,
        // ER_SPECIFIC_ACCESS_DENIED, ER_NONEXISTING_GRANT (grant option).
        1044 | 1045 | 1142 | 1227 | 1410 => Cause::Permission,
        // ER_CON_COUNT, ER_SERVER_SHUTDOWN, ER_TOO_MANY_USER_CONNECTIONS,
        // ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK, server gone, lost connection.
        1040 | 1053 | 1203 | 1205 | 1213 | 2006 | 2013 => Cause::Unavailable,
        _ => Cause::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MySQL server error with `code`.
    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "withheld".into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn sorts_typed_driver_errors() {
        use ConnectFailure::*;
        use std::io::Error as Io;
        let certificate =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let cases: [(Box<dyn std::error::Error>, Option<ConnectFailure>); 9] = [
            (
                Box::new(Io::from(ErrorKind::ConnectionRefused)),
                Some(Refused),
            ),
            (Box::new(Io::from(ErrorKind::TimedOut)), Some(Timeout)),
            (
                Box::new(Io::from(ErrorKind::ConnectionReset)),
                Some(Dropped),
            ),
            (
                Box::new(Io::new(ErrorKind::InvalidData, certificate)),
                Some(Tls),
            ),
            (Box::new(server(1045)), Some(Credentials)),
            (Box::new(server(1040)), Some(Busy)),
            (
                Box::new(mysql_async::Error::Driver(
                    mysql_async::DriverError::NoClientSslFlagFromServer,
                )),
                Some(Tls),
            ),
            // A message alone says nothing, whatever its words.
            (
                Box::new(Io::other("TLS handshake: certificate expired")),
                None,
            ),
            (
                Box::new(Io::other("failed to lookup address information")),
                None,
            ),
        ];
        for (error, failure) in cases {
            assert_eq!(failure_of(error.as_ref()), failure, "{error}");
        }
        let busy = ConnectError {
            failure: Busy,
            detail: "x".into(),
        };
        let busy = busy.into_error(Engine::MySql, "db:3306", "app");
        assert_eq!(busy.error_type(), "Retryable.DatabaseUnavailable");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_dns() {
        let unresolved = resolve("no-such-host.invalid", 5432).await.unwrap_err();
        assert_eq!(unresolved.failure, ConnectFailure::Dns);
        let error = unresolved.into_error(Engine::Postgres, "no-such-host.invalid:5432", "app");
        assert!(error.is_retryable(), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("could not resolve the host name")
                && text.contains("PostgreSQL at no-such-host.invalid:5432"),
            "{text}"
        );
        let found = resolve("127.0.0.1", 5432).await.unwrap();
        assert_eq!(found, [SocketAddr::from(([127, 0, 0, 1], 5432))]);
    }

    #[test]
    fn sorts_statement_failures_by_typed_values() {
        let reset = mysql_async::IoError::Io(ErrorKind::ConnectionReset.into());
        let closed = mysql_async::DriverError::ConnectionClosed;
        let cases: [(Box<dyn std::error::Error>, Cause); 7] = [
            (Box::new(server(1227)), Cause::Permission),
            (Box::new(server(1213)), Cause::Unavailable),
            (Box::new(server(1064)), Cause::Rejected),
            (Box::new(mysql_async::Error::Io(reset)), Cause::Unavailable),
            (
                Box::new(mysql_async::Error::Driver(closed)),
                Cause::Unavailable,
            ),
            (
                Box::new(std::io::Error::from(ErrorKind::BrokenPipe)),
                Cause::Unavailable,
            ),
            (Box::new(std::io::Error::other("odd")), Cause::Rejected),
        ];
        for (error, cause) in cases {
            assert_eq!(statement_cause(error.as_ref()), cause, "{error}");
        }
        assert_eq!(postgres_statement_cause("42501"), Cause::Permission);
        assert_eq!(postgres_statement_cause("40001"), Cause::Unavailable);
        assert_eq!(postgres_statement_cause("57P01"), Cause::Unavailable);
        assert_eq!(postgres_statement_cause("42601"), Cause::Rejected);
    }
}
