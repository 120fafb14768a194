//! RFC 7591/7592 client registration management, as a server that replaces
//! the registration access token on use (RFC 7592 §2.1 and §2.2 allow it):
//! `GET /connect/register/{client_id}` reads the client (and, in
//! [`TokenRotation::OnEveryUse`], answers with a new token); `PUT` replaces its
//! metadata and always issues a new client secret and (unless
//! [`TokenRotation::Never`]) a new token. The old secret and the old token stop
//! working at once. A token for another client,
//! or an unknown client, is a 401 (RFC 7592 §2.1), with RFC 6750's error body.
//!
//! Token endpoint: `/connect/token`, `client_secret_basic` or `client_secret_post`.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Api, Call, Credential, Provider, Reply, State, json_body, random_text};

/// When the server replaces a client's registration access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRotation {
    /// On each update (PUT).
    OnUpdate,
    /// On each use: every read (GET) and every update (PUT).
    OnEveryUse,
    /// Never: the token keeps working, as glewlwyd's does.
    Never,
}

/// A client's registration: its token and when the token changes.
pub(super) struct Registration {
    pub(super) token: SecretString,
    pub(super) rotation: TokenRotation,
}

/// What RFC 7592 forbids in an update request (§2.2).
const SERVER_FIELDS: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

pub(super) fn new_token() -> SecretString {
    SecretString::from(format!("rat-{}", random_text(40)))
}

impl State {
    /// `GET`/`PUT /connect/register/{client_id}`.
    pub(super) fn registration(&mut self, call: &Call, s: &[&str]) -> Reply {
        let api = Api::Registration;
        let ["connect", "register", id] = s else {
            return api.error(404, "not_found", "no such endpoint");
        };
        let refused = || api.error(401, "invalid_token", "The access token is invalid");
        let presented = call
            .authorization
            .as_deref()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, token)| token.to_owned());
        let uri = format!("{}/connect/register/{id}", self.base);
        let body = (call.method == "PUT").then(|| json_body(api, call));
        let Some(app) = self.app_mut(Provider::Rfc7592, None, id) else {
            return refused();
        };
        let Some(registration) = app.registration.as_mut() else {
            return refused();
        };
        if presented.as_deref() != Some(registration.token.expose_secret()) {
            return refused();
        }
        match (call.method.as_str(), body) {
            ("GET", _) => {
                if registration.rotation == TokenRotation::OnEveryUse {
                    registration.token = new_token();
                }
            }
            ("PUT", Some(Err(reply))) => return reply,
            ("PUT", Some(Ok(Value::Object(mut request)))) => {
                let invalid = |m: &str| api.error(400, "invalid_client_metadata", m);
                if request.get("client_id").and_then(Value::as_str) != Some(*id) {
                    return invalid("client_id must be the client's id (RFC 7592 §2.2)");
                }
                if let Some(field) = SERVER_FIELDS.iter().find(|f| request.contains_key(**f)) {
                    return invalid(&format!("{field} must not be sent (RFC 7592 §2.2)"));
                }
                if let Some(sent) = request.remove("client_secret") {
                    let current = app.credentials.first().map(|c| c.value.expose_secret());
                    if sent.as_str() != current {
                        return invalid("client_secret does not match the client's secret");
                    }
                }
                if request
                    .get("token_endpoint_auth_method")
                    .is_some_and(|m| !m.is_string())
                {
                    return invalid("token_endpoint_auth_method must be a string");
                }
                request.remove("client_id");
                let secret = random_text(40);
                app.credentials = vec![Credential::new(app.client_id.clone(), &secret, None)];
                app.fields = request;
                if registration.rotation != TokenRotation::Never {
                    registration.token = new_token();
                }
            }
            ("PUT", Some(Ok(_))) => {
                return api.error(400, "invalid_client_metadata", "the body must be an object");
            }
            _ => return api.error(405, "invalid_request", "GET or PUT"),
        }
        let mut answer = app.fields.clone();
        answer.insert("client_id".into(), Value::from(app.client_id.clone()));
        let secret = app.credentials.first().map(|c| c.value.expose_secret());
        answer.insert("client_secret".into(), json!(secret));
        answer.insert("client_secret_expires_at".into(), Value::from(0));
        answer.insert("registration_client_uri".into(), Value::from(uri));
        answer.insert(
            "registration_access_token".into(),
            Value::from(registration.token.expose_secret()),
        );
        Reply::json(200, Value::Object(answer))
    }
}
