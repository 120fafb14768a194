//! One relayed connection: each chunk from the function is counted, checked
//! against the scheduled cut, the canned answers and the crash plan, then
//! forwarded as the mode says.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::crash::{CrashPlan, When, describe};
use super::{Mode, State};

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
pub(super) async fn relay(client: TcpStream, state: Arc<State>) {
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

/// Passes a chunk on as the mode says (a black hole swallows it); `Err`
/// when the connection must end.
async fn forward(
    mode: &mut watch::Receiver<Mode>,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    chunk: &[u8],
) -> Result<(), End> {
    match obey(mode).await {
        Flow::Forward => to.write_all(chunk).await.map_err(|_| End::Reset),
        Flow::Swallow => Ok(()),
        Flow::Reset => Err(End::Reset),
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
                if let Err(end) = forward(mode, to_server, &up[..n]).await {
                    return end;
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
                if let Err(end) = forward(mode, to_client, &down[..n]).await {
                    return end;
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
