//! glewlwyd's admin API: reading and editing a client's secret, scopes and
//! authentication methods behind the test API key.

use super::*;

impl OAuthServer {
    /// A client as glewlwyd's admin API shows it (`client_secret`,
    /// `token_endpoint_auth_method`, `scope`, `authorization_type`, ...).
    pub async fn admin_get_client(&self, client_id: &str) -> anyhow::Result<Value> {
        let url = format!("{}/api/client/{}", self.base_url(), path_encode(client_id));
        let reply = self
            .send(self.admin(self.http.get(url)), "admin read")
            .await?;
        if reply.status != 200 {
            bail!(
                "the admin API answered HTTP {} for client {client_id}",
                reply.status
            );
        }
        reply.json()
    }

    /// Replaces a client through the admin API. glewlwyd replaces every
    /// property: one left out is removed.
    pub async fn admin_put_client(&self, client_id: &str, client: &Value) -> anyhow::Result<()> {
        let url = format!("{}/api/client/{}", self.base_url(), path_encode(client_id));
        let request = self.admin(self.http.put(url)).json(client);
        let reply = self.send(request, "admin update").await?;
        if reply.status != 200 {
            bail!(
                "the admin API answered HTTP {} for client {client_id}: {}",
                reply.status,
                reply.body
            );
        }
        Ok(())
    }

    /// Sets a client's secret to a value of the caller's choosing (admin API),
    /// keeping everything else; a test that needs a known old secret uses it.
    pub async fn admin_set_secret(
        &self,
        client_id: &str,
        secret: &SecretString,
    ) -> anyhow::Result<()> {
        self.admin_edit_client(client_id, |client| {
            client.insert("client_secret".to_owned(), json!(secret.expose_secret()));
        })
        .await
    }

    /// Sets the authentication methods a client may use at the token endpoint
    /// (admin API; registration allows only one).
    pub async fn admin_set_auth_methods(
        &self,
        client_id: &str,
        methods: &[AuthMethod],
    ) -> anyhow::Result<()> {
        let methods: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
        self.admin_edit_client(client_id, |client| {
            client.insert("token_endpoint_auth_method".to_owned(), json!(methods));
        })
        .await
    }

    pub(super) async fn admin_edit_client(
        &self,
        client_id: &str,
        edit: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> anyhow::Result<()> {
        let mut client = match self.admin_get_client(client_id).await? {
            Value::Object(map) => map,
            _ => bail!("the admin API's client {client_id} is not a JSON object"),
        };
        // `source` names the client module; the admin API adds it on reads.
        client.remove("source");
        edit(&mut client);
        self.admin_put_client(client_id, &Value::Object(client))
            .await
    }

    pub(super) fn admin(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header(
            "Authorization",
            format!("token {}", self.api_key.expose_secret()),
        )
    }
}
