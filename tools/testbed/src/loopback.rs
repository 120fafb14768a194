//! The HTTP/1 server on 127.0.0.1 at a free port that every local HTTP server of
//! rotor runs on: the CLI's Lambda Runtime API, the provider emulator, the webhook
//! receiver and the Secrets Manager proxy. Each brings only its request handler.
//!
//! Connections are tasks of the server's own task set, so dropping the
//! [`Loopback`] handle stops accepting and ends every open connection with it
//! (long-polls and keep-alive connections included): a dropped server answers
//! nothing more.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A running server; dropping it stops it.
pub struct Loopback {
    address: SocketAddr,
    server: JoinHandle<()>,
}

impl Loopback {
    /// Where it listens: 127.0.0.1 and its port.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// How the server speaks HTTP/1, where a server needs more than hyper's defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Writes header names in Title-Case (as AWS documents them), for clients that
    /// compare them case-sensitively.
    pub title_case_headers: bool,
}

/// A header's value as text; `None` when it is absent or not visible ASCII.
pub fn header<'a>(headers: &'a hyper::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Listens on 127.0.0.1 at a free port and answers every request with `handler`.
/// `name` goes into the debug log line of a connection that ends in an error.
pub async fn serve<H, F, B>(name: &'static str, handler: H) -> std::io::Result<Loopback>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_with(name, Options::default(), handler).await
}

/// [`serve`], with [`Options`].
pub async fn serve_with<H, F, B>(
    name: &'static str,
    options: Options,
    handler: H,
) -> std::io::Result<Loopback>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(accept(name, options, listener, handler));
    Ok(Loopback { address, server })
}

async fn accept<H, F, B>(name: &'static str, options: Options, listener: TcpListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    connections.spawn(async move {
                        let connection = http1::Builder::new()
                            .keep_alive(true)
                            .title_case_headers(options.title_case_headers)
                            .serve_connection(TokioIo::new(stream), service_fn(handler));
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, server = name, "connection ended");
                        }
                    });
                }
                // Usually transient (out of file descriptors): back off instead of spinning.
                Err(error) => {
                    tracing::warn!(%error, server = name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}
