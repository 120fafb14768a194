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

use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rotor_testbed::loopback::{self, Loopback};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot, watch};

const PREFIX: &str = "/2018-06-01/runtime/";
/// Lambda's limit for a synchronous payload; it bounds what a misbehaving function can
/// make the host buffer.
const MAX_BODY: usize = 6 * 1024 * 1024;

type HttpResponse = Response<Full<Bytes>>;

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

struct Shared {
    function_arn: HeaderValue,
    state: Mutex<State>,
    /// Wakes long-polling `/next` requests when an invocation is queued.
    queued: Notify,
    /// Milestones that [`RuntimeApi::wait_for_first_poll`] waits for.
    lifecycle: watch::Sender<Lifecycle>,
}

#[derive(Default)]
struct State {
    seq: u64,
    current: Option<Current>,
}

#[derive(Clone, Default)]
struct Lifecycle {
    first_poll: Option<Instant>,
    /// Always an [`InvokeError::InitFailed`].
    init_error: Option<InvokeError>,
}

/// The invocation in flight, from queueing until it is answered or withdrawn.
struct Current {
    id: String,
    event: Bytes,
    deadline_ms: u64,
    queued_at: Instant,
    fetched_at: Option<Instant>,
    done: oneshot::Sender<Result<Invocation, InvokeError>>,
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
            handle(Arc::clone(&serving), request)
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

struct Withdraw<'a> {
    shared: &'a Shared,
    id: String,
}

impl Withdraw<'_> {
    fn withdraw(&self) -> Option<Current> {
        self.shared.state().current.take_if(|c| c.id == self.id)
    }
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.withdraw();
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // No critical section can panic half-way, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET /invocation/next`: long-polls until an invocation is queued.
    async fn next(&self) -> HttpResponse {
        let now = Instant::now();
        self.lifecycle.send_if_modified(|l| {
            let first = l.first_poll.is_none();
            l.first_poll.get_or_insert(now);
            first
        });
        loop {
            let mut queued = std::pin::pin!(self.queued.notified());
            // Registered before looking, so an invocation queued in between still wakes us.
            queued.as_mut().enable();
            if let Some(response) = self.deliver() {
                return response;
            }
            queued.await;
        }
    }

    fn deliver(&self) -> Option<HttpResponse> {
        let mut state = self.state();
        let current = state.current.as_mut().filter(|c| c.fetched_at.is_none())?;
        current.fetched_at = Some(Instant::now());
        let response = Response::builder()
            .header(CONTENT_TYPE, "application/json")
            .header("Lambda-Runtime-Aws-Request-Id", &current.id)
            .header("Lambda-Runtime-Deadline-Ms", current.deadline_ms)
            .header(
                "Lambda-Runtime-Invoked-Function-Arn",
                self.function_arn.clone(),
            )
            .header("Lambda-Runtime-Trace-Id", trace_id())
            .body(Full::new(current.event.clone()));
        // Everything in those headers was validated or generated here, so this cannot fail
        // in practice; if it did, the invocation would simply time out.
        Some(response.unwrap_or_else(|e| {
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        }))
    }

    /// `POST /invocation/{id}/response` and `/error`.
    fn answer(&self, id: &str, outcome: Outcome) -> HttpResponse {
        let Some(current) = self
            .state()
            .current
            .take_if(|c| c.id == id && c.fetched_at.is_some())
        else {
            let message = format!("{id} is not the invocation in flight");
            return json_error(StatusCode::BAD_REQUEST, "InvalidRequestID", message);
        };
        let invocation = Invocation {
            request_id: current.id,
            outcome,
            duration: current.queued_at.elapsed(),
            waited_for_poll: current.fetched_at.map_or(Duration::ZERO, |at| {
                at.saturating_duration_since(current.queued_at)
            }),
        };
        // The invoker may have given up at this very moment; then nobody is listening.
        let _ = current.done.send(Ok(invocation));
        accepted()
    }

    /// `POST /init/error`.
    fn init_failed(&self, error_type: String, error_message: String) -> HttpResponse {
        let error = InvokeError::InitFailed {
            error_type,
            error_message,
        };
        let mut state = self.state();
        self.lifecycle
            .send_modify(|l| l.init_error = Some(error.clone()));
        if let Some(current) = state.current.take() {
            let _ = current.done.send(Err(error));
        }
        accepted()
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route: Vec<&str> = path
        .strip_prefix(PREFIX)
        .map(|r| r.split('/').collect())
        .unwrap_or_default();
    let header_type = request
        .headers()
        .get("Lambda-Runtime-Function-Error-Type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    tracing::debug!(%method, %path, "runtime API request");
    let response = match (&method, route.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => shared.next().await,
        (&Method::POST, ["invocation", id, kind @ ("response" | "error")]) => {
            match read_body(request).await {
                Ok(body) if *kind == "response" => shared.answer(
                    id,
                    Outcome::Response(serde_json::from_slice(&body).unwrap_or(Value::Null)),
                ),
                Ok(body) => {
                    let (error_type, error_message) = parse_error(&body, header_type);
                    shared.answer(
                        id,
                        Outcome::Error {
                            error_type,
                            error_message,
                        },
                    )
                }
                Err(refusal) => refusal,
            }
        }
        (&Method::POST, ["init", "error"]) => match read_body(request).await {
            Ok(body) => {
                let (error_type, error_message) = parse_error(&body, header_type);
                tracing::debug!(%error_type, %error_message, "function reported an init error");
                shared.init_failed(error_type, error_message)
            }
            Err(refusal) => refusal,
        },
        _ => json_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no such endpoint: {method} {path}"),
        ),
    };
    Ok(response)
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, HttpResponse> {
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            e.to_string(),
        )),
        Err(e) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            e.to_string(),
        )),
    }
}

