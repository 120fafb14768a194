//! The HTTP side: routes the function's calls to the shared state, and
//! shapes the answers as the Runtime API does.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rotor_testbed::loopback;
use serde_json::{Value, json};

use super::Outcome;
use super::invocations::Shared;

const PREFIX: &str = "/2018-06-01/runtime/";
/// Lambda's limit for a synchronous payload; it bounds what a misbehaving function can
/// make the host buffer.
const MAX_BODY: usize = 6 * 1024 * 1024;

pub(super) type HttpResponse = Response<Full<Bytes>>;

pub(super) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route: Vec<&str> = path
        .strip_prefix(PREFIX)
        .map(|r| r.split('/').collect())
        .unwrap_or_default();
    let header_type = loopback::header(request.headers(), "Lambda-Runtime-Function-Error-Type")
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

pub(super) fn accepted() -> HttpResponse {
    reply(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

pub(super) fn json_error(
    status: StatusCode,
    error_type: &str,
    error_message: String,
) -> HttpResponse {
    reply(
        status,
        &json!({ "errorType": error_type, "errorMessage": error_message }),
    )
}
