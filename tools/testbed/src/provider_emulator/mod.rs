//! A local stand-in for the identity providers whose client-secret APIs
//! `oauth-rotation` calls, for the tests. It is written from each provider's
//! public API reference, not from rotor's adapters, and holds every request to
//! what that reference documents: method, path, authentication scheme and body
//! shape, answered with the documented status and error body.
//!
//! | provider | management API (auth) | token endpoint |
//! | --- | --- | --- |
//! | Keycloak | `GET`/`PUT /admin/realms/{realm}/clients/{id}`: a ClientRepresentation, 204 on PUT (`Bearer`) | `/realms/{realm}/protocol/openid-connect/token` |
//! | Okta | `/api/v1/apps/{appId}/credentials/secrets[/{secretId}[/lifecycle/(de)activate]]`: at most two secrets, only INACTIVE ones deleted (`SSWS` or `Bearer`) | `/oauth2/{server}/v1/token`, scope required |
//! | Entra ID | Graph `GET /v1.0/applications/{id}`, `POST …/addPassword` (200), `POST …/removePassword` (204) (`Bearer`) | `/{tenant}/oauth2/v2.0/token`, scope `…/.default` required |
//! | Auth0 | `PATCH /api/v2/clients/{id}`; `client_secret` needs `update:client_keys` (`Bearer`) | `/oauth/token`, audience required; `https://{domain}/api/v2/` mints management tokens |
//! | RFC 7592 | `GET`/`PUT /connect/register/{client_id}` with the registration access token (`Bearer`), which the server replaces on use ([`rfc7592`]) | `/connect/token` |
//!
//! A token endpoint accepts exactly the secrets the provider holds as active:
//! Keycloak's and Auth0's one secret, Okta's ACTIVE secrets, every Entra
//! password. Okta and Auth0 clients must use the authentication method they are
//! configured with; Keycloak and Entra take `client_secret_basic` and
//! `client_secret_post`. A refused secret is a 401.
//!
//! Knobs: fail the next requests to a path with a status, lose a response after
//! the change was made, answer the next request with a given body, and read
//! which credentials a client holds (never their values). Plain HTTP on
//! 127.0.0.1, which rotor allows for loopback only.

use crate::loopback::{self, Loopback};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod auth0;
mod entra;
mod keycloak;
mod okta;
pub mod rfc7592;
mod token;

use okta::okta_id;
pub use rfc7592::TokenRotation;

/// The emulated providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Keycloak's admin REST API.
    Keycloak,
    /// Okta's client secrets API.
    Okta,
    /// Microsoft Entra ID through Microsoft Graph.
    Entra,
    /// Auth0's Management API.
    Auth0,
    /// RFC 7591/7592 dynamic client registration management.
    Rfc7592,
}

/// How a client authenticates at a token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenAuth {
    /// `client_secret_basic`.
    Basic,
    /// `client_secret_post`.
    Post,
}

impl TokenAuth {
    /// The OAuth metadata name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuth::Basic => "client_secret_basic",
            TokenAuth::Post => "client_secret_post",
        }
    }
}

/// A client for the emulator to hold.
pub struct EmulatedClient {
    /// Its provider.
    pub provider: Provider,
    /// Keycloak's realm or Entra's tenant; unused by Okta and Auth0.
    pub realm: String,
    /// The id in management paths: Keycloak's client UUID, Okta's app id,
    /// Entra's application object id, Auth0's client_id.
    pub admin_id: String,
    /// The OAuth client_id.
    pub client_id: String,
    /// Its first secret.
    pub secret: SecretString,
    /// The one token endpoint method it is configured with; `None`: either.
    pub method: Option<TokenAuth>,
    /// Auth0: the Management API scopes its client grant allows.
    pub management_scopes: Vec<String>,
}

