//! RFC 7592 dynamic client registration management: the server makes the new
//! secret when the client's registration is PUT back, and may replace the
//! registration access token on any call.

use reqwest::Method;
use rotor_core::{Cause, Error, ExposeSecret, SecretString};
use serde_json::Value;

use super::api::{Api, Quote::CodeOnly, sort};
use super::{Issued, Management, lacking};
use crate::secret::{AuthMethod, ClientSecret, Provider};

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

/// What a read of the registration is called in messages.
const READ: &str = "reading the registration";

/// The client's RFC 7592 registration URI and registration access token.
pub fn registration(client: &ClientSecret) -> Result<(&str, &SecretString), Error> {
    client.registration().map_err(lacking(client))
}

/// A failure of the server at the registration URI `uri`.
fn failure(uri: &str, cause: Cause, problem: impl Into<String>) -> Error {
    super::failure(Provider::Rfc7592, uri, cause, problem)
}

/// One call at the registration URI `uri` with the registration access
/// token `token`: the body of a 2xx answer, [`IssueError::TokenRefused`]
/// when the server refused the token (401 or 403), or the failure the
/// status tells. The call carries the client secret either way.
async fn call(
    uri: &str,
    token: &SecretString,
    method: Method,
    body: Option<&Value>,
    what: &str,
) -> Result<Value, IssueError> {
    let auth = Management::bearer(token.expose_secret());
    let api = Api::new(Provider::Rfc7592, &auth);
    let (status, answer) = api.exchange(method, uri, body, what).await?;
    if matches!(status, 401 | 403) {
        let problem = format!("{what} answered HTTP {status}");
        return Err(IssueError::TokenRefused { problem });
    }
    Ok(sort(
        Provider::Rfc7592,
        uri,
        what,
        status,
        answer,
        CodeOnly,
    )?)
}

/// RFC 7592: read the client, PUT it back without its secret; the server
/// answers with a new secret (and perhaps a new registration access token).
///
/// `token` is the freshest registration access token known for the client.
/// The server may replace it on any use (RFC 7592 §2.1, §2.2), and the old one
/// then stops working: every token the server hands out is passed to `fresh`
/// at once, and the PUT uses the one the read returned.
pub async fn issue(
    client: &ClientSecret,
    token: &SecretString,
    mut fresh: impl FnMut(&SecretString),
) -> Result<Issued, IssueError> {
    let (uri, _) = registration(client)?;
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
    let mut metadata = call(uri, &latest, Method::GET, None, READ).await?;
    take_token(&metadata, &mut latest);
    let Some(object) = metadata.as_object_mut() else {
        let problem = "the registration is not a JSON object";
        return Err(failure(uri, Cause::Protocol, problem).into());
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
    let updated = call(uri, &latest, Method::PUT, Some(&metadata), what).await?;
    take_token(&updated, &mut latest);
    let Some(secret) = updated["client_secret"].as_str().filter(|s| !s.is_empty()) else {
        let problem = concat!(
            "the update answered without a client_secret; ",
            "this server does not issue new secrets through RFC 7592"
        );
        return Err(failure(uri, Cause::Protocol, problem).into());
    };
    if secret == client.client_secret.expose_secret() {
        let problem = concat!(
            "the server kept the client secret on update; it does not rotate secrets ",
            "through RFC 7592 (configure it to issue a new secret on PUT)"
        );
        return Err(failure(uri, Cause::Mismatch, problem).into());
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
pub async fn read(
    client: &ClientSecret,
    token: &SecretString,
) -> Result<Option<Registered>, Error> {
    let (uri, _) = registration(client)?;
    let read = match call(uri, token, Method::GET, None, READ).await {
        Ok(read) => read,
        Err(IssueError::TokenRefused { .. }) => return Ok(None),
        Err(IssueError::Other(error)) => return Err(error),
    };
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
