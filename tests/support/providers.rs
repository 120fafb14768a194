//! Clients at the provider emulator (`rotor_testbed::provider_emulator`), with
//! their secrets in moto, as the oauth-rotation tests set them up.

use rotor_core::store::RotationService;
use rotor_core::{AwsStore, ExposeSecret, SecretString};
use rotor_testbed::provider_emulator::{
    EmulatedClient, Provider, ProviderEmulator, TokenAuth, TokenRotation,
};
use serde_json::json;

use crate::{staged_secret, staged_secret_named, token, unique};
use Provider::{Auth0, Entra, Keycloak, Okta, Rfc7592};
use TokenAuth::Post;

/// Keycloak's realm, Entra's tenant.
pub const REALM: &str = "rotor-test";

/// One client at an emulated provider, with its secret in moto.
pub struct Case {
    /// The provider.
    pub provider: Provider,
    /// How the client authenticates at the token endpoint.
    pub method: TokenAuth,
    /// The id the management API knows the client by.
    pub admin_id: String,
    /// The OAuth client_id.
    pub client_id: String,
    /// The token endpoint.
    pub endpoint: String,
    /// The client secret before any rotation.
    pub initial: SecretString,
    /// The secret in moto, named `<team>client`.
    pub arn: String,
    /// The name prefix (`team-…/`) of the team that owns the client; the
    /// management secret serves it (its `rotor:serves` tag).
    pub team: String,
    /// The management secret in moto.
    pub management_arn: String,
    /// What the management secret holds: the API token, or (Auth0) its
    /// client's secret.
    pub management_credential: SecretString,
}

impl Case {
    /// Whether `secret` gets a token for the client now.
    pub async fn gets_token(&self, emulator: &ProviderEmulator, secret: &SecretString) -> bool {
        gets_token(
            emulator,
            self.provider,
            self.method,
            &self.endpoint,
            &self.client_id,
            secret,
        )
        .await
    }

    /// How many credentials the provider holds as active for the client.
    pub fn active(&self, emulator: &ProviderEmulator) -> usize {
        let held = emulator.credentials(self.provider, &self.admin_id);
        held.iter().filter(|c| c.active).count()
    }
}

/// Whether `secret` gets a token for `client_id` at `endpoint`, with the
/// scope or audience the provider's clients here ask for.
pub async fn gets_token(
    emulator: &ProviderEmulator,
    provider: Provider,
    method: TokenAuth,
    endpoint: &str,
    client_id: &str,
    secret: &SecretString,
) -> bool {
    let extra: &[(&str, &str)] = match provider {
        Okta => &[("scope", "rotor.test")],
        Entra => &[("scope", "api://rotor-test/.default")],
        Auth0 => &[("audience", "https://api.rotor.test/")],
        Keycloak | Rfc7592 => &[],
    };
    emulator
        .grant(endpoint, client_id, secret, method, extra)
        .await
        == 200
}

/// The provider's `provider` value in a secret.
pub fn name(provider: Provider) -> &'static str {
    match provider {
        Keycloak => "keycloak",
        Okta => "okta",
        Entra => "entra",
        Auth0 => "auth0",
        Rfc7592 => "rfc7592",
    }
}

/// Registers a client at the emulator, stores its management secret (refused
/// by the provider unless `management_works`) and its client secret in moto,
/// and stages a rotation; returns the case and the rotation's token.
pub async fn setup(
    emulator: &ProviderEmulator,
    store: &AwsStore,
    provider: Provider,
    method: TokenAuth,
    management_works: bool,
) -> (Case, String) {
    setup_at(
        emulator,
        store,
        provider,
        method,
        management_works,
        &emulator.url(),
    )
    .await
}

