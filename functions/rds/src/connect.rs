//! Why a connection failed, in words an operator can act on. Drivers report
//! failures as text; this sorts that text into the few causes that have
//! different fixes (name resolution, nothing listening, no answer, TLS,
//! credentials) and says the fix with the host and port at fault.

use rotor_core::{Error, TargetError, TargetKind};

use crate::secret::Engine;
use rotor_core::tls::TlsSetupError;

/// What kind of failure a connection attempt met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
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

/// A failed connection attempt.
#[derive(Debug)]
pub struct ConnectError {
    /// The cause.
    pub cause: Cause,
    /// The driver's account of it (never holds a password).
    pub detail: String,
}

/// The cause the drivers' typed errors give, walking `error`'s source chain:
/// PostgreSQL's SQLSTATE, MySQL's server error code, the I/O error kind, a
/// rustls error. `None` when none of them says (name resolution, which the
/// standard library reports without a kind of its own).
pub fn typed_cause(error: &(dyn std::error::Error + 'static)) -> Option<Cause> {
    use std::io::ErrorKind;
    use tokio_postgres::error::SqlState;
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(pg) = error.downcast_ref::<tokio_postgres::Error>()
            && let Some(code) = pg.code()
        {
            let code = code.clone();
            if code == SqlState::INVALID_PASSWORD
                || code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                return Some(Cause::Credentials);
            }
            if code == SqlState::TOO_MANY_CONNECTIONS || code == SqlState::CANNOT_CONNECT_NOW {
                return Some(Cause::Busy);
            }
            return Some(Cause::Other);
        }
        if let Some(pg) = error.downcast_ref::<tokio_postgres::Error>()
            && pg.is_closed()
        {
            return Some(Cause::Dropped);
        }
        if let Some(my) = error.downcast_ref::<mysql_async::Error>() {
            match my {
                // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR.
                mysql_async::Error::Server(e) if e.code == 1045 || e.code == 1698 => {
                    return Some(Cause::Credentials);
                }
                // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS.
                mysql_async::Error::Server(e) if e.code == 1040 || e.code == 1203 => {
                    return Some(Cause::Busy);
                }
                mysql_async::Error::Server(_) => return Some(Cause::Other),
                mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => return Some(Cause::Tls),
                mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => {
                    return Some(Cause::Dropped);
                }
                _ => {}
            }
        }
        if error.downcast_ref::<rustls::Error>().is_some() {
            return Some(Cause::Tls);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return Some(Cause::Tls);
            }
            match io.kind() {
                ErrorKind::ConnectionRefused => return Some(Cause::Refused),
                ErrorKind::TimedOut => return Some(Cause::Timeout),
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
                | ErrorKind::NotConnected => return Some(Cause::Dropped),
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                    return Some(Cause::Timeout);
                }
                _ => {}
            }
        }
        next = error.source();
    }
    None
}

