//! Management credentials: the secret that holds them must agree to serve the
//! client's secret, and the client's base URL must lie under the endpoint it
//! names, all checked before any request ([`bind`]); then a token for them
//! ([`Bound::authorize`]).

use rotor_core::http::{UrlError, UrlPrefix, display_url};
use rotor_core::labels::AWSCURRENT;
use rotor_core::linked::{Deployer, Link};
use rotor_core::value::{self, SecretValue};
use rotor_core::{
    Cause, Error, ExposeSecret, SecretStore, SecretString, StepContext, TargetError, TargetKind,
};
use serde_json::Value;

use super::lacking;
use crate::secret::{AuthMethod, ClientSecret, MANAGEMENT_SECRET_FIELD, Provider};
use crate::token::{Grant, client_credentials};

/// Credentials for management calls: the `Authorization` header value, and
/// (for a management secret) the provider base URL it is bound to.
pub struct Management {
    pub(super) authorization: SecretString,
    base: Option<String>,
}

impl Management {
    /// RFC 7592: the client's own registration access token, for its own
    /// registration URI (checked when the secret is parsed).
    pub(super) fn bearer(token: &str) -> Management {
        Management {
            authorization: SecretString::from(format!("Bearer {token}")),
            base: None,
        }
    }

    /// The provider base URL every management call starts from: the one the
    /// management secret names, or the client's own below it.
    pub(super) fn base(&self) -> Result<&str, Error> {
        self.base.as_deref().ok_or_else(|| {
            TargetError::new(
                Cause::Rejected,
                "no provider base URL is bound to these credentials",
            )
            .at(TargetKind::Provider, "management")
        })
    }
}

/// The setting of the management secret that names the provider endpoint
/// it is for.
pub const ENDPOINT_FIELD: &str = "endpoint";

/// The client secret's field that names the provider's base URL, for the
/// providers managed with a management secret.
pub fn base_field(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Keycloak => Some("keycloak_url"),
        Provider::Okta => Some("okta_domain"),
        Provider::Entra => Some("graph_url"),
        Provider::Auth0 => Some("auth0_domain"),
        Provider::Rfc7592 => None,
    }
}

/// A management secret's value: credentials, and the provider endpoint
/// they are for (its `endpoint` field), parsed.
pub struct ManagementSecret {
    /// The provider base URL the credentials are for.
    endpoint: reqwest::Url,
    /// The same, as the prefix every management call's URL must lie under.
    prefix: UrlPrefix,
    credential: Credential,
}

enum Credential {
    /// A ready `Authorization` value (`Bearer …`, `SSWS …`).
    Header(SecretString),
    /// A client of its own, exchanged for a token with client_credentials at
    /// the token endpoint it names (its own choice, as its own secret).
    Client {
        id: String,
        secret: SecretString,
        token_endpoint: String,
        method: AuthMethod,
        scope: Option<String>,
        audience: Option<String>,
    },
}

/// Why a value is not a management secret's (each message names the field
/// at fault, never a value).
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The value is not a JSON object.
    #[error("is not a JSON object")]
    NotAnObject,
    /// No `endpoint`: the credentials would be for anywhere.
    #[error(
        "has no endpoint field. A management secret names the provider endpoint its credentials are for, and rotor sends them nowhere else: add \"endpoint\": \"<the provider base URL>\" (the keycloak_url, okta_domain, graph_url or auth0_domain of the clients it serves, such as https://example.okta.com)"
    )]
    NoEndpoint,
    /// The `endpoint` is refused (not TLS, user info, no prefix shape).
    #[error("has an endpoint field that is refused: {0}")]
    Endpoint(UrlError),
    /// No credential rotor knows.
    #[error("has neither token, okta_api_token, nor client_id + client_secret + token_endpoint")]
    NoCredential,
    /// The management client's token endpoint is refused.
    #[error("has a token_endpoint that is refused: {0}")]
    TokenEndpoint(UrlError),
    /// The management client's auth method is neither basic nor post.
    #[error(
        "has a token_endpoint_auth_method other than client_secret_basic or client_secret_post"
    )]
    AuthMethod,
}

impl SecretValue for ManagementSecret {
    type Invalid = ManagementError;
    type Target = String;

