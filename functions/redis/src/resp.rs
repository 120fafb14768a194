//! A small RESP2 client: what rotation needs from Redis (AUTH, PING, ACL and
//! CONFIG GET), over TCP or verified TLS (rustls on ring).
//!
//! Why not the `redis` crate: its TLS brings a second rustls set-up and, by
//! default, aws-lc, and its connection manager and command builders are far
//! more than six commands need. Every argument here is sent as a
//! length-prefixed bulk string, so nothing in a user name or password can add
//! arguments or ACL rules.
//!
//! Server error text is kept only for commands that carry no secret: Redis
//! echoes an ACL rule it refuses, password included.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rotor_core::{Cause, TargetError};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use zeroize::Zeroize;

use crate::secret::Transport;

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one command may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest reply line or bulk string accepted (ACL GETUSER is small).
const MAX_REPLY: usize = 1 << 20;

/// The variable naming an extra CA bundle (PEM).
pub const CA_FILE_VAR: &str = "SSL_CERT_FILE";

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-CODE message`: the code (first word), and the message.
    Error(String, String),
    /// `:n`
    Int(i64),
    /// `$n` (None for the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*n` (None for the null array).
    Array(Option<Vec<Reply>>),
}

/// An open connection.
pub struct Connection {
    io: BufStream<Box<dyn Io>>,
}

fn io_cause(e: &std::io::Error) -> Cause {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable | TimedOut => {
            Cause::Unreachable
        }
        InvalidData => Cause::Protocol,
        _ => Cause::Unavailable,
    }
}