impl EmulatedClient {
    /// A client that may use either method and has no management grant.
    pub fn new(
        provider: Provider,
        realm: &str,
        admin_id: &str,
        client_id: &str,
        secret: &SecretString,
    ) -> Self {
        EmulatedClient {
            provider,
            realm: realm.to_owned(),
            admin_id: admin_id.to_owned(),
            client_id: client_id.to_owned(),
            secret: SecretString::from(secret.expose_secret()),
            method: None,
            management_scopes: Vec::new(),
        }
    }
}

/// One credential a client holds, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialState {
    /// Okta's secret id, Entra's keyId, or the client id (Keycloak, Auth0).
    pub id: String,
    /// Whether the token endpoint accepts it.
    pub active: bool,
    /// Entra's displayName.
    pub display_name: Option<String>,
}

/// One request the emulator answered.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

struct Credential {
    id: String,
    value: SecretString,
    active: bool,
    display_name: Option<String>,
    created: u64,
}

impl Credential {
    fn new(id: String, value: &str, display_name: Option<String>) -> Self {
        Credential {
            id,
            value: SecretString::from(value),
            active: true,
            display_name,
            created: now(),
        }
    }
}

struct App {
    provider: Provider,
    realm: String,
    admin_id: String,
    client_id: String,
    method: Option<TokenAuth>,
    scopes: Vec<String>,
    credentials: Vec<Credential>,
    /// Keycloak's and Auth0's other client fields, as last written.
    fields: Map<String, Value>,
    /// RFC 7592: the registration access token.
    registration: Option<rfc7592::Registration>,
}

impl App {
    fn accepts(&self, secret: &str) -> bool {
        self.credentials
            .iter()
            .any(|c| c.active && c.value.expose_secret() == secret)
    }
}

struct Grant {
    provider: Provider,
    scheme: &'static str,
    token: String,
    /// `None`: every scope.
    scopes: Option<Vec<String>>,
}

struct Failure {
    method: String,
    path: String,
    times: u32,
    status: u16,
    after_applying: bool,
    /// The body to answer with instead of the API's error.
    body: Option<Value>,
}

struct State {
    base: String,
    apps: Vec<App>,
    grants: Vec<Grant>,
    failures: Vec<Failure>,
    /// Requests left before the one whose answer is lost: `(left, status)`.
    lose_at: Option<(u64, u16)>,
    seen: Vec<Seen>,
}

/// A running emulator; dropping it stops the server.
pub struct ProviderEmulator {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    _server: Loopback,
}