    fn parse(value: &SecretString) -> Result<Self, ManagementError> {
        let value: Value = serde_json::from_str(value.expose_secret())
            .map_err(|_| ManagementError::NotAnObject)?;
        let endpoint = value[ENDPOINT_FIELD]
            .as_str()
            .filter(|e| !e.trim().is_empty())
            .ok_or(ManagementError::NoEndpoint)?;
        let endpoint =
            rotor_core::http::parse_endpoint(endpoint).map_err(ManagementError::Endpoint)?;
        let prefix = UrlPrefix::parse(endpoint.as_str()).map_err(ManagementError::Endpoint)?;
        let text = |name: &str| value[name].as_str();
        let credential = if let Some(token) = text("token") {
            Credential::Header(SecretString::from(format!("Bearer {token}")))
        } else if let Some(token) = text("okta_api_token") {
            Credential::Header(SecretString::from(format!("SSWS {token}")))
        } else {
            let (Some(id), Some(secret), Some(token_endpoint)) = (
                text("client_id"),
                text("client_secret"),
                text("token_endpoint"),
            ) else {
                return Err(ManagementError::NoCredential);
            };
            let token_endpoint = rotor_core::http::parse_endpoint(token_endpoint)
                .map_err(ManagementError::TokenEndpoint)?;
            // As the management client is configured at its provider (Auth0's machine-to-machine
            // applications default to client_secret_post, and providers enforce the method).
            let method = match text("token_endpoint_auth_method") {
                None | Some("client_secret_basic") => AuthMethod::Basic,
                Some("client_secret_post") => AuthMethod::Post,
                Some(_) => return Err(ManagementError::AuthMethod),
            };
            Credential::Client {
                id: id.to_owned(),
                secret: SecretString::from(secret),
                token_endpoint: token_endpoint.into(),
                method,
                scope: text("scope").map(str::to_owned),
                audience: text("audience").map(str::to_owned),
            }
        };
        Ok(ManagementSecret {
            endpoint,
            prefix,
            credential,
        })
    }

    fn target(&self) -> String {
        display_url(self.endpoint.as_str())
    }
}

/// A management secret that agreed to serve the client's secret, bound to the
/// provider endpoint it names, with the client's base URL checked against
/// that endpoint. Nothing has been sent anywhere yet.
pub struct Bound {
    /// The management secret's ARN, for messages.
    secret: String,
    /// Where the management calls go.
    base: String,
    credential: Credential,
}

/// Reads the management secret the client names (`management_secret_arn`) if
/// it agrees to serve this client's secret (its `rotor:serves` tag) or the
/// deployer allows it (`deployer`: `MANAGEMENT_SECRET_ARNS`), and checks that
/// the client's base URL lies under the endpoint the management secret names.
/// Refuses before any request is made: whoever writes a client secret must
/// not be able to send the shared admin credential to a host of their choosing.
pub async fn bind<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    client: &ClientSecret,
    deployer: &[String],
) -> Result<Bound, Error> {
    let link = Link {
        setting: MANAGEMENT_SECRET_FIELD,
        target: client
            .require(MANAGEMENT_SECRET_FIELD)
            .map_err(lacking(client))?,
        deployer: Deployer {
            variable: crate::MANAGEMENT_SECRETS_VAR,
            secrets: deployer,
        },
    };
    let linked = rotor_core::linked::read(ctx.store(), ctx.secret, link).await?;
    let management: ManagementSecret =
        value::parse_version(&linked.arn, AWSCURRENT, &linked.value)?;
    let base = bound_base(ctx.secret_arn(), &linked.arn, client, &management)?;
    Ok(Bound {
        secret: linked.arn,
        base,
        credential: management.credential,
    })
}

/// The provider base URL for management calls: the client's own base URL
/// field when it lies under the management secret's `endpoint` (same scheme,
/// host and port, and a path at or below it), else that endpoint. `secret` is
/// the client's secret, `management` the management secret (for messages).
fn bound_base(
    secret: &str,
    management: &str,
    client: &ClientSecret,
    bound: &ManagementSecret,
) -> Result<String, Error> {
    let endpoint = || bound.endpoint.as_str().to_owned();
    let Some(field) = base_field(client.provider) else {
        return Ok(endpoint());
    };
    let Some(text) = client.field(field) else {
        return Ok(endpoint());
    };
    let refused = |problem: String| Error::InvalidSettings {
        secret: secret.to_owned(),
        setting: field.to_owned(),
        problem,
    };
    let url = rotor_core::http::parse_endpoint(text).map_err(|e| refused(e.to_string()))?;
    let shown = display_url(text);
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refused(format!(
            "{shown} has a query or fragment; a provider base URL is scheme://host[:port][/path]"
        )));
    }
    let prefix = &bound.prefix;
    if !prefix.admits(&url) {
        return Err(refused(format!(
            "is {shown}, but the management secret {management} ({MANAGEMENT_SECRET_FIELD}) is for {prefix} (its {ENDPOINT_FIELD} field), and rotor sends its credentials nowhere else (same scheme, host and port, and a path at or below it). Set {field} to {prefix} or a URL below it, remove {field} to use that endpoint, or name a management secret whose {ENDPOINT_FIELD} is {shown}"
        )));
    }
    Ok(url.into())
}

