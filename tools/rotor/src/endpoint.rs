//! The endpoints the CLI talks to, and the one account of a call that failed.
//!
//! Every command reaches Secrets Manager and Lambda through the SDK, and an
//! endpoint can fail in a handful of ways an operator can act on: nothing
//! listens there, something else does, it accepts and never answers, the URL
//! lacks a scheme, there are no credentials, or the service itself refused.
//! [`explain`] sorts an SDK error into those (by the SDK's error kinds, the
//! service's error code and `io::ErrorKind`, never by message text), so that
//! each command says the same thing in one sentence with its fix, never
//! the SDK's dump of the request.

use std::time::Duration;

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

/// How long connecting to an endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// How long one attempt of a call may take before the SDK tries again: the
/// calls the CLI makes answer in milliseconds, even from an emulator listing
/// a thousand secrets.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call may take in all, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The region of the clients that talk to an emulator (`--endpoint`): an
/// emulator keeps its secrets per region, as AWS does.
pub const EMULATOR_REGION: &str = "us-east-1";

/// The connect, attempt and operation timeouts of every client but Lambda's
/// Invoke (whose calls last as long as a step).
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// An `--endpoint` (or `--lambda-endpoint`, or
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER`) that is no endpoint URL.
#[derive(Debug, thiserror::Error)]
pub enum BadEndpoint {
    /// `127.0.0.1:5000`: the SDK needs the scheme.
    #[error("{given} has no scheme: give http://{given} (or https://{given})")]
    NoScheme {
        /// What was given.
        given: String,
    },
    /// Not a URL an SDK can send to.
    #[error("{given} is not an http:// or https:// URL of a host")]
    NotHttp {
        /// What was given.
        given: String,
    },
}

/// clap's value parser for an endpoint URL: `http` or `https`, with a host.
pub fn parse_endpoint(text: &str) -> Result<String, BadEndpoint> {
    let given = text.trim();
    match url::Url::parse(given) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(given.to_owned())
        }
        // `localhost:4566` parses as scheme `localhost`; `127.0.0.1:5000`
        // not at all: either way, a host and port without the scheme.
        _ if !given.contains("://") && url::Url::parse(&format!("http://{given}")).is_ok() => {
            Err(BadEndpoint::NoScheme {
                given: given.to_owned(),
            })
        }
        _ => Err(BadEndpoint::NotHttp {
            given: given.to_owned(),
        }),
    }
}

/// The Secrets Manager endpoint: `--endpoint`, else
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, checked the same way; `None` for AWS's.
pub fn secrets_manager(given: Option<&str>) -> Result<Option<String>, BadEndpoint> {
    match given {
        Some(url) => parse_endpoint(url).map(Some),
        None => match std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER") {
            Ok(url) if !url.trim().is_empty() => parse_endpoint(&url).map(Some),
            _ => Ok(None),
        },
    }
}

/// Which service a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Secrets Manager.
    SecretsManager,
    /// Lambda.
    Lambda,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::SecretsManager => "Secrets Manager",
            Service::Lambda => "Lambda",
        }
    }

    /// The option that names the endpoint.
    fn option(self) -> &'static str {
        match self {
            Service::SecretsManager => "--endpoint",
            Service::Lambda => "--lambda-endpoint",
        }
    }
}

/// One call, for the account of its failure.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The service.
    pub service: Service,
    /// Its endpoint, when not AWS's.
    pub endpoint: Option<&'a str>,
    /// The API operation (`DescribeSecret`).
    pub operation: &'static str,
    /// What it was about (a secret's name or ARN, a function), when anything.
    pub subject: Option<&'a str>,
}

impl Call<'_> {
    /// `Secrets Manager at http://…`, or `AWS's Secrets Manager`.
    fn place(&self) -> String {
        match self.endpoint {
            Some(url) => format!("{} at {url}", self.service.name()),
            None => format!("AWS's {}", self.service.name()),
        }
    }

    /// `DescribeSecret my-secret`.
    fn what(&self) -> String {
        match self.subject {
            Some(subject) => format!("{} {subject}", self.operation),
            None => self.operation.to_owned(),
        }
    }

    /// What to check when the endpoint did not do its part.
    fn check(&self) -> String {
        match self.endpoint {
            Some(_) => format!(
                "is it running, and is {} its address?",
                self.service.option()
            ),
            None => "check the network (VPC endpoint or NAT) and the region".to_owned(),
        }
    }
}

