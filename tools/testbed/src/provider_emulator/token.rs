//! The providers' token endpoints: the client_credentials grant (RFC 6749 §4.4),
//! which accepts exactly the secrets the provider holds as active.

use super::*;

impl State {
    pub(super) fn token(&mut self, call: &Call, provider: Provider, s: &[&str]) -> Reply {
        let api = Api::Token(provider);
        if call.method != "POST" {
            return api.error(405, "invalid_request", "the token endpoint takes POST");
        }
        let invalid = |m: &str| api.error(400, "invalid_request", m);
        let content_type = call.content_type.as_deref().unwrap_or("");
        let params = if content_type.starts_with("application/x-www-form-urlencoded") {
            match std::str::from_utf8(&call.body)
                .map_err(|_| FormError::NotUtf8)
                .and_then(parse_form)
            {
                Ok(params) => params,
                Err(_) => {
                    return invalid(
                        "the body is not valid application/x-www-form-urlencoded, or repeats a parameter (RFC 6749 §3.2)",
                    );
                }
            }
        } else if provider == Provider::Auth0 && content_type.starts_with("application/json") {
            match serde_json::from_slice::<BTreeMap<String, String>>(&call.body) {
                Ok(params) => params,
                Err(_) => return invalid("the body is not a JSON object of strings"),
            }
        } else {
            return invalid("the Content-Type must be application/x-www-form-urlencoded");
        };
        let param = |name: &str| params.get(name).map(String::as_str);
        let refused = |why: &str| match provider {
            Provider::Auth0 => api.error(401, "access_denied", "Unauthorized"),
            _ => api.error(401, "invalid_client", why),
        };
        // RFC 6749 §2.3.1; one method per request (§2.3).
        let basic = call.authorization.as_deref().map(parse_basic);
        let (client_id, secret, used) = match (basic, param("client_secret")) {
            (Some(_), Some(_)) => {
                return invalid("the client used more than one authentication method");
            }
            (Some(None), None) => {
                return refused("the Authorization header is not valid HTTP Basic");
            }
            (Some(Some((id, secret))), None) => {
                if param("client_id").is_some_and(|body_id| body_id != id) {
                    return invalid("client_id in the body is not the client that authenticated");
                }
                (id, secret, TokenAuth::Basic)
            }
            (None, Some(secret)) => match param("client_id") {
                Some(id) => (id.to_owned(), secret.to_owned(), TokenAuth::Post),
                None => return invalid("client_id is missing"),
            },
            (None, None) => return refused("client authentication failed: no client credentials"),
        };
        match param("grant_type") {
            Some("client_credentials") => {}
            None => return invalid("grant_type is missing"),
            Some(_) => {
                return api.error(
                    400,
                    "unsupported_grant_type",
                    "only client_credentials is emulated",
                );
            }
        }
        let realm = match (provider, s) {
            (Provider::Keycloak, ["realms", realm, ..]) | (Provider::Entra, [realm, ..]) => {
                Some(*realm)
            }
            _ => None,
        };
        let Some(app) = self.apps.iter().find(|a| {
            a.provider == provider && a.client_id == client_id && realm.is_none_or(|r| r == a.realm)
        }) else {
            return refused("client authentication failed: unknown client");
        };
        if app.method.is_some_and(|m| m != used) {
            return refused(&format!(
                "client authentication failed: this client is configured for {}",
                app.method.map_or("", TokenAuth::as_str)
            ));
        }
        if !app.accepts(&secret) {
            return refused("client authentication failed: the client secret is not valid");
        }
        let scope = param("scope");
        match provider {
            Provider::Okta if scope.is_none() => {
                return api.error(400, "invalid_scope", "The authorization server resource does not have any configured default scopes, 'scope' must be provided.");
            }
            Provider::Entra if !scope.is_some_and(|s| s.ends_with("/.default")) => {
                return api.error(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).");
            }
            Provider::Auth0 if param("audience").is_none() => {
                return api.error(403, "access_denied", "No audience parameter was provided, and no default audience has been configured");
            }
            _ => {}
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let management = format!(
            "https://{}/api/v2/",
            self.base.trim_start_matches("http://")
        );
        if provider == Provider::Auth0 && param("audience") == Some(management.as_str()) {
            if app.scopes.is_empty() {
                return api.error(403, "access_denied", &format!("Client \"{client_id}\" is not authorized to access \"{management}\". You need to create a \"client-grant\" associated to this API."));
            }
            let scopes = Some(app.scopes.clone());
            self.grants.push(Grant {
                provider,
                scheme: "Bearer",
                token: token.clone(),
                scopes,
            });
        }
        let mut issued = json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600});
        if let Some(scope) = scope {
            issued["scope"] = Value::from(scope);
        }
        Reply::json(200, issued)
    }
}