impl Bound {
    /// Turns the bound credentials into an Authorization header: a token
    /// request for a management client, nothing for a stored token.
    pub async fn authorize(self) -> Result<Management, Error> {
        let authorization = match self.credential {
            Credential::Header(header) => header,
            Credential::Client {
                id,
                secret,
                token_endpoint,
                method,
                scope,
                audience,
            } => {
                let grant = Grant {
                    endpoint: &token_endpoint,
                    client_id: &id,
                    secret: &secret,
                    method,
                    scope: scope.as_deref(),
                    audience: audience.as_deref(),
                };
                let token = client_credentials(&grant).await.map_err(|e| {
                    let endpoint = display_url(&token_endpoint);
                    let target = format!(
                        "management token endpoint {endpoint} (management secret {})",
                        self.secret
                    );
                    e.at(TargetKind::Provider, target)
                })?;
                SecretString::from(format!("Bearer {}", token.expose_secret()))
            }
        };
        Ok(Management {
            authorization,
            base: Some(self.base),
        })
    }
}

/// [`bind`], then [`Bound::authorize`]: management credentials for the
/// client, bound to its provider.
pub async fn management<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    client: &ClientSecret,
    deployer: &[String],
) -> Result<Management, Error> {
    bind(ctx, client, deployer).await?.authorize().await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn okta(domain: Option<&str>) -> ClientSecret {
        let mut value = json!({
            "provider": "okta", "client_id": "c", "client_secret": "s3cr3t",
            "token_endpoint": "https://example.okta.com/oauth2/v1/token",
            "management_secret_arn": "okta-admin",
        });
        if let Some(domain) = domain {
            value["okta_domain"] = json!(domain);
        }
        ClientSecret::parse(&SecretString::from(value.to_string())).unwrap()
    }

    /// The management secret `okta-admin`, with a token and `endpoint`.
    fn parse(endpoint: Option<&str>) -> Result<ManagementSecret, Error> {
        let mut value = json!({"token": "t0k3n"});
        if let Some(endpoint) = endpoint {
            value[ENDPOINT_FIELD] = json!(endpoint);
        }
        let value = SecretString::from(value.to_string());
        value::parse_version("okta-admin", AWSCURRENT, &value)
    }

    #[test]
    fn the_base_url_lies_under_the_management_secrets_endpoint() {
        let bound = parse(Some("https://example.okta.com")).unwrap();
        let base = |domain| bound_base("app", "okta-admin", &okta(domain), &bound);
        for (domain, expected) in [
            (None, "https://example.okta.com/"),
            (
                Some("https://example.okta.com"),
                "https://example.okta.com/",
            ),
            (
                Some("https://EXAMPLE.okta.com:443/"),
                "https://example.okta.com/",
            ),
            (
                Some("https://example.okta.com/org"),
                "https://example.okta.com/org",
            ),
        ] {
            assert_eq!(base(domain).unwrap(), expected, "{domain:?}");
        }
        for domain in [
            "https://evil.example",
            "https://example.okta.com@evil.example/",
            "https://example.okta.com.evil.example",
            "https://example.okta.com:8443",
            "http://127.0.0.1:9",
            "https://user:pw@example.okta.com",
            "https://example.okta.com/?next=x",
            "not a url",
        ] {
            let error = base(Some(domain)).unwrap_err();
            assert_eq!(
                error.error_type(),
                "NotRetryable.InvalidSettings",
                "{domain}"
            );
            let text = error.to_string();
            assert!(
                text.contains("okta_domain") && !text.contains("pw"),
                "{text}"
            );
        }
        // Under a path: only whole segments below it.
        let under = parse(Some("https://idp.example/auth")).unwrap();
        let base = |domain| bound_base("app", "m", &okta(Some(domain)), &under);
        assert!(base("https://idp.example/auth/x").is_ok());
        assert!(base("https://idp.example/authx").is_err());
    }

    #[test]
    fn a_management_secret_without_an_endpoint_is_refused_with_the_fix() {
        for endpoint in [
            None,
            Some(""),
            Some("http://idp.example"),
            Some("https://u@idp"),
        ] {
            let error = parse(endpoint).err().expect("refused");
            assert_eq!(error.error_type(), "NotRetryable.InvalidSecretValue");
            let text = error.to_string();
            assert!(
                text.contains("okta-admin") && text.contains("endpoint") && !text.contains("t0k3n"),
                "{text}"
            );
        }
        let missing = parse(None).err().expect("refused");
        assert!(
            missing
                .to_string()
                .contains(r#"add "endpoint": "<the provider base URL>""#),
            "{missing}"
        );
    }
}