impl ProviderEmulator {
    /// Listens on 127.0.0.1 at a free port.
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            base: String::new(),
            apps: Vec::new(),
            grants: Vec::new(),
            failures: Vec::new(),
            lose_at: None,
            seen: Vec::new(),
        }));
        let shared = state.clone();
        let server =
            loopback::serve("provider emulator", move |req| handle(req, shared.clone())).await?;
        let address = server.address();
        state.lock().unwrap_or_else(|p| p.into_inner()).base = format!("http://{address}");
        Ok(ProviderEmulator {
            address,
            state,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`: the Keycloak URL, Okta domain, Graph URL and
    /// Auth0 domain alike.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The provider's token endpoint (`realm`: Keycloak's realm, Entra's tenant).
    pub fn token_endpoint(&self, provider: Provider, realm: &str) -> String {
        let base = self.url();
        match provider {
            Provider::Keycloak => format!("{base}/realms/{realm}/protocol/openid-connect/token"),
            Provider::Okta => format!("{base}/oauth2/default/v1/token"),
            Provider::Entra => format!("{base}/{realm}/oauth2/v2.0/token"),
            Provider::Auth0 => format!("{base}/oauth/token"),
            Provider::Rfc7592 => format!("{base}/connect/token"),
        }
    }

    /// The audience of Auth0's Management API: `https://{domain}/api/v2/`.
    pub fn auth0_management_audience(&self) -> String {
        format!("https://{}/api/v2/", self.address)
    }

    /// Holds a client; returns its first credential's id (Okta's secret id,
    /// Entra's keyId).
    pub fn add_client(&self, client: EmulatedClient) -> String {
        let id = match client.provider {
            Provider::Okta => okta_id(),
            Provider::Entra => uuid::Uuid::new_v4().to_string(),
            Provider::Keycloak | Provider::Auth0 | Provider::Rfc7592 => client.client_id.clone(),
        };
        let display_name = (client.provider == Provider::Entra).then(|| "initial".to_owned());
        let credential = Credential::new(id.clone(), client.secret.expose_secret(), display_name);
        let mut fields = Map::new();
        if client.provider == Provider::Keycloak {
            fields.insert("clientId".into(), Value::from(client.client_id.clone()));
            fields.insert("enabled".into(), Value::Bool(true));
            fields.insert("publicClient".into(), Value::Bool(false));
            fields.insert("clientAuthenticatorType".into(), "client-secret".into());
            fields.insert("serviceAccountsEnabled".into(), Value::Bool(true));
            fields.insert("protocol".into(), "openid-connect".into());
        }
        self.with_state(|s| {
            s.apps.push(App {
                provider: client.provider,
                realm: client.realm,
                admin_id: client.admin_id,
                client_id: client.client_id,
                method: client.method,
                scopes: client.management_scopes,
                credentials: vec![credential],
                fields,
                registration: None,
            })
        });
        id
    }

    /// Holds an RFC 7592 client whose registration access token changes as
    /// `rotation` says; returns its registration URI and first token.
    pub fn add_registered_client(
        &self,
        client_id: &str,
        secret: &SecretString,
        method: TokenAuth,
        rotation: TokenRotation,
    ) -> (String, SecretString) {
        let mut client = EmulatedClient::new(Provider::Rfc7592, "", client_id, client_id, secret);
        client.method = Some(method);
        self.add_client(client);
        let token = rfc7592::new_token();
        let issued = SecretString::from(token.expose_secret());
        self.with_state(|s| {
            if let Some(app) = s.app_mut(Provider::Rfc7592, None, client_id) {
                app.fields
                    .insert("grant_types".into(), json!(["client_credentials"]));
                app.fields.insert(
                    "token_endpoint_auth_method".into(),
                    Value::from(method.as_str()),
                );
                app.registration = Some(rfc7592::Registration { token, rotation });
            }
        });
        (
            format!("{}/connect/register/{client_id}", self.url()),
            issued,
        )
    }

    /// Whether `token` manages the RFC 7592 client now; changes nothing (a read
    /// through the API could replace the token).
    pub fn registration_token_works(&self, client_id: &str, token: &SecretString) -> bool {
        self.with_state(|s| {
            s.app_mut(Provider::Rfc7592, None, client_id)
                .and_then(|a| a.registration.as_ref())
                .is_some_and(|r| r.token.expose_secret() == token.expose_secret())
        })
    }

    /// What the server's administrator does when no stored token manages an
    /// RFC 7592 client any more: a new registration access token and a new
    /// client secret, both returned.
    pub fn reissue_registration(&self, client_id: &str) -> Option<(SecretString, SecretString)> {
        self.with_state(|s| {
            let app = s.app_mut(Provider::Rfc7592, None, client_id)?;
            let registration = app.registration.as_mut()?;
            registration.token = rfc7592::new_token();
            let secret = random_text(40);
            app.credentials = vec![Credential::new(app.client_id.clone(), &secret, None)];
            Some((
                SecretString::from(registration.token.expose_secret()),
                SecretString::from(secret),
            ))
        })
    }

    /// Accepts `authorization` (`Bearer <token>`, or Okta's `SSWS <token>`) for
    /// the provider's management API, with every scope.
    pub fn allow_management(&self, provider: Provider, authorization: &str) {
        let (scheme, token) = authorization.split_once(' ').unwrap_or(("", authorization));
        let scheme = if scheme.eq_ignore_ascii_case("SSWS") {
            "SSWS"
        } else {
            "Bearer"
        };
        self.with_state(|s| {
            s.grants.push(Grant {
                provider,
                scheme,
                token: token.to_owned(),
                scopes: None,
            })
        });
    }

    /// Answers the next `times` requests whose method is `method` and whose path
    /// contains `path` with `status`, changing nothing.
    pub fn fail_next(&self, method: &str, path: &str, times: u32, status: u16) {
        self.add_failure(method, path, times, status, false);
    }

    /// Makes the next such request's change, then answers `status`: a response
    /// lost on the way back.
    pub fn lose_next_response(&self, method: &str, path: &str, status: u16) {
        self.add_failure(method, path, 1, status, true);
    }

    /// Makes the change of the `nth` request from now (counting every
    /// request, from 1), then answers it with `status` in the API's error
    /// shape: the answer to that call is lost after the provider acted.
    /// `None` cancels it.
    pub fn lose_answer_of(&self, nth: Option<u64>, status: u16) {
        self.with_state(|s| s.lose_at = nth.map(|n| (n, status)));
    }

    /// Answers the next request whose method is `method` and whose path
    /// contains `path` with `status` and `body`, changing nothing: a server
    /// or a middlebox that answers something unexpected.
    pub fn answer_next(&self, method: &str, path: &str, status: u16, body: Value) {
        self.push_failure(method, path, 1, status, false, Some(body));
    }

    fn add_failure(&self, method: &str, path: &str, times: u32, status: u16, after: bool) {
        self.push_failure(method, path, times, status, after, None);
    }

    fn push_failure(
        &self,
        method: &str,
        path: &str,
        times: u32,
        status: u16,
        after_applying: bool,
        body: Option<Value>,
    ) {
        self.with_state(|s| {
            s.failures.push(Failure {
                method: method.to_owned(),
                path: path.to_owned(),
                times,
                status,
                after_applying,
                body,
            })
        });
    }

    /// The credentials a client holds (by its management id), without values.
    pub fn credentials(&self, provider: Provider, admin_id: &str) -> Vec<CredentialState> {
        self.with_state(|s| {
            s.apps
                .iter()
                .filter(|a| a.provider == provider && a.admin_id == admin_id)
                .flat_map(|a| &a.credentials)
                .map(|c| CredentialState {
                    id: c.id.clone(),
                    active: c.active,
                    display_name: c.display_name.clone(),
                })
                .collect()
        })
    }

    /// Every request answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.with_state(|s| s.seen.clone())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    /// Sends one HTTP/1.1 request; returns the status and the JSON body (Null
    /// when there is none), or status 0 when the connection failed.
    pub async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.address,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        let mut response = Vec::new();
        let exchanged = async {
            let mut stream = TcpStream::connect(self.address).await?;
            stream.write_all(request.as_bytes()).await?;
            stream.read_to_end(&mut response).await
        };
        if exchanged.await.is_err() {
            return (0, Value::Null);
        }
        let text = String::from_utf8_lossy(&response);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (status, body)
    }

    /// A `client_credentials` grant at `endpoint` (one of this emulator's);
    /// returns the status: 200 when a token was issued.
    pub async fn grant(
        &self,
        endpoint: &str,
        client_id: &str,
        secret: &SecretString,
        auth: TokenAuth,
        extra: &[(&str, &str)],
    ) -> u16 {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let basic;
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        match auth {
            TokenAuth::Basic => {
                let pair = format!(
                    "{}:{}",
                    form_encode(client_id),
                    form_encode(secret.expose_secret())
                );
                basic = format!("Basic {}", base64_encode(pair.as_bytes(), false));
                headers.push(("Authorization", basic.as_str()));
            }
            TokenAuth::Post => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret.expose_secret()));
            }
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let target = endpoint.strip_prefix(&self.url()).unwrap_or(endpoint);
        self.send("POST", target, &headers, &body).await.0
    }
}

