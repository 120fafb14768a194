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
//!
//! A reply is bounded in time (15 s) and in size: at most 1 MiB on the wire,
//! 64 KiB per line, 16384 array elements and arrays 8 deep, whatever lengths
//! the peer claims; a claimed length is checked before anything is
//! allocated for it. Over a limit is a `Protocol` error naming it.

use std::time::Duration;

use rotor_core::{Cause, TargetError};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use zeroize::Zeroize;

use crate::secret::Transport;

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one command may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// The most bytes one reply may take on the wire, lines and bulk strings
/// together. Rotation's commands (AUTH, PING, ACL GETUSER, ACL SETUSER,
/// CONFIG GET, ACL SAVE) answer a few kilobytes; a peer that claims more is
/// refused before the function allocates for it.
const MAX_REPLY_BYTES: usize = 1 << 20;
/// The longest line (a status, an error, a length) of a reply.
const MAX_LINE: usize = 64 * 1024;
/// The most array elements one reply may hold, at every depth together.
const MAX_ELEMENTS: usize = 16 * 1024;
/// The deepest nesting of arrays (ACL GETUSER's selectors are two deep).
const MAX_DEPTH: usize = 8;

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
                let config = rotor_core::tls::client_config()?;
                let name = ServerName::try_from(host.to_owned()).map_err(|_| {
                    TargetError::new(
                        Cause::Tls,
                        format!("{host:?} is not a host name TLS can verify"),
                    )
                })?;
                let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
                let late = |_| {
                    let problem = "the TLS handshake did not finish in time";
                    TargetError::new(Cause::Unreachable, problem)
                };
                let failed = |e: std::io::Error| {
                    let cause = if e.kind() == std::io::ErrorKind::InvalidData {
                        Cause::Tls
                    } else {
                        io_cause(&e)
                    };
                    let problem = format!(
                        "TLS handshake failed: {e} (the secret asks for verified TLS; set \"ssl\": false only for a server without TLS)"
                    );
                    TargetError::new(cause, problem)
                };
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
                    .await
                    .map_err(late)?
                    .map_err(failed)?;
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
        let mut budget = Budget::new();
        let late = |_| {
            let problem = format!("no answer within {} s", REPLY_TIMEOUT.as_secs());
            TargetError::new(Cause::Unavailable, problem)
        };
        let reply = tokio::time::timeout(REPLY_TIMEOUT, read_reply(&mut self.io, &mut budget, 0))
            .await
            .map_err(late)?
            .map_err(ReadError::into_target)?;
        match reply {
            Reply::Error(code, _) if secret => Ok(Reply::Error(code, String::new())),
            other => Ok(other),
        }
    }
}

enum ReadError {
    Io(std::io::Error),
    Protocol(String),
    /// The reply exceeds one of the limits: which, and by how much.
    TooLarge(String),
}

impl ReadError {
    /// `what` would take the reply past [`MAX_REPLY_BYTES`].
    fn past_bytes(what: &str) -> ReadError {
        ReadError::TooLarge(format!(
            "{what} would take the reply past {MAX_REPLY_BYTES} bytes"
        ))
    }

    fn into_target(self) -> TargetError {
        match self {
            ReadError::Io(e) => {
                TargetError::new(io_cause(&e), format!("the connection broke: {e}"))
            }
            ReadError::Protocol(p) => {
                TargetError::new(Cause::Protocol, format!("not a Redis reply: {p}"))
            }
            ReadError::TooLarge(what) => {
                let problem = format!(
                    "refused a reply over the limits of a rotation ({what}); the commands rotation sends answer a few kilobytes, so check that the secret's host and port name a Redis server"
                );
                TargetError::new(Cause::Protocol, problem)
            }
        }
    }
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// What is left of one reply's allowance.
struct Budget {
    bytes: usize,
    elements: usize,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            bytes: MAX_REPLY_BYTES,
            elements: MAX_ELEMENTS,
        }
    }

    fn spend_bytes(&mut self, n: usize, what: &str) -> Result<(), ReadError> {
        self.bytes = self
            .bytes
            .checked_sub(n)
            .ok_or_else(|| ReadError::past_bytes(what))?;
        Ok(())
    }

    fn spend_elements(&mut self, n: usize) -> Result<(), ReadError> {
        self.elements = self.elements.checked_sub(n).ok_or_else(|| {
            ReadError::TooLarge(format!(
                "an array of {n} elements would take the reply past {MAX_ELEMENTS} elements"
            ))
        })?;
        Ok(())
    }
}

