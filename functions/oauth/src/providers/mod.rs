//! What each provider needs to issue, install and retire client secrets.
//!
//! | provider | who makes the secret | old and new overlap |
//! | --- | --- | --- |
//! | rfc7592  | the server, on PUT to the registration URI | no: the old one is retired at once |
//! | keycloak | rotor (admin API PUT of the client's `secret`) | no |
//! | okta     | rotor (client secrets API, up to two active) | yes, until finishSecret retires the old |
//! | entra    | the provider (Graph `addPassword`) | yes, until finishSecret calls `removePassword` |
//! | auth0    | rotor (Management API PATCH of `client_secret`) | no |
//!
//! Management credentials live in another secret (`management_secret_arn`),
//! never in the client's own: `{"token": ...}` (a bearer token),
//! `{"okta_api_token": ...}` (Okta's SSWS token), or a client of its own,
//! `{"client_id", "client_secret", "token_endpoint", "scope"?, "audience"?}`;
//! always with `"endpoint"`, the provider base URL the credentials are for.
//! Whoever writes a client secret is not trusted with them: the management
//! secret must agree to serve the client's secret (`rotor:serves`) or be
//! allowed by the deployer, and the client's base URL (`okta_domain`, ...) must
//! lie under its `endpoint`, all checked before any request ([`bind`]).

use reqwest::{Method, RequestBuilder};
use rotor_core::http::{UrlPrefix, client, describe, display_url};
use rotor_core::labels::AWSCURRENT;
use rotor_core::linked::{Deployer, Link};
use rotor_core::{
    Cause, Error, ExposeSecret, SecretStore, SecretString, StepContext, System, TargetError,
};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::client::{AuthMethod, Client, Provider};
use crate::token::{Grant, client_credentials};

/// A new secret made by the provider, with the fields that go with it.
pub struct Issued {
    /// The new client secret.
    pub secret: SecretString,
    /// Plain fields to store with it (a key id).
    pub fields: Vec<(&'static str, Value)>,
    /// A new registration access token, when the server rotated it too.
    pub registration_access_token: Option<SecretString>,
}

/// Credentials for management calls: the `Authorization` header value, and
/// (for a management secret) the provider base URL it is bound to.
pub struct Management {
    authorization: SecretString,
    base: Option<String>,
}

impl Management {
    /// RFC 7592: the client's own registration access token, for its own
    /// registration URI (checked when the secret is parsed).
    fn bearer(token: &str) -> Management {
        Management {
            authorization: SecretString::from(format!("Bearer {token}")),
            base: None,
        }
    }

    /// The provider base URL every management call starts from: the one the
    /// management secret names, or the client's own below it.
    fn base(&self) -> Result<&str, Error> {
        self.base.as_deref().ok_or_else(|| Error::Target {
            target: "management".into(),
            problem: "no provider base URL is bound to these credentials".into(),
            system: System::Provider,
            cause: Cause::Rejected,
        })
    }
}

fn invalid(ctx_secret: &str, label: &str, problem: String) -> Error {
    Error::InvalidSecretValue {
        secret: ctx_secret.to_owned(),
        label: label.to_owned(),
        problem,
    }
}

/// The setting of the management secret that names the provider endpoint
/// it is for.
pub const ENDPOINT_FIELD: &str = "endpoint";

/// The client secret's field that names the provider's base URL, for the
/// providers managed with a management secret.
pub fn base_field(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Keycloak => Some("keycloak_url"),
        Provider::Okta => Some("okta_domain"),
        Provider::Entra => Some("graph_url"),
        Provider::Auth0 => Some("auth0_domain"),
        Provider::Rfc7592 => None,
    }
}

/// A management secret that agreed to serve the client's secret, bound to the
/// provider endpoint it names, with the client's base URL checked against
/// that endpoint. Nothing has been sent anywhere yet.
pub struct Bound {
    /// The management secret's ARN, for messages.
    secret: String,
    /// Where the management calls go.
    base: String,
    credential: Credential,
}

