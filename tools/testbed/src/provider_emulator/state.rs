//! The emulator's data: the clients it holds, the management grants it
//! honours, the injected failures and the requests it has seen.

use super::*;

pub(super) struct Credential {
    pub(super) id: String,
    pub(super) value: SecretString,
    pub(super) active: bool,
    pub(super) display_name: Option<String>,
    pub(super) created: u64,
}

impl Credential {
    pub(super) fn new(id: String, value: &str, display_name: Option<String>) -> Self {
        Credential {
            id,
            value: SecretString::from(value),
            active: true,
            display_name,
            created: now(),
        }
    }
}

pub(super) struct App {
    pub(super) provider: Provider,
    pub(super) realm: String,
    pub(super) admin_id: String,
    pub(super) client_id: String,
    pub(super) method: Option<TokenAuth>,
    pub(super) scopes: Vec<String>,
    pub(super) credentials: Vec<Credential>,
    /// Keycloak's and Auth0's other client fields, as last written.
    pub(super) fields: Map<String, Value>,
    /// RFC 7592: the registration access token.
    pub(super) registration: Option<rfc7592::Registration>,
}

impl App {
    pub(super) fn accepts(&self, secret: &str) -> bool {
        self.credentials
            .iter()
            .any(|c| c.active && c.value.expose_secret() == secret)
    }
}

pub(super) struct Grant {
    pub(super) provider: Provider,
    pub(super) scheme: &'static str,
    pub(super) token: String,
    /// `None`: every scope.
    pub(super) scopes: Option<Vec<String>>,
}

pub(super) struct Failure {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) times: u32,
    pub(super) status: u16,
    pub(super) after_applying: bool,
    /// The body to answer with instead of the API's error.
    pub(super) body: Option<Value>,
    /// Make the change, then answer `status` with the API's error, whose
    /// message quotes the request's body and the answer the change got.
    pub(super) echo: bool,
}

pub(super) struct State {
    pub(super) base: String,
    pub(super) apps: Vec<App>,
    pub(super) grants: Vec<Grant>,
    pub(super) failures: Vec<Failure>,
    /// Requests left before the one whose answer is lost: `(left, status)`.
    pub(super) lose_at: Option<(u64, u16)>,
    pub(super) seen: Vec<Seen>,
}
