//! The emulator's admin connection to the Redis that backs it: one short
//! plaintext RESP connection on loopback per change, `AUTH` then one command.
//! Only simple, error and integer replies are read; that is all `AUTH` and
//! `ACL SETUSER` answer.

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where and as whom the emulator changes ACL users.
#[derive(Clone)]
pub struct RedisAdmin {
    /// The host, on loopback.
    pub host: String,
    /// The plaintext port.
    pub port: u16,
    /// A user allowed `ACL SETUSER`.
    pub user: String,
    /// Its password.
    pub password: SecretString,
}

impl std::fmt::Debug for RedisAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdmin")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why a Redis command did not succeed. Never holds the command's arguments.
#[derive(Debug, thiserror::Error)]
pub enum RedisAdminError {
    /// The connection failed.
    #[error("Redis at {address}: {source}")]
    Io {
        /// host:port.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The admin's `AUTH` was refused.
    #[error("Redis at {address} refused the admin user's AUTH")]
    AuthRefused {
        /// host:port.
        address: String,
    },
    /// Redis answered the command with an error (its first word, e.g. `ERR`).
    #[error("Redis at {address} refused the command ({kind})")]
    Refused {
        /// host:port.
        address: String,
        /// The error reply's first word.
        kind: String,
    },
    /// The reply was not RESP this client reads.
    #[error("Redis at {address} answered something other than a simple reply")]
    Protocol {
        /// host:port.
        address: String,
    },
}

impl RedisAdmin {
    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Runs one command as the admin. `args` may hold secrets: they go onto
    /// the wire only.
    pub(super) async fn run(&self, args: &[&str]) -> Result<(), RedisAdminError> {
        let address = self.address();
        let io = |source| RedisAdminError::Io {
            address: address.clone(),
            source,
        };
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(io)?;
        let mut stream = BufReader::new(stream);
        let auth = ["AUTH", self.user.as_str(), self.password.expose_secret()];
        stream
            .get_mut()
            .write_all(&encode(&auth))
            .await
            .map_err(io)?;
        if !matches!(read_reply(&mut stream).await.map_err(io)?, Reply::Ok) {
            return Err(RedisAdminError::AuthRefused { address });
        }
        stream
            .get_mut()
            .write_all(&encode(args))
            .await
            .map_err(io)?;
        match read_reply(&mut stream).await.map_err(io)? {
            Reply::Ok => Ok(()),
            Reply::Error(kind) => Err(RedisAdminError::Refused { address, kind }),
            Reply::Other => Err(RedisAdminError::Protocol { address }),
        }
    }
}

enum Reply {
    Ok,
    /// The error's first word only: Redis may quote an argument after it.
    Error(String),
    Other,
}

/// A RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_reply(stream: &mut BufReader<TcpStream>) -> std::io::Result<Reply> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end();
    Ok(match line.split_at_checked(1) {
        Some(("+", _)) | Some((":", _)) => Reply::Ok,
        Some(("-", text)) => Reply::Error(text.split(' ').next().unwrap_or("").to_owned()),
        _ => Reply::Other,
    })
}
