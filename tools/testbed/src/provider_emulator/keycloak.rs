//! Keycloak's admin REST API: `GET`/`PUT /admin/realms/{realm}/clients/{id}` on a
//! ClientRepresentation, which holds the client's one secret.

use super::*;

impl State {
    pub(super) fn keycloak(&mut self, call: &Call, s: &[&str]) -> Reply {
        let api = Api::Keycloak;
        let ["admin", "realms", realm, "clients", id] = s else {
            return api.error(404, "not_found", "HTTP 404 Not Found");
        };
        if let Err(reply) = self.authenticate(api, Provider::Keycloak, call) {
            return reply;
        }
        let body = (call.method == "PUT").then(|| json_body(api, call));
        let Some(app) = self.app_mut(Provider::Keycloak, Some(realm), id) else {
            return api.error(404, "Could not find client", "Could not find client");
        };
        match (call.method.as_str(), body) {
            ("GET", _) => {
                let mut representation = app.fields.clone();
                representation.insert("id".into(), Value::from(app.admin_id.clone()));
                let secret = app.credentials.first().map(|c| c.value.expose_secret());
                representation.insert("secret".into(), Value::from(secret.unwrap_or_default()));
                Reply::json(200, Value::Object(representation))
            }
            ("PUT", Some(Err(reply))) => reply,
            ("PUT", Some(Ok(Value::Object(rep)))) => {
                let wrong = |m: &str| api.error(400, "invalid_request", m);
                if rep.get("id").is_some_and(|v| v.as_str() != Some(id)) {
                    return wrong("the id in the body is not the client's id in the path");
                }
                if rep.get("secret").is_some_and(|v| !v.is_string()) {
                    return wrong("secret must be a string");
                }
                if rep
                    .get("clientId")
                    .is_some_and(|v| v.as_str().is_none_or(str::is_empty))
                {
                    return wrong("clientId must be a non-empty string");
                }
                if rep.get("publicClient") == Some(&Value::Bool(true)) {
                    return wrong("a public client has no secret");
                }
                for (name, value) in rep {
                    match name.as_str() {
                        "id" => {}
                        "secret" => {
                            let secret = value.as_str().unwrap_or_default();
                            app.credentials =
                                vec![Credential::new(app.client_id.clone(), secret, None)];
                        }
                        "clientId" => {
                            app.client_id = value.as_str().unwrap_or_default().to_owned();
                            app.fields.insert(name, value);
                        }
                        _ => {
                            app.fields.insert(name, value);
                        }
                    }
                }
                Reply::empty(204)
            }
            ("PUT", Some(Ok(_))) => api.error(
                400,
                "invalid_request",
                "the body must be a ClientRepresentation object",
            ),
            _ => api.error(405, "method_not_allowed", "HTTP 405 Method Not Allowed"),
        }
    }
}
