//! RFC 7592 dynamic client registration management: the server makes the new
//! secret when the client's registration is PUT back, and may replace the
//! registration access token on any call.

use reqwest::Method;
use rotor_core::http::display_url;
use rotor_core::{Cause, Error, ExposeSecret, SecretString, TargetError, TargetKind};
use serde_json::Value;

use super::api::{Api, Quote::CodeOnly, sort};
use super::{Issued, Management};
use crate::client::{AuthMethod, Client, Provider};

/// Whether an RFC 7592 answer refused the registration access token.
fn token_refused(status: u16) -> bool {
    matches!(status, 401 | 403)
}

/// Why [`issue`] failed.
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
        .map_err(|problem| {
            TargetError::new(Cause::Rejected, problem.to_string())
                .at(TargetKind::Provider, "rfc7592")
        })
}

/// RFC 7592: read the client, PUT it back without its secret; the server
/// answers with a new secret (and perhaps a new registration access token).
///
/// `token` is the freshest registration access token known for the client.
/// The server may replace it on any use (RFC 7592 §2.1, §2.2), and the old one
/// then stops working: every token the server hands out is passed to `fresh`
/// at once, and the PUT uses the one the read returned.
pub async fn issue(
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
    let (status, body) = Api::new(Provider::Rfc7592, &bearer(&latest))
        .exchange(Method::GET, uri, None, what)
        .await?;
    if token_refused(status) {
        return Err(IssueError::TokenRefused {
            problem: format!("{what} answered HTTP {status}"),
        });
    }
    let mut metadata = sort(Provider::Rfc7592, uri, what, status, body, CodeOnly)?;
    take_token(&metadata, &mut latest);
    let Some(object) = metadata.as_object_mut() else {
        return Err(
            TargetError::new(Cause::Protocol, "the registration is not a JSON object")
                .at(TargetKind::Provider, target())
                .into(),
        );
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
    let (status, body) = Api::new(Provider::Rfc7592, &bearer(&latest))
        .exchange(Method::PUT, uri, Some(&metadata), what)
        .await?;
    if token_refused(status) {
        return Err(IssueError::TokenRefused {
            problem: format!("{what} answered HTTP {status}"),
        });
    }
    let updated = sort(Provider::Rfc7592, uri, what, status, body, CodeOnly)?;
    take_token(&updated, &mut latest);
    let secret = updated["client_secret"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| TargetError::new(Cause::Protocol, "the update answered without a client_secret; this server does not issue new secrets through RFC 7592").at(TargetKind::Provider, target()))?;
    if secret == client.client_secret.expose_secret() {
        return Err(TargetError::new(Cause::Mismatch, "the server kept the client secret on update; it does not rotate secrets through RFC 7592 (configure it to issue a new secret on PUT)").at(TargetKind::Provider, target())
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
pub async fn read(client: &Client, token: &SecretString) -> Result<Option<Registered>, Error> {
    let uri = registration_uri(client)?;
    let what = "reading the registration";
    let auth = Management::bearer(token.expose_secret());
    let api = Api::new(Provider::Rfc7592, &auth);
    let (status, body) = api.exchange(Method::GET, uri, None, what).await?;
    if token_refused(status) {
        return Ok(None);
    }
    let read = sort(Provider::Rfc7592, uri, what, status, body, CodeOnly)?;
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
