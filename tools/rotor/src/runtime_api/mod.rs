//! A minimal, embeddable host of the AWS Lambda Runtime API (version 2018-06-01).
//!
//! A Lambda function process long-polls `GET /2018-06-01/runtime/invocation/next` on the
//! host named by `AWS_LAMBDA_RUNTIME_API` and posts each result back. [`RuntimeApi`] plays
//! the Lambda service's side of that conversation on 127.0.0.1, so that the local runner
//! and the tests can start a real function binary once and invoke it several times while
//! it is warm, the way Secrets Manager drives a rotation function through its four steps.
//!
//! Only one invocation is in flight at a time. An answer posted for any other request id —
//! an unknown one, a repeated one, or a late one for an invocation that already timed out —
//! is refused with `400 InvalidRequestID` and resolves nothing; `lambda_runtime` logs such
//! a refusal and goes back to polling, so the process stays usable for the next invocation.
//! After `POST /runtime/init/error` every invocation, waiting or later, fails with
//! [`InvokeError::InitFailed`]: a function that failed to initialise is started afresh,
//! with a new [`RuntimeApi`].

mod ids;
mod invocations;
mod server;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::header::HeaderValue;
use rotor_testbed::loopback::{self, Loopback};
use serde_json::Value;
use tokio::sync::{Notify, oneshot, watch};

use ids::{epoch_ms, new_request_id};
use invocations::{Current, Lifecycle, Shared, Withdraw};

/// The running Runtime API server. Dropping it stops the server task, and with it every
/// connection and long-poll in flight.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    address: SocketAddr,
    _server: Loopback,
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// What one invocation came to.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The id the function was given in `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// The function's answer.
    pub outcome: Outcome,
    /// From queueing the invocation to the function's answer.
    pub duration: Duration,
    /// From queueing the invocation until the function fetched it from `/next`: long when
    /// the function was still initialising or busy with an earlier invocation.
    pub waited_for_poll: Duration,
}

/// The function's answer to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Posted to `/response`: the body as JSON, or `Null` if it was empty or not JSON.
    Response(Value),
    /// Posted to `/error`.
    Error {
        /// `errorType` of the body, else the `Lambda-Runtime-Function-Error-Type` header.
        error_type: String,
        /// `errorMessage` of the body, else the whole body as text.
        error_message: String,
    },
}

/// Why an invocation, or the wait for the function's first poll, came to nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The function did not answer in time.
    #[error(
        "no answer to invocation {request_id} within {timeout:?} (fetched by the function: {fetched})"
    )]
    TimedOut {
        /// The invocation that went unanswered.
        request_id: String,
        /// The time it was given.
        timeout: Duration,
        /// Whether the function had fetched it from `/next`: if not, it was stuck elsewhere.
        fetched: bool,
    },
    /// The function reported an init error.
    #[error("the function failed to initialise: {error_type}: {error_message}")]
    InitFailed {
        /// `errorType` of the init error.
        error_type: String,
        /// `errorMessage` of the init error.
        error_message: String,
    },
    /// The function did not poll `/next` within the time given to
    /// [`RuntimeApi::wait_for_first_poll`].
    #[error("the function did not poll for invocations within {timeout:?}")]
    NeverPolled {
        /// The time it was given.
        timeout: Duration,
    },
    /// The function process ended (crashed, or was killed) before answering.
    #[error("the function process exited before answering ({status})")]
    Exited {
        /// How it ended, as the OS reports it (for example `signal: 9 (SIGKILL)`).
        status: String,
    },
    /// The invocation was withdrawn without an answer; not expected while the
    /// [`RuntimeApi`] is alive, as only [`RuntimeApi::invoke`] itself withdraws one.
    #[error("invocation {request_id} was withdrawn without an answer")]
    Abandoned {
        /// The invocation that was withdrawn.
        request_id: String,
    },
}

