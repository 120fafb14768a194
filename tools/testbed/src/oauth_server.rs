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
    /// Starts a server and waits until its discovery document answers over
    /// HTTPS. It blocks (no async runtime needed, and none disturbed).
    pub fn start() -> anyhow::Result<OAuthServer> {
        retry_on_port_clash("a test OAuth server (glewlwyd)", Self::try_start)
    }

    fn try_start() -> anyhow::Result<OAuthServer> {
        for path in [GLEWLWYD, SQLITE3, INIT_SQL] {
            if !Path::new(path).exists() {
                bail!("{path} is missing: install glewlwyd (scripts/setup.sh does)");
            }
        }
        let template = database_template()?;
        let port = free_port()?;
        let dir = make_dir("oauth", None)?;
        // From here on the wrapper owns the dir: dropping `process` removes it.
        let log = dir.join("server.log");
        let config = dir.join("glewlwyd.conf");
        let mut process = ServerProcess::prepare(
            dir.clone(),
            log,
            &ServerCommand {
                name: "rotor-oauth-server",
                program: Path::new(GLEWLWYD),
                args: &[format!("--config-file={}", path_str(&config)?).into()],
                // Its state is a SQLite file that goes with its temp dir.
                stop_signal: "KILL",
                user: None,
                scrub_env: &[],
                // glewlwyd logs each endpoint as it adds it and again as it
                // removes it, which would bury the error of a failed start.
                log_noise: &["INFO: Add endpoint ", "INFO: Remove endpoint "],
            },
        )?;

        let base = format!("https://{HOST}:{port}");
        let issuer = format!("{base}/api/{PLUGIN}");
        let database = dir.join("glewlwyd.db");
        write_private(&database, template.as_slice(), None)?;
        let api_key = SecretString::from(random_hex());
        run_sqlite(
            &database,
            &format!(
                "INSERT INTO g_plugin_module_instance (gpmi_module, gpmi_name, gpmi_display_name, gpmi_parameters, gpmi_enabled) \
                 VALUES ('oidc', {}, 'rotor test bed', {}, 1);\n\
                 INSERT INTO g_api_key (gak_token_hash, gak_username, gak_issued_for) \
                 VALUES ({}, 'rotor-test-bed', 'rotor test bed');\n",
                sql_quote(PLUGIN),
                sql_quote(&plugin_parameters(&issuer).to_string()),
                sql_quote(&api_key_hash(&api_key)),
            ),
        )?;

        let tls_files = TlsFiles::in_dir(&dir);
        let ca = tls_files.write(ServerCert::Valid, None)?;

        let no_modules = dir.join("no-modules");
        fs::create_dir(&no_modules).context("creating an empty module dir")?;
        write_private(
            &config,
            server_config(
                port,
                &base,
                &database,
                &tls_files.cert_path,
                &tls_files.key_path,
                &no_modules,
            )?,
            None,
        )?;

        rotor_core::http::use_ring();
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.ca_pem().as_bytes())
                .context("loading the test CA into reqwest")?])
            .https_only(true)
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            // No pooled connections: each test has its own Tokio runtime, and a
            // connection must not outlive the runtime that made it.
            .pool_max_idle_per_host(0)
            .build()
            .context("building the HTTPS client")?;

        process.go()?;
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        wait_ready(&mut process, &http, &discovery, &issuer)?;
        Ok(OAuthServer {
            process,
            port,
            ca,
            ca_path: tls_files.ca_path,
            api_key,
            http,
        })
    }

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

    /// The discovery document.
    pub async fn discovery(&self) -> anyhow::Result<Value> {
        let reply = self
            .send(self.http.get(self.discovery_url()), "discovery")
            .await?;
        if reply.status != 200 {
            bail!("discovery answered HTTP {}: {}", reply.status, reply.body);
        }
        reply.json()
    }

    /// Registers a confidential `client_credentials` client (RFC 7591) that
    /// authenticates with `auth_method`; glewlwyd issues its secret and a
    /// registration access token.
    pub async fn register_client(
        &self,
        auth_method: AuthMethod,
    ) -> anyhow::Result<RegisteredClient> {
        self.register_client_with(json!({
            "client_name": "rotor test client",
            "token_endpoint_auth_method": auth_method.as_str(),
            "grant_types": ["client_credentials"],
            "redirect_uris": [REDIRECT_URI],
        }))
        .await
    }

    /// Registers a client with these metadata, as they are.
    pub async fn register_client_with(&self, metadata: Value) -> anyhow::Result<RegisteredClient> {
        let request = self.http.post(self.registration_endpoint()).json(&metadata);
        let reply = self.send(request, "registration").await?;
        if reply.status != 200 && reply.status != 201 {
            // An error body has no secret in it.
            bail!(
                "registration answered HTTP {}: {}",
                reply.status,
                reply.body
            );
        }
        let mut metadata = match reply.json()? {
            Value::Object(map) => map,
            _ => bail!(
                "registration answered HTTP {} without a JSON object",
                reply.status
            ),
        };
        let mut take = |name: &str| -> anyhow::Result<String> {
            match metadata.remove(name) {
                Some(Value::String(value)) if !value.is_empty() => Ok(value),
                _ => bail!("the registration response has no string `{name}`"),
            }
        };
        let client_secret = SecretString::from(take("client_secret")?);
        let registration_access_token = SecretString::from(take("registration_access_token")?);
        let client_id = take("client_id")?;
        let registration_client_uri = take("registration_client_uri")?;
        let mut metadata = Value::Object(metadata);
        metadata["client_id"] = json!(client_id);
        metadata["registration_client_uri"] = json!(registration_client_uri);
        Ok(RegisteredClient {
            client_id,
            client_secret,
            registration_client_uri,
            registration_access_token,
            metadata,
        })
    }

    /// RFC 7592 read: GET `uri` with the registration access token.
    pub async fn registration_read(
        &self,
        uri: &str,
        registration_access_token: &SecretString,
    ) -> anyhow::Result<HttpReply> {
        let request = self
            .http
            .get(uri)
            .bearer_auth(registration_access_token.expose_secret());
        self.send(request, "RFC 7592 read").await
    }

    /// RFC 7592 update: PUT `metadata` to `uri` with the registration access
    /// token.
    pub async fn registration_update(
        &self,
        uri: &str,
        registration_access_token: &SecretString,
        metadata: &Value,
    ) -> anyhow::Result<HttpReply> {
        let request = self
            .http
            .put(uri)
            .bearer_auth(registration_access_token.expose_secret())
            .json(metadata);
        self.send(request, "RFC 7592 update").await
    }

    /// The `client_credentials` grant. glewlwyd requires a scope: `None` asks
    /// for [`CLIENT_SCOPE`], the scope every registered client has; `Some("")`
    /// sends no `scope` parameter at all (refused with a bare 403).
    pub async fn client_credentials(
        &self,
        client_id: &str,
        secret: &SecretString,
        auth_method: AuthMethod,
        scope: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let mut form = vec![("grant_type", "client_credentials")];
        let scope = scope.unwrap_or(CLIENT_SCOPE);
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let mut request = self.http.post(self.token_endpoint());
        match auth_method {
            AuthMethod::ClientSecretBasic => {
                request = request.basic_auth(client_id, Some(secret.expose_secret()));
            }
            AuthMethod::ClientSecretPost => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret.expose_secret()));
            }
        }
        let request = request
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_encode(&form));
        let reply = self
            .send(request, "token request")
            .await
            .map_err(|e| TokenError::Transport(format!("{e:#}")))?;
        let body: Option<Value> = serde_json::from_str(&reply.body).ok();
        let field = |name: &str| {
            body.as_ref()
                .and_then(|b| b.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if reply.status != 200 {
            return Err(TokenError::Refused {
                status: reply.status,
                error: field("error"),
                error_description: field("error_description"),
            });
        }
        let access_token = field("access_token")
            .ok_or_else(|| TokenError::Transport("HTTP 200 without an access_token".to_owned()))?;
        Ok(TokenResponse {
            access_token: SecretString::from(access_token),
            token_type: field("token_type").unwrap_or_default(),
            expires_in: body
                .as_ref()
                .and_then(|b| b.get("expires_in"))
                .and_then(Value::as_u64),
            scope: field("scope"),
        })
    }

    /// A client as glewlwyd's admin API shows it (`client_secret`,
    /// `token_endpoint_auth_method`, `scope`, `authorization_type`, ...).
    pub async fn admin_get_client(&self, client_id: &str) -> anyhow::Result<Value> {
        let url = format!("{}/api/client/{}", self.base_url(), path_encode(client_id));
        let reply = self
            .send(self.admin(self.http.get(url)), "admin read")
            .await?;
        if reply.status != 200 {
            bail!(
                "the admin API answered HTTP {} for client {client_id}",
                reply.status
            );
        }
        reply.json()
    }

    /// Replaces a client through the admin API. glewlwyd replaces every
    /// property: one left out is removed.
    pub async fn admin_put_client(&self, client_id: &str, client: &Value) -> anyhow::Result<()> {
        let url = format!("{}/api/client/{}", self.base_url(), path_encode(client_id));
        let request = self.admin(self.http.put(url)).json(client);
        let reply = self.send(request, "admin update").await?;
        if reply.status != 200 {
            bail!(
                "the admin API answered HTTP {} for client {client_id}: {}",
                reply.status,
                reply.body
            );
        }
        Ok(())
    }

    /// Sets a client's secret to a value of the caller's choosing (admin API),
    /// keeping everything else; a test that needs a known old secret uses it.
    pub async fn admin_set_secret(
        &self,
        client_id: &str,
        secret: &SecretString,
    ) -> anyhow::Result<()> {
        self.admin_edit_client(client_id, |client| {
            client.insert("client_secret".to_owned(), json!(secret.expose_secret()));
        })
        .await
    }

    /// Sets the authentication methods a client may use at the token endpoint
    /// (admin API; registration allows only one).
    pub async fn admin_set_auth_methods(
        &self,
        client_id: &str,
        methods: &[AuthMethod],
    ) -> anyhow::Result<()> {
        let methods: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
        self.admin_edit_client(client_id, |client| {
            client.insert("token_endpoint_auth_method".to_owned(), json!(methods));
        })
        .await
    }

    async fn admin_edit_client(
        &self,
        client_id: &str,
        edit: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> anyhow::Result<()> {
        let mut client = match self.admin_get_client(client_id).await? {
            Value::Object(map) => map,
            _ => bail!("the admin API's client {client_id} is not a JSON object"),
        };
        // `source` names the client module; the admin API adds it on reads.
        client.remove("source");
        edit(&mut client);
        self.admin_put_client(client_id, &Value::Object(client))
            .await
    }

    fn admin(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header(
            "Authorization",
            format!("token {}", self.api_key.expose_secret()),
        )
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<HttpReply> {
        let response = request
            .send()
            .await
            .with_context(|| format!("{what}: no answer from the test OAuth server"))?;
        let status = response.status().as_u16();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .with_context(|| format!("{what}: reading the answer"))?;
        Ok(HttpReply {
            status,
            www_authenticate,
            body,
        })
    }
}

/// The OpenID Connect plugin's settings: HS256-signed tokens, only the
/// `client_credentials` grant, open registration with management.
fn plugin_parameters(issuer: &str) -> Value {
    json!({
        "iss": issuer,
        "jwt-type": "sha",
        "jwt-key-size": "256",
        "key": random_hex(),
        "access-token-duration": 3600,
        "refresh-token-duration": 1209600,
        "code-duration": 600,
        "allow-non-oidc": true,
        "auth-type-client-enabled": true,
        "auth-type-code-enabled": false,
        "auth-type-token-enabled": false,
        "auth-type-none-enabled": false,
        "auth-type-password-enabled": false,
        "auth-type-refresh-enabled": false,
        "auth-type-device-enabled": false,
        "register-client-allowed": true,
        "register-client-credentials-scope": [CLIENT_SCOPE],
        "register-client-management-allowed": true,
    })
}

/// glewlwyd's configuration (libconfig syntax): every listener on 127.0.0.1,
/// HTTPS only, admin API by API key only, no static files, no metrics.
fn server_config(
    port: u16,
    base: &str,
    database: &Path,
    cert: &Path,
    key: &Path,
    no_modules: &Path,
) -> anyhow::Result<String> {
    let q = |path: &Path| -> anyhow::Result<String> { Ok(config_quote(path_str(path)?)) };
    Ok(format!(
        "# written by rotor's OAuth test bed (tools/rotor/src/oauth_server.rs)\n\
         port={port}\n\
         bind_address=\"{HOST}\"\n\
         external_url={base}\n\
         api_prefix=\"api\"\n\
         log_mode=\"console\"\n\
         log_level=\"INFO\"\n\
         cookie_domain=\"{HOST}\"\n\
         cookie_secure=1\n\
         admin_session_authentication=\"api_key\"\n\
         login_api_enabled=false\n\
         metrics_endpoint=false\n\
         user_module_path=\"{MODULE_DIR}/user\"\n\
         user_middleware_module_path={no_modules}\n\
         client_module_path=\"{MODULE_DIR}/client\"\n\
         user_auth_scheme_module_path={no_modules}\n\
         plugin_module_path=\"{MODULE_DIR}/plugin\"\n\
         hash_algorithm=\"SHA512\"\n\
         use_secure_connection=true\n\
         secure_connection_key_file={key}\n\
         secure_connection_pem_file={cert}\n\
         database = {{ type = \"sqlite3\"; path = {database}; }};\n",
        base = config_quote(base),
        no_modules = q(no_modules)?,
        key = q(key)?,
        cert = q(cert)?,
        database = q(database)?,
    ))
}

/// How glewlwyd stores an API key: `{SHA512}` and the base64 SHA-512 digest,
/// with `/` and `+` replaced by `_` and `-`.
fn api_key_hash(key: &SecretString) -> String {
    let digest = Sha512::digest(key.expose_secret().as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
    format!("{{SHA512}}{}", encoded.replace('/', "_").replace('+', "-"))
}

/// glewlwyd's database as its init script makes it, without the script's users
/// (`admin`, password `password`). Made once per process by the SQLite CLI in a
/// temp dir that is removed at once; kept in memory.
fn database_template() -> anyhow::Result<Arc<Vec<u8>>> {
    static TEMPLATE: Mutex<Option<Arc<Vec<u8>>>> = Mutex::new(None);
    let mut template = TEMPLATE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(bytes) = template.as_ref() {
        return Ok(bytes.clone());
    }
    let init = fs::read_to_string(INIT_SQL)
        .with_context(|| format!("reading {INIT_SQL}: install glewlwyd (scripts/setup.sh does)"))?;
    let dir = make_dir("oauth-template", None)?;
    let database = dir.join("glewlwyd.db");
    let made = run_sqlite(
        &database,
        &format!(
            "BEGIN;\n{init}\n\
             DELETE FROM g_user_scope_user;\n\
             DELETE FROM g_user_password;\n\
             DELETE FROM g_user;\n\
             COMMIT;\n"
        ),
    )
    .and_then(|()| fs::read(&database).context("reading the template database"));
    let _ = fs::remove_dir_all(&dir);
    let bytes = Arc::new(made.context("initialising glewlwyd's SQLite database")?);
    *template = Some(bytes.clone());
    Ok(bytes)
}

/// Runs SQL with the SQLite CLI (stop at the first error), from stdin.
fn run_sqlite(database: &Path, sql: &str) -> anyhow::Result<()> {
    let mut command = Command::new(SQLITE3);
    command
        .arg("-bail")
        .arg("-batch")
        .arg(database)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (child, writer) = spawn_with_input(&mut command, SQLITE3, sql.to_owned())?;
    let output = child.wait_with_output().context("running sqlite3")?;
    let _ = writer.join();
    if !output.status.success() {
        bail!(
            "sqlite3 failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Waits until the discovery document answers 200 over HTTPS verified against
/// this server's CA, with this server's issuer. A TCP connection alone would
/// not do: glewlwyd logs "started" before it binds, and another process may
/// hold the port. The requests run on a runtime of their own, in a thread of
/// their own, so that this works inside or outside a Tokio runtime.
fn wait_ready(
    process: &mut ServerProcess,
    http: &reqwest::Client,
    discovery: &str,
    issuer: &str,
) -> anyhow::Result<()> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("building a Tokio runtime for the readiness probe")?;
                process.wait_until(&format!("answer {discovery}"), || {
                    runtime.block_on(async {
                        let probe = http
                            .get(discovery)
                            .timeout(Duration::from_secs(2))
                            .send()
                            .await;
                        if let Ok(response) = probe
                            && response.status().as_u16() == 200
                            && let Ok(document) = response.json::<Value>().await
                        {
                            if document["issuer"] == issuer {
                                return Ok(true);
                            }
                            bail!("{discovery} names another issuer: {}", document["issuer"]);
                        }
                        Ok(false)
                    })
                })
            })
            .join()
            .unwrap_or_else(|_| bail!("the readiness probe panicked"))
    })
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// 32 random hex digits (a v4 UUID: 122 bits from the OS RNG); glewlwyd's API
/// keys must be 32 characters long.
fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A libconfig string literal.
fn config_quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An SQL string literal.
fn sql_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `application/x-www-form-urlencoded`.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One URL path segment.
fn path_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
