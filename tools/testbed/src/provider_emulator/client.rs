//! Requests to the emulator from the tests: raw HTTP and a token grant.

use super::*;

impl ProviderEmulator {
    /// Sends one HTTP/1.1 request; returns the status and the JSON body (Null
    /// when there is none), or status 0 when the connection failed.
    pub async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.address,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        let mut response = Vec::new();
        let exchanged = async {
            let mut stream = TcpStream::connect(self.address).await?;
            stream.write_all(request.as_bytes()).await?;
            stream.read_to_end(&mut response).await
        };
        if exchanged.await.is_err() {
            return (0, Value::Null);
        }
        let text = String::from_utf8_lossy(&response);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (status, body)
    }

    /// A `client_credentials` grant at `endpoint` (one of this emulator's);
    /// returns the status: 200 when a token was issued.
    pub async fn grant(
        &self,
        endpoint: &str,
        client_id: &str,
        secret: &SecretString,
        auth: TokenAuth,
        extra: &[(&str, &str)],
    ) -> u16 {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let basic;
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        match auth {
            TokenAuth::Basic => {
                let pair = format!(
                    "{}:{}",
                    form_encode(client_id),
                    form_encode(secret.expose_secret())
                );
                basic = format!("Basic {}", base64_encode(pair.as_bytes(), false));
                headers.push(("Authorization", basic.as_str()));
            }
            TokenAuth::Post => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret.expose_secret()));
            }
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let target = endpoint.strip_prefix(&self.url()).unwrap_or(endpoint);
        self.send("POST", target, &headers, &body).await.0
    }
}
