//! Starting glewlwyd: its database, configuration and OIDC plugin, the
//! admin API key, and waiting until it answers over HTTPS.

use super::*;

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
}

/// The OpenID Connect plugin's settings: HS256-signed tokens, only the
/// `client_credentials` grant, open registration with management.
pub(super) fn plugin_parameters(issuer: &str) -> Value {
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
pub(super) fn server_config(
    port: u16,
    base: &str,
    database: &Path,
    cert: &Path,
    key: &Path,
    no_modules: &Path,
) -> anyhow::Result<String> {
    let q = |path: &Path| -> anyhow::Result<String> { Ok(config_quote(path_str(path)?)) };
    Ok(format!(
        "# written by rotor's OAuth test bed (tools/testbed/src/oauth_server/)\n\
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
pub(super) fn api_key_hash(key: &SecretString) -> String {
    let digest = Sha512::digest(key.expose_secret().as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
    format!("{{SHA512}}{}", encoded.replace('/', "_").replace('+', "-"))
}

/// glewlwyd's database as its init script makes it, without the script's users
/// (`admin`, password `password`). Made once per process by the SQLite CLI in a
/// temp dir that is removed at once; kept in memory.
pub(super) fn database_template() -> anyhow::Result<Arc<Vec<u8>>> {
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
pub(super) fn run_sqlite(database: &Path, sql: &str) -> anyhow::Result<()> {
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
pub(super) fn wait_ready(
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
pub(super) fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A libconfig string literal.
pub(super) fn config_quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An SQL string literal.
pub(super) fn sql_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