async fn read_line<R: AsyncBufReadExt + Unpin>(
    io: &mut R,
    budget: &mut Budget,
) -> Result<String, ReadError> {
    let mut line = Vec::new();
    let limit = MAX_LINE.min(budget.bytes);
    let n = (&mut *io)
        .take(limit as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == limit && !line.ends_with(b"\n") {
        return Err(if limit == MAX_LINE {
            ReadError::TooLarge(format!("a line longer than {MAX_LINE} bytes"))
        } else {
            ReadError::past_bytes("a line")
        });
    }
    if n == 0 {
        return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    budget.spend_bytes(n, "a line")?;
    if !line.ends_with(b"\r\n") {
        return Err(ReadError::Protocol("a line without CRLF".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| ReadError::Protocol("a line that is not UTF-8".into()))
}

fn read_reply<'a, R: AsyncBufReadExt + Unpin + Send>(
    io: &'a mut R,
    budget: &'a mut Budget,
    depth: usize,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Reply, ReadError>> + Send + 'a>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(ReadError::TooLarge(format!(
                "arrays nested more than {MAX_DEPTH} deep"
            )));
        }
        let line = read_line(io, budget).await?;
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
                // Checked against what is left before anything is allocated:
                // a claimed length is only a claim.
                let n = usize::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_add(2))
                    .filter(|n| *n <= budget.bytes)
                    .ok_or_else(|| ReadError::past_bytes(&format!("a bulk string of {n} bytes")))?;
                budget.spend_bytes(n, "a bulk string")?;
                let mut data = vec![0; n];
                io.read_exact(&mut data).await?;
                if !data.ends_with(b"\r\n") {
                    return Err(ReadError::Protocol("a bulk string without CRLF".into()));
                }
                data.truncate(n - 2);
                Ok(Reply::Bulk(Some(data)))
            }
            "*" => {
                let n = number(rest)?;
                if n < 0 {
                    return Ok(Reply::Array(None));
                }
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                budget.spend_elements(n)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read_reply(io, budget, depth + 1).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(ReadError::Protocol("an unknown reply type".into())),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(wire: &[u8]) -> Result<Reply, ReadError> {
        let mut io = tokio::io::BufReader::new(wire);
        read_reply(&mut io, &mut Budget::new(), 0).await
    }

    fn too_large(result: Result<Reply, ReadError>) -> String {
        match result {
            Err(ReadError::TooLarge(what)) => what,
            Err(ReadError::Protocol(p)) => panic!("a protocol error instead: {p}"),
            Err(ReadError::Io(e)) => panic!("an I/O error instead: {e}"),
            Ok(reply) => panic!("accepted: {reply:?}"),
        }
    }

    fn repeat(part: &[u8], times: usize) -> Vec<u8> {
        part.repeat(times)
    }

    #[tokio::test]
    async fn replies_of_rotations_commands_parse() {
        let getuser =
            b"*4\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$9\r\npasswords\r\n*1\r\n$3\r\nabc\r\n";
        let Reply::Array(Some(items)) = parse(getuser).await.ok().unwrap() else {
            panic!("not an array");
        };
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[3],
            Reply::Array(Some(vec![Reply::Bulk(Some(b"abc".to_vec()))]))
        );
        assert_eq!(
            parse(b"+OK\r\n").await.ok(),
            Some(Reply::Status("OK".into()))
        );
        assert_eq!(
            parse(b"-WRONGPASS invalid\r\n").await.ok(),
            Some(Reply::Error("WRONGPASS".into(), "invalid".into()))
        );
        assert_eq!(parse(b"$-1\r\n").await.ok(), Some(Reply::Bulk(None)));
        assert_eq!(parse(b"*-1\r\n").await.ok(), Some(Reply::Array(None)));
        // Just under the limits.
        let mut wide = format!("*{MAX_ELEMENTS}\r\n").into_bytes();
        wide.extend(repeat(b":1\r\n", MAX_ELEMENTS));
        assert!(parse(&wide).await.is_ok());
        let mut deep = repeat(b"*1\r\n", MAX_DEPTH);
        deep.extend_from_slice(b":1\r\n");
        assert!(parse(&deep).await.is_ok());
    }

    #[tokio::test]
    async fn a_claimed_huge_bulk_length_is_refused_before_any_allocation() {
        for claim in [
            b"$9223372036854775807\r\n".as_slice(),
            b"$1048577\r\n",
            b"*1\r\n$1048576\r\n",
        ] {
            let what = too_large(parse(claim).await);
            assert!(what.contains("bulk string"), "{what}");
        }
    }

    #[tokio::test]
    async fn long_and_deep_arrays_are_refused() {
        let what = too_large(parse(b"*9223372036854775807\r\n").await);
        assert!(what.contains("elements"), "{what}");
        let what = too_large(parse(format!("*{}\r\n", MAX_ELEMENTS + 1).as_bytes()).await);
        assert!(what.contains("elements"), "{what}");
        // Many arrays, each short, add up.
        let mut many = b"*3\r\n".to_vec();
        for _ in 0..3 {
            many.extend_from_slice(b"*6000\r\n");
            many.extend(repeat(b":1\r\n", 6000));
        }
        let what = too_large(parse(&many).await);
        assert!(what.contains("elements"), "{what}");
        let mut deep = repeat(b"*1\r\n", MAX_DEPTH + 1);
        deep.extend_from_slice(b":1\r\n");
        let what = too_large(parse(&deep).await);
        assert!(what.contains("nested"), "{what}");
    }

    #[tokio::test]
    async fn the_whole_reply_is_capped_not_only_each_part() {
        // Eight bulk strings of 200 KiB: each within the cap, 1.6 MiB together.
        let chunk = 200 * 1024;
        let mut wire = b"*8\r\n".to_vec();
        for _ in 0..8 {
            wire.extend(format!("${chunk}\r\n").into_bytes());
            wire.extend(std::iter::repeat_n(b'x', chunk));
            wire.extend_from_slice(b"\r\n");
        }
        let what = too_large(parse(&wire).await);
        assert!(what.contains(&MAX_REPLY_BYTES.to_string()), "{what}");
        // A bulk string that uses up the allowance exactly, then one more element.
        let fill = MAX_REPLY_BYTES - b"*2\r\n$1048560\r\n\r\n".len();
        let mut wire = format!("*2\r\n${fill}\r\n").into_bytes();
        wire.extend(std::iter::repeat_n(b'x', fill));
        wire.extend_from_slice(b"\r\n:1\r\n");
        let what = too_large(parse(&wire).await);
        assert!(what.contains("past"), "{what}");
        wire.truncate(wire.len() - b":1\r\n".len());
        wire[1] = b'1';
        assert!(parse(&wire).await.is_ok(), "exactly the allowance is fine");
        let mut line = b"+".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_LINE));
        line.extend_from_slice(b"\r\n");
        let what = too_large(parse(&line).await);
        assert!(what.contains("line longer"), "{what}");
    }
}
