//! Request plumbing: the hyper handler, which API a path belongs to, each
//! API's error shape, injected failures, dispatch to the providers, and
//! management authentication.

use super::*;

pub(super) struct Call {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) authorization: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) body: Bytes,
}

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Option<Value>,
}

impl Reply {
    pub(super) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
        }
    }

    pub(super) fn empty(status: u16) -> Reply {
        Reply { status, body: None }
    }
}

pub(super) async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| loopback::header(request.headers(), name).map(str::to_owned);
    let (authorization, content_type) = (header("authorization"), header("content-type"));
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let reply = match request.into_body().collect().await {
        Ok(body) => {
            let call = Call {
                method,
                path,
                query,
                authorization,
                content_type,
                body: body.to_bytes(),
            };
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            let reply = state.serve(&call);
            state.seen.push(Seen {
                method: call.method,
                path: call.path,
                status: reply.status,
            });
            reply
        }
        Err(_) => Reply::empty(400),
    };
    let mut response = Response::new(Full::new(match &reply.body {
        Some(body) => Bytes::from(body.to_string()),
        None => Bytes::new(),
    }));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if reply.body.is_some() {
        response.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
    }
    Ok(response)
}

/// Which API a path belongs to, for its error shape.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    Keycloak,
    Okta,
    Graph,
    Auth0,
    Registration,
    Token(Provider),
    Unknown,
}

impl Api {
    pub(super) fn of(path: &str) -> Api {
        if path.starts_with("/admin/realms/") {
            Api::Keycloak
        } else if path.starts_with("/api/v1/") {
            Api::Okta
        } else if path.starts_with("/v1.0/") {
            Api::Graph
        } else if path.starts_with("/api/v2/") {
            Api::Auth0
        } else if path.starts_with("/connect/register") {
            Api::Registration
        } else if path == "/connect/token" {
            Api::Token(Provider::Rfc7592)
        } else if path == "/oauth/token" {
            Api::Token(Provider::Auth0)
        } else if path.starts_with("/realms/") && path.ends_with("/protocol/openid-connect/token") {
            Api::Token(Provider::Keycloak)
        } else if path.starts_with("/oauth2/") && path.ends_with("/v1/token") {
            Api::Token(Provider::Okta)
        } else if path.ends_with("/oauth2/v2.0/token") {
            Api::Token(Provider::Entra)
        } else {
            Api::Unknown
        }
    }

    /// The error body each API documents.
    pub(super) fn error(self, status: u16, code: &str, message: &str) -> Reply {
        self.error_with(status, code, message, &[])
    }

    pub(super) fn error_with(
        self,
        status: u16,
        code: &str,
        message: &str,
        causes: &[&str],
    ) -> Reply {
        let body = match self {
            Api::Keycloak if status == 401 => json!({"error": "HTTP 401 Unauthorized"}),
            Api::Keycloak => json!({"error": code, "errorMessage": message}),
            Api::Okta => json!({
                "errorCode": code, "errorSummary": message, "errorLink": code,
                "errorId": format!("oae{}", &uuid::Uuid::new_v4().simple().to_string()[..22]),
                "errorCauses": causes.iter().map(|c| json!({"errorSummary": c})).collect::<Vec<_>>(),
            }),
            Api::Graph => json!({"error": {
                "code": code, "message": message,
                "innerError": {"date": rfc3339(now()), "request-id": uuid::Uuid::new_v4().to_string()},
            }}),
            Api::Auth0 => json!({
                "statusCode": status, "message": message, "errorCode": code,
                "error": StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or(""),
            }),
            Api::Token(_) | Api::Registration | Api::Unknown => {
                json!({"error": code, "error_description": message})
            }
        };
        Reply::json(status, body)
    }

    /// An injected failure, in the API's own shape.
    pub(super) fn failure(self, status: u16) -> Reply {
        self.error(
            status,
            self.code(status),
            "failure injected by the provider emulator",
        )
    }

