//! Auth0's Management API: `PATCH /api/v2/clients/{id}` sets the client's one
//! secret (scope `update:client_keys`).

use super::*;

impl State {
    pub(super) fn auth0(&mut self, call: &Call, s: &[&str]) -> Reply {
        let api = Api::Auth0;
        let ["api", "v2", "clients", id] = s else {
            return api.error(404, "inexistent_route", "Not Found");
        };
        let scopes = match self.authenticate(api, Provider::Auth0, call) {
            Ok(scopes) => scopes,
            Err(reply) => return reply,
        };
        let granted = |needed: &[&str]| {
            scopes
                .as_ref()
                .is_none_or(|have| needed.iter().any(|n| have.iter().any(|h| h == n)))
        };
        let insufficient = |needed: &[&str]| {
            api.error(
                403,
                "insufficient_scope",
                &format!("Insufficient scope, expected any of: {}", needed.join(",")),
            )
        };
        let body = (call.method == "PATCH").then(|| json_body(api, call));
        let Some(app) = self.app_mut(Provider::Auth0, None, id) else {
            return api.error(404, "inexistent_client", "The client does not exist");
        };
        let shown = |app: &App| {
            let mut client = app.fields.clone();
            let method = app.method.unwrap_or(TokenAuth::Post).as_str();
            client.insert("client_id".into(), Value::from(app.client_id.clone()));
            client.insert("token_endpoint_auth_method".into(), Value::from(method));
            let secret = app.credentials.first().map(|c| c.value.expose_secret());
            client.insert(
                "client_secret".into(),
                Value::from(secret.unwrap_or_default()),
            );
            Value::Object(client)
        };
        match (call.method.as_str(), body) {
            ("PATCH", Some(Err(reply))) => reply,
            ("PATCH", Some(Ok(Value::Object(update)))) => {
                let invalid = |m: String| {
                    api.error(
                        400,
                        "invalid_body",
                        &format!("Payload validation error: {m}"),
                    )
                };
                for read_only in ["client_id", "tenant", "global"] {
                    if update.contains_key(read_only) {
                        return invalid(format!(
                            "'Additional properties not allowed: {read_only}'."
                        ));
                    }
                }
                match update.get("client_secret") {
                    None => {}
                    Some(Value::String(s)) if !s.is_empty() => {}
                    Some(Value::String(_)) => {
                        let message = "'String is too short (0 chars), minimum 1' on property \
                                       client_secret (The secret used to sign tokens for the client).";
                        return invalid(message.into());
                    }
                    Some(other) => {
                        let message = format!(
                            "'Expected type string but found type {}' on property client_secret.",
                            json_type(other)
                        );
                        return invalid(message);
                    }
                }
                let keys =
                    update.contains_key("client_secret") || update.contains_key("signing_keys");
                let needed: &[&str] = if keys {
                    &["update:client_keys"]
                } else {
                    &["update:clients", "update:client_keys"]
                };
                if !granted(needed) {
                    return insufficient(needed);
                }
                for (name, value) in update {
                    if let ("client_secret", Value::String(secret)) = (name.as_str(), &value) {
                        app.credentials =
                            vec![Credential::new(app.client_id.clone(), secret, None)];
                    } else {
                        app.fields.insert(name, value);
                    }
                }
                Reply::json(200, shown(&*app))
            }
            ("PATCH", Some(Ok(other))) => api.error(
                400,
                "invalid_body",
                &format!(
                    "Payload validation error: 'Expected type object but found type {}'.",
                    json_type(&other)
                ),
            ),
            _ => api.error(405, "method_not_allowed", "Method Not Allowed"),
        }
    }
}
