//! The secret's format: one confidential OAuth 2.0 client. The client secret and
//! any registration access token go straight into `SecretString`s; every other
//! field is kept as it is and written back with the new secret.

use std::fmt;

use rotor_core::http::UrlError;
use rotor_core::value::SecretValue;
use rotor_core::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// Who manages the client's secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// RFC 7591/7592 dynamic client registration management.
    Rfc7592,
    /// Keycloak's admin REST API.
    Keycloak,
    /// Okta's client secrets API.
    Okta,
    /// Microsoft Entra ID (Graph `addPassword` / `removePassword`).
    Entra,
    /// Auth0's Management API.
    Auth0,
}

impl Provider {
    fn parse(text: &str) -> Option<Provider> {
        Some(match text {
            "rfc7592" => Provider::Rfc7592,
            "keycloak" => Provider::Keycloak,
            "okta" => Provider::Okta,
            "entra" | "azure" | "azuread" => Provider::Entra,
            "auth0" => Provider::Auth0,
            _ => return None,
        })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Rfc7592 => "rfc7592",
            Provider::Keycloak => "keycloak",
            Provider::Okta => "okta",
            Provider::Entra => "entra",
            Provider::Auth0 => "auth0",
        })
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with the form-encoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// A client's secret as Secrets Manager stores it: the whole value (the
/// provider, `client_id`, `client_secret`, the token endpoint and whatever
/// the provider needs), parsed. Its `client_secret` field is the OAuth
/// client secret that a rotation changes.
pub struct ClientSecret {
    /// The provider.
    pub provider: Provider,
    /// The client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: SecretString,
    /// Where tokens come from.
    pub token_endpoint: String,
    /// How the client authenticates there.
    pub auth_method: AuthMethod,
    /// Requested scope, if any.
    pub scope: Option<String>,
    /// Requested audience, if any.
    pub audience: Option<String>,
    /// RFC 7592's registration access token.
    pub registration_access_token: Option<SecretString>,
    /// Every field in order; the secret ones blanked.
    fields: Map<String, Value>,
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecret")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("token_endpoint", &self.token_endpoint)
            .finish_non_exhaustive()
    }
}

/// Why a secret value is not an OAuth client's secret (each message names
/// the field at fault, never a value).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The value is not a JSON object.
    #[error(
        "is not a JSON object; OAuth client secrets are JSON objects with provider, client_id, client_secret and token_endpoint"
    )]
    NotAnObject,
    /// A field that must be a string is something else.
    #[error("has a {0} field that is not a string")]
    NotAString(String),
    /// A required field is missing or empty.
    #[error("has no {0} field (or it is empty)")]
    Missing(String),
    /// The client secret is missing.
    #[error("has no client_secret field")]
    NoClientSecret,
    /// The provider is none rotor knows.
    #[error("has provider {0:?}; use rfc7592, keycloak, okta, entra or auth0")]
    UnknownProvider(String),
    /// An endpoint is refused (not TLS, does not parse...).
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The token endpoint auth method is neither basic nor post.
    #[error("has token_endpoint_auth_method {0:?}; use client_secret_basic or client_secret_post")]
    UnknownAuthMethod(String),
    /// An RFC 7592 client without its registration access token.
    #[error("has no registration_access_token, which RFC 7592 needs to manage the client")]
    NoRegistrationToken,
    /// A field the client's provider needs is missing.
    #[error("has no {field} field, which provider {provider} needs")]
    ProviderNeeds {
        /// The field.
        field: String,
        /// The provider.
        provider: Provider,
    },
}

const SECRET_FIELDS: [&str; 2] = ["client_secret", "registration_access_token"];

/// The field that names the secret holding the management credentials of
/// every provider but RFC 7592 (whose client manages itself).
pub const MANAGEMENT_SECRET_FIELD: &str = "management_secret_arn";