    /// The error code of an injected failure.
    pub(super) fn code(self, status: u16) -> &'static str {
        match (self, status) {
            (Api::Okta, 400) => "E0000001",
            (Api::Graph, 400) => "Request_BadRequest",
            (_, 400) => "invalid_request",
            (Api::Okta, 401) => "E0000011",
            (Api::Okta, 429) => "E0000047",
            (Api::Okta, _) => "E0000009",
            (Api::Graph, 401) => "InvalidAuthenticationToken",
            (Api::Graph, _) => "serviceNotAvailable",
            (Api::Token(_), 401) => "invalid_client",
            (Api::Registration, 401) => "invalid_token",
            (Api::Token(_), _) => "temporarily_unavailable",
            _ => "unavailable",
        }
    }
}

impl State {
    pub(super) fn serve(&mut self, call: &Call) -> Reply {
        let api = Api::of(&call.path);
        if let Some((left, status)) = self.lose_at.as_mut() {
            *left -= 1;
            if *left == 0 {
                let status = *status;
                self.lose_at = None;
                self.route(call, api);
                return api.failure(status);
            }
        }
        let failure = self
            .failures
            .iter_mut()
            .find(|f| f.times > 0 && f.method == call.method && call.path.contains(&f.path));
        if let Some(failure) = failure {
            failure.times -= 1;
            let (status, after, echo) = (failure.status, failure.after_applying, failure.echo);
            if let Some(body) = failure.body.clone() {
                return Reply::json(status, body);
            }
            if echo {
                let answered = self.route(call, api);
                let request = String::from_utf8_lossy(&call.body);
                let answer = answered.body.map(|b| b.to_string()).unwrap_or_default();
                let message =
                    format!("refused: the request was {request}; the answer was {answer}");
                return api.error_with(status, api.code(status), &message, &[&message]);
            }
            if after {
                self.route(call, api);
            }
            return api.failure(status);
        }
        self.route(call, api)
    }

    pub(super) fn route(&mut self, call: &Call, api: Api) -> Reply {
        let segments: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
        match api {
            Api::Keycloak => self.keycloak(call, &segments),
            Api::Okta => self.okta(call, &segments),
            Api::Graph => self.graph(call, &segments),
            Api::Auth0 => self.auth0(call, &segments),
            Api::Registration => self.registration(call, &segments),
            Api::Token(provider) => self.token(call, provider, &segments),
            Api::Unknown => api.error(404, "not_found", "no such endpoint"),
        }
    }

    /// Checks the management credentials; returns the grant's scopes.
    pub(super) fn authenticate(
        &self,
        api: Api,
        provider: Provider,
        call: &Call,
    ) -> Result<Option<Vec<String>>, Reply> {
        let refused = |message: &str| match api {
            Api::Okta => api.error(401, "E0000011", "Invalid token provided"),
            Api::Graph => api.error(401, "InvalidAuthenticationToken", message),
            _ => api.error(401, "invalid_token", message),
        };
        let Some(header) = &call.authorization else {
            return Err(refused("Access token is empty."));
        };
        let (scheme, token) = header.split_once(' ').unwrap_or(("", ""));
        self.grants
            .iter()
            .find(|g| {
                g.provider == provider && g.scheme.eq_ignore_ascii_case(scheme) && g.token == token
            })
            .map(|g| g.scopes.clone())
            .ok_or_else(|| refused("Invalid token"))
    }

    pub(super) fn app_mut(
        &mut self,
        provider: Provider,
        realm: Option<&str>,
        id: &str,
    ) -> Option<&mut App> {
        self.apps.iter_mut().find(|a| {
            a.provider == provider && a.admin_id == id && realm.is_none_or(|r| r == a.realm)
        })
    }
}

/// The JSON body of a management call: `Content-Type: application/json` and
/// well-formed JSON, or the API's error.
pub(super) fn json_body(api: Api, call: &Call) -> Result<Value, Reply> {
    let content_type = call.content_type.as_deref().unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(api.error(
            415,
            "unsupported_media_type",
            "the Content-Type must be application/json",
        ));
    }
    serde_json::from_slice(&call.body)
        .map_err(|_| api.error(400, "invalid_body", "The request body was not well-formed."))
}

pub(super) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
