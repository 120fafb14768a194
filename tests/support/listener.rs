//! A plain TCP listener on 127.0.0.1 that records what reaches it: how many
//! connections, and every byte sent. The attacker tests point a secret at it
//! as their "own host" and assert that nothing arrives. It answers nothing, so
//! a client that does connect fails; the bytes (which may hold a credential)
//! are only ever searched, never printed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Recorded {
    connections: usize,
    bytes: Vec<u8>,
}

/// The listener; stops when dropped.
pub struct RecordingListener {
    port: u16,
    recorded: Arc<Mutex<Recorded>>,
    server: JoinHandle<()>,
}

impl Drop for RecordingListener {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// How long a connection is read after its last byte, before it is closed.
const IDLE: Duration = Duration::from_millis(300);
/// The most bytes kept per connection.
const KEPT: usize = 64 * 1024;

impl RecordingListener {
    /// Listens on 127.0.0.1 at a free port.
    pub async fn start() -> RecordingListener {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local listener");
        let port = listener.local_addr().expect("its address").port();
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let shared = recorded.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let shared = shared.clone();
                shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .connections += 1;
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 8192];
                    let mut kept = 0;
                    while kept < KEPT {
                        match tokio::time::timeout(IDLE, stream.read(&mut buffer)).await {
                            Ok(Ok(n)) if n > 0 => {
                                kept += n;
                                shared
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .bytes
                                    .extend_from_slice(&buffer[..n]);
                            }
                            _ => break,
                        }
                    }
                });
            }
        });
        RecordingListener {
            port,
            recorded,
            server,
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .connections
    }

    /// Whether the bytes received so far contain `needle` (a credential).
    pub fn received_contains(&self, needle: &str) -> bool {
        let recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        !needle.is_empty()
            && recorded
                .bytes
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
    }

    /// How many bytes arrived.
    pub fn bytes_received(&self) -> usize {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
            .len()
    }
}

/// A TCP listener on 127.0.0.1 that accepts every connection and never
/// answers, nor closes one: an endpoint that hangs its clients. Stops (and
/// drops the connections it holds) when dropped.
pub struct SilentListener {
    port: u16,
    server: JoinHandle<()>,
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl SilentListener {
    /// Listens on 127.0.0.1 at a free port.
    pub async fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local listener");
        let port = listener.local_addr().expect("its address").port();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        SilentListener { port, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// An HTTP server on 127.0.0.1 that answers every request with 404 and a
/// page of HTML: something that listens where Secrets Manager was expected
/// but is not it. Stops when dropped.
pub struct NotFoundServer {
    port: u16,
    server: JoinHandle<()>,
}

impl Drop for NotFoundServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl NotFoundServer {
    /// Listens on 127.0.0.1 at a free port.
    pub async fn start() -> NotFoundServer {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local listener");
        let port = listener.local_addr().expect("its address").port();
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // Read the request (headers and a small body), then answer.
                    let mut buffer = vec![0u8; 16 * 1024];
                    let _ = tokio::time::timeout(IDLE, stream.read(&mut buffer)).await;
                    let page = "<html><body>Not Found</body></html>";
                    let answer = format!(
                        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        NotFoundServer { port, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