impl ClientSecret {
    /// Parses a secret value; the error names the field at fault, never a value.
    pub fn parse(value: &SecretString) -> Result<ClientSecret, SecretError> {
        let mut fields = match serde_json::from_str::<Value>(value.expose_secret()) {
            Ok(Value::Object(fields)) => fields,
            _ => return Err(SecretError::NotAnObject),
        };
        let mut secret = |name: &str| -> Result<Option<SecretString>, SecretError> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(_)) => match fields.insert(name.to_owned(), Value::Null) {
                    Some(Value::String(s)) => Ok(Some(SecretString::from(s))),
                    _ => Ok(None),
                },
                Some(_) => Err(SecretError::NotAString(name.to_owned())),
            }
        };
        let client_secret = secret("client_secret")?.ok_or(SecretError::NoClientSecret)?;
        let registration_access_token = secret("registration_access_token")?;
        let text = |name: &str| -> Result<Option<String>, SecretError> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(SecretError::NotAString(name.to_owned())),
            }
        };
        let required =
            |name: &str| text(name)?.ok_or_else(|| SecretError::Missing(name.to_owned()));
        let provider_text = required("provider")?;
        let provider = Provider::parse(&provider_text)
            .ok_or_else(|| SecretError::UnknownProvider(provider_text.clone()))?;
        let token_endpoint = required("token_endpoint")?;
        rotor_core::http::require_tls(&token_endpoint)?;
        let auth_method = match text("token_endpoint_auth_method")?.as_deref() {
            None | Some("client_secret_basic") => AuthMethod::Basic,
            Some("client_secret_post") => AuthMethod::Post,
            Some(other) => return Err(SecretError::UnknownAuthMethod(other.to_owned())),
        };
        if provider == Provider::Rfc7592 {
            let uri = required("registration_client_uri")?;
            rotor_core::http::require_tls(&uri)?;
            if registration_access_token.is_none() {
                return Err(SecretError::NoRegistrationToken);
            }
        } else if text(MANAGEMENT_SECRET_FIELD)?.is_none() {
            return Err(SecretError::ProviderNeeds {
                field: MANAGEMENT_SECRET_FIELD.to_owned(),
                provider,
            });
        }
        Ok(ClientSecret {
            provider,
            client_id: required("client_id")?,
            token_endpoint,
            auth_method,
            scope: text("scope")?,
            audience: text("audience")?,
            client_secret,
            registration_access_token,
            fields,
        })
    }

    /// A provider-specific field (an application id, a realm, a secret id).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A provider-specific field that must be there.
    pub fn require(&self, name: &str) -> Result<&str, SecretError> {
        self.field(name).ok_or_else(|| SecretError::ProviderNeeds {
            field: name.to_owned(),
            provider: self.provider,
        })
    }

    /// RFC 7592: the client's registration URI and registration access
    /// token, which [`ClientSecret::parse`] requires of provider rfc7592.
    pub fn registration(&self) -> Result<(&str, &SecretString), SecretError> {
        let uri = self.require("registration_client_uri")?;
        let token = self.registration_access_token.as_ref();
        Ok((uri, token.ok_or(SecretError::NoRegistrationToken)?))
    }

    /// The value with a new client secret, new plain fields and (RFC 7592) a
    /// new registration access token; every other field kept.
    pub fn with_secret(
        &self,
        secret: &SecretString,
        updates: &[(&str, Value)],
        registration_access_token: Option<&SecretString>,
    ) -> SecretString {
        let mut fields = self.fields.clone();
        for (name, value) in updates {
            if !SECRET_FIELDS.contains(name) {
                fields.insert((*name).to_owned(), value.clone());
            }
        }
        fields.insert(
            "client_secret".into(),
            Value::String(secret.expose_secret().to_owned()),
        );
        if let Some(token) = registration_access_token.or(self.registration_access_token.as_ref()) {
            fields.insert(
                "registration_access_token".into(),
                Value::String(token.expose_secret().to_owned()),
            );
        }
        SecretString::from(Value::Object(fields).to_string())
    }
}

/// Whose secret a client secret rotates: a client at a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAt {
    /// The provider.
    pub provider: Provider,
    /// The client id.
    pub client_id: String,
}

impl fmt::Display for ClientAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {:?} at {}", self.client_id, self.provider)
    }
}

impl SecretValue for ClientSecret {
    type Invalid = SecretError;
    type Target = ClientAt;

    fn parse(value: &SecretString) -> Result<Self, SecretError> {
        ClientSecret::parse(value)
    }

    fn target(&self) -> ClientAt {
        ClientAt {
            provider: self.provider,
            client_id: self.client_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn value(fields: Value) -> SecretString {
        SecretString::from(fields.to_string())
    }

    #[test]
    fn parses_and_writes_back() {
        let stored = json!({
            "provider": "rfc7592", "client_id": "c1", "client_secret": "s3cr3t",
            "token_endpoint": "https://idp/token",
            "registration_client_uri": "https://idp/reg/c1", "registration_access_token": "r4t",
            "note": 1,
        });
        let client = ClientSecret::parse(&value(stored.clone())).unwrap();
        assert_eq!(
            (client.provider, client.auth_method),
            (Provider::Rfc7592, AuthMethod::Basic)
        );
        assert!(!format!("{client:?}").contains("s3cr3t"));
        let out = client.with_secret(
            &SecretString::from("new"),
            &[("key_id", Value::from("k"))],
            None,
        );
        let mut expected = stored;
        expected["client_secret"] = json!("new");
        expected["key_id"] = json!("k");
        assert_eq!(out.expose_secret(), expected.to_string(), "order kept");
    }

    #[test]
    fn errors_name_the_field() {
        let okta = json!({
            "provider": "okta", "client_id": "c", "client_secret": "s3cr3t",
            "token_endpoint": "https://t", "management_secret_arn": "m",
        });
        let with = |changes: Value| {
            let mut fields = okta.clone();
            for (name, change) in changes.as_object().unwrap() {
                fields[name] = change.clone();
            }
            fields
        };
        let without = |name: &str| {
            let mut fields = okta.clone();
            fields.as_object_mut().unwrap().remove(name);
            fields
        };
        let cases = [
            (with(json!({"provider": "x"})), "provider \"x\""),
            (without("client_secret"), "no client_secret"),
            (
                with(json!({"token_endpoint": "http://idp.example/t"})),
                "not an https",
            ),
            (
                with(json!({"provider": "rfc7592", "registration_client_uri": "https://r"})),
                "registration_access_token",
            ),
            (
                with(json!({"token_endpoint_auth_method": "private_key_jwt"})),
                "client_secret_basic",
            ),
            (
                without("management_secret_arn"),
                "no management_secret_arn field, which provider okta needs",
            ),
        ];
        for (fields, expected) in cases {
            let error = ClientSecret::parse(&value(fields)).unwrap_err().to_string();
            assert!(
                error.contains(expected) && !error.contains("s3cr3t"),
                "{error}"
            );
        }
    }
}