impl RuntimeApi {
    /// Binds 127.0.0.1 on a free port and serves in a background tokio task.
    /// `function_arn` is sent as `Lambda-Runtime-Invoked-Function-Arn`, so it must be a
    /// valid header value.
    pub async fn start(function_arn: impl Into<String>) -> std::io::Result<Self> {
        let function_arn = HeaderValue::try_from(function_arn.into())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let shared = Arc::new(Shared {
            function_arn,
            state: Mutex::default(),
            queued: Notify::new(),
            lifecycle: watch::Sender::new(Lifecycle::default()),
        });
        let serving = Arc::clone(&shared);
        // Header names as AWS documents them, for clients that compare them
        // case-sensitively (shell bootstraps grepping curl's output).
        let options = loopback::Options {
            title_case_headers: true,
        };
        let server = loopback::serve_with("runtime API", options, move |request| {
            server::handle(Arc::clone(&serving), request)
        })
        .await?;
        let address = server.address();
        Ok(Self {
            shared,
            address,
            _server: server,
            one_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// host:port, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Queues one invocation and waits for the function's answer or the timeout.
    /// The deadline header is now + timeout. Calls are serialised: one invocation at a
    /// time. Dropping the future withdraws the invocation.
    pub async fn invoke(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        self.invoke_raw(Bytes::from(event.to_string()), timeout)
            .await
    }

    /// [`RuntimeApi::invoke`] with any payload, such as bytes that are not JSON
    /// or not UTF-8 (the Invoke API takes any bytes).
    pub async fn invoke_raw(
        &self,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        let _one_at_a_time = self.one_at_a_time.lock().await;
        let (done, mut answer) = oneshot::channel();
        let request_id = {
            let mut state = self.shared.state();
            // Checked under the state lock, which the init error handler also holds, so an
            // init error cannot slip in between this check and the queueing.
            if let Some(init_error) = self.shared.lifecycle.borrow().init_error.clone() {
                return Err(init_error);
            }
            state.seq += 1;
            let id = new_request_id(state.seq);
            state.current = Some(Current {
                id: id.clone(),
                event: payload,
                deadline_ms: epoch_ms(SystemTime::now() + timeout),
                queued_at: Instant::now(),
                fetched_at: None,
                done,
            });
            id
        };
        self.shared.queued.notify_waiters();
        // Withdraws the invocation if this future is dropped, so that a cancelled invoke
        // leaves no stale invocation for the function to fetch.
        let pending = Withdraw {
            shared: &self.shared,
            id: request_id.clone(),
        };
        let answered = match tokio::time::timeout(timeout, &mut answer).await {
            Ok(answered) => answered,
            Err(_elapsed) => match pending.withdraw() {
                Some(current) => {
                    let fetched = current.fetched_at.is_some();
                    return Err(InvokeError::TimedOut {
                        request_id,
                        timeout,
                        fetched,
                    });
                }
                // Answered between the timer firing and the withdrawal: the answer is
                // already in the channel.
                None => answer.await,
            },
        };
        answered.unwrap_or(Err(InvokeError::Abandoned { request_id }))
    }

    /// Time at which the function first polled /next since start (None if it never has):
    /// used to measure cold start.
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.lifecycle.borrow().first_poll
    }

    /// Waits until the function polls /next for the first time, or the timeout. A function
    /// that reports an init error instead never polls, so that ends the wait too.
    pub async fn wait_for_first_poll(&self, timeout: Duration) -> Result<Instant, InvokeError> {
        let mut lifecycle = self.shared.lifecycle.subscribe();
        let seen = |l: &Lifecycle| l.first_poll.is_some() || l.init_error.is_some();
        // Whatever ended the wait, the lifecycle now says what happened; the guard
        // `wait_for` returns is dropped at once, before borrowing again.
        let _ = tokio::time::timeout(timeout, lifecycle.wait_for(seen)).await;
        let lifecycle = self.shared.lifecycle.borrow().clone();
        match (lifecycle.first_poll, lifecycle.init_error) {
            (Some(at), _) => Ok(at),
            (None, Some(init_error)) => Err(init_error),
            (None, None) => Err(InvokeError::NeverPolled { timeout }),
        }
    }
}
