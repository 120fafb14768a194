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

mod api;
mod auth0;
pub mod entra;
mod keycloak;
mod management;
mod okta;
pub mod rfc7592;

use rotor_core::{
    Cause, Error, ExposeSecret, SecretStore, SecretString, StepContext, TargetError, TargetKind,
};
use serde_json::Value;

pub(crate) use api::failure;
pub use management::{Bound, ENDPOINT_FIELD, Management, base_field, bind, management};

use crate::secret::{ClientSecret, Provider, SecretError};

/// A new secret made by the provider, with the fields that go with it.
pub struct Issued {
    /// The new client secret.
    pub secret: SecretString,
    /// Plain fields to store with it (a key id).
    pub fields: Vec<(&'static str, Value)>,
    /// A new registration access token, when the server rotated it too.
    pub registration_access_token: Option<SecretString>,
}

/// Installs a secret rotor made (setSecret); idempotent. Where the provider
/// holds too many secrets to add one (Okta), only the secret of this one's
/// AWSPREVIOUS version may make room.
pub async fn install<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    client: &ClientSecret,
    pending: &ClientSecret,
    auth: &Management,
) -> Result<(), Error> {
    match client.provider {
        Provider::Keycloak => keycloak::install(client, pending, auth).await,
        Provider::Auth0 => auth0::install(client, pending, auth).await,
        Provider::Okta => okta::install(ctx, client, pending, auth).await,
        Provider::Rfc7592 | Provider::Entra => Ok(()),
    }
}

/// Which of the provider's secrets finishSecret keeps: the current one, and
/// with `keep_previous` the previous one too. Only the secret's own
/// credentials are ever retired: those its versions record (a value, a key
/// id) or that carry its identity ([`entra::display_name`]); an application
/// may serve several Secrets Manager secrets, each with its own credential.
struct Keep<'a> {
    /// The ARN of the secret being rotated.
    secret: &'a str,
    current: &'a ClientSecret,
    previous: Option<&'a ClientSecret>,
    keep_previous: bool,
}

impl Keep<'_> {
    /// Whether the secret with this value (Okta) or key id (Entra) is kept.
    fn keeps(&self, value: Option<&str>, key: Option<&str>) -> bool {
        let matches = |c: &ClientSecret| {
            value == Some(c.client_secret.expose_secret())
                || (key.is_some() && key == c.field("key_id"))
        };
        matches(self.current) || (self.keep_previous && self.previous.is_some_and(matches))
    }
}

/// After promotion, retires the secret's own credentials that the provider
/// still holds besides the current one (`keep_previous` keeps the previous
/// one too, until the next rotation: a grace period of one rotation
/// interval). Credentials the secret neither made nor recorded are left alone.
pub async fn retire(
    secret: &str,
    current: &ClientSecret,
    previous: Option<&ClientSecret>,
    auth: &Management,
    keep_previous: bool,
) -> Result<(), Error> {
    let keep = Keep {
        secret,
        current,
        previous,
        keep_previous,
    };
    match current.provider {
        Provider::Okta => okta::retire(&keep, auth).await,
        Provider::Entra => entra::retire(&keep, auth).await,
        Provider::Rfc7592 | Provider::Keycloak | Provider::Auth0 => Ok(()),
    }
}

/// `error`, from reading an AWSPREVIOUS that does not parse, with what it
/// stopped (`stopped`: "it retired no client secret"). Which of the
/// provider's secrets are this secret's own is read from its versions: one
/// it cannot read is never taken for one it does not have, which would
/// retire a secret the deployer keeps (REVOKE_PREVIOUS=next-rotation) or
/// miss one it retires.
pub(crate) fn previous_unreadable(error: Error, stopped: &str) -> Error {
    let Error::InvalidSecretValue { secret, label, .. } = &error else {
        return error;
    };
    let put_back = format!(
        "Put {label} back on the version that holds the previous client secret (aws secretsmanager update-secret-version-stage --secret-id {secret} --version-stage {label} --move-to-version-id <that version> --remove-from-version-id <the version that has it now>), then retry"
    );
    error.map_problem(|problem| {
        format!(
            "{problem}. rotor tells this secret's client secrets at the provider from others by what its versions hold, so {stopped}. {put_back}"
        )
    })
}

/// The error for a field the provider's calls need that the client's secret
/// lacks (`client` is the secret the field was looked up in).
fn lacking(client: &ClientSecret) -> impl Fn(SecretError) -> Error + '_ {
    |problem| {
        TargetError::new(Cause::Rejected, problem.to_string())
            .at(TargetKind::Provider, client.provider.to_string())
    }
}
