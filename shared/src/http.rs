//! HTTPS for the functions that call web APIs (webhooks, identity providers):
//! one client per process, built on first use, and the rules every such call
//! follows. New secret values travel only over TLS; plain HTTP is allowed to
//! this machine alone (local receivers in tests and demos). Messages name a URL
//! by origin and path, never its query string or user info.

use std::sync::OnceLock;
use std::time::Duration;

/// The shared client: short timeouts, no redirects (a redirect could carry a
/// secret to another host), rustls on ring with the platform's roots (which
/// include `SSL_CERT_FILE`).
pub fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        use_ring();
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// Makes ring the process's rustls provider. reqwest is built without a
/// provider of its own (its `rustls` feature would bring aws-lc) and panics
/// when it builds a TLS client with none installed: call this first.
pub fn use_ring() {
    // An error means a provider is installed already: reqwest uses that one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// HTTPS, or plain HTTP to 127.0.0.1 or localhost only.
pub fn require_tls(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let loopback = [
        "http://127.0.0.1:",
        "http://127.0.0.1/",
        "http://localhost:",
        "http://localhost/",
        "http://[::1]:",
    ];
    if loopback.iter().any(|p| url.starts_with(p)) {
        return Ok(());
    }
    Err(format!(
        "{} is not an https:// URL; rotor sends secrets only over TLS (plain http is allowed to 127.0.0.1 and localhost only)",
        display_url(url)
    ))
}

/// The URL without its query string or credentials, for messages.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default(),
            parsed.path()
        ),
        Err(_) => "(an unparsable URL)".into(),
    }
}

/// A request failure in words: what happened, without the URL's secrets.
pub fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "did not answer in time"
    } else if error.is_connect() {
        "could not be reached (connection refused, DNS or TLS failure)"
    } else {
        "failed"
    };
    // reqwest puts the whole URL, query string included, in its message.
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), &display_url(url.as_str()));
    }
    let mut next = std::error::Error::source(error);
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    format!("{what}: {text}; check the URL and that the server is up")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_lose_query_and_credentials() {
        assert_eq!(
            display_url("https://u:p@h.example:8443/a/b?token=x"),
            "https://h.example:8443/a/b"
        );
    }

    #[test]
    fn tls_unless_loopback() {
        assert!(require_tls("https://idp.example/token").is_ok());
        assert!(require_tls("http://127.0.0.1:8080/token").is_ok());
        let refused = require_tls("http://idp.example/token?secret=s").unwrap_err();
        assert!(refused.contains("http://idp.example/token") && !refused.contains("secret=s"));
    }
}
