//! The tests' side: holding clients and grants, injecting failures, and
//! reading what the emulator holds and has seen.

use super::*;

impl ProviderEmulator {
    /// Holds a client; returns its first credential's id (Okta's secret id,
    /// Entra's keyId).
    pub fn add_client(&self, client: EmulatedClient) -> String {
        let id = match client.provider {
            Provider::Okta => okta_id(),
            Provider::Entra => uuid::Uuid::new_v4().to_string(),
            Provider::Keycloak | Provider::Auth0 | Provider::Rfc7592 => client.client_id.clone(),
        };
        let display_name = (client.provider == Provider::Entra).then(|| "initial".to_owned());
        let credential = Credential::new(id.clone(), client.secret.expose_secret(), display_name);
        let mut fields = Map::new();
        if client.provider == Provider::Keycloak {
            fields.insert("clientId".into(), Value::from(client.client_id.clone()));
            fields.insert("enabled".into(), Value::Bool(true));
            fields.insert("publicClient".into(), Value::Bool(false));
            fields.insert("clientAuthenticatorType".into(), "client-secret".into());
            fields.insert("serviceAccountsEnabled".into(), Value::Bool(true));
            fields.insert("protocol".into(), "openid-connect".into());
        }
        self.with_state(|s| {
            s.apps.push(App {
                provider: client.provider,
                realm: client.realm,
                admin_id: client.admin_id,
                client_id: client.client_id,
                method: client.method,
                scopes: client.management_scopes,
                credentials: vec![credential],
                fields,
                registration: None,
            })
        });
        id
    }

    /// Holds an RFC 7592 client whose registration access token changes as
    /// `rotation` says; returns its registration URI and first token.
    pub fn add_registered_client(
        &self,
        client_id: &str,
        secret: &SecretString,
        method: TokenAuth,
        rotation: TokenRotation,
    ) -> (String, SecretString) {
        let mut client = EmulatedClient::new(Provider::Rfc7592, "", client_id, client_id, secret);
        client.method = Some(method);
        self.add_client(client);
        let token = rfc7592::new_token();
        let issued = SecretString::from(token.expose_secret());
        self.with_state(|s| {
            if let Some(app) = s.app_mut(Provider::Rfc7592, None, client_id) {
                app.fields
                    .insert("grant_types".into(), json!(["client_credentials"]));
                app.fields.insert(
                    "token_endpoint_auth_method".into(),
                    Value::from(method.as_str()),
                );
                app.registration = Some(rfc7592::Registration { token, rotation });
            }
        });
        (
            format!("{}/connect/register/{client_id}", self.url()),
            issued,
        )
    }

    /// Whether `token` manages the RFC 7592 client now; changes nothing (a read
    /// through the API could replace the token).
    pub fn registration_token_works(&self, client_id: &str, token: &SecretString) -> bool {
        self.with_state(|s| {
            s.app_mut(Provider::Rfc7592, None, client_id)
                .and_then(|a| a.registration.as_ref())
                .is_some_and(|r| r.token.expose_secret() == token.expose_secret())
        })
    }

    /// What the server's administrator does when no stored token manages an
    /// RFC 7592 client any more: a new registration access token and a new
    /// client secret, both returned.
    pub fn reissue_registration(&self, client_id: &str) -> Option<(SecretString, SecretString)> {
        self.with_state(|s| {
            let app = s.app_mut(Provider::Rfc7592, None, client_id)?;
            let registration = app.registration.as_mut()?;
            registration.token = rfc7592::new_token();
            let secret = random_text(40);
            app.credentials = vec![Credential::new(app.client_id.clone(), &secret, None)];
            Some((
                SecretString::from(registration.token.expose_secret()),
                SecretString::from(secret),
            ))
        })
    }

    /// Accepts `authorization` (`Bearer <token>`, or Okta's `SSWS <token>`) for
    /// the provider's management API, with every scope.
    pub fn allow_management(&self, provider: Provider, authorization: &str) {
        let (scheme, token) = authorization.split_once(' ').unwrap_or(("", authorization));
        let scheme = if scheme.eq_ignore_ascii_case("SSWS") {
            "SSWS"
        } else {
            "Bearer"
        };
        self.with_state(|s| {
            s.grants.push(Grant {
                provider,
                scheme,
                token: token.to_owned(),
                scopes: None,
            })
        });
    }

    /// Answers the next `times` requests whose method is `method` and whose path
    /// contains `path` with `status`, changing nothing.
    pub fn fail_next(&self, method: &str, path: &str, times: u32, status: u16) {
        self.add_failure(method, path, times, status, false);
    }

    /// Makes the next such request's change, then answers `status`: a response
    /// lost on the way back.
    pub fn lose_next_response(&self, method: &str, path: &str, status: u16) {
        self.add_failure(method, path, 1, status, true);
    }

    /// Makes the change of the `nth` request from now (counting every
    /// request, from 1), then answers it with `status` in the API's error
    /// shape: the answer to that call is lost after the provider acted.
    /// `None` cancels it.
    pub fn lose_answer_of(&self, nth: Option<u64>, status: u16) {
        self.with_state(|s| s.lose_at = nth.map(|n| (n, status)));
    }

    /// Answers the next request whose method is `method` and whose path
    /// contains `path` with `status` and `body`, changing nothing: a server
    /// or a middlebox that answers something unexpected.
    pub fn answer_next(&self, method: &str, path: &str, status: u16, body: Value) {
        self.push_failure(method, path, 1, status, false, Some(body));
    }

    /// Makes the next matching request's change, then answers it with
    /// `status` in the API's error shape, whose message quotes the request's
    /// body and the answer the change got, as a validation error or a
    /// careless gateway may: a client secret sent or issued comes back in
    /// the error text.
    pub fn echo_next(&self, method: &str, path: &str, status: u16) {
        self.with_state(|s| {
            s.failures.push(Failure {
                method: method.to_owned(),
                path: path.to_owned(),
                times: 1,
                status,
                after_applying: true,
                body: None,
                echo: true,
            })
        });
    }

    fn add_failure(&self, method: &str, path: &str, times: u32, status: u16, after: bool) {
        self.push_failure(method, path, times, status, after, None);
    }

    fn push_failure(
        &self,
        method: &str,
        path: &str,
        times: u32,
        status: u16,
        after_applying: bool,
        body: Option<Value>,
    ) {
        self.with_state(|s| {
            s.failures.push(Failure {
                method: method.to_owned(),
                path: path.to_owned(),
                times,
                status,
                after_applying,
                body,
                echo: false,
            })
        });
    }

    /// The credentials a client holds (by its management id), without values.
    pub fn credentials(&self, provider: Provider, admin_id: &str) -> Vec<CredentialState> {
        self.with_state(|s| {
            s.apps
                .iter()
                .filter(|a| a.provider == provider && a.admin_id == admin_id)
                .flat_map(|a| &a.credentials)
                .map(|c| CredentialState {
                    id: c.id.clone(),
                    active: c.active,
                    display_name: c.display_name.clone(),
                })
                .collect()
        })
    }

    /// Every request answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.with_state(|s| s.seen.clone())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }
}
