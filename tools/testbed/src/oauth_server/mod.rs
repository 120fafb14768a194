//! A throwaway OAuth 2.0 authorization server for the tests of `oauth-rotation`:
//! Debian's glewlwyd 2.7 on 127.0.0.1 at a free port, over HTTPS with a
//! certificate from a [`TestCa`] made here, with its OpenID Connect plugin set up
//! for the `client_credentials` grant, dynamic client registration (RFC 7591,
//! open: no initial access token) and registration management (RFC 7592), and
//! `client_secret_basic` and `client_secret_post` at the token endpoint.
//!
//! A server never outlives its test process, the same way as the database
//! servers of [`crate::db`]: glewlwyd runs under a small `sh` wrapper whose
//! standard input is a pipe from this process. Dropping the handle closes the
//! pipe, and so does this process's exit, however it happens; the wrapper then
//! kills glewlwyd (SIGKILL: its state is a SQLite file that goes with its temp
//! dir), waits for it and removes the temp dir.
//!
//! Each server has its own temp dir under `std::env::temp_dir()` holding its
//! SQLite database, configuration, certificate and log. The database starts from
//! glewlwyd's own SQL init script (made once per process, in about 0.1 s, then
//! copied), without the script's `admin` user (password `password`), plus the
//! plugin instance and an admin API key made for this server. `start` returns
//! once the discovery document answers over HTTPS, verified against this
//! server's CA; that takes well under a second.
//!
//! The helpers speak plain HTTP(S) with `reqwest` (async: call them inside a
//! Tokio runtime; `start` itself blocks and works anywhere):
//! * [`OAuthServer::register_client`]: RFC 7591 registration;
//! * [`OAuthServer::registration_read`] and [`OAuthServer::registration_update`]:
//!   RFC 7592 GET and PUT, answered as they come ([`HttpReply`]);
//! * [`OAuthServer::client_credentials`]: the `client_credentials` grant;
//! * `admin_*`: glewlwyd's admin API, to set a client's secret to a known value
//!   or to allow it both authentication methods.
//!
//! What glewlwyd 2.7 does that a client of it must know (the tests in
//! `tools/testbed/tests/bed/oauth_bed.rs` pin each point):
//! * Registration requires `redirect_uris`, even for a `client_credentials`-only
//!   client, and ignores a requested `scope`: every registered client gets the
//!   scopes of the plugin's `register-client-credentials-scope`, here
//!   [`CLIENT_SCOPE`].
//! * The `client_credentials` grant requires a `scope`; without one, or with a
//!   wrong secret, an unknown client or an authentication method the client was
//!   not registered with, the token endpoint answers HTTP 403 with an empty body
//!   (not RFC 6749's 401 `invalid_client`). A scope the client lacks is a 400
//!   `{"error":"scope_invalid"}`.
//! * `client_secret_basic` credentials are taken as they are, not
//!   form-url-decoded as RFC 6749 §2.3.1 says: a secret with `+`, `%`, `:` or a
//!   space works only unencoded.
//! * An RFC 7592 PUT always issues a new `client_secret` (when the metadata keep
//!   a `client_secret_*` method); a `client_secret` in the request is ignored,
//!   even a wrong one. The `registration_access_token` stays the same, and the
//!   PUT's answer does not repeat it. The old secret is refused from the next
//!   request on.
//! * The RFC 7592 GET returns `token_endpoint_auth_method` as an array
//!   (`["client_secret_basic"]`), which the PUT refuses (400
//!   `invalid_client_metadata`): it must be a string there.
//! * A PUT without `token_endpoint_auth_method` makes the client public: its
//!   secret is gone and no new one is issued.
//! * A registration access token presented at another client's URI is disabled
//!   for good (401, then 401 at its own URI too).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

mod admin;
mod protocol;
mod startup;

use protocol::*;

use crate::ca::{HOST, ServerCert, TestCa, TlsFiles};
use crate::process::{
    ServerCommand, ServerProcess, free_port, make_dir, path_str, retry_on_port_clash,
    spawn_with_input, write_private,
};

/// glewlwyd's binary (Debian package `glewlwyd`).
pub const GLEWLWYD: &str = "/usr/bin/glewlwyd";
/// The SQLite CLI, which glewlwyd's package depends on.
pub const SQLITE3: &str = "/usr/bin/sqlite3";
/// glewlwyd's SQLite init script, as the package ships it for dbconfig-common
/// (the same script as `/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz`,
/// without its `DROP TABLE` lines).
pub const INIT_SQL: &str = "/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3";
/// Where glewlwyd's modules live.
const MODULE_DIR: &str = "/usr/lib/glewlwyd";