enum Credential {
    /// A ready `Authorization` value (`Bearer …`, `SSWS …`).
    Header(SecretString),
    /// A client of its own, exchanged for a token with client_credentials at
    /// the token endpoint it names (its own choice, as its own secret).
    Client {
        id: String,
        secret: SecretString,
        token_endpoint: String,
        method: AuthMethod,
        scope: Option<String>,
        audience: Option<String>,
    },
}

/// Reads the management secret the client names (`management_secret_arn`) if
/// it agrees to serve this client's secret (its `rotor:serves` tag) or the
/// deployer allows it (`deployer`: `MANAGEMENT_SECRET_ARNS`), and checks that
/// the client's base URL lies under the endpoint the management secret names.
/// Refuses before any request is made: whoever writes a client secret must
/// not be able to send the shared admin credential to a host of their choosing.
pub async fn bind<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    client: &Client,
    deployer: &[String],
) -> Result<Bound, Error> {
    let target = client
        .require("management_secret_arn")
        .map_err(|p| invalid(ctx.secret_arn(), AWSCURRENT, p))?;
    let link = Link {
        setting: "management_secret_arn",
        target,
        deployer: Deployer {
            variable: crate::MANAGEMENT_SECRETS_VAR,
            secrets: deployer,
        },
    };
    let linked = rotor_core::linked::read(ctx.store(), ctx.secret, link).await?;
    let arn = linked.arn;
    let bad = |problem: String| Error::InvalidSecretValue {
        secret: arn.clone(),
        label: AWSCURRENT.into(),
        problem,
    };
    let value: Value = serde_json::from_str(linked.value.expose_secret())
        .map_err(|_| bad("is not a JSON object".into()))?;
    let base = bound_base(
        ctx.secret_arn(),
        &arn,
        client,
        value[ENDPOINT_FIELD].as_str(),
    )?;
    let credential = if let Some(token) = value["token"].as_str() {
        Credential::Header(SecretString::from(format!("Bearer {token}")))
    } else if let Some(token) = value["okta_api_token"].as_str() {
        Credential::Header(SecretString::from(format!("SSWS {token}")))
    } else {
        let (Some(id), Some(secret), Some(token_endpoint)) = (
            value["client_id"].as_str(),
            value["client_secret"].as_str(),
            value["token_endpoint"].as_str(),
        ) else {
            return Err(bad(
                "has neither token, okta_api_token, nor client_id + client_secret + token_endpoint"
                    .into(),
            ));
        };
        let token_endpoint = rotor_core::http::parse_endpoint(token_endpoint)
            .map_err(|p| bad(format!("has a token_endpoint that is refused: {p}")))?;
        // As the management client is configured at its provider (Auth0's machine-to-machine
        // applications default to client_secret_post, and providers enforce the method).
        let method = match value["token_endpoint_auth_method"].as_str() {
            None | Some("client_secret_basic") => AuthMethod::Basic,
            Some("client_secret_post") => AuthMethod::Post,
            Some(_) => {
                return Err(bad(
                    "has a token_endpoint_auth_method other than client_secret_basic or client_secret_post".into(),
                ));
            }
        };
        Credential::Client {
            id: id.to_owned(),
            secret: SecretString::from(secret),
            token_endpoint: token_endpoint.into(),
            method,
            scope: value["scope"].as_str().map(str::to_owned),
            audience: value["audience"].as_str().map(str::to_owned),
        }
    };
    Ok(Bound {
        secret: arn,
        base,
        credential,
    })
}

