//! A failed AWS SDK call, read once for every function that calls an AWS
//! API other than Secrets Manager: its cause, from the service's error code
//! (each function's own table) or the HTTP status, and a detail for the
//! message. The service's own message is echoed only when the caller says
//! so: never for a call that carries a secret, whose message could quote it.

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::Cause;

/// The cause and detail of a failed call: `classify` maps the service's
/// error code (if any) and the HTTP status to a cause; `echo` says whether
/// the service's message may be shown.
pub fn failure_detail<E>(
    error: &SdkError<E, HttpResponse>,
    echo: bool,
    classify: impl Fn(Option<&str>, u16) -> Cause,
) -> (Cause, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            (Cause::Unreachable, DisplayErrorContext(error).to_string())
        }
        SdkError::ServiceError(service_error) => {
            let err = service_error.err();
            let status = service_error.raw().status().as_u16();
            let code = err.code();
            let mut detail = format!("{} (HTTP {status})", code.unwrap_or("an unnamed error"));
            if echo && let Some(message) = err.message() {
                detail.push_str(": ");
                detail.push_str(message);
            }
            (classify(code, status), detail)
        }
        SdkError::ResponseError(_) => (
            Cause::Protocol,
            "an answer the SDK could not read".to_owned(),
        ),
        _ => (
            Cause::Rejected,
            "a request the SDK could not build".to_owned(),
        ),
    }
}

/// The cause of a failure whose error code a function's table does not
/// know, from its HTTP status alone.
pub fn status_cause(status: u16) -> Cause {
    match status {
        401 | 403 => Cause::Permission,
        404 => Cause::NotFound,
        429 | 500..=599 => Cause::Unavailable,
        _ => Cause::Rejected,
    }
}
