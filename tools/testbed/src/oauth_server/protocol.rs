//! The OAuth side the tests drive: discovery, dynamic registration
//! (RFC 7591) and its management (RFC 7592), the `client_credentials` grant,
//! and the HTTP plumbing shared with the admin API.

use super::*;

impl OAuthServer {
    /// The discovery document.
    pub async fn discovery(&self) -> anyhow::Result<Value> {
        let reply = self
            .send(self.http.get(self.discovery_url()), "discovery")
            .await?;
        if reply.status != 200 {
            bail!("discovery answered HTTP {}: {}", reply.status, reply.body);
        }
        reply.json()
    }

    /// Registers a confidential `client_credentials` client (RFC 7591) that
    /// authenticates with `auth_method`; glewlwyd issues its secret and a
    /// registration access token.
    pub async fn register_client(
        &self,
        auth_method: AuthMethod,
    ) -> anyhow::Result<RegisteredClient> {
        self.register_client_with(json!({
            "client_name": "rotor test client",
            "token_endpoint_auth_method": auth_method.as_str(),
            "grant_types": ["client_credentials"],
            "redirect_uris": [REDIRECT_URI],
        }))
        .await
    }

    /// Registers a client with these metadata, as they are.
    pub async fn register_client_with(&self, metadata: Value) -> anyhow::Result<RegisteredClient> {
        let request = self.http.post(self.registration_endpoint()).json(&metadata);
        let reply = self.send(request, "registration").await?;
        if reply.status != 200 && reply.status != 201 {
            // An error body has no secret in it.
            bail!(
                "registration answered HTTP {}: {}",
                reply.status,
                reply.body
            );
        }
        let mut metadata = match reply.json()? {
            Value::Object(map) => map,
            _ => bail!(
                "registration answered HTTP {} without a JSON object",
                reply.status
            ),
        };
        let mut take = |name: &str| -> anyhow::Result<String> {
            match metadata.remove(name) {
                Some(Value::String(value)) if !value.is_empty() => Ok(value),
                _ => bail!("the registration response has no string `{name}`"),
            }
        };
        let client_secret = SecretString::from(take("client_secret")?);
        let registration_access_token = SecretString::from(take("registration_access_token")?);
        let client_id = take("client_id")?;
        let registration_client_uri = take("registration_client_uri")?;
        let mut metadata = Value::Object(metadata);
        metadata["client_id"] = json!(client_id);
        metadata["registration_client_uri"] = json!(registration_client_uri);
        Ok(RegisteredClient {
            client_id,
            client_secret,
            registration_client_uri,
            registration_access_token,
            metadata,
        })
    }

    /// RFC 7592 read: GET `uri` with the registration access token.
    pub async fn registration_read(
        &self,
        uri: &str,
        registration_access_token: &SecretString,
    ) -> anyhow::Result<HttpReply> {
        let request = self
            .http
            .get(uri)
            .bearer_auth(registration_access_token.expose_secret());
        self.send(request, "RFC 7592 read").await
    }

    /// RFC 7592 update: PUT `metadata` to `uri` with the registration access
    /// token.
    pub async fn registration_update(
        &self,
        uri: &str,
        registration_access_token: &SecretString,
        metadata: &Value,
    ) -> anyhow::Result<HttpReply> {
        let request = self
            .http
            .put(uri)
            .bearer_auth(registration_access_token.expose_secret())
            .json(metadata);
        self.send(request, "RFC 7592 update").await
    }

    /// The `client_credentials` grant. glewlwyd requires a scope: `None` asks
    /// for [`CLIENT_SCOPE`], the scope every registered client has; `Some("")`
    /// sends no `scope` parameter at all (refused with a bare 403).
    pub async fn client_credentials(
        &self,
        client_id: &str,
        secret: &SecretString,
        auth_method: AuthMethod,
        scope: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let mut form = vec![("grant_type", "client_credentials")];
        let scope = scope.unwrap_or(CLIENT_SCOPE);
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let mut request = self.http.post(self.token_endpoint());
        match auth_method {
            AuthMethod::ClientSecretBasic => {
                request = request.basic_auth(client_id, Some(secret.expose_secret()));
            }
            AuthMethod::ClientSecretPost => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret.expose_secret()));
            }
        }
        let request = request
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_encode(&form));
        let reply = self
            .send(request, "token request")
            .await
            .map_err(|e| TokenError::Transport(format!("{e:#}")))?;
        let body: Option<Value> = serde_json::from_str(&reply.body).ok();
        let field = |name: &str| {
            body.as_ref()
                .and_then(|b| b.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if reply.status != 200 {
            return Err(TokenError::Refused {
                status: reply.status,
                error: field("error"),
                error_description: field("error_description"),
            });
        }
        let access_token = field("access_token")
            .ok_or_else(|| TokenError::Transport("HTTP 200 without an access_token".to_owned()))?;
        Ok(TokenResponse {
            access_token: SecretString::from(access_token),
            token_type: field("token_type").unwrap_or_default(),
            expires_in: body
                .as_ref()
                .and_then(|b| b.get("expires_in"))
                .and_then(Value::as_u64),
            scope: field("scope"),
        })
    }

    pub(super) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<HttpReply> {
        let response = request
            .send()
            .await
            .with_context(|| format!("{what}: no answer from the test OAuth server"))?;
        let status = response.status().as_u16();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .with_context(|| format!("{what}: reading the answer"))?;
        Ok(HttpReply {
            status,
            www_authenticate,
            body,
        })
    }
}

/// `application/x-www-form-urlencoded`.
pub(super) fn form_encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One URL path segment.
pub(super) fn path_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
