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

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// When a crash plan kills the function, relative to its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum When {
    /// The call never reaches the dependency.
    Before,
    /// The dependency has acted on the call and answered; the function dies
    /// before it reads the answer.
    After,
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            When::Before => "before",
            When::After => "after",
        })
    }
}

/// Kill the function with SIGKILL at its `at`-th call (counted from 1 across
/// every proxy that shares the plan), [`When::Before`] or [`When::After`] it.
#[derive(Debug)]
pub struct CrashPlan {
    at: u64,
    when: When,
    calls: AtomicU64,
    victim: AtomicU32,
    fired: Mutex<Option<String>>,
}

impl CrashPlan {
    /// A plan that kills at call `at`; set the victim before the rotation starts.
    pub fn new(at: u64, when: When) -> Arc<CrashPlan> {
        Arc::new(CrashPlan {
            at,
            when,
            calls: AtomicU64::new(0),
            victim: AtomicU32::new(0),
            fired: Mutex::new(None),
        })
    }

    /// The process to kill.
    pub fn set_victim(&self, pid: u32) {
        self.victim.store(pid, Ordering::SeqCst);
    }

    /// Where the plan killed the function (for example `before call 7: moto
    /// PutSecretValue`), or `None` if the rotation made fewer calls.
    pub fn fired(&self) -> Option<String> {
        self.fired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many calls the function made through the plan's proxies.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts a call; whether it is the one to crash at.
    fn count(&self) -> Option<u64> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        (n == self.at).then_some(n)
    }

    /// Kills the victim at once (SIGKILL) and records where.
    fn kill(&self, what: String) {
        let pid = self.victim.load(Ordering::SeqCst);
        if pid != 0 {
            // `kill` returns once the signal is queued; a SIGKILLed process runs no
            // more of its own code after that.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        *self.fired.lock().unwrap_or_else(PoisonError::into_inner) = Some(what);
    }
}

struct State {
    name: String,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Bumped to cut every open connection.
    cuts: watch::Sender<u64>,
    plan: Mutex<Option<Arc<CrashPlan>>>,
    /// Cut every connection when this many more chunks have come from the client.
    cut_after: Mutex<Option<u64>>,
    /// Answer this many more chunks with these bytes instead of forwarding them.
    canned: Mutex<Option<(u64, Arc<[u8]>)>>,
    chunks: AtomicU64,
    connections: AtomicU64,
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

/// Sets SO_LINGER to zero, so that dropping the socket sends a reset, as a
/// broken link or a crashed peer does.
fn reset_on_close(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// What one connection does after a chunk from the client.
enum Verdict {
    Forward,
    Close,
    Answer(Arc<[u8]>),
}

/// How a relayed connection ends.
#[derive(PartialEq)]
enum End {
    /// Both sides closed, or the proxy answered in place of the upstream.
    Graceful,
    /// Cut, down, or the function was killed: reset both sides.
    Reset,
}

/// Relays one connection, applying the mode, cuts and crash plan per chunk.
async fn relay(client: TcpStream, state: Arc<State>) {
    let mut mode = state.mode.subscribe();
    if *mode.borrow_and_update() == Mode::Down {
        reset_on_close(&client);
        return;
    }
    let Ok(server) = TcpStream::connect(state.upstream).await else {
        reset_on_close(&client);
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let end = pump(
        &state,
        &mut mode,
        (&mut from_client, &mut to_client),
        (&mut from_server, &mut to_server),
    )
    .await;
    if end == End::Reset {
        if let Ok(client) = from_client.reunite(to_client) {
            reset_on_close(&client);
        }
        if let Ok(server) = from_server.reunite(to_server) {
            reset_on_close(&server);
        }
    }
}

/// What the mode makes of one chunk.
enum Flow {
    Forward,
    Swallow,
    Reset,
}

/// Applies the current mode to a chunk about to be forwarded (waiting out a
/// delay first).
async fn obey(mode: &mut watch::Receiver<Mode>) -> Flow {
    let current = *mode.borrow_and_update();
    match current {
        Mode::Pass => Flow::Forward,
        Mode::Delay(delay) => {
            tokio::time::sleep(delay).await;
            Flow::Forward
        }
        Mode::BlackHole => Flow::Swallow,
        Mode::Down => Flow::Reset,
    }
}

type Halves<'a> = (
    &'a mut tokio::net::tcp::OwnedReadHalf,
    &'a mut tokio::net::tcp::OwnedWriteHalf,
);

async fn pump(
    state: &State,
    mode: &mut watch::Receiver<Mode>,
    (from_client, to_client): Halves<'_>,
    (from_server, to_server): Halves<'_>,
) -> End {
    let mut cuts = state.cuts.subscribe();
    cuts.mark_unchanged();
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    let (mut client_open, mut server_open) = (true, true);
    // An After crash armed by the last chunk: kill when the answer comes.
    let mut armed: Option<(Arc<CrashPlan>, String)> = None;
    while client_open || server_open {
        tokio::select! {
            _ = cuts.changed() => return End::Reset,
            read = from_client.read(&mut up), if client_open => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        client_open = false;
                        let _ = to_server.shutdown().await;
                        continue;
                    }
                    Ok(n) => n,
                };
                if let Some((plan, what)) = armed.take() {
                    // The function spoke again before any answer: this is the
                    // last moment after the previous call.
                    plan.kill(what);
                    return End::Reset;
                }
                match on_client_chunk(state, &up[..n], &mut armed) {
                    Verdict::Close => return End::Reset,
                    Verdict::Answer(response) => {
                        let _ = to_client.write_all(&response).await;
                        let _ = to_client.shutdown().await;
                        return End::Graceful;
                    }
                    Verdict::Forward => {}
                }
                match obey(mode).await {
                    Flow::Forward => {}
                    Flow::Swallow => continue,
                    Flow::Reset => return End::Reset,
                }
                if to_server.write_all(&up[..n]).await.is_err() {
                    return End::Reset;
                }
            }
            read = from_server.read(&mut down), if server_open => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        server_open = false;
                        let _ = to_client.shutdown().await;
                        continue;
                    }
                    Ok(n) => n,
                };
                if let Some((plan, what)) = armed.take() {
                    plan.kill(what);
                    return End::Reset;
                }
                match obey(mode).await {
                    Flow::Forward => {}
                    Flow::Swallow => continue,
                    Flow::Reset => return End::Reset,
                }
                if to_client.write_all(&down[..n]).await.is_err() {
                    return End::Reset;
                }
            }
        }
    }
    End::Graceful
}