/// The provider base URL for management calls: the client's own base URL
/// field when it lies under the management secret's `endpoint` (same scheme,
/// host and port, and a path at or below it), else that endpoint. `secret` is
/// the client's secret, `management` the management secret (for messages).
fn bound_base(
    secret: &str,
    management: &str,
    client: &Client,
    endpoint: Option<&str>,
) -> Result<String, Error> {
    let bad = |problem: String| Error::InvalidSecretValue {
        secret: management.to_owned(),
        label: AWSCURRENT.into(),
        problem,
    };
    let field = base_field(client.provider).unwrap_or("endpoint");
    let Some(endpoint) = endpoint.filter(|e| !e.trim().is_empty()) else {
        return Err(bad(format!(
            "has no {ENDPOINT_FIELD} field. A management secret names the provider endpoint its credentials are for, and rotor sends them nowhere else: add \"{ENDPOINT_FIELD}\": \"<the provider base URL>\" (the {field} of the clients it serves, such as {})",
            example_base(client.provider)
        )));
    };
    let endpoint_url = rotor_core::http::parse_endpoint(endpoint).map_err(|p| {
        bad(format!(
            "has an {ENDPOINT_FIELD} field that is refused: {p}"
        ))
    })?;
    let prefix = UrlPrefix::parse(endpoint_url.as_str()).map_err(|p| {
        bad(format!(
            "has an {ENDPOINT_FIELD} field that is refused: {p}"
        ))
    })?;
    let base = match client.field(field) {
        None => endpoint_url,
        Some(text) => {
            let refused = |problem: String| Error::InvalidSettings {
                secret: secret.to_owned(),
                setting: field.to_owned(),
                problem,
            };
            let url = rotor_core::http::parse_endpoint(text).map_err(|e| refused(e.to_string()))?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(refused(format!(
                    "{} has a query or fragment; a provider base URL is scheme://host[:port][/path]",
                    display_url(text)
                )));
            }
            if !prefix.admits(&url) {
                return Err(refused(format!(
                    "is {}, but the management secret {management} (management_secret_arn) is for {prefix} (its {ENDPOINT_FIELD} field), and rotor sends its credentials nowhere else (same scheme, host and port, and a path at or below it). Set {field} to {prefix} or a URL below it, remove {field} to use that endpoint, or name a management secret whose {ENDPOINT_FIELD} is {}",
                    display_url(text),
                    display_url(text)
                )));
            }
            url
        }
    };
    Ok(base.into())
}

fn example_base(provider: Provider) -> &'static str {
    match provider {
        Provider::Okta => "https://example.okta.com",
        Provider::Keycloak => "https://keycloak.example.com",
        Provider::Entra => "https://graph.microsoft.com",
        Provider::Auth0 => "https://example.auth0.com",
        Provider::Rfc7592 => "https://idp.example.com",
    }
}

impl Bound {
    /// Turns the bound credentials into an Authorization header: a token
    /// request for a management client, nothing for a stored token.
    pub async fn authorize(self) -> Result<Management, Error> {
        let authorization = match self.credential {
            Credential::Header(header) => header,
            Credential::Client {
                id,
                secret,
                token_endpoint,
                method,
                scope,
                audience,
            } => {
                let grant = Grant {
                    endpoint: &token_endpoint,
                    client_id: &id,
                    secret: &secret,
                    method,
                    scope: scope.as_deref(),
                    audience: audience.as_deref(),
                };
                let token = client_credentials(&grant)
                    .await
                    .map_err(|e| Error::Target {
                        target: format!(
                            "management token endpoint {} (management secret {})",
                            display_url(&token_endpoint),
                            self.secret
                        ),
                        problem: e.problem,
                        system: System::Provider,
                        cause: e.cause,
                    })?;
                SecretString::from(format!("Bearer {}", token.expose_secret()))
            }
        };
        Ok(Management {
            authorization,
            base: Some(self.base),
        })
    }
}

/// [`bind`], then [`Bound::authorize`]: management credentials for the
/// client, bound to its provider.
pub async fn management<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    client: &Client,
    deployer: &[String],
) -> Result<Management, Error> {
    bind(ctx, client, deployer).await?.authorize().await
}

/// Sends a JSON API call and sorts the answer.
async fn call(
    provider: Provider,
    request: RequestBuilder,
    url: &str,
    what: &str,
) -> Result<Value, Error> {
    let (status, body) = exchange(provider, request, url, what).await?;
    sort(provider, url, what, status, body)
}

/// Sends a JSON API call; the answer's status and body (`Null` when it is not JSON).
async fn exchange(
    provider: Provider,
    request: RequestBuilder,
    url: &str,
    what: &str,
) -> Result<(u16, Value), Error> {
    let target = format!("{provider} at {}", display_url(url));
    rotor_core::progress::waiting_for(|| format!("{target} ({what})"));
    let response = request
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| Error::Target {
            target: target.clone(),
            problem: format!("{what}: {}", describe(&e)),
            system: System::Provider,
            cause: rotor_core::http::send_cause(&e),
        })?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Sorts an answer: the body of a 2xx, or an error that says whether a retry helps.