/// The name of the OpenID Connect plugin instance: its endpoints are under
/// `/api/oidc/`.
pub const PLUGIN: &str = "oidc";
/// The scope every registered client gets (glewlwyd ignores a requested one).
pub const CLIENT_SCOPE: &str = "rotor";
/// The redirect URI registrations carry, because glewlwyd requires one.
pub const REDIRECT_URI: &str = "https://rotor.invalid/callback";

/// The limit of every request the helpers send.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with the client id and secret as they are (glewlwyd does not
    /// form-url-decode them).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl AuthMethod {
    /// The RFC 7591 name: `client_secret_basic` or `client_secret_post`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
        }
    }
}

/// A client made by RFC 7591 registration. `metadata` is the registration
/// response without `client_secret` and `registration_access_token`, so that
/// `{:?}` shows no secret.
#[derive(Clone, Debug)]
pub struct RegisteredClient {
    pub client_id: String,
    pub client_secret: SecretString,
    pub registration_client_uri: String,
    pub registration_access_token: SecretString,
    pub metadata: Value,
}

/// A successful token response. The access token is a JWT signed with HS256.
#[derive(Clone, Debug)]
pub struct TokenResponse {
    pub access_token: SecretString,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

/// Why the token endpoint gave no token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The endpoint answered, with an error status. glewlwyd answers a wrong
    /// secret with 403 and an empty body, so `error` is often `None`.
    #[error(
        "the token endpoint refused: HTTP {status}, error {}",
        .error.as_deref().unwrap_or("(none)")
    )]
    Refused {
        status: u16,
        error: Option<String>,
        error_description: Option<String>,
    },
    /// No usable answer: the request failed, or a 200 without a token.
    #[error("token request failed: {0}")]
    Transport(String),
}

impl TokenError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            TokenError::Refused { status, .. } => Some(*status),
            TokenError::Transport(_) => None,
        }
    }

    /// The OAuth `error` code of a refusal, when the body had one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            TokenError::Refused { error, .. } => error.as_deref(),
            TokenError::Transport(_) => None,
        }
    }
}

/// An HTTP answer as it came: status, `WWW-Authenticate` and body. The body of
/// an RFC 7592 answer holds the client secret: do not print it.
#[derive(Clone)]
pub struct HttpReply {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: String,
}

impl std::fmt::Debug for HttpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpReply")
            .field("status", &self.status)
            .field("www_authenticate", &self.www_authenticate)
            .field(
                "body",
                &format_args!("({} bytes, not shown)", self.body.len()),
            )
            .finish()
    }
}

impl HttpReply {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("HTTP {}: the body is not JSON", self.status))
    }
}

/// A running glewlwyd. Dropping it stops the server and removes its temp dir.
pub struct OAuthServer {
    process: ServerProcess,
    port: u16,
    ca: TestCa,
    ca_path: PathBuf,
    api_key: SecretString,
    http: reqwest::Client,
}

impl OAuthServer {
    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:<port>`, glewlwyd's `external_url`.
    pub fn base_url(&self) -> String {
        format!("https://{HOST}:{}", self.port)
    }

    /// The OpenID Connect plugin's issuer: `https://127.0.0.1:<port>/api/oidc`.
    pub fn issuer(&self) -> String {
        format!("{}/api/{PLUGIN}", self.base_url())
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    /// `<issuer>/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer())
    }

    /// `<issuer>/register` (RFC 7591; open, no initial access token).
    pub fn registration_endpoint(&self) -> String {
        format!("{}/register", self.issuer())
    }

    /// The CA that issued the server's certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem()
    }

    /// The CA certificate's file (PEM), for a client's trust store.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// An HTTPS client that trusts this server's CA (and nothing else).
    pub fn http_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The server's temp dir (removed when the server stops).
    pub fn dir(&self) -> &Path {
        &self.process.dir
    }

    /// glewlwyd's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The last lines of glewlwyd's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

#[cfg(test)]
mod tests {
    use super::startup::api_key_hash;
    use super::*;

    #[test]
    fn form_encoding_escapes_what_it_must() {
        assert_eq!(
            form_encode(&[("a b", "p@ss:w+rd/%x y"), ("scope", "rotor")]),
            "a+b=p%40ss%3Aw%2Brd%2F%25x+y&scope=rotor"
        );
        assert_eq!(path_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn api_key_hash_is_glewlwyds_format() {
        // sha512("abc"), base64 with `/` and `+` swapped for `_` and `-`.
        let hash = api_key_hash(&SecretString::from("abc".to_owned()));
        assert_eq!(
            hash,
            "{SHA512}3a81oZNherrMQXNJriBBMRLm-k6JqX6iCp7u5ktV05ohkpkqJ0_BqDa6PCOj_uu9RU1EI2Q86A4qmslPpUyknw=="
        );
    }
}