struct Call {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

struct Reply {
    status: u16,
    body: Option<Value>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
        }
    }

    fn empty(status: u16) -> Reply {
        Reply { status, body: None }
    }
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
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
enum Api {
    Keycloak,
    Okta,
    Graph,
    Auth0,
    Registration,
    Token(Provider),
    Unknown,
}

impl Api {
    fn of(path: &str) -> Api {
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
    fn error(self, status: u16, code: &str, message: &str) -> Reply {
        self.error_with(status, code, message, &[])
    }

    fn error_with(self, status: u16, code: &str, message: &str, causes: &[&str]) -> Reply {
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
    fn failure(self, status: u16) -> Reply {
        let code = match (self, status) {
            (Api::Okta, 401) => "E0000011",
            (Api::Okta, 429) => "E0000047",
            (Api::Okta, _) => "E0000009",
            (Api::Graph, 401) => "InvalidAuthenticationToken",
            (Api::Graph, _) => "serviceNotAvailable",
            (Api::Token(_), 401) => "invalid_client",
            (Api::Registration, 401) => "invalid_token",
            (Api::Token(_), _) => "temporarily_unavailable",
            _ => "unavailable",
        };
        self.error(status, code, "failure injected by the provider emulator")
    }
}

impl State {
    fn serve(&mut self, call: &Call) -> Reply {
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
            let (status, after) = (failure.status, failure.after_applying);
            if let Some(body) = failure.body.clone() {
                return Reply::json(status, body);
            }
            if after {
                self.route(call, api);
            }
            return api.failure(status);
        }
        self.route(call, api)
    }

    fn route(&mut self, call: &Call, api: Api) -> Reply {
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
    fn authenticate(
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

    fn app_mut(&mut self, provider: Provider, realm: Option<&str>, id: &str) -> Option<&mut App> {
        self.apps.iter_mut().find(|a| {
            a.provider == provider && a.admin_id == id && realm.is_none_or(|r| r == a.realm)
        })
    }
}

/// The JSON body of a management call: `Content-Type: application/json` and
/// well-formed JSON, or the API's error.
fn json_body(api: Api, call: &Call) -> Result<Value, Reply> {
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

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn random_text(len: usize) -> String {
    let mut text = String::new();
    while text.len() < len {
        text.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    text.truncate(len);
    text
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DDThh:mm:ssZ` (days to civil date: Howard Hinnant's algorithm).
fn rfc3339(secs: u64) -> String {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `application/x-www-form-urlencoded` parameters; Err on bad escapes or a
/// repeated name.
fn parse_form(text: &str) -> Result<BTreeMap<String, String>, ()> {
    let mut out = BTreeMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if out
            .insert(form_decode(name)?, form_decode(value)?)
            .is_some()
        {
            return Err(());
        }
    }
    Ok(out)
}

fn form_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(())?;
                let hex = std::str::from_utf8(hex).map_err(|_| ())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ())
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `Basic base64(form(id) ":" form(secret))` (RFC 6749 §2.3.1); None when the
/// header is not that.
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id).ok()?, form_decode(secret).ok()?))
}

/// Base64: standard with padding, or URL-safe without.
fn base64_encode(bytes: &[u8], url_safe: bool) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    if url_safe {
        URL_SAFE_NO_PAD.encode(bytes)
    } else {
        STANDARD.encode(bytes)
    }
}

/// Standard base64 with padding.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip() {
        for text in ["", "a", "ab", "abc", "client:s3cr~t.+/"] {
            let encoded = base64_encode(text.as_bytes(), false);
            assert_eq!(base64_decode(&encoded).as_deref(), Some(text.as_bytes()));
        }
        assert_eq!(
            base64_encode(b"any carnal pleas", false),
            "YW55IGNhcm5hbCBwbGVhcw=="
        );
        assert_eq!(base64_encode(&[0xfb, 0xff], true), "-_8");
        assert_eq!(
            form_decode(&form_encode("a b+c/d:é~")),
            Ok("a b+c/d:é~".to_owned())
        );
        assert_eq!(parse_form("a=1&a=2"), Err(()));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_661), "2000-02-29T01:01:01Z");
    }
}
