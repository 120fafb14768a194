//! One management call, the same for every provider: send with the
//! credentials, sort the answer by its HTTP status into a typed target
//! failure, decode its JSON (at most [`rotor_core::http::MAX_BODY`] bytes).
//! The providers' modules only say which calls to make and what the answers
//! mean, and which calls carry a client secret ([`Quote::CodeOnly`]).

use reqwest::header::AUTHORIZATION;
use reqwest::{Method, RequestBuilder};
use rotor_core::http::{client, describe, display_url};
use rotor_core::{Cause, Error, ExposeSecret, TargetError, TargetKind};
use serde_json::Value;

use super::Management;
use crate::secret::Provider;
use crate::wire;

/// What of a provider's error answer a step's error quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Quote {
    /// The provider's message: the call carries no secret.
    Message,
    /// The status and the error code only: the call's request or answer
    /// carries a client secret, which a provider's message may repeat (a
    /// validation error that quotes the request, an answer echoed whole).
    CodeOnly,
}

/// A provider's management API, called with one set of credentials.
pub(super) struct Api<'a> {
    provider: Provider,
    auth: &'a Management,
}

impl<'a> Api<'a> {
    pub(super) fn new(provider: Provider, auth: &'a Management) -> Self {
        Api { provider, auth }
    }

    /// The URL of `segments` below the provider base URL the credentials are
    /// bound to (see [`endpoint`]).
    pub(super) fn url(&self, segments: &[&str]) -> Result<String, Error> {
        endpoint(self.auth.base()?, segments)
    }

    /// Sends a call (with a JSON `body`, if any); the body of a 2xx answer, or
    /// an error that says whether a retry helps, quoting the provider's words
    /// as `quote` allows (a call whose request or answer carries a client
    /// secret: [`Quote::CodeOnly`]). `what` names the call in messages.
    pub(super) async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
        quote: Quote,
    ) -> Result<Value, Error> {
        let (status, answer) = self.exchange(method, url, body, what).await?;
        sort(self.provider, url, what, status, answer, quote)
    }

    /// Sends a call; the answer's status and body (`Null` when it is not
    /// JSON; a body over [`rotor_core::http::MAX_BODY`] is a
    /// [`Cause::Protocol`] failure, and the rest of it is not read), unsorted,
    /// for callers that read a status themselves first.
    pub(super) async fn exchange(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<(u16, Value), Error> {
        let mut request = with_auth(method, url, self.auth)?;
        if let Some(body) = body {
            request = request.json(body);
        }
        rotor_core::progress::waiting_for(|| {
            format!("{} at {} ({what})", self.provider, display_url(url))
        });
        let response = request
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                let problem = format!("{what}: {}", describe(&e));
                self.fail(url, rotor_core::http::send_cause(&e), problem)
            })?;
        let status = response.status().as_u16();
        let answer = rotor_core::http::read_json(response)
            .await
            .map_err(|e| self.fail(url, e.cause, format!("{what} {}", e.problem)))?;
        Ok((status, answer))
    }

    /// A failure of this provider at `url` that no status told (an answer
    /// without the fields it must have, an id the secret lacks...).
    pub(super) fn fail(&self, url: &str, cause: Cause, problem: impl Into<String>) -> Error {
        failure(self.provider, url, cause, problem)
    }
}

/// A failure of `provider` at `url`, named as every call's error names it:
/// `okta at https://example.okta.com/api/v1/apps/...`.
pub(crate) fn failure(
    provider: Provider,
    url: &str,
    cause: Cause,
    problem: impl Into<String>,
) -> Error {
    let target = format!("{provider} at {}", display_url(url));
    TargetError::new(cause, problem).at(TargetKind::Provider, target)
}