impl ConnectError {
    /// A driver's error, sorted by its typed values ([`typed_cause`]), else
    /// by its text (name resolution failures only have text).
    pub fn from_driver(error: &(dyn std::error::Error + 'static), detail: String) -> ConnectError {
        match typed_cause(error) {
            Some(cause) => ConnectError { cause, detail },
            None => ConnectError::classify(detail, false),
        }
    }

    /// No TLS connection can be made at all: the trusted certificates or the
    /// TLS configuration are at fault, whatever the host.
    pub fn tls_setup(error: TlsSetupError) -> ConnectError {
        ConnectError {
            cause: Cause::Tls,
            detail: format!("TLS setup: {error}"),
        }
    }

    /// Sorts a driver error's text; `credentials` says whether the driver itself
    /// already recognised an authentication failure.
    pub fn classify(detail: String, credentials: bool) -> ConnectError {
        let text = detail.to_ascii_lowercase();
        let cause = if credentials {
            Cause::Credentials
        } else if [
            "failed to lookup address",
            "name or service not known",
            "no such host",
            "temporary failure in name resolution",
            "nodename nor servname",
        ]
        .iter()
        .any(|n| text.contains(n))
        {
            Cause::Dns
        } else if text.contains("connection refused") {
            Cause::Refused
        } else if text.contains("timed out") || text.contains("timeout") {
            Cause::Timeout
        } else if [
            "certificate",
            "tls",
            "ssl",
            "handshake",
            "unknownissuer",
            "notvalidforname",
            "expired",
        ]
        .iter()
        .any(|n| text.contains(n))
        {
            Cause::Tls
        } else if [
            "password authentication failed",
            "access denied",
            "authentication failed",
            "28p01",
            "28000",
        ]
        .iter()
        .any(|n| text.contains(n))
        {
            Cause::Credentials
        } else {
            Cause::Other
        };
        ConnectError { cause, detail }
    }

    /// The rotation error, naming the engine, address and user, and the fix.
    pub fn into_error(self, engine: Engine, address: &str, user: &str) -> Error {
        use rotor_core::Cause as Core;
        let (problem, cause) = match self.cause {
            Cause::Dns => (
                format!(
                    "could not resolve the host name ({}); check the secret's host field and DNS in the function's VPC",
                    self.detail
                ),
                Core::Unreachable,
            ),
            Cause::Refused => (
                format!(
                    "refused the connection ({}); check that the database runs and that the secret's port is right",
                    self.detail
                ),
                Core::Unreachable,
            ),
            Cause::Timeout => (
                format!(
                    "did not answer in time ({}); check the security groups, the function's VPC subnets and that the database runs",
                    self.detail
                ),
                Core::Unreachable,
            ),
            Cause::Dropped => (
                format!(
                    "dropped the connection ({}); the database may be restarting or failing over, or something between (a proxy, a NAT gateway) cut the link. The step can be retried",
                    self.detail
                ),
                Core::Unavailable,
            ),
            Cause::Tls => (
                format!(
                    "TLS failed ({}); if the certificate does not verify, set SSL_CERT_FILE to the CA bundle that signed it: for RDS, Amazon RDS's global bundle, shipped in a layer (template parameters caBundleLayerArn and sslCertFile, e.g. /opt/global-bundle.pem). Plaintext is used only when the secret says \"ssl\": false",
                    self.detail
                ),
                Core::Tls,
            ),
            Cause::Busy => (
                format!(
                    "takes no session now ({}); the server is at its connection limit, or starting or stopping. The step can be retried",
                    self.detail
                ),
                Core::Unavailable,
            ),
            Cause::Credentials => (
                format!("refused the credentials of user {user:?} ({})", self.detail),
                Core::Auth,
            ),
            Cause::Other => (self.detail, Core::Rejected),
        };
        TargetError::new(cause, problem).at(TargetKind::Database, format!("{engine} at {address}"))
    }
}

/// Why a statement failed on an open session, from the drivers' typed values:
/// the connection broke under it, or the server is busy or rolled the
/// transaction back (retryable), or the server refused it (a missing
/// privilege, anything else).
pub fn statement_cause(error: &(dyn std::error::Error + 'static)) -> rotor_core::Cause {
    use rotor_core::Cause as Core;
    if let Some(pg) = error.downcast_ref::<tokio_postgres::Error>() {
        if let Some(db) = pg.as_db_error() {
            return postgres_statement_cause(db.code().code());
        }
        if pg.is_closed() || typed_cause(error).is_some_and(broke) {
            return Core::Unavailable;
        }
        return Core::Protocol;
    }
    if let Some(my) = error.downcast_ref::<mysql_async::Error>() {
        return match my {
            mysql_async::Error::Server(e) => mysql_statement_cause(e.code),
            mysql_async::Error::Io(_)
            | mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => {
                Core::Unavailable
            }
            _ => Core::Protocol,
        };
    }
    match typed_cause(error) {
        Some(cause) if broke(cause) => Core::Unavailable,
        _ => Core::Rejected,
    }
}

/// Whether a connection-level cause means the link broke or the server was
/// busy: something a retry can get past.
fn broke(cause: Cause) -> bool {
    matches!(
        cause,
        Cause::Dropped | Cause::Refused | Cause::Timeout | Cause::Busy | Cause::Tls
    )
}

/// A PostgreSQL SQLSTATE's cause for a failed statement.
pub fn postgres_statement_cause(code: &str) -> rotor_core::Cause {
    use rotor_core::Cause as Core;
    match code {
        // insufficient_privilege.
        "42501" => Core::Permission,
        // Admin or crash shutdown, cannot connect now.
        "57P01" | "57P02" | "57P03" => Core::Unavailable,
        // Connection exceptions, rolled-back transactions (serialization,
        // deadlock), insufficient resources.
        _ if code.starts_with("08") || code.starts_with("40") || code.starts_with("53") => {
            Core::Unavailable
        }
        _ if code.starts_with("28") => Core::Auth,
        _ => Core::Rejected,
    }
}

/// A MySQL or MariaDB server error code's cause for a failed statement.
pub fn mysql_statement_cause(code: u16) -> rotor_core::Cause {
    use rotor_core::Cause as Core;
    match code {
        // ER_DBACCESS_DENIED, ER_ACCESS_DENIED, ER_TABLEACCESS_DENIED,
        // ER_SPECIFIC_ACCESS_DENIED, ER_NONEXISTING_GRANT (grant option).
        1044 | 1045 | 1142 | 1227 | 1410 => Core::Permission,
        // ER_CON_COUNT, ER_SERVER_SHUTDOWN, ER_TOO_MANY_USER_CONNECTIONS,
        // ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK, server gone, lost connection.
        1040 | 1053 | 1203 | 1205 | 1213 | 2006 | 2013 => Core::Unavailable,
        _ => Core::Rejected,
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
        use std::io::{Error as Io, ErrorKind};
        let cases: [(Box<dyn std::error::Error>, Option<Cause>); 7] = [
            (
                Box::new(Io::from(ErrorKind::ConnectionRefused)),
                Some(Cause::Refused),
            ),
            (
                Box::new(Io::from(ErrorKind::TimedOut)),
                Some(Cause::Timeout),
            ),
            (
                Box::new(Io::from(ErrorKind::ConnectionReset)),
                Some(Cause::Dropped),
            ),
            (
                Box::new(Io::new(
                    ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                )),
                Some(Cause::Tls),
            ),
            (Box::new(server(1045)), Some(Cause::Credentials)),
            (Box::new(server(1040)), Some(Cause::Busy)),
            (
                Box::new(Io::other("failed to lookup address information")),
                None,
            ),
        ];
        for (error, cause) in cases {
            assert_eq!(typed_cause(error.as_ref()), cause, "{error}");
        }
        let busy = ConnectError {
            cause: Cause::Busy,
            detail: "x".into(),
        }
        .into_error(Engine::MySql, "db:3306", "app");
        assert_eq!(busy.error_type(), "Retryable.DatabaseUnavailable");
    }

    #[test]
    fn sorts_driver_messages() {
        let cases = [
            (
                "error connecting to server: failed to lookup address information: Name or service not known",
                Cause::Dns,
            ),
            (
                "error connecting to server: Connection refused (os error 111)",
                Cause::Refused,
            ),
            ("timeout waiting for server", Cause::Timeout),
            (
                "error performing TLS handshake: invalid peer certificate: UnknownIssuer",
                Cause::Tls,
            ),
            (
                "db error: FATAL: password authentication failed for user \"app\"",
                Cause::Credentials,
            ),
            (
                "Server error: `ERROR 28000 (1045): Access denied for user 'app'@'127.0.0.1' (using password: YES)'",
                Cause::Credentials,
            ),
            ("something odd", Cause::Other),
        ];
        for (text, cause) in cases {
            assert_eq!(
                ConnectError::classify(text.into(), false).cause,
                cause,
                "{text}"
            );
        }
        let error = ConnectError::classify("Connection refused".into(), false).into_error(
            Engine::Postgres,
            "db:5432",
            "app",
        );
        assert!(error.is_retryable() && error.to_string().contains("PostgreSQL at db:5432"));
    }

    #[test]
    fn sorts_statement_failures_by_typed_values() {
        use rotor_core::Cause as Core;
        let cases: [(Box<dyn std::error::Error>, Core); 7] = [
            (Box::new(server(1227)), Core::Permission),
            (Box::new(server(1213)), Core::Unavailable),
            (Box::new(server(1064)), Core::Rejected),
            (
                Box::new(mysql_async::Error::Io(mysql_async::IoError::Io(
                    std::io::ErrorKind::ConnectionReset.into(),
                ))),
                Core::Unavailable,
            ),
            (
                Box::new(mysql_async::Error::Driver(
                    mysql_async::DriverError::ConnectionClosed,
                )),
                Core::Unavailable,
            ),
            (
                Box::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
                Core::Unavailable,
            ),
            (Box::new(std::io::Error::other("odd")), Core::Rejected),
        ];
        for (error, cause) in cases {
            assert_eq!(statement_cause(error.as_ref()), cause, "{error}");
        }
        assert_eq!(postgres_statement_cause("42501"), Core::Permission);
        assert_eq!(postgres_statement_cause("40001"), Core::Unavailable);
        assert_eq!(postgres_statement_cause("57P01"), Core::Unavailable);
        assert_eq!(postgres_statement_cause("42601"), Core::Rejected);
    }
}
