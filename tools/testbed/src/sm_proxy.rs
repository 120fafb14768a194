//! An HTTP reverse proxy in front of moto that sees Secrets Manager calls as
//! calls: it counts them by operation and by secret, times RotateSecret, and
//! can answer a call as the service does when it throttles or fails, by a plan
//! the caller gives. `rotor bench` counts a function's calls through it; the
//! scheduler tests inject their faults with it. (For faults below HTTP, such
//! as a hung or cut connection, see [`crate::fault_proxy`].)

use crate::loopback::{self, Loopback};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// An answer the proxy gives instead of moto's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// HTTP 400 `ThrottlingException`, as Secrets Manager throttles.
    Throttled,
    /// HTTP 429 with no error code.
    TooManyRequests,
    /// HTTP 503 with no error code; the request never reaches moto.
    Unavailable,
    /// The request reaches moto, but its answer is lost: HTTP 500 instead.
    LostAnswer,
    /// The request is held this long, then reaches moto and is answered. The
    /// proxy forwards it even if the caller has stopped waiting, as a service
    /// finishes a request whose client went away.
    SlowRequest(Duration),
    /// The request reaches moto at once; its answer is held this long.
    SlowAnswer(Duration),
    /// HTTP 400 `EncryptionFailure`: the secret's KMS key refuses to encrypt
    /// (disabled, or the function may not use it). No retry cures it.
    EncryptionFailure,
}

/// Which attempt of which call fails: `(operation, subject, attempt)`, where the
/// subject is the request's SecretId (or ListSecrets' NextToken) and attempts
/// count from 1 per operation and subject.
pub type FaultPlan = dyn Fn(&str, &str, u32) -> Option<Fault> + Send + Sync;

/// What the proxy saw.
#[derive(Clone, Debug, Default)]
pub struct ProxyLog {
    /// Requests by operation.
    pub calls: BTreeMap<String, u32>,
    /// Requests by "Operation subject".
    pub attempts: HashMap<String, u32>,
    /// Faults answered, by kind.
    pub injected: BTreeMap<Fault, u32>,
    /// When each RotateSecret request arrived.
    pub rotate_times: Vec<Instant>,
    /// Each RotateSecret request's SecretId and RotationLambdaARN (`None` when
    /// the request names no function), in order of arrival.
    pub rotate_requests: Vec<(String, Option<String>)>,
    /// The first RotateSecret request and the last RotateSecret answer.
    pub rotate_window: Option<(Instant, Instant)>,
    /// Requests being handled now, and the most at once.
    pub in_flight: u32,
    /// The most requests handled at once.
    pub max_in_flight: u32,
    /// Requests the proxy could not forward.
    pub failures: u32,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    plan: Option<Box<FaultPlan>>,
    log: Mutex<ProxyLog>,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, ProxyLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The proxy, on 127.0.0.1 at a free port; stops when dropped.
pub struct SmProxy {
    endpoint: String,
    shared: Arc<Shared>,
    _server: Loopback,
}

impl SmProxy {
    /// Forwards every request to `upstream` (moto's endpoint) and counts it.
    pub async fn start(upstream: &str) -> std::io::Result<SmProxy> {
        Self::serve(upstream, None).await
    }

    /// The same, answering the calls `plan` picks with its faults.
    pub async fn with_faults(
        upstream: &str,
        plan: impl Fn(&str, &str, u32) -> Option<Fault> + Send + Sync + 'static,
    ) -> std::io::Result<SmProxy> {
        Self::serve(upstream, Some(Box::new(plan))).await
    }