/// Sorts an answer: the body of a 2xx, or an error that says whether a retry
/// helps, quoting the provider's words as `quote` allows.
pub(super) fn sort(
    provider: Provider,
    url: &str,
    what: &str,
    status: u16,
    body: Value,
    quote: Quote,
) -> Result<Value, Error> {
    let detail = || {
        if quote == Quote::CodeOnly {
            let code = wire::error_code(&body)
                .map(|c| format!(", error code {c}"))
                .unwrap_or_default();
            return format!(
                "{what} answered HTTP {status}{code} (the provider's message is left out: this call carries a client secret)"
            );
        }
        // OAuth, Okta, Auth0, Keycloak's ErrorRepresentation, Graph's {"error": {"message"}}.
        let message = [
            "error_description",
            "errorSummary",
            "message",
            "errorMessage",
            "error",
        ]
        .iter()
        .find_map(|k| body[k].as_str().or_else(|| body["error"][k].as_str()))
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
        // Okta puts the reason for a validation failure in errorCauses.
        let causes = wire::listed(&body["errorCauses"], |c| c["errorSummary"].as_str(), "; ")
            .map(|causes| format!(" ({causes})"))
            .unwrap_or_default();
        format!("{what} answered HTTP {status}{message}{causes}")
    };
    if (200..=299).contains(&status) {
        return Ok(body);
    }
    let cause = reqwest::StatusCode::from_u16(status)
        .map(rotor_core::http::status_cause)
        .unwrap_or(Cause::Protocol);
    let problem = match status {
        401 | 403 => format!(
            "{}; the management credentials were refused or lack the permission (see the README's provider table)",
            detail()
        ),
        404 => format!("{}; check the ids in the secret", detail()),
        408 | 429 | 500..=599 => format!("{}; the step can be retried", detail()),
        _ => detail(),
    };
    Err(failure(provider, url, cause, problem))
}

fn with_auth(method: Method, url: &str, auth: &Management) -> Result<RequestBuilder, Error> {
    let at = |e: TargetError| e.at(TargetKind::Provider, display_url(url));
    let client = client().map_err(|e| at(TargetError::from(e)))?;
    let header = wire::authorization(auth.authorization.expose_secret()).map_err(at)?;
    Ok(client.request(method, url).header(AUTHORIZATION, header))
}

/// `base` with `segments` appended to its path, each percent-encoded, so that
/// an id taken from the secret stays one path segment: a `/`, `?`, `#` or
/// `..` in it can never point a management call at another resource.
pub(super) fn endpoint(base: &str, segments: &[&str]) -> Result<String, Error> {
    let refused = |problem: String| {
        TargetError::new(Cause::Rejected, problem).at(TargetKind::Provider, display_url(base))
    };
    if let Some(bad) = segments
        .iter()
        .find(|s| s.is_empty() || **s == "." || **s == "..")
    {
        return Err(refused(format!(
            "an id in the secret is {bad:?}, which is not an id; check the secret's id fields"
        )));
    }
    let mut url = reqwest::Url::parse(base).map_err(|e| {
        refused(format!(
            "the base URL does not parse ({e}); check the secret"
        ))
    })?;
    url.path_segments_mut()
        .map_err(|()| refused("the base URL cannot take a path; check the secret".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_header_is_sensitive() {
        let auth = Management::bearer("t0k3n");
        let request = with_auth(Method::GET, "https://idp.example/x", &auth)
            .unwrap()
            .build()
            .unwrap();
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
        assert!(!format!("{request:?}").contains("t0k3n"));
    }

    #[test]
    fn calls_that_carry_a_secret_quote_only_the_error_code() {
        let echo = serde_json::json!({
            "errorCode": "E0000001",
            "errorSummary": "Api validation failed: client_secret s3cr3t",
            "errorCauses": [{"errorSummary": "s3cr3t is too short"}],
        });
        let url = "https://idp.example/api/v1/apps/a/credentials/secrets";
        let sorted = |quote| sort(Provider::Okta, url, "adding", 400, echo.clone(), quote);
        let quiet = sorted(Quote::CodeOnly).unwrap_err().to_string();
        assert!(quiet.contains("HTTP 400, error code E0000001"), "{quiet}");
        assert!(!quiet.contains("s3cr3t"), "{quiet}");
        let told = sorted(Quote::Message).unwrap_err().to_string();
        assert!(
            told.contains(
                "HTTP 400: Api validation failed: client_secret s3cr3t (s3cr3t is too short)"
            ),
            "{told}"
        );
    }

    #[test]
    fn ids_stay_one_path_segment() {
        let url = endpoint(
            "https://idp.example/auth/",
            &["admin", "realms", "r", "clients", "a/../../users?x=1#y"],
        )
        .unwrap();
        assert_eq!(
            url,
            "https://idp.example/auth/admin/realms/r/clients/a%2F..%2F..%2Fusers%3Fx=1%23y"
        );
        assert_eq!(
            endpoint("https://idp.example", &["api", "v2", "clients", "é"]).unwrap(),
            "https://idp.example/api/v2/clients/%C3%A9"
        );
        for bad in ["..", ".", ""] {
            let error = endpoint("https://idp.example", &["clients", bad]).unwrap_err();
            assert!(error.to_string().contains("not an id"), "{error}");
        }
    }
}
