//! Okta's application client secrets:
//! `/api/v1/apps/{appId}/credentials/secrets[/{secretId}[/lifecycle/(de)activate]]`,
//! at most two secrets, only INACTIVE ones deleted.

use super::*;

impl State {
    pub(super) fn okta(&mut self, call: &Call, s: &[&str]) -> Reply {
        let api = Api::Okta;
        let (app_id, secret_id, action) = match s {
            ["api", "v1", "apps", app, "credentials", "secrets"] => (*app, None, None),
            ["api", "v1", "apps", app, "credentials", "secrets", id] => (*app, Some(*id), None),
            [
                "api",
                "v1",
                "apps",
                app,
                "credentials",
                "secrets",
                id,
                "lifecycle",
                action,
            ] => (*app, Some(*id), Some(*action)),
            _ => {
                return api.error(
                    404,
                    "E0000022",
                    "The endpoint does not support the provided HTTP method",
                );
            }
        };
        if let Err(reply) = self.authenticate(api, Provider::Okta, call) {
            return reply;
        }
        let body = (call.method == "POST" && secret_id.is_none()).then(|| json_body(api, call));
        let base = format!("{}/api/v1/apps/{app_id}/credentials/secrets", self.base);
        let Some(app) = self.app_mut(Provider::Okta, None, app_id) else {
            return api.error(
                404,
                "E0000007",
                &format!("Not found: Resource not found: {app_id} (AppInstance)"),
            );
        };
        let shown = |c: &Credential| okta_secret(&base, c);
        let invalid = |cause: &str| {
            api.error_with(
                400,
                "E0000001",
                "Api validation failed: OAuth2ClientSecretMediated",
                &[cause],
            )
        };
        let index = secret_id.map(|id| app.credentials.iter().position(|c| c.id == id));
        match (call.method.as_str(), index, action) {
            ("GET", None, None) => Reply::json(200, app.credentials.iter().map(shown).collect()),
            ("POST", None, None) => {
                let request = match body {
                    Some(Ok(Value::Object(request))) => request,
                    Some(Err(reply)) => return reply,
                    _ => {
                        return api.error(400, "E0000003", "The request body was not well-formed.");
                    }
                };
                let secret = match request.get("client_secret") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(secret)) => Some(secret.clone()),
                    Some(_) => {
                        return api.error(400, "E0000003", "The request body was not well-formed.");
                    }
                };
                if let Some(problem) = secret.as_deref().and_then(okta_secret_problem) {
                    return api.error_with(
                        400,
                        "E0000001",
                        "Api validation failed: client_secret",
                        &[problem],
                    );
                }
                let active = match request.get("status") {
                    None | Some(Value::Null) => true,
                    Some(Value::String(s)) if s == "ACTIVE" => true,
                    Some(Value::String(s)) if s == "INACTIVE" => false,
                    Some(_) => {
                        return api.error(400, "E0000003", "The request body was not well-formed.");
                    }
                };
                if app.credentials.len() >= 2 {
                    return invalid(
                        "You've reached the maximum number of client secrets per client.",
                    );
                }
                let value = secret.unwrap_or_else(|| random_text(40));
                let mut credential = Credential::new(okta_id(), &value, None);
                credential.active = active;
                let reply = Reply::json(201, shown(&credential));
                app.credentials.push(credential);
                reply
            }
            (_, Some(None), _) => api.error(
                404,
                "E0000007",
                &format!(
                    "Not found: Resource not found: {} (ClientSecret)",
                    secret_id.unwrap_or("")
                ),
            ),
            ("GET", Some(Some(i)), None) => Reply::json(200, shown(&app.credentials[i])),
            ("DELETE", Some(Some(i)), None) => {
                if app.credentials[i].active {
                    return invalid(
                        "You can't delete an active client secret. Deactivate the secret before deleting it.",
                    );
                }
                app.credentials.remove(i);
                Reply::empty(204)
            }
            ("POST", Some(Some(i)), Some("deactivate")) => {
                let others_active = app
                    .credentials
                    .iter()
                    .enumerate()
                    .any(|(j, c)| j != i && c.active);
                if app.credentials[i].active && !others_active {
                    return invalid("You can't deactivate the only active client secret.");
                }
                app.credentials[i].active = false;
                Reply::json(200, shown(&app.credentials[i]))
            }
            _ => api.error(
                405,
                "E0000022",
                "The endpoint does not support the provided HTTP method",
            ),
        }
    }
}

/// Okta's documented constraints on a caller-chosen secret.
pub(super) fn okta_secret_problem(secret: &str) -> Option<&'static str> {
    if !secret.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Some("client_secret: 'client_secret' must only contain printable ASCII: [x20-x7E]+")
    } else if secret.len() < 14 {
        Some("client_secret: 'client_secret' must be at least '14' characters long.")
    } else if secret.len() > 100 {
        Some("client_secret: 'client_secret' can't be more than '100' characters long.")
    } else {
        None
    }
}

/// Okta's OAuth2ClientSecret object.
pub(super) fn okta_secret(base: &str, c: &Credential) -> Value {
    let href = format!("{base}/{}", c.id);
    let post = |path: String| json!({"href": path, "hints": {"allow": ["POST"]}});
    let links = if c.active {
        json!({"deactivate": post(format!("{href}/lifecycle/deactivate"))})
    } else {
        json!({"activate": post(format!("{href}/lifecycle/activate")),
               "delete": {"href": href, "hints": {"allow": ["DELETE"]}}})
    };
    let digest = Sha256::digest(c.value.expose_secret().as_bytes());
    json!({
        "id": c.id,
        "status": if c.active { "ACTIVE" } else { "INACTIVE" },
        "client_secret": c.value.expose_secret(),
        "secret_hash": base64_encode(&digest[..16], true),
        "created": rfc3339(c.created),
        "lastUpdated": rfc3339(c.created),
        "_links": links,
    })
}

pub(super) fn okta_id() -> String {
    format!("ocs{}", &uuid::Uuid::new_v4().simple().to_string()[..17])
}
