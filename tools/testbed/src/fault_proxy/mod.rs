//! A TCP proxy between a rotation function and one of its dependencies
//! (Secrets Manager, a database, an identity provider) that makes the network
//! and the process fail on cue: it delays, black-holes or cuts traffic, plays
//! a server that went down, and kills the function process at an exact point
//! of a rotation, before or after one of its calls reached the dependency.
//!
//! It works below TLS, so the function's certificate checks see the real
//! server. A "call" is one chunk of bytes the function sent (one read of the
//! proxy's socket): an HTTP request to moto, or one TLS flight to a database,
//! which is one protocol round trip. Several proxies can share one
//! [`CrashPlan`], which then numbers the calls of a rotation across all of its
//! dependencies in the order they happen.

mod crash;
mod relay;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crash::{CrashPlan, When};
use relay::relay;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards everything as it comes.
    Pass,
    /// Forwards everything, each chunk held back this long (a slow link).
    Delay(Duration),
    /// Takes connections and bytes and forwards nothing, either way: a peer that
    /// hangs, or a firewall that drops packets.
    BlackHole,
    /// Closes every open connection and every new one at once: the server is down.
    Down,
}

pub(super) struct State {
    pub(super) name: String,
    pub(super) upstream: SocketAddr,
    pub(super) mode: watch::Sender<Mode>,
    /// Bumped to cut every open connection.
    pub(super) cuts: watch::Sender<u64>,
    pub(super) plan: Mutex<Option<Arc<CrashPlan>>>,
    /// Cut every connection when this many more chunks have come from the client.
    pub(super) cut_after: Mutex<Option<u64>>,
    /// Answer this many more chunks with these bytes instead of forwarding them.
    pub(super) canned: Mutex<Option<(u64, Arc<[u8]>)>>,
    pub(super) chunks: AtomicU64,
    pub(super) connections: AtomicU64,
}

/// A fault-injecting TCP proxy on 127.0.0.1 (or another loopback address);
/// stops when dropped.
pub struct FaultProxy {
    address: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.cuts.send_modify(|n| *n += 1);
        self.server.abort();
    }
}

impl FaultProxy {
    /// A proxy to `upstream` on 127.0.0.1 and a free port. `name` labels the
    /// calls it counts (`moto`, `postgres`).
    pub async fn start(name: &str, upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), name, upstream).await
    }

    /// The same on another local address, such as 127.0.0.2: a name the
    /// upstream's certificate does not carry.
    pub async fn start_on(
        ip: IpAddr,
        name: &str,
        upstream: SocketAddr,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let address = listener.local_addr()?;
        let state = Arc::new(State {
            name: name.to_owned(),
            upstream,
            mode: watch::Sender::new(Mode::Pass),
            cuts: watch::Sender::new(0),
            plan: Mutex::new(None),
            cut_after: Mutex::new(None),
            canned: Mutex::new(None),
            chunks: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let shared = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(relay(client, shared.clone()));
            }
        });
        Ok(FaultProxy {
            address,
            state,
            server,
        })
    }

    /// The proxy's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// `http://` and the proxy's address, for an HTTP upstream such as moto.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Changes what the proxy does from the next chunk on. [`Mode::Down`] also
    /// closes the connections that are open.
    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.send_replace(mode);
        if mode == Mode::Down {
            self.cut();
        }
    }

    /// Resets every open connection now; new ones are taken as the mode says.
    pub fn cut(&self) {
        self.state.cuts.send_modify(|n| *n += 1);
    }

    /// Resets every open connection when `chunks` more chunks have come from
    /// the function (the last of them not forwarded): a link that breaks in
    /// the middle of a conversation.
    pub fn cut_after(&self, chunks: u64) {
        let now = self.state.chunks.load(Ordering::SeqCst);
        *self
            .state
            .cut_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(now + chunks);
    }

    /// Answers the next `count` chunks from the function with `response` and
    /// closes their connections, forwarding nothing: for an HTTP upstream, the
    /// throttling and server errors a real service sends. One chunk is one
    /// request for the small requests of the AWS SDK.
    /// `answer_next(0, ..)` stops answering.
    pub fn answer_next(&self, count: u64, response: &[u8]) {
        *self
            .state
            .canned
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            (count > 0).then(|| (count, response.into()));
    }

    /// Cancels a cut scheduled by [`FaultProxy::cut_after`].
    pub fn cancel_cut(&self) {
        *self
            .state
            .cut_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Counts this proxy's calls into `plan` (`None` detaches it).
    pub fn set_plan(&self, plan: Option<Arc<CrashPlan>>) {
        *self
            .state
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = plan;
    }

    /// Chunks received from clients so far.
    pub fn chunks(&self) -> u64 {
        self.state.chunks.load(Ordering::SeqCst)
    }

    /// Connections taken so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }
}