impl Connection {
    /// Connects to `host:port`, with TLS unless `transport` says plaintext.
    pub async fn open(
        host: &str,
        port: u16,
        transport: Transport,
    ) -> Result<Connection, TargetError> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| {
                TargetError::new(
                    Cause::Unreachable,
                    format!(
                        "did not accept a connection within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                )
            })?
            .map_err(|e| TargetError::new(io_cause(&e), format!("could not connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match transport {
            Transport::Plaintext => Box::new(tcp),
            Transport::VerifiedTls => {
                let config = client_config()?;
                let name = ServerName::try_from(host.to_owned()).map_err(|_| {
                    TargetError::new(
                        Cause::Tls,
                        format!("{host:?} is not a host name TLS can verify"),
                    )
                })?;
                let tls = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio_rustls::TlsConnector::from(config).connect(name, tcp),
                )
                .await
                .map_err(|_| TargetError::new(Cause::Unreachable, "the TLS handshake did not finish in time"))?
                .map_err(|e| {
                    let cause = if e.kind() == std::io::ErrorKind::InvalidData {
                        Cause::Tls
                    } else {
                        io_cause(&e)
                    };
                    TargetError::new(cause, format!("TLS handshake failed: {e} (the secret asks for verified TLS; set \"ssl\": false only for a server without TLS)"))
                })?;
                Box::new(tls)
            }
        };
        Ok(Connection {
            io: BufStream::new(io),
        })
    }

    /// Sends one command and reads its reply. `secret` says an argument holds
    /// a secret: then neither the arguments nor the server's error text
    /// appear in any error.
    pub async fn call(&mut self, args: &[&[u8]], secret: bool) -> Result<Reply, TargetError> {
        let mut frame = Vec::with_capacity(64);
        frame.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        let written = async {
            self.io.write_all(&frame).await?;
            self.io.flush().await
        }
        .await;
        frame.zeroize();
        written
            .map_err(|e| TargetError::new(io_cause(&e), format!("the connection broke: {e}")))?;
        let reply = tokio::time::timeout(REPLY_TIMEOUT, read_reply(&mut self.io, 0))
            .await
            .map_err(|_| {
                TargetError::new(
                    Cause::Unavailable,
                    format!("no answer within {} s", REPLY_TIMEOUT.as_secs()),
                )
            })?
            .map_err(|e| match e {
                ReadError::Io(e) => {
                    TargetError::new(io_cause(&e), format!("the connection broke: {e}"))
                }
                ReadError::Protocol(p) => {
                    TargetError::new(Cause::Protocol, format!("not a Redis reply: {p}"))
                }
            })?;
        match reply {
            Reply::Error(code, _) if secret => Ok(Reply::Error(code, String::new())),
            other => Ok(other),
        }
    }
}

enum ReadError {
    Io(std::io::Error),
    Protocol(String),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

async fn read_line<R: AsyncBufReadExt + Unpin>(io: &mut R) -> Result<String, ReadError> {
    let mut line = Vec::new();
    let n = (&mut *io)
        .take(MAX_REPLY as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(ReadError::Protocol("a line without CRLF".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| ReadError::Protocol("a line that is not UTF-8".into()))
}

fn read_reply<'a, R: AsyncBufReadExt + Unpin + Send>(
    io: &'a mut R,
    depth: usize,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Reply, ReadError>> + Send + 'a>> {
    Box::pin(async move {
        if depth > 8 {
            return Err(ReadError::Protocol("nested too deeply".into()));
        }
        let line = read_line(io).await?;
        let (kind, rest) = line.split_at(line.char_indices().nth(1).map_or(line.len(), |(i, _)| i));
        let number = |rest: &str| -> Result<i64, ReadError> {
            rest.parse()
                .map_err(|_| ReadError::Protocol("a bad length or integer".into()))
        };
        match kind {
            "+" => Ok(Reply::Status(rest.to_owned())),
            "-" => {
                let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
                Ok(Reply::Error(code.to_owned(), message.to_owned()))
            }
            ":" => Ok(Reply::Int(number(rest)?)),
            "$" => {
                let n = number(rest)?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let n = usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_REPLY)
                    .ok_or_else(|| ReadError::Protocol("a bulk string too long".into()))?;
                let mut data = vec![0; n + 2];
                io.read_exact(&mut data).await?;
                if !data.ends_with(b"\r\n") {
                    return Err(ReadError::Protocol("a bulk string without CRLF".into()));
                }
                data.truncate(n);
                Ok(Reply::Bulk(Some(data)))
            }
            "*" => {
                let n = number(rest)?;
                if n < 0 {
                    return Ok(Reply::Array(None));
                }
                let n = usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= 4096)
                    .ok_or_else(|| ReadError::Protocol("an array too long".into()))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read_reply(io, depth + 1).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(ReadError::Protocol("an unknown reply type".into())),
        }
    })
}

/// Where Linux distributions keep their CA bundle; the first that exists is used.
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

fn bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, rustls_pki_types::pem::Error> {
    CertificateDer::pem_file_iter(path)?.collect()
}

fn no_tls(problem: String) -> TargetError {
    TargetError::new(Cause::Tls, problem)
}

/// The TLS client configuration: the system's CAs plus `SSL_CERT_FILE`'s,
/// built on the first TLS connection, never on the cold path.
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, TargetError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, TargetError>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut certs = Vec::new();
            if let Some(system) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
                certs.extend(bundle(system).unwrap_or_default());
            }
            if let Some(extra) = std::env::var_os(CA_FILE_VAR).filter(|v| !v.is_empty()) {
                let path = Path::new(&extra);
                let found = bundle(path).map_err(|e| no_tls(format!("{CA_FILE_VAR}={} could not be read as a PEM bundle: {e}; point it at the server's CA bundle", path.display())))?;
                if found.is_empty() {
                    return Err(no_tls(format!("{CA_FILE_VAR}={} holds no certificate; point it at the server's CA bundle", path.display())));
                }
                certs.extend(found);
            }
            if certs.is_empty() {
                return Err(no_tls(format!("no CA certificates found; set {CA_FILE_VAR} to the server's CA bundle")));
            }
            let mut roots = RootCertStore::empty();
            let _ = roots.add_parsable_certificates(certs);
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| no_tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}