/// [`setup`] with the provider's base URL `base` (a proxy in front of the
/// emulator): the management secret's `endpoint` and the client's base URL
/// field both name it. The management secret serves the client's team (its
/// `rotor:serves` tag lists the prefix `team-…/`).
pub async fn setup_at(
    emulator: &ProviderEmulator,
    store: &AwsStore,
    provider: Provider,
    method: TokenAuth,
    management_works: bool,
    base: &str,
) -> (Case, String) {
    if provider == Rfc7592 {
        // No management secret to bind: the caller routes the client's own
        // URLs (registration, token) through `base` where it needs to.
        return setup_rfc7592(emulator, store, method, TokenRotation::OnEveryUse).await;
    }
    let initial = SecretString::from(unique("initial-secret"));
    let (admin_id, client_id) = match provider {
        Keycloak | Entra => (token(), unique("client")),
        // An Okta app whose client_id is not its app id.
        Okta => (unique("0oa"), unique("client")),
        Auth0 => (unique("auth0"), String::new()),
        Rfc7592 => unreachable!("set up by setup_rfc7592"),
    };
    let client_id = if client_id.is_empty() {
        admin_id.clone()
    } else {
        client_id
    };
    let mut client = EmulatedClient::new(provider, REALM, &admin_id, &client_id, &initial);
    if matches!(provider, Okta | Auth0) {
        client.method = Some(method); // these providers enforce the configured method
    }
    let initial_id = emulator.add_client(client);
    let granted = unique("management-token");
    let presented = if management_works {
        granted.clone()
    } else {
        unique("not-the-token")
    };
    let mut management = match provider {
        Keycloak | Entra => {
            emulator.allow_management(provider, &format!("Bearer {granted}"));
            json!({ "token": presented })
        }
        Okta => {
            emulator.allow_management(provider, &format!("SSWS {granted}"));
            json!({ "okta_api_token": presented })
        }
        // A machine-to-machine client with a client grant on the Management API.
        Auth0 if management_works => {
            let m2m = unique("m2m");
            let m2m_secret = unique("m2m-secret");
            let mut client = EmulatedClient::new(
                Auth0,
                "",
                &m2m,
                &m2m,
                &SecretString::from(m2m_secret.as_str()),
            );
            client.method = Some(Post);
            client.management_scopes = vec!["update:client_keys".into()];
            emulator.add_client(client);
            json!({
                "client_id": m2m, "client_secret": m2m_secret,
                "token_endpoint": emulator.token_endpoint(Auth0, ""),
                "audience": emulator.auth0_management_audience(),
                "token_endpoint_auth_method": "client_secret_post",
            })
        }
        Auth0 => json!({ "token": presented }),
        Rfc7592 => unreachable!("set up by setup_rfc7592"),
    };
    let management_credential = ["token", "okta_api_token", "client_secret"]
        .iter()
        .find_map(|k| management[k].as_str())
        .map(SecretString::from)
        .expect("a management credential");
    management["endpoint"] = json!(base);
    let team = format!("{}/", unique("team"));
    let management_arn = store
        .create_secret(
            &unique("management"),
            &SecretString::from(management.to_string()),
            &[("rotor:serves", team.as_str())],
        )
        .await
        .expect("create the management secret");
    let endpoint = emulator.token_endpoint(provider, REALM);
    let url = base;
    let mut secret = json!({
        "provider": name(provider), "client_id": client_id,
        "client_secret": initial.expose_secret(), "token_endpoint": endpoint,
        "token_endpoint_auth_method": method.as_str(),
        "management_secret_arn": management_arn, "owner": "team-payments",
    });
    let fields = match provider {
        Keycloak => json!({"keycloak_url": url, "realm": REALM, "client_uuid": admin_id}),
        Okta => json!({"okta_domain": url, "okta_app_id": admin_id, "scope": "rotor.test"}),
        Entra => json!({
            "graph_url": url, "application_object_id": admin_id, "key_id": initial_id,
            "scope": "api://rotor-test/.default",
        }),
        Auth0 => json!({"auth0_domain": url, "audience": "https://api.rotor.test/"}),
        Rfc7592 => unreachable!("set up by setup_rfc7592"),
    };
    for (k, v) in fields.as_object().into_iter().flatten() {
        secret[k] = v.clone();
    }
    let t = token();
    let name = format!("{team}client");
    let arn = staged_secret_named(store, &name, &secret.to_string(), &[], &t).await;
    let case = Case {
        provider,
        method,
        admin_id,
        client_id,
        endpoint,
        initial,
        arn,
        team,
        management_arn,
        management_credential,
    };
    (case, t)
}

/// Registers an RFC 7592 client at the emulator, whose registration access
/// token the server replaces as `rotation` says, stores its secret in moto and
/// stages a rotation; returns the case and the rotation's token.
pub async fn setup_rfc7592(
    emulator: &ProviderEmulator,
    store: &AwsStore,
    method: TokenAuth,
    rotation: TokenRotation,
) -> (Case, String) {
    let client_id = unique("client");
    let initial = SecretString::from(unique("initial-secret"));
    let (uri, registration_token) =
        emulator.add_registered_client(&client_id, &initial, method, rotation);
    let endpoint = emulator.token_endpoint(Rfc7592, "");
    let secret = json!({
        "provider": "rfc7592", "client_id": client_id,
        "client_secret": initial.expose_secret(), "token_endpoint": endpoint,
        "token_endpoint_auth_method": method.as_str(),
        "registration_client_uri": uri,
        "registration_access_token": registration_token.expose_secret(),
        "owner": "team-payments",
    });
    let t = token();
    let arn = staged_secret(store, &secret.to_string(), &[], &t).await;
    let case = Case {
        provider: Rfc7592,
        method,
        admin_id: client_id.clone(),
        client_id,
        endpoint,
        initial,
        arn,
        // RFC 7592 needs no management secret: the client's own registration
        // access token manages it.
        team: String::new(),
        management_arn: String::new(),
        management_credential: SecretString::from(String::new()),
    };
    (case, t)
}