    async fn serve(upstream: &str, plan: Option<Box<FaultPlan>>) -> std::io::Result<SmProxy> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            plan,
            log: Mutex::default(),
        });
        let serving = shared.clone();
        let server = loopback::serve("Secrets Manager proxy", move |request| {
            handle(request, serving.clone())
        })
        .await?;
        Ok(SmProxy {
            endpoint: format!("http://{}", server.address()),
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A copy of what the proxy saw.
    pub fn log(&self) -> ProxyLog {
        self.shared.log().clone()
    }

    /// Forgets the calls and RotateSecret times seen so far; failures to
    /// forward are kept, so a check at the end sees every one.
    pub fn reset(&self) {
        let mut log = self.shared.log();
        let failures = log.failures;
        *log = ProxyLog {
            failures,
            ..ProxyLog::default()
        };
    }

    /// The requests by operation since the last reset or take.
    pub fn take_calls(&self) -> BTreeMap<String, u32> {
        std::mem::take(&mut self.shared.log().calls)
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ProxyBody>, Infallible> {
    let received = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let operation = loopback::header(&parts.headers, "x-amz-target")
        .map(|target| target.rsplit('.').next().unwrap_or(target).to_owned())
        .unwrap_or_else(|| format!("(no X-Amz-Target: {} {})", parts.method, parts.uri.path()));
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let subject = input["SecretId"]
        .as_str()
        .or(input["NextToken"].as_str())
        .unwrap_or("")
        .to_owned();
    let rotate_secret = operation == "RotateSecret";
    let fault = {
        let mut log = shared.log();
        log.in_flight += 1;
        log.max_in_flight = log.max_in_flight.max(log.in_flight);
        *log.calls.entry(operation.clone()).or_default() += 1;
        let attempt = log
            .attempts
            .entry(format!("{operation} {subject}"))
            .or_default();
        *attempt += 1;
        let attempt = *attempt;
        if rotate_secret {
            log.rotate_times.push(received);
            let function = input["RotationLambdaARN"].as_str().map(str::to_owned);
            log.rotate_requests.push((subject.clone(), function));
        }
        let fault = shared
            .plan
            .as_ref()
            .and_then(|plan| plan(&operation, &subject, attempt));
        if let Some(fault) = fault {
            *log.injected.entry(fault).or_default() += 1;
        }
        fault
    };
    // The rest runs on its own task: a request the proxy has accepted reaches
    // moto and is accounted for even if the caller stops waiting for it.
    let task = tokio::spawn(async move {
        let response = respond(&shared, fault, parts, body).await;
        let mut log = shared.log();
        log.in_flight -= 1;
        if rotate_secret {
            let answered = Instant::now();
            log.rotate_window = Some(match log.rotate_window {
                Some((first, last)) => (first.min(received), last.max(answered)),
                None => (received, answered),
            });
        }
        response
    });
    Ok(task.await.unwrap_or_else(|e| {
        answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("rotor proxy: the request's task failed: {e}"),
        )
    }))
}

/// The answer to one request: a fault's, or moto's (perhaps late).
async fn respond(
    shared: &Shared,
    fault: Option<Fault>,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<ProxyBody> {
    match fault {
        Some(Fault::Throttled) => answer(
            StatusCode::BAD_REQUEST,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        Some(Fault::TooManyRequests) => answer(
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"message":"Too Many Requests"}"#,
        ),
        Some(Fault::EncryptionFailure) => answer(
            StatusCode::BAD_REQUEST,
            r#"{"__type":"EncryptionFailure","message":"Secrets Manager can't encrypt the protected secret text using the provided KMS key. Check that the KMS key is available, enabled, and not in an invalid state."}"#,
        ),
        Some(Fault::Unavailable) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"message":"Service Unavailable"}"#,
        ),
        forward => {
            if let Some(Fault::SlowRequest(hold)) = forward {
                tokio::time::sleep(hold).await;
            }
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let forwarded = match format!("{}{path}", shared.upstream).parse::<Uri>() {
                Ok(uri) => {
                    parts.uri = uri;
                    match shared
                        .client
                        .request(Request::from_parts(parts, Full::new(body)))
                        .await
                    {
                        // Read the whole answer now, so that moto has finished
                        // with the request before a held answer is released.
                        Ok(response) => {
                            let (head, body) = response.into_parts();
                            body.collect()
                                .await
                                .map(|b| Response::from_parts(head, Full::new(b.to_bytes())))
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            if let Some(Fault::SlowAnswer(hold)) = forward {
                tokio::time::sleep(hold).await;
            }
            match (forward, forwarded) {
                (Some(Fault::LostAnswer), _) => answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"__type":"InternalServiceError","message":"An error occurred on the server side."}"#,
                ),
                (_, Ok(response)) => response.map(|b| b.map_err(|never| match never {}).boxed()),
                (_, Err(e)) => {
                    shared.log().failures += 1;
                    answer(StatusCode::BAD_GATEWAY, &format!("rotor proxy: {e}"))
                }
            }
        }
    }
}

/// An answer in Secrets Manager's JSON protocol.
fn answer(status: StatusCode, body: &str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_owned()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}