fn sort(
    provider: Provider,
    url: &str,
    what: &str,
    status: u16,
    body: Value,
) -> Result<Value, Error> {
    let target = format!("{provider} at {}", display_url(url));
    let detail = || {
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
        let causes: Vec<&str> = body["errorCauses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["errorSummary"].as_str())
            .collect();
        let causes = if causes.is_empty() {
            String::new()
        } else {
            format!(" ({})", causes.join("; "))
        };
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
    Err(Error::Target {
        target,
        problem,
        system: System::Provider,
        cause,
    })
}

fn with_auth(method: Method, url: &str, auth: &Management) -> Result<RequestBuilder, Error> {
    let client =
        client().map_err(|e| TargetError::from(e).at(System::Provider, display_url(url)))?;
    Ok(client
        .request(method, url)
        .header("Authorization", auth.authorization.expose_secret()))
}

/// `base` with `segments` appended to its path, each percent-encoded, so that
/// an id taken from the secret stays one path segment: a `/`, `?`, `#` or
/// `..` in it can never point a management call at another resource.
fn endpoint(base: &str, segments: &[&str]) -> Result<String, Error> {
    let refused = |problem: String| Error::Target {
        target: display_url(base),
        problem,
        system: System::Provider,
        cause: Cause::Rejected,
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

/// Whether an RFC 7592 answer refused the registration access token.
fn token_refused(status: u16) -> bool {
    matches!(status, 401 | 403)
}

/// Why [`rfc7592_issue`] failed.
pub enum IssueError {
    /// The server refused the registration access token it was given.
    TokenRefused {
        /// The status and the server's words.
        problem: String,
    },
    /// Anything else.
    Other(Error),
}

impl From<Error> for IssueError {
    fn from(error: Error) -> Self {
        IssueError::Other(error)
    }
}

/// The client's RFC 7592 registration URI.
fn registration_uri(client: &Client) -> Result<&str, Error> {
    client
        .require("registration_client_uri")
        .map_err(|problem| Error::Target {
            target: "rfc7592".into(),
            problem,
            system: System::Provider,
            cause: Cause::Rejected,
        })
}

/// RFC 7592: read the client, PUT it back without its secret; the server
/// answers with a new secret (and perhaps a new registration access token).
///
/// `token` is the freshest registration access token known for the client.
/// The server may replace it on any use (RFC 7592 §2.1, §2.2), and the old one
/// then stops working: every token the server hands out is passed to `fresh`
/// at once, and the PUT uses the one the read returned.
pub async fn rfc7592_issue(
    client: &Client,
    token: &SecretString,
    mut fresh: impl FnMut(&SecretString),
) -> Result<Issued, IssueError> {
    let uri = registration_uri(client)?;
    let target = || format!("rfc7592 at {}", display_url(uri));
    let bearer = |t: &SecretString| Management::bearer(t.expose_secret());
    let mut latest = SecretString::from(token.expose_secret());
    // A new token in an answer replaces the one in use, from now on.
    let mut take_token = |answer: &Value, latest: &mut SecretString| {
        if let Some(new) = answer["registration_access_token"]
            .as_str()
            .filter(|t| !t.is_empty() && *t != latest.expose_secret())
        {
            *latest = SecretString::from(new);
            fresh(&*latest);
        }
    };
    let what = "reading the registration";
    let (status, body) = exchange(
        Provider::Rfc7592,
        with_auth(Method::GET, uri, &bearer(&latest))?,
        uri,
        what,
    )
    .await?;
    if token_refused(status) {
        return Err(IssueError::TokenRefused {
            problem: format!("{what} answered HTTP {status}"),
        });
    }
    let mut metadata = sort(Provider::Rfc7592, uri, what, status, body)?;
    take_token(&metadata, &mut latest);
    let Some(object) = metadata.as_object_mut() else {
        return Err(Error::Target {
            target: target(),
            problem: "the registration is not a JSON object".into(),
            system: System::Provider,
            cause: Cause::Protocol,
        }
        .into());
    };
    // RFC 7592 §2.2: these are the server's, not the client's to send back.
    for field in [
        "registration_access_token",
        "registration_client_uri",
        "client_secret_expires_at",
        "client_id_issued_at",
        "client_secret",
    ] {
        object.remove(field);
    }
    object.insert("client_id".into(), Value::String(client.client_id.clone()));
    // RFC 7591 makes this a string; some servers (glewlwyd) list it as an array
    // on read, and a server that gets none may make the client public.
    let method = match client.auth_method {
        AuthMethod::Basic => "client_secret_basic",
        AuthMethod::Post => "client_secret_post",
    };
    object.insert(
        "token_endpoint_auth_method".into(),
        Value::String(method.into()),
    );
    let what = "updating the registration";
    let (status, body) = exchange(
        Provider::Rfc7592,
        with_auth(Method::PUT, uri, &bearer(&latest))?.json(&metadata),
        uri,
        what,
    )
    .await?;
    if token_refused(status) {
        return Err(IssueError::TokenRefused {
            problem: format!("{what} answered HTTP {status}"),
        });
    }
    let updated = sort(Provider::Rfc7592, uri, what, status, body)?;
    take_token(&updated, &mut latest);
    let secret = updated["client_secret"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| Error::Target {
        target: target(),
        problem: "the update answered without a client_secret; this server does not issue new secrets through RFC 7592".into(),
        system: System::Provider,
 cause: Cause::Protocol,
    })?;
    if secret == client.client_secret.expose_secret() {
        return Err(Error::Target {
            target: target(),
            problem: "the server kept the client secret on update; it does not rotate secrets through RFC 7592 (configure it to issue a new secret on PUT)".into(),
            system: System::Provider,
 cause: Cause::Mismatch,
        }
        .into());
    }
    let mut fields = Vec::new();
    if let Some(new_uri) = updated["registration_client_uri"]
        .as_str()
        .filter(|u| *u != uri)
    {
        fields.push(("registration_client_uri", Value::String(new_uri.to_owned())));
    }
    let changed = client
        .registration_access_token
        .as_ref()
        .is_none_or(|stored| stored.expose_secret() != latest.expose_secret());
    Ok(Issued {
        secret: SecretString::from(secret),
        fields,
        registration_access_token: changed.then_some(latest),
    })
}

/// What an RFC 7592 read says of a client.
pub struct Registered {
    /// The client secret the server holds, if the read shows it.
    pub secret: Option<SecretString>,
    /// A new registration access token, if the server replaced it on the read.
    pub token: Option<SecretString>,
}

/// RFC 7592 read with `token`; `None` if the server refused the token.
pub async fn rfc7592_read(
    client: &Client,
    token: &SecretString,
) -> Result<Option<Registered>, Error> {
    let uri = registration_uri(client)?;
    let what = "reading the registration";
    let auth = Management::bearer(token.expose_secret());
    let (status, body) = exchange(
        Provider::Rfc7592,
        with_auth(Method::GET, uri, &auth)?,
        uri,
        what,
    )
    .await?;
    if token_refused(status) {
        return Ok(None);
    }
    let read = sort(Provider::Rfc7592, uri, what, status, body)?;
    let text = |name: &str| {
        read[name]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(SecretString::from)
    };
    Ok(Some(Registered {
        secret: text("client_secret"),
        token: text("registration_access_token")
            .filter(|t| t.expose_secret() != token.expose_secret()),
    }))
}

/// Entra ID: remove what an earlier, unrecorded attempt for this version left,
/// then `addPassword` (the provider makes the secret).
pub async fn entra_issue(
    client: &Client,
    auth: &Management,
    version: &str,
) -> Result<Issued, Error> {
    let (graph, app) = entra_app(client, auth)?;
    let display_name = format!("rotor {version}");
    for stale in &entra_passwords(client, auth).await? {
        if stale["displayName"] == display_name.as_str()
            && let Some(key) = stale["keyId"].as_str()
        {
            warn!(
                key_id = key,
                "removing a password left by an earlier attempt at this version"
            );
            entra_remove(client, auth, key).await?;
        }
    }
    let url = endpoint(&graph, &["v1.0", "applications", &app, "addPassword"])?;
    let body = json!({"passwordCredential": {"displayName": display_name}});
    let added = call(
        Provider::Entra,
        with_auth(Method::POST, &url, auth)?.json(&body),
        &url,
        "adding a password",
    )
    .await?;
    let (Some(secret), Some(key)) = (added["secretText"].as_str(), added["keyId"].as_str()) else {
        return Err(Error::Target {
            target: format!("entra at {}", display_url(&url)),
            problem: "addPassword answered without secretText and keyId".into(),
            system: System::Provider,
            cause: Cause::Protocol,
        });
    };
    // The password this one replaces, so that it can still be retired one
    // rotation later (REVOKE_PREVIOUS=next-rotation), after its own value is gone.
    let replaced = client.field("key_id").map_or(Value::Null, Value::from);
    Ok(Issued {
        secret: SecretString::from(secret),
        fields: vec![
            ("key_id", Value::String(key.to_owned())),
            ("previous_key_id", replaced),
        ],
        registration_access_token: None,
    })
}

fn entra_app(client: &Client, auth: &Management) -> Result<(String, String), Error> {
    let graph = auth.base()?.to_owned();
    let app = client
        .require("application_object_id")
        .map_err(|p| Error::Target {
            target: "entra".into(),
            problem: p,
            system: System::Provider,
            cause: Cause::Rejected,
        })?
        .to_owned();
    Ok((graph, app))
}

/// The application's password credentials, as Graph lists them.
async fn entra_passwords(client: &Client, auth: &Management) -> Result<Vec<Value>, Error> {
    let (graph, app) = entra_app(client, auth)?;
    let url = format!(
        "{}?$select=passwordCredentials",
        endpoint(&graph, &["v1.0", "applications", &app])?
    );
    let listed = call(
        Provider::Entra,
        with_auth(Method::GET, &url, auth)?,
        &url,
        "listing passwords",
    )
    .await?;
    Ok(listed["passwordCredentials"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

async fn entra_remove(client: &Client, auth: &Management, key: &str) -> Result<(), Error> {
    let (graph, app) = entra_app(client, auth)?;
    let url = endpoint(&graph, &["v1.0", "applications", &app, "removePassword"])?;
    call(
        Provider::Entra,
        with_auth(Method::POST, &url, auth)?.json(&json!({"keyId": key})),
        &url,
        "removing a password",
    )
    .await?;
    Ok(())
}

/// Installs a secret rotor made (setSecret); idempotent.
pub async fn install(client: &Client, pending: &Client, auth: &Management) -> Result<(), Error> {
    let bad = |p: String| Error::Target {
        target: client.provider.to_string(),
        problem: p,
        system: System::Provider,
        cause: Cause::Rejected,
    };
    match client.provider {
        Provider::Keycloak => {
            let base = auth.base()?;
            let realm = client.require("realm").map_err(bad)?;
            let id = client.require("client_uuid").map_err(bad)?;
            let url = endpoint(base, &["admin", "realms", realm, "clients", id])?;
            let mut representation = call(
                Provider::Keycloak,
                with_auth(Method::GET, &url, auth)?,
                &url,
                "reading the client",
            )
            .await?;
            let Some(fields) = representation.as_object_mut() else {
                return Err(Error::Target {
                    target: format!("keycloak at {}", display_url(&url)),
                    problem: "reading the client answered HTTP 200 with a body that is not a JSON object (a ClientRepresentation); nothing was changed. Check that keycloak_url is Keycloak's base URL and that nothing between rotor and Keycloak rewrites its answers".into(),
                    system: System::Provider,
 cause: Cause::Protocol,
                });
            };
            if fields.get("secret").and_then(Value::as_str)
                == Some(pending.client_secret.expose_secret())
            {
                return Ok(());
            }
            fields.insert(
                "secret".into(),
                Value::String(pending.client_secret.expose_secret().to_owned()),
            );
            call(
                Provider::Keycloak,
                with_auth(Method::PUT, &url, auth)?.json(&representation),
                &url,
                "setting the client secret",
            )
            .await?;
        }
        Provider::Auth0 => {
            let domain = auth.base()?;
            let url = endpoint(domain, &["api", "v2", "clients", &client.client_id])?;
            let body = json!({"client_secret": pending.client_secret.expose_secret()});
            call(
                Provider::Auth0,
                with_auth(Method::PATCH, &url, auth)?.json(&body),
                &url,
                "setting the client secret",
            )
            .await?;
        }
        Provider::Okta => {
            let url = okta_secrets_url(client, auth)?;
            let listed = call(
                Provider::Okta,
                with_auth(Method::GET, &url, auth)?,
                &url,
                "listing client secrets",
            )
            .await?;
            let secrets = listed.as_array().cloned().unwrap_or_default();
            let value_of = |s: &Value| s["client_secret"].as_str().map(str::to_owned);
            if secrets
                .iter()
                .any(|s| value_of(s).as_deref() == Some(pending.client_secret.expose_secret()))
            {
                return Ok(());
            }
            // Okta keeps at most two: make room, never touching the current one.
            if secrets.len() >= 2 {
                okta_require_current(client, &secrets)?;
                for stale in secrets.iter().filter(|s| {
                    value_of(s).as_deref() != Some(client.client_secret.expose_secret())
                }) {
                    okta_delete(client, auth, stale).await?;
                }
            }
            let body =
                json!({"client_secret": pending.client_secret.expose_secret(), "status": "ACTIVE"});
            call(
                Provider::Okta,
                with_auth(Method::POST, &url, auth)?.json(&body),
                &url,
                "adding a client secret",
            )
            .await?;
        }
        Provider::Rfc7592 | Provider::Entra => {}
    }
    Ok(())
}

fn okta_secrets_url(client: &Client, auth: &Management) -> Result<String, Error> {
    let domain = auth.base()?;
    // The path names the application's id, which is the client_id unless the
    // app was created with a client_id of its own.
    let app = client.field("okta_app_id").unwrap_or(&client.client_id);
    endpoint(
        domain,
        &["api", "v1", "apps", app, "credentials", "secrets"],
    )
}

/// Refuses to delete anything from a listing that does not show the current
/// secret: deleting "everything else" would then lock the client out.
fn okta_require_current(client: &Client, listed: &[Value]) -> Result<(), Error> {
    let current = client.client_secret.expose_secret();
    if listed
        .iter()
        .any(|s| s["client_secret"].as_str() == Some(current))
    {
        return Ok(());
    }
    Err(Error::Target {
        target: format!("okta app {}", client.client_id),
        problem: "Okta lists no client secret equal to AWSCURRENT's, so rotor cannot tell which secrets are safe to retire; it deleted nothing. Check that AWSCURRENT holds a secret the app has".into(),
        system: System::Provider,
 cause: Cause::Mismatch,
    })
}

async fn okta_delete(client: &Client, auth: &Management, secret: &Value) -> Result<(), Error> {
    let Some(id) = secret["id"].as_str() else {
        return Ok(());
    };
    let base = okta_secrets_url(client, auth)?;
    if secret["status"] == "ACTIVE" {
        let url = endpoint(&base, &[id, "lifecycle", "deactivate"])?;
        call(
            Provider::Okta,
            with_auth(Method::POST, &url, auth)?,
            &url,
            "deactivating a client secret",
        )
        .await?;
    }
    let url = endpoint(&base, &[id])?;
    call(
        Provider::Okta,
        with_auth(Method::DELETE, &url, auth)?,
        &url,
        "deleting a client secret",
    )
    .await?;
    // Okta's id of the secret (`ocs…`), not its value.
    info!(okta_secret_id = id, "retired an Okta client secret");
    Ok(())
}

/// After promotion, retires the secrets the provider still holds besides the
/// current one (`keep_previous` keeps the previous one too, until the next
/// rotation: a grace period of one rotation interval).
pub async fn retire(
    current: &Client,
    previous: Option<&Client>,
    auth: &Management,
    keep_previous: bool,
) -> Result<(), Error> {
    let keep = |value: Option<&str>, key: Option<&str>| {
        let matches = |c: &Client| {
            value == Some(c.client_secret.expose_secret())
                || (key.is_some() && key == c.field("key_id"))
        };
        matches(current) || (keep_previous && previous.is_some_and(matches))
    };
    match current.provider {
        Provider::Okta => {
            let url = okta_secrets_url(current, auth)?;
            let listed = call(
                Provider::Okta,
                with_auth(Method::GET, &url, auth)?,
                &url,
                "listing client secrets",
            )
            .await?;
            let listed = listed.as_array().cloned().unwrap_or_default();
            okta_require_current(current, &listed)?;
            for secret in &listed {
                if !keep(secret["client_secret"].as_str(), None) {
                    okta_delete(current, auth, secret).await?;
                }
            }
        }
        Provider::Entra => {
            for credential in &entra_passwords(current, auth).await? {
                let key = credential["keyId"].as_str();
                // Only passwords rotor made, or ones the previous versions used.
                let recorded = |c: &Client| {
                    key.is_some() && (key == c.field("key_id") || key == c.field("previous_key_id"))
                };
                let ours = credential["displayName"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("rotor "))
                    || previous.is_some_and(recorded)
                    || (key.is_some() && key == current.field("previous_key_id"));
                if let Some(key) = key
                    && ours
                    && !keep(None, Some(key))
                {
                    entra_remove(current, auth, key).await?;
                }
            }
        }
        Provider::Rfc7592 | Provider::Keycloak | Provider::Auth0 => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn okta(domain: Option<&str>) -> Client {
        let mut value = json!({
            "provider": "okta", "client_id": "c", "client_secret": "s3cr3t",
            "token_endpoint": "https://example.okta.com/oauth2/v1/token",
            "management_secret_arn": "okta-admin",
        });
        if let Some(domain) = domain {
            value["okta_domain"] = json!(domain);
        }
        Client::parse(&SecretString::from(value.to_string())).unwrap()
    }

    #[test]
    fn the_base_url_lies_under_the_management_secrets_endpoint() {
        let endpoint = Some("https://example.okta.com");
        for (domain, base) in [
            (None, "https://example.okta.com/"),
            (
                Some("https://example.okta.com"),
                "https://example.okta.com/",
            ),
            (
                Some("https://EXAMPLE.okta.com:443/"),
                "https://example.okta.com/",
            ),
            (
                Some("https://example.okta.com/org"),
                "https://example.okta.com/org",
            ),
        ] {
            let bound = bound_base("app", "okta-admin", &okta(domain), endpoint);
            assert_eq!(bound.unwrap(), base, "{domain:?}");
        }
        for domain in [
            "https://evil.example",
            "https://example.okta.com@evil.example/",
            "https://example.okta.com.evil.example",
            "https://example.okta.com:8443",
            "http://127.0.0.1:9",
            "https://user:pw@example.okta.com",
            "https://example.okta.com/?next=x",
            "not a url",
        ] {
            let error = bound_base("app", "okta-admin", &okta(Some(domain)), endpoint).unwrap_err();
            assert_eq!(
                error.error_type(),
                "NotRetryable.InvalidSettings",
                "{domain}"
            );
            let text = error.to_string();
            assert!(
                text.contains("okta_domain") && !text.contains("pw"),
                "{text}"
            );
        }
        // Under a path: only whole segments below it.
        let under = Some("https://idp.example/auth");
        assert!(bound_base("app", "m", &okta(Some("https://idp.example/auth/x")), under).is_ok());
        assert!(bound_base("app", "m", &okta(Some("https://idp.example/authx")), under).is_err());
    }

    #[test]
    fn a_management_secret_without_an_endpoint_is_refused_with_the_fix() {
        for endpoint in [
            None,
            Some(""),
            Some("http://idp.example"),
            Some("https://u@idp"),
        ] {
            let error = bound_base("app", "okta-admin", &okta(None), endpoint).unwrap_err();
            assert_eq!(error.error_type(), "NotRetryable.InvalidSecretValue");
            let text = error.to_string();
            assert!(
                text.contains("okta-admin") && text.contains("endpoint"),
                "{text}"
            );
        }
        let missing = bound_base("app", "okta-admin", &okta(None), None).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains(r#"add "endpoint": "<the provider base URL>""#),
            "{missing}"
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
