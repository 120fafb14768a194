//! The secret's format: one confidential OAuth 2.0 client. The client secret and
//! any registration access token go straight into `SecretString`s; every other
//! field is kept as it is and written back with the new secret.

use std::fmt;

use rotor_core::http::UrlError;
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

/// A parsed client secret.
pub struct Client {
    /// The provider.
    pub provider: Provider,
    /// The client id.
    pub client_id: String,
    /// The client secret.
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

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("token_endpoint", &self.token_endpoint)
            .finish_non_exhaustive()
    }
}

/// Why a secret value is not an OAuth client (each message names the field
/// at fault, never a value).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
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

impl Client {
    /// Parses a secret value; the error names the field at fault, never a value.
    pub fn parse(value: &SecretString) -> Result<Client, ClientError> {
        let mut fields = match serde_json::from_str::<Value>(value.expose_secret()) {
            Ok(Value::Object(fields)) => fields,
            _ => return Err(ClientError::NotAnObject),
        };
        let mut secret = |name: &str| -> Result<Option<SecretString>, ClientError> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(_)) => match fields.insert(name.to_owned(), Value::Null) {
                    Some(Value::String(s)) => Ok(Some(SecretString::from(s))),
                    _ => Ok(None),
                },
                Some(_) => Err(ClientError::NotAString(name.to_owned())),
            }
        };
        let client_secret = secret("client_secret")?.ok_or(ClientError::NoClientSecret)?;
        let registration_access_token = secret("registration_access_token")?;
        let text = |name: &str| -> Result<Option<String>, ClientError> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ClientError::NotAString(name.to_owned())),
            }
        };
        let required =
            |name: &str| text(name)?.ok_or_else(|| ClientError::Missing(name.to_owned()));
        let provider_text = required("provider")?;
        let provider = Provider::parse(&provider_text)
            .ok_or_else(|| ClientError::UnknownProvider(provider_text.clone()))?;
        let token_endpoint = required("token_endpoint")?;
        rotor_core::http::require_tls(&token_endpoint)?;
        let auth_method = match text("token_endpoint_auth_method")?.as_deref() {
            None | Some("client_secret_basic") => AuthMethod::Basic,
            Some("client_secret_post") => AuthMethod::Post,
            Some(other) => return Err(ClientError::UnknownAuthMethod(other.to_owned())),
        };
        if provider == Provider::Rfc7592 {
            let uri = required("registration_client_uri")?;
            rotor_core::http::require_tls(&uri)?;
            if registration_access_token.is_none() {
                return Err(ClientError::NoRegistrationToken);
            }
        }
        Ok(Client {
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
    pub fn require(&self, name: &str) -> Result<&str, ClientError> {
        self.field(name).ok_or_else(|| ClientError::ProviderNeeds {
            field: name.to_owned(),
            provider: self.provider,
        })
    }

    /// The secret with a new client secret, new plain fields and (RFC 7592) a
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_back() {
        let secret = SecretString::from(
            r#"{"provider":"rfc7592","client_id":"c1","client_secret":"s3cr3t","token_endpoint":"https://idp/token","registration_client_uri":"https://idp/reg/c1","registration_access_token":"r4t","note":1}"#,
        );
        let client = Client::parse(&secret).unwrap();
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
        assert_eq!(
            out.expose_secret(),
            r#"{"provider":"rfc7592","client_id":"c1","client_secret":"new","token_endpoint":"https://idp/token","registration_client_uri":"https://idp/reg/c1","registration_access_token":"r4t","note":1,"key_id":"k"}"#
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"provider":"x","client_id":"c","client_secret":"s3cr3t","token_endpoint":"https://t"}"#,
                "provider \"x\"",
            ),
            (
                r#"{"provider":"okta","client_id":"c","token_endpoint":"https://t"}"#,
                "no client_secret",
            ),
            (
                r#"{"provider":"okta","client_id":"c","client_secret":"s3cr3t","token_endpoint":"http://idp.example/t"}"#,
                "not an https",
            ),
            (
                r#"{"provider":"rfc7592","client_id":"c","client_secret":"s3cr3t","token_endpoint":"https://t","registration_client_uri":"https://r"}"#,
                "registration_access_token",
            ),
            (
                r#"{"provider":"okta","client_id":"c","client_secret":"s3cr3t","token_endpoint":"https://t","token_endpoint_auth_method":"private_key_jwt"}"#,
                "client_secret_basic",
            ),
        ];
        for (json, expected) in cases {
            let error = Client::parse(&SecretString::from(json))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected) && !error.contains("s3cr3t"),
                "{error}"
            );
        }
    }
}

/// Whose secret an OAuth client secret rotates: a client at a provider.
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

impl rotor_core::SecretValue for Client {
    type Invalid = ClientError;
    type Target = ClientAt;

    fn parse(value: &SecretString) -> Result<Self, ClientError> {
        Client::parse(value)
    }

    fn target(&self) -> ClientAt {
        ClientAt {
            provider: self.provider,
            client_id: self.client_id.clone(),
        }
    }
}