/// Reads `{"errorType": .., "errorMessage": ..}`, tolerating bodies that are not that shape.
fn parse_error(body: &[u8], header_type: Option<String>) -> (String, String) {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |key: &str| parsed.get(key).and_then(Value::as_str).map(str::to_owned);
    let error_type = field("errorType")
        .or(header_type)
        .unwrap_or_else(|| "Unhandled".to_owned());
    let error_message =
        field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, error_message)
}

fn reply(status: StatusCode, body: &Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn accepted() -> HttpResponse {
    reply(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

fn json_error(status: StatusCode, error_type: &str, error_message: String) -> HttpResponse {
    reply(
        status,
        &json!({ "errorType": error_type, "errorMessage": error_message }),
    )
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Random-ish without another crate: every `RandomState` gets fresh keys.
fn random(salt: u64) -> u64 {
    RandomState::new().hash_one(salt)
}

/// UUID-shaped like Lambda's own ids; the counter in the first group keeps them unique
/// within one host, the random rest across hosts.
fn new_request_id(seq: u64) -> String {
    let (a, b) = (random(seq), random(!seq));
    let variant = 0x8000 | (a & 0x3fff);
    format!(
        "{:08x}-{:04x}-4{:03x}-{variant:04x}-{:012x}",
        seq & 0xffff_ffff,
        a >> 48,
        (a >> 36) & 0xfff,
        b >> 16
    )
}

/// An X-Ray trace header in the documented shape, unsampled.
fn trace_id() -> String {
    let seconds = epoch_ms(SystemTime::now()) / 1000;
    let (a, b) = (random(seconds), random(!seconds));
    format!(
        "Root=1-{seconds:08x}-{:08x}{:016x};Parent={b:016x};Sampled=0",
        a >> 32,
        a ^ b
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};

    use lambda_runtime::{Diagnostic, LambdaEvent};

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-test";
    /// Set on the re-executed test binary to make [`function_process`] act as the function.
    const CHILD_VAR: &str = "ROTOR_RUNTIME_API_TEST_FUNCTION";
    const LONG: Duration = Duration::from_secs(30);

    /// The function under test, a real `lambda_runtime` client. It runs only in a child
    /// process that [`FunctionProcess::start`] makes of this test binary, handing it the
    /// Runtime API through its environment as Lambda does (no env mutation in the tests'
    /// own process); run as a plain test, it returns at once.
    #[test]
    #[ignore = "the function process of the other tests; does nothing on its own"]
    fn function_process() {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        async fn handler(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
            let call = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
            let payload = event.payload;
            if let Some(ms) = payload["sleep_ms"].as_u64() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if let Some(message) = payload["fail"].as_str() {
                return Err(Diagnostic {
                    error_type: "Rotor.TestFailure".into(),
                    error_message: message.into(),
                });
            }
            let context = event.context;
            Ok(json!({
                "echo": payload["echo"], "call": call, "pid": std::process::id(), "request_id": context.request_id,
                "deadline_ms": context.deadline, "arn": context.invoked_function_arn,
            }))
        }
        if std::env::var_os(CHILD_VAR).is_none() {
            return;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        // Ends with an error once the host goes away; the parent kills this process anyway.
        let _ = runtime.block_on(lambda_runtime::run(lambda_runtime::service_fn(handler)));
    }

    /// The function process, killed on drop.
    struct FunctionProcess(Child);

    impl FunctionProcess {
        fn start(api: &RuntimeApi) -> Self {
            let module = module_path!()
                .split_once("::")
                .map_or(module_path!(), |(_crate, rest)| rest);
            let child = Command::new(std::env::current_exe().expect("test binary path"))
                .args([
                    &format!("{module}::function_process"),
                    "--exact",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env(CHILD_VAR, "1")
                .env("AWS_LAMBDA_RUNTIME_API", api.address().to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", "rotor-test")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", "2024/01/01/[$LATEST]test")
                .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/rotor-test")
                .env_remove("AWS_LAMBDA_MAX_CONCURRENCY")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn the function process");
            Self(child)
        }
    }

    impl Drop for FunctionProcess {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// One HTTP/1.1 exchange on a fresh connection, as a bare-bones runtime would make it.
    /// Returns the status, the head and the body.
    async fn raw(api: &RuntimeApi, method: &str, path: &str, body: &str) -> (u16, String, String) {
        let address = api.address();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let exchange = move || {
            let mut stream = std::net::TcpStream::connect(address).expect("connect");
            stream.write_all(request.as_bytes()).expect("send request");
            let mut text = String::new();
            stream.read_to_string(&mut text).expect("read response");
            let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("a status code");
            (status, head.to_owned(), body.to_owned())
        };
        tokio::task::spawn_blocking(exchange)
            .await
            .expect("raw exchange")
    }

    /// The value of a header, matching the name exactly as AWS documents it.
    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    }

    fn response(invocation: &Invocation) -> &Value {
        match &invocation.outcome {
            Outcome::Response(value) => value,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn warm_function_answers_several_invocations_in_a_row() {
        let api = RuntimeApi::start(ARN).await.expect("start");
        assert_eq!(api.first_poll(), None);
        let started = Instant::now();
        let _function = FunctionProcess::start(&api);
        let first_poll = api
            .wait_for_first_poll(LONG)
            .await
            .expect("the function polls");
        assert!(first_poll > started);
        assert_eq!(api.first_poll(), Some(first_poll));

        let mut pids = Vec::new();
        let mut ids = Vec::new();
        for n in 1..=3u64 {
            let before = epoch_ms(SystemTime::now() + LONG);
            let invocation = api
                .invoke(&json!({ "echo": format!("event {n}") }), LONG)
                .await
                .expect("invoke");
            let body = response(&invocation);
            assert_eq!(body["echo"], format!("event {n}"));
            assert_eq!(body["call"], n, "the same warm process counts its calls");
            assert_eq!(body["request_id"], invocation.request_id.as_str());
            assert_eq!(body["arn"], ARN);
            let deadline = body["deadline_ms"].as_u64().expect("deadline");
            assert!(
                deadline.abs_diff(before) < 1000,
                "deadline {deadline} is not now + timeout ({before})"
            );
            assert!(invocation.waited_for_poll <= invocation.duration);
            pids.push(body["pid"].clone());
            ids.push(invocation.request_id);
        }
        assert!(pids.iter().all(|pid| *pid == pids[0]));
        assert!(
            ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
            "{ids:?}"
        );
        // The first poll is not reset by later ones.
        assert_eq!(api.first_poll(), Some(first_poll));
    }

    #[tokio::test]
    async fn handler_error_comes_back_as_outcome_error() {
        let api = RuntimeApi::start(ARN).await.expect("start");
        let _function = FunctionProcess::start(&api);
        let failed = api
            .invoke(&json!({ "fail": "boom" }), LONG)
            .await
            .expect("invoke");
        let expected = Outcome::Error {
            error_type: "Rotor.TestFailure".into(),
            error_message: "boom".into(),
        };
        assert_eq!(failed.outcome, expected);
        let after = api
            .invoke(&json!({ "echo": 1 }), LONG)
            .await
            .expect("invoke");
        assert_eq!(response(&after)["call"], 2, "still the same process");
    }

    #[tokio::test]
    async fn timeout_then_late_answer_is_ignored() {
        let api = RuntimeApi::start(ARN).await.expect("start");
        let _function = FunctionProcess::start(&api);
        api.wait_for_first_poll(LONG)
            .await
            .expect("the function polls");
        let slow = api
            .invoke(
                &json!({ "echo": "slow", "sleep_ms": 2000 }),
                Duration::from_millis(500),
            )
            .await;
        let Err(InvokeError::TimedOut {
            request_id,
            timeout,
            fetched: true,
        }) = slow
        else {
            panic!("expected a timeout after the function fetched the event, got {slow:?}");
        };
        assert_eq!(timeout, Duration::from_millis(500));
        // The function answers the slow one ~1.5 s from now, while this one is waiting: that
        // late answer must not resolve it.
        let next = api
            .invoke(&json!({ "echo": "next" }), LONG)
            .await
            .expect("invoke");
        assert_ne!(next.request_id, request_id);
        assert_eq!(response(&next)["echo"], "next");
        assert_eq!(response(&next)["call"], 2);
        assert!(
            next.waited_for_poll >= Duration::from_millis(1000),
            "{next:?}"
        );
    }

    #[tokio::test]
    async fn protocol_headers_unknown_ids_and_paths() {
        let api = RuntimeApi::start(ARN).await.expect("start");
        let event = json!({ "Step": "createSecret", "SecretId": "s" });
        let function = async {
            let (status, head, body) =
                raw(&api, "GET", "/2018-06-01/runtime/invocation/next", "").await;
            assert_eq!(status, 200);
            assert_eq!(
                serde_json::from_str::<Value>(&body).expect("event JSON"),
                event
            );
            assert_eq!(header(&head, "Content-Type"), Some("application/json"));
            assert_eq!(
                header(&head, "Lambda-Runtime-Invoked-Function-Arn"),
                Some(ARN)
            );
            assert!(
                header(&head, "Lambda-Runtime-Trace-Id").is_some_and(|t| t.starts_with("Root=1-"))
            );
            let deadline: u64 = header(&head, "Lambda-Runtime-Deadline-Ms")
                .and_then(|d| d.parse().ok())
                .expect("deadline");
            assert!(deadline.abs_diff(epoch_ms(SystemTime::now() + LONG)) < 1000);
            let id = header(&head, "Lambda-Runtime-Aws-Request-Id")
                .expect("request id")
                .to_owned();

            let (status, _, body) = raw(
                &api,
                "POST",
                "/2018-06-01/runtime/invocation/bogus/response",
                "{}",
            )
            .await;
            assert_eq!(status, 400);
            assert_eq!(
                serde_json::from_str::<Value>(&body).expect("JSON")["errorType"],
                "InvalidRequestID"
            );
            let (status, _, body) = raw(&api, "GET", "/2018-06-01/runtime/nowhere", "").await;
            assert_eq!(status, 404);
            assert_eq!(
                serde_json::from_str::<Value>(&body).expect("JSON")["errorType"],
                "NotFound"
            );

            let path = format!("/2018-06-01/runtime/invocation/{id}/response");
            assert_eq!(raw(&api, "POST", &path, r#"{"ok":true}"#).await.0, 202);
            assert_eq!(
                raw(&api, "POST", &path, r#"{"ok":false}"#).await.0,
                400,
                "answered already"
            );
        };
        let (invocation, ()) = tokio::join!(api.invoke(&event, LONG), function);
        assert_eq!(
            invocation.expect("invoke").outcome,
            Outcome::Response(json!({ "ok": true }))
        );

        // An error posted with the type only in the header, and a response that is not JSON.
        let function = async {
            let (_, head, _) = raw(&api, "GET", "/2018-06-01/runtime/invocation/next", "").await;
            let id = header(&head, "Lambda-Runtime-Aws-Request-Id").expect("request id");
            raw(
                &api,
                "POST",
                &format!("/2018-06-01/runtime/invocation/{id}/error"),
                "plain text",
            )
            .await
            .0
        };
        let (invocation, status) = tokio::join!(api.invoke(&Value::Null, LONG), function);
        assert_eq!(status, 202);
        let expected = Outcome::Error {
            error_type: "Unhandled".into(),
            error_message: "plain text".into(),
        };
        assert_eq!(invocation.expect("invoke").outcome, expected);
        let function = async {
            let (_, head, _) = raw(&api, "GET", "/2018-06-01/runtime/invocation/next", "").await;
            let id = header(&head, "Lambda-Runtime-Aws-Request-Id").expect("request id");
            raw(
                &api,
                "POST",
                &format!("/2018-06-01/runtime/invocation/{id}/response"),
                "not json",
            )
            .await
            .0
        };
        let (invocation, status) = tokio::join!(api.invoke(&Value::Null, LONG), function);
        assert_eq!(status, 202);
        assert_eq!(
            invocation.expect("invoke").outcome,
            Outcome::Response(Value::Null)
        );
    }

    #[tokio::test]
    async fn init_error_fails_waiting_and_later_invocations() {
        let api = RuntimeApi::start(ARN).await.expect("start");
        let report = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let body = r#"{"errorType":"Runtime.ConfigError","errorMessage":"no SECRET_ARN"}"#;
            raw(&api, "POST", "/2018-06-01/runtime/init/error", body)
                .await
                .0
        };
        let (waiting, status) = tokio::join!(api.invoke(&Value::Null, LONG), report);
        assert_eq!(status, 202);
        fn is_init_failure<T>(result: &Result<T, InvokeError>) -> bool {
            matches!(result, Err(InvokeError::InitFailed { error_type, error_message })
                if error_type == "Runtime.ConfigError" && error_message == "no SECRET_ARN")
        }
        assert!(is_init_failure(&waiting), "{waiting:?}");
        assert!(is_init_failure(&api.invoke(&json!({}), LONG).await));
        assert!(is_init_failure(&api.wait_for_first_poll(LONG).await));
    }

    #[tokio::test]
    async fn nobody_polling_times_out() {
        let api = RuntimeApi::start(ARN).await.expect("start");
        let short = Duration::from_millis(50);
        let never = api.wait_for_first_poll(short).await;
        assert!(
            matches!(never, Err(InvokeError::NeverPolled { timeout }) if timeout == short),
            "{never:?}"
        );
        let unfetched = api.invoke(&json!({}), short).await;
        assert!(
            matches!(unfetched, Err(InvokeError::TimedOut { fetched: false, .. })),
            "{unfetched:?}"
        );
        assert_eq!(api.first_poll(), None);
    }
}