/// Counts a chunk from the function and applies the crash plan and the
/// scheduled cut to it.
fn on_client_chunk(
    state: &State,
    chunk: &[u8],
    armed: &mut Option<(Arc<CrashPlan>, String)>,
) -> Verdict {
    let seen = state.chunks.fetch_add(1, Ordering::SeqCst) + 1;
    {
        let mut cut_after = state
            .cut_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cut_after.is_some_and(|at| seen >= at) {
            *cut_after = None;
            state.cuts.send_modify(|n| *n += 1);
            return Verdict::Close;
        }
    }
    {
        let mut canned = state.canned.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((left, response)) = canned.as_mut() {
            let response = response.clone();
            *left -= 1;
            if *left == 0 {
                *canned = None;
            }
            return Verdict::Answer(response);
        }
    }
    let plan = state
        .plan
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Some(plan) = plan else {
        return Verdict::Forward;
    };
    let Some(n) = plan.count() else {
        return Verdict::Forward;
    };
    let what = format!("{} call {n}: {} {}", plan.when, state.name, describe(chunk));
    match plan.when {
        When::Before => {
            plan.kill(what);
            Verdict::Close
        }
        When::After => {
            *armed = Some((plan, what));
            Verdict::Forward
        }
    }
}

/// A chunk in words: the Secrets Manager operation of an HTTP request to moto,
/// or its size (TLS records say nothing more).
fn describe(chunk: &[u8]) -> String {
    let text = String::from_utf8_lossy(&chunk[..chunk.len().min(4096)]);
    let target = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("x-amz-target")
            .then(|| value.trim().rsplit('.').next().unwrap_or("").to_owned())
    });
    match target {
        Some(operation) => operation,
        None if text.starts_with("POST ") || text.starts_with("GET ") => {
            text.lines().next().unwrap_or("").to_owned()
        }
        None => format!("{} bytes", chunk.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(text).await?;
        let mut buf = vec![0u8; text.len()];
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        Ok(buf)
    }

    #[tokio::test]
    async fn passes_black_holes_cuts_and_goes_down() {
        let proxy = FaultProxy::start("echo", echo_server().await)
            .await
            .unwrap();
        let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"ping").await.unwrap(), b"ping");

        proxy.set_mode(Mode::BlackHole);
        let error = round_trip(&mut stream, b"lost").await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);

        proxy.set_mode(Mode::Pass);
        proxy.cut();
        let mut buf = [0u8; 8];
        let read = stream.read(&mut buf).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

        let mut fresh = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"again").await.unwrap(), b"again");
        proxy.cut_after(1);
        assert!(round_trip(&mut fresh, b"cut").await.is_err());

        proxy.set_mode(Mode::Down);
        let mut refused = TcpStream::connect(proxy.address()).await.unwrap();
        assert!(round_trip(&mut refused, b"down").await.is_err());
        assert_eq!(proxy.connections(), 3);
    }

    #[tokio::test]
    async fn a_crash_plan_counts_calls_across_proxies() {
        let upstream = echo_server().await;
        let (a, b) = (
            FaultProxy::start("a", upstream).await.unwrap(),
            FaultProxy::start("b", upstream).await.unwrap(),
        );
        let plan = CrashPlan::new(3, When::After);
        a.set_plan(Some(plan.clone()));
        b.set_plan(Some(plan.clone()));
        let mut first = TcpStream::connect(a.address()).await.unwrap();
        let mut second = TcpStream::connect(b.address()).await.unwrap();
        round_trip(&mut first, b"1").await.unwrap();
        round_trip(&mut second, b"2").await.unwrap();
        assert_eq!(plan.fired(), None);
        // The third call reaches the server; its answer never comes back.
        assert!(round_trip(&mut first, b"3").await.is_err());
        assert_eq!(plan.fired().as_deref(), Some("after call 3: a 1 bytes"));
        assert_eq!(plan.calls(), 3);
    }

    #[tokio::test]
    async fn answers_in_place_of_the_upstream() {
        let proxy = FaultProxy::start("echo", echo_server().await)
            .await
            .unwrap();
        proxy.answer_next(2, b"busy");
        for _ in 0..2 {
            let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
            assert_eq!(round_trip(&mut stream, b"ping").await.unwrap(), b"busy");
        }
        let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"ping").await.unwrap(), b"ping");
    }

    #[test]
    fn names_secrets_manager_operations() {
        let request =
            b"POST / HTTP/1.1\r\nhost: x\r\nX-Amz-Target: secretsmanager.PutSecretValue\r\n\r\n{}";
        assert_eq!(describe(request), "PutSecretValue");
        assert_eq!(describe(&[0x17, 3, 3, 0, 1]), "5 bytes");
    }
}
