//! Microsoft Entra ID through Microsoft Graph: `GET /v1.0/applications/{id}`,
//! `POST …/addPassword` and `POST …/removePassword` on application passwords.

use super::*;

impl State {
    pub(super) fn graph(&mut self, call: &Call, s: &[&str]) -> Reply {
        let api = Api::Graph;
        let (target, action) = match s {
            ["v1.0", "applications", id] => (*id, None),
            ["v1.0", "applications", id, action] => (*id, Some(*action)),
            _ => return api.error(400, "BadRequest", "Resource not found for the segment."),
        };
        if let Err(reply) = self.authenticate(api, Provider::Entra, call) {
            return reply;
        }
        let body = (call.method == "POST").then(|| json_body(api, call));
        let query = parse_form(&call.query);
        let base = self.base.clone();
        let Some(app) = self.app_mut(Provider::Entra, None, target) else {
            return api.error(404, "Request_ResourceNotFound", &format!("Resource '{target}' does not exist or one of its queried reference-property objects are not present."));
        };
        let bad = |m: &str| api.error(400, "Request_BadRequest", m);
        match (call.method.as_str(), action, body) {
            ("GET", None, _) => {
                let mut full = Map::new();
                full.insert("id".into(), Value::from(app.admin_id.clone()));
                full.insert("appId".into(), Value::from(app.client_id.clone()));
                full.insert(
                    "displayName".into(),
                    Value::from(format!("app {}", app.client_id)),
                );
                let listed = app.credentials.iter().map(|c| graph_password(c, false));
                full.insert("passwordCredentials".into(), listed.collect());
                let Ok(query) = query else {
                    return bad("the query string is not valid");
                };
                let Some(select) = query.get("$select") else {
                    return Reply::json(200, Value::Object(full));
                };
                let mut out = Map::new();
                out.insert(
                    "@odata.context".into(),
                    Value::from(format!(
                        "{base}/v1.0/$metadata#applications({select})/$entity"
                    )),
                );
                for property in select.split(',').map(str::trim) {
                    let Some(value) = full.get(property) else {
                        return bad(&format!(
                            "Could not find a property named '{property}' on type 'microsoft.graph.application'."
                        ));
                    };
                    out.insert(property.to_owned(), value.clone());
                }
                Reply::json(200, Value::Object(out))
            }
            ("POST", Some(_), Some(Err(reply))) => reply,
            ("POST", Some("addPassword"), Some(Ok(Value::Object(request)))) => {
                if let Some(other) = request.keys().find(|k| *k != "passwordCredential") {
                    return bad(&format!(
                        "Property '{other}' does not exist as a declared property or extension property."
                    ));
                }
                let credential = match request.get("passwordCredential") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(c)) => c.clone(),
                    Some(_) => return bad("passwordCredential must be an object"),
                };
                for (name, value) in &credential {
                    let allowed = matches!(
                        name.as_str(),
                        "displayName" | "startDateTime" | "endDateTime"
                    );
                    if !allowed {
                        return bad(&format!(
                            "Property '{name}' is read-only or unknown on passwordCredential; only displayName, startDateTime and endDateTime may be given."
                        ));
                    }
                    if !(value.is_string() || value.is_null()) {
                        return bad(&format!("passwordCredential.{name} must be a string"));
                    }
                }
                let display_name = credential
                    .get("displayName")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let secret = format!("{}8Q~{}", random_text(3), random_text(34));
                let key_id = uuid::Uuid::new_v4().to_string();
                let added = Credential::new(key_id, &secret, display_name);
                let reply = Reply::json(200, graph_password(&added, true));
                app.credentials.push(added);
                reply
            }
            ("POST", Some("removePassword"), Some(Ok(Value::Object(request)))) => {
                if let Some(other) = request.keys().find(|k| *k != "keyId") {
                    return bad(&format!(
                        "Property '{other}' does not exist as a declared property or extension property."
                    ));
                }
                let Some(key_id) = request.get("keyId").and_then(Value::as_str) else {
                    return bad("keyId is required.");
                };
                if uuid::Uuid::parse_str(key_id).is_err() {
                    return bad(&format!("Invalid GUID: '{key_id}'"));
                }
                let Some(i) = app.credentials.iter().position(|c| c.id == key_id) else {
                    return bad(&format!(
                        "No password credential found with keyId {key_id}."
                    ));
                };
                app.credentials.remove(i);
                Reply::empty(204)
            }
            ("POST", Some("addPassword" | "removePassword"), _) => {
                bad("The request body must be a JSON object.")
            }
            ("POST", Some(other), _) => api.error(
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{other}'."),
            ),
            _ => api.error(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            ),
        }
    }
}

/// Graph's passwordCredential; `secretText` only in addPassword's answer.
pub(super) fn graph_password(c: &Credential, with_secret: bool) -> Value {
    let secret = c.value.expose_secret();
    json!({
        "customKeyIdentifier": null,
        "displayName": c.display_name,
        "endDateTime": rfc3339(c.created + 2 * 365 * 86_400),
        "hint": secret.chars().take(3).collect::<String>(),
        "keyId": c.id,
        "secretText": if with_secret { Value::from(secret) } else { Value::Null },
        "startDateTime": rfc3339(c.created),
    })
}
