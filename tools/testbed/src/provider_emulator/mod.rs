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
//! the change was made, answer the next request with a given body or with an
//! error that quotes the request and the answer (a secret in it), and read
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
mod client;
mod codec;
mod entra;
mod keycloak;
mod knobs;
mod okta;
pub mod rfc7592;
mod routing;
mod state;
mod token;

pub use codec::form_encode;
use okta::okta_id;
pub use rfc7592::TokenRotation;

use codec::*;
use routing::*;
use state::*;

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
}
