//! oauth-rotation in the demo: a client at a local glewlwyd over HTTPS.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use rotor_core::labels::AWSCURRENT;
use rotor_core::store::{RotationService, VersionSelector};
use rotor_core::{AwsStore, ExposeSecret, SecretStore, SecretString};
use serde_json::Value;

use rotor_testbed::moto::{Moto, local_env};

use super::Checked;
use super::metrics::Tally;
use super::report::summary;
use crate::function::{LocalFunction, function_binary};
use crate::rotate::{RotateOptions, rotate};

/// An OAuth client registered at a local glewlwyd, its secret rotated through
/// RFC 7592; then the new secret must get a token and the old one must not.
pub(super) async fn rotate_oauth_client(
    moto: &Moto,
    store: &AwsStore,
    out: &mut String,
    tally: &mut Tally,
) -> anyhow::Result<Checked> {
    use rotor_testbed::oauth_server::{AuthMethod, CLIENT_SCOPE, OAuthServer};
    let server = OAuthServer::start()?;
    let client = server
        .register_client(AuthMethod::ClientSecretBasic)
        .await?;
    let value = serde_json::json!({
        "provider": "rfc7592",
        "client_id": client.client_id,
        "client_secret": client.client_secret.expose_secret(),
        "token_endpoint": server.token_endpoint(),
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": CLIENT_SCOPE,
        "registration_client_uri": client.registration_client_uri,
        "registration_access_token": client.registration_access_token.expose_secret(),
    });
    store
        .create_secret(
            "demo/oauth-client",
            &SecretString::from(value.to_string()),
            &[],
        )
        .await?;
    let mut env = local_env(moto.endpoint());
    env.push((
        "SSL_CERT_FILE".into(),
        server.ca_path().display().to_string(),
    ));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
    let function = LocalFunction::start(&function_binary("oauth-rotation"), &env).await?;
    let _ = writeln!(
        out,
        "\noauth-rotation (cold start {:.1} ms)\n  demo/oauth-client (RFC 7592 at glewlwyd on 127.0.0.1, HTTPS)",
        function.cold_start().unwrap_or_default().as_secs_f64() * 1000.0
    );
    let options = RotateOptions {
        secret_id: "demo/oauth-client".into(),
        token: None,
        test_only: false,
        step_timeout: Duration::from_secs(60),
    };
    let run = rotate(store, &function, &options).await?;
    out.push_str(&summary(&run));
    let current = store
        .get_value("demo/oauth-client", VersionSelector::Label(AWSCURRENT))
        .await?
        .context("no AWSCURRENT")?;
    let parsed: Value = serde_json::from_str(current.value.expose_secret())?;
    let new_secret = SecretString::from(parsed["client_secret"].as_str().unwrap_or_default());
    let new_ok = server
        .client_credentials(
            &client.client_id,
            &new_secret,
            AuthMethod::ClientSecretBasic,
            None,
        )
        .await
        .is_ok();
    let old_ok = server
        .client_credentials(
            &client.client_id,
            &client.client_secret,
            AuthMethod::ClientSecretBasic,
            None,
        )
        .await
        .is_ok();
    let verdict = |ok: bool| if ok { "gets a token" } else { "refused" };
    let _ = writeln!(
        out,
        "    checked at the token endpoint: new secret {}, old secret {}",
        verdict(new_ok),
        verdict(old_ok)
    );
    let logs = function.output();
    tally.add("oauth-rotation", &logs);
    Ok(Checked {
        completed: usize::from(run.succeeded() && new_ok && !old_ok),
        total: 1,
        leaked: [
            &new_secret,
            &client.client_secret,
            &client.registration_access_token,
        ]
        .iter()
        .any(|s| logs.contains(s.expose_secret())),
    })
}