/// Why a call failed, in the operator's terms.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Connected (or tried to) and got no answer in time.
    #[error("{place} did not answer {what} within {seconds} s: {check}")]
    NoAnswer {
        /// Where.
        place: String,
        /// The call.
        what: String,
        /// The operation timeout.
        seconds: u64,
        /// What to check.
        check: String,
    },
    /// Nothing listens there.
    #[error("nothing accepts connections at {endpoint} (connection refused): {check}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// What to check.
        check: String,
    },
    /// The connection failed otherwise (name resolution, TLS, reset).
    #[error("could not reach {place} for {what}: {cause}; {check}")]
    Unreachable {
        /// Where.
        place: String,
        /// The call.
        what: String,
        /// The transport's account, without the request.
        cause: String,
        /// What to check.
        check: String,
    },
    /// Something answered, but not as the service does.
    #[error(
        "{endpoint} answered {what} with HTTP {status} and no {service} error: it is not {service} (or an emulator of it); check {option}"
    )]
    NotTheService {
        /// The endpoint.
        endpoint: String,
        /// The call.
        what: String,
        /// The HTTP status it answered.
        status: u16,
        /// The service that was expected.
        service: &'static str,
        /// The option that names the endpoint.
        option: &'static str,
    },
    /// No credentials to sign the call with.
    #[error(
        "no AWS credentials for {what}: {cause}; configure the default chain (AWS_PROFILE, environment, SSO), or give --endpoint for an emulator"
    )]
    NoCredentials {
        /// The call.
        what: String,
        /// The credential provider's account.
        cause: String,
    },
    /// The service refused the call: its error code and message.
    #[error("{what}: {code}: {message}")]
    Refusal {
        /// The call.
        what: String,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
}

impl EndpointError {
    /// The service's error code, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            EndpointError::Refusal { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Sorts a failed call into what the operator can do about it.
pub fn explain<E>(call: &Call<'_>, error: &SdkError<E, HttpResponse>) -> EndpointError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let endpoint = call.endpoint.unwrap_or("AWS's endpoint").to_owned();
    let no_answer = || EndpointError::NoAnswer {
        place: call.place(),
        what: call.what(),
        seconds: OPERATION_TIMEOUT.as_secs(),
        check: call.check(),
    };
    match error {
        SdkError::TimeoutError(_) => no_answer(),
        SdkError::DispatchFailure(failure) => {
            let chain = causes(error);
            if caused_by::<aws_credential_types::provider::error::CredentialsError>(error) {
                return EndpointError::NoCredentials {
                    what: call.what(),
                    cause: chain,
                };
            }
            if failure.is_timeout() {
                return no_answer();
            }
            if io_kind(error) == Some(std::io::ErrorKind::ConnectionRefused) {
                return EndpointError::Refused {
                    endpoint,
                    check: call.check(),
                };
            }
            EndpointError::Unreachable {
                place: call.place(),
                what: call.what(),
                cause: chain,
                check: call.check(),
            }
        }
        SdkError::ServiceError(context) => match context.err().code() {
            Some(code) => EndpointError::Refusal {
                what: call.what(),
                code: code.to_owned(),
                message: context.err().message().unwrap_or("no message").to_owned(),
            },
            None => not_the_service(call, endpoint, status_of(error)),
        },
        SdkError::ResponseError(_) => not_the_service(call, endpoint, status_of(error)),
        _ => EndpointError::Unreachable {
            place: call.place(),
            what: call.what(),
            cause: causes(error),
            check: call.check(),
        },
    }
}

fn not_the_service(call: &Call<'_>, endpoint: String, status: u16) -> EndpointError {
    EndpointError::NotTheService {
        endpoint,
        what: call.what(),
        status,
        service: call.service.name(),
        option: call.service.option(),
    }
}

/// The HTTP status of the raw response, when there was one.
fn status_of<E>(error: &SdkError<E, HttpResponse>) -> u16 {
    match error {
        SdkError::ServiceError(context) => context.raw().status().as_u16(),
        SdkError::ResponseError(context) => context.raw().status().as_u16(),
        _ => 0,
    }
}

/// Whether an error of type `T` lies in `error`'s source chain.
fn caused_by<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<T>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The kind of the first `io::Error` in `error`'s source chain.
fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = e.source();
    }
    None
}

/// The source chain's messages below the SDK's own wrapper, which would
/// print the request.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        "unknown cause".to_owned()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_a_scheme_and_a_host() {
        assert!(parse_endpoint("http://127.0.0.1:5000").is_ok());
        assert!(parse_endpoint("https://secretsmanager.eu-west-1.amazonaws.com").is_ok());
        for given in ["127.0.0.1:5000", "localhost:4566", "moto"] {
            let refused = parse_endpoint(given).unwrap_err();
            assert!(
                matches!(refused, BadEndpoint::NoScheme { .. }),
                "{given}: {refused}"
            );
            assert!(refused.to_string().contains(&format!("http://{given}")));
        }
        for given in ["ftp://host", "http://", "file:///tmp/x"] {
            assert!(
                matches!(parse_endpoint(given), Err(BadEndpoint::NotHttp { .. })),
                "{given}"
            );
        }
    }
}
