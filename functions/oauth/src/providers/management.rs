//! Management credentials: the secret that holds them must agree to serve the
//! client's secret, and the client's base URL must lie under the endpoint it
//! names, all checked before any request ([`bind`]); then a token for them
//! ([`Bound::authorize`]).

use rotor_core::http::{UrlPrefix, display_url};
use rotor_core::labels::AWSCURRENT;
use rotor_core::linked::{Deployer, Link};
use rotor_core::{
    Cause, Error, ExposeSecret, SecretStore, SecretString, StepContext, TargetError, TargetKind,
};
use serde_json::Value;

use crate::client::{AuthMethod, Client, Provider};
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

fn invalid(ctx_secret: &str, label: &str, problem: String) -> Error {
    Error::InvalidSecretValue {
        secret: ctx_secret.to_owned(),
        label: label.to_owned(),
        problem,
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

/// Reads the management secret the client names (`management_secret_arn`) if
/// it agrees to serve this client's secret (its `rotor:serves` tag) or the
/// deployer allows it (`deployer`: `MANAGEMENT_SECRET_ARNS`), and checks that
/// the client's base URL lies under the endpoint the management secret names.
/// Refuses before any request is made: whoever writes a client secret must
/// not be able to send the shared admin credential to a host of their choosing.
pub async fn bind<S: SecretStore>(
    ctx: &StepContext<'_, S>,
    client: &Client,
    deployer: &[String],
) -> Result<Bound, Error> {
    let target = client
        .require("management_secret_arn")
        .map_err(|p| invalid(ctx.secret_arn(), AWSCURRENT, p.to_string()))?;
    let link = Link {
        setting: "management_secret_arn",
        target,
        deployer: Deployer {
            variable: crate::MANAGEMENT_SECRETS_VAR,
            secrets: deployer,
        },
    };
    let linked = rotor_core::linked::read(ctx.store(), ctx.secret, link).await?;
    let arn = linked.arn;
    let bad = |problem: String| Error::InvalidSecretValue {
        secret: arn.clone(),
        label: AWSCURRENT.into(),
        problem,
    };
    let value: Value = serde_json::from_str(linked.value.expose_secret())
        .map_err(|_| bad("is not a JSON object".into()))?;
    let base = bound_base(
        ctx.secret_arn(),
        &arn,
        client,
        value[ENDPOINT_FIELD].as_str(),
    )?;
    let credential = if let Some(token) = value["token"].as_str() {
        Credential::Header(SecretString::from(format!("Bearer {token}")))
    } else if let Some(token) = value["okta_api_token"].as_str() {
        Credential::Header(SecretString::from(format!("SSWS {token}")))
    } else {
        let (Some(id), Some(secret), Some(token_endpoint)) = (
            value["client_id"].as_str(),
            value["client_secret"].as_str(),
            value["token_endpoint"].as_str(),
        ) else {
            return Err(bad(
                "has neither token, okta_api_token, nor client_id + client_secret + token_endpoint"
                    .into(),
            ));
        };
        let token_endpoint = rotor_core::http::parse_endpoint(token_endpoint)
            .map_err(|p| bad(format!("has a token_endpoint that is refused: {p}")))?;
        // As the management client is configured at its provider (Auth0's machine-to-machine
        // applications default to client_secret_post, and providers enforce the method).
        let method = match value["token_endpoint_auth_method"].as_str() {
            None | Some("client_secret_basic") => AuthMethod::Basic,
            Some("client_secret_post") => AuthMethod::Post,
            Some(_) => {
                return Err(bad(
                    "has a token_endpoint_auth_method other than client_secret_basic or client_secret_post".into(),
                ));
            }
        };
        Credential::Client {
            id: id.to_owned(),
            secret: SecretString::from(secret),
            token_endpoint: token_endpoint.into(),
            method,
            scope: value["scope"].as_str().map(str::to_owned),
            audience: value["audience"].as_str().map(str::to_owned),
        }
    };
    Ok(Bound {
        secret: arn,
        base,
        credential,
    })
}

/// The provider base URL for management calls: the client's own base URL
/// field when it lies under the management secret's `endpoint` (same scheme,
/// host and port, and a path at or below it), else that endpoint. `secret` is
/// the client's secret, `management` the management secret (for messages).
fn bound_base(
    secret: &str,
    management: &str,
    client: &Client,
    endpoint: Option<&str>,
) -> Result<String, Error> {
    let bad = |problem: String| Error::InvalidSecretValue {
        secret: management.to_owned(),
        label: AWSCURRENT.into(),
        problem,
    };
    let field = base_field(client.provider).unwrap_or("endpoint");
    let Some(endpoint) = endpoint.filter(|e| !e.trim().is_empty()) else {
        return Err(bad(format!(
            "has no {ENDPOINT_FIELD} field. A management secret names the provider endpoint its credentials are for, and rotor sends them nowhere else: add \"{ENDPOINT_FIELD}\": \"<the provider base URL>\" (the {field} of the clients it serves, such as {})",
            example_base(client.provider)
        )));
    };
    let endpoint_url = rotor_core::http::parse_endpoint(endpoint).map_err(|p| {
        bad(format!(
            "has an {ENDPOINT_FIELD} field that is refused: {p}"
        ))
    })?;
    let prefix = UrlPrefix::parse(endpoint_url.as_str()).map_err(|p| {
        bad(format!(
            "has an {ENDPOINT_FIELD} field that is refused: {p}"
        ))
    })?;
    let base = match client.field(field) {
        None => endpoint_url,
        Some(text) => {
            let refused = |problem: String| Error::InvalidSettings {
                secret: secret.to_owned(),
                setting: field.to_owned(),
                problem,
            };
            let url = rotor_core::http::parse_endpoint(text).map_err(|e| refused(e.to_string()))?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(refused(format!(
                    "{} has a query or fragment; a provider base URL is scheme://host[:port][/path]",
                    display_url(text)
                )));
            }
            if !prefix.admits(&url) {
                return Err(refused(format!(
                    "is {}, but the management secret {management} (management_secret_arn) is for {prefix} (its {ENDPOINT_FIELD} field), and rotor sends its credentials nowhere else (same scheme, host and port, and a path at or below it). Set {field} to {prefix} or a URL below it, remove {field} to use that endpoint, or name a management secret whose {ENDPOINT_FIELD} is {}",
                    display_url(text),
                    display_url(text)
                )));
            }
            url
        }
    };
    Ok(base.into())
}

fn example_base(provider: Provider) -> &'static str {
    match provider {
        Provider::Okta => "https://example.okta.com",
        Provider::Keycloak => "https://keycloak.example.com",
        Provider::Entra => "https://graph.microsoft.com",
        Provider::Auth0 => "https://example.auth0.com",
        Provider::Rfc7592 => "https://idp.example.com",
    }
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
                    TargetError::new(e.cause, e.problem).at(
                        TargetKind::Provider,
                        format!(
                            "management token endpoint {} (management secret {})",
                            display_url(&token_endpoint),
                            self.secret
                        ),
                    )
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
    client: &Client,
    deployer: &[String],
) -> Result<Management, Error> {
    bind(ctx, client, deployer).await?.authorize().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn okta(domain: Option<&str>) -> Client {
        let mut value = json!({
            "provider": "okta", "client_id": "c", "client_secret": "s3cr3t",
            "token_endpoint": "https://example.okta.com/oauth2/v1/token",
            "management_secret_arn": "okta-admin",
        });
        if let Some(domain) = domain {
            value["okta_domain"] = json!(domain);
        }
        Client::parse(&SecretString::from(value.to_string())).unwrap()
    }

    #[test]
    fn the_base_url_lies_under_the_management_secrets_endpoint() {
        let endpoint = Some("https://example.okta.com");
        for (domain, base) in [
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
            let bound = bound_base("app", "okta-admin", &okta(domain), endpoint);
            assert_eq!(bound.unwrap(), base, "{domain:?}");
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
            let error = bound_base("app", "okta-admin", &okta(Some(domain)), endpoint).unwrap_err();
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
        let under = Some("https://idp.example/auth");
        assert!(bound_base("app", "m", &okta(Some("https://idp.example/auth/x")), under).is_ok());
        assert!(bound_base("app", "m", &okta(Some("https://idp.example/authx")), under).is_err());
    }

    #[test]
    fn a_management_secret_without_an_endpoint_is_refused_with_the_fix() {
        for endpoint in [
            None,
            Some(""),
            Some("http://idp.example"),
            Some("https://u@idp"),
        ] {
            let error = bound_base("app", "okta-admin", &okta(None), endpoint).unwrap_err();
            assert_eq!(error.error_type(), "NotRetryable.InvalidSecretValue");
            let text = error.to_string();
            assert!(
                text.contains("okta-admin") && text.contains("endpoint"),
                "{text}"
            );
        }
        let missing = bound_base("app", "okta-admin", &okta(None), None).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains(r#"add "endpoint": "<the provider base URL>""#),
            "{missing}"
        );
    }
}
