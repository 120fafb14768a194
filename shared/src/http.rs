//! HTTPS for the functions that call web APIs (webhooks, identity providers):
//! one client per process, built on first use, and the rules every such call
//! follows. New secret values travel only over TLS; plain HTTP is allowed to
//! this machine alone (local receivers in tests and demos). Messages name a URL
//! by origin and path, never its query string or user info.

use std::sync::OnceLock;
use std::time::Duration;

/// The shared client: short timeouts, no redirects (a redirect could carry a
/// secret to another host), rustls on ring with the platform's roots (which
/// include `SSL_CERT_FILE`). Built once per process; if it cannot be built,
/// every call fails with the reason. There is no fallback client: reqwest's
/// default one follows redirects.
pub fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            use_ring();
            with_policy(reqwest::Client::builder())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `builder` with rotor's policy, built.
fn with_policy(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            format!(
                "the function's HTTPS client could not be built ({e}); check SSL_CERT_FILE and the function's environment"
            )
        })
}

/// Makes ring the process's rustls provider. reqwest is built without a
/// provider of its own (its `rustls` feature would bring aws-lc) and panics
/// when it builds a TLS client with none installed: call this first.
pub fn use_ring() {
    // An error means a provider is installed already: reqwest uses that one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// HTTPS, or plain HTTP to this machine only (a loopback address or
/// `localhost`); see [`parse_endpoint`].
pub fn require_tls(url: &str) -> Result<(), String> {
    parse_endpoint(url).map(|_| ())
}

/// Parses a URL that a secret or a credential may be sent to. It must be
/// `https://`, or plain `http://` to a loopback host (`127.0.0.0/8`, `::1` or
/// `localhost`, as the parsed host, never a text prefix: `http://127.0.0.1:1@evil/`
/// is a URL for `evil`). User info (`user@host`) is refused: it hides the real
/// host from a reader and would send credentials of its own.
pub fn parse_endpoint(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("{} is not a URL ({e})", display_url(url)))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "{} carries user info (user@host), which rotor refuses: it hides the host the request goes to. Remove it",
            display_url(url)
        ));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => {
            return Err(format!("{} has no host", display_url(url)));
        }
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(format!(
            "{} is not an https:// URL; rotor sends secrets only over TLS (plain http is allowed to 127.0.0.1 and localhost only)",
            display_url(url)
        )),
    }
}

/// A URL prefix set by the deployer (such as `ROTOR_WEBHOOK_ALLOWED_PREFIXES`):
/// a URL that admits URLs with the same scheme, host and port (the scheme's
/// default when none is written) whose path is the prefix's path or lies below
/// it, segment by segment. `https://hooks.example.com/rotor` admits
/// `https://hooks.example.com/rotor/app` but neither
/// `https://hooks.example.com/rotorx` nor `https://hooks.example.com@evil.example/`.
#[derive(Clone, Debug)]
pub struct UrlPrefix(reqwest::Url);

impl UrlPrefix {
    /// Parses a prefix; it may not carry user info, a query or a fragment.
    pub fn parse(text: &str) -> Result<UrlPrefix, String> {
        let url = reqwest::Url::parse(text.trim())
            .map_err(|e| format!("{text:?} is not a URL ({e}); write a prefix such as https://hooks.example.com/rotor"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{} carries user info (user@host); remove it",
                display_url(text)
            ));
        }
        if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{} must be scheme://host[:port][/path], with no query or fragment",
                display_url(text)
            ));
        }
        Ok(UrlPrefix(url))
    }

    /// Whether `url` lies under this prefix.
    pub fn admits(&self, url: &reqwest::Url) -> bool {
        let prefix = &self.0;
        if url.scheme() != prefix.scheme()
            || url.host() != prefix.host()
            || url.port_or_known_default() != prefix.port_or_known_default()
        {
            return false;
        }
        let segments = |u: &reqwest::Url| -> Vec<String> {
            u.path_segments()
                .map(|s| s.filter(|p| !p.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let (want, have) = (segments(prefix), segments(url));
        have.len() >= want.len() && have[..want.len()] == want[..]
    }
}

impl std::fmt::Display for UrlPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&display_url(self.0.as_str()))
    }
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
    fn loopback_is_the_parsed_host_and_user_info_is_refused() {
        for ok in [
            "http://127.0.0.1:8080/token",
            "http://127.9.9.9/x",
            "http://localhost/x",
            "http://LOCALHOST:1/x",
            "http://[::1]:99/x",
            "https://idp.example/token",
        ] {
            assert!(parse_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:1@evil.example/",
            "http://127.0.0.1@evil.example/",
            "http://localhost.evil.example/",
            "http://127.0.0.1.evil.example/",
            "https://user:pw@idp.example/token",
            "https://idp.example@evil.example/",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            let refused = parse_endpoint(bad).unwrap_err();
            assert!(!refused.contains("pw@"), "{refused}");
        }
    }

    #[test]
    fn prefixes_compare_scheme_host_port_and_whole_path_segments() {
        let prefix = UrlPrefix::parse("https://hooks.example.com/rotor").unwrap();
        let admits = |u: &str| prefix.admits(&reqwest::Url::parse(u).unwrap());
        assert!(admits("https://hooks.example.com/rotor"));
        assert!(admits("https://hooks.example.com/rotor/app?x=1"));
        assert!(admits("https://hooks.example.com:443/rotor/"));
        assert!(!admits("https://hooks.example.com@evil.example/rotor"));
        assert!(!admits("https://hooks.example.com.evil.example/rotor"));
        assert!(!admits("https://hooks.example.com/rotorx"));
        assert!(!admits("https://hooks.example.com/other/../rotorx"));
        assert!(!admits("https://hooks.example.com:8443/rotor"));
        assert!(!admits("http://hooks.example.com/rotor"));
        let root = UrlPrefix::parse("http://127.0.0.1:8080").unwrap();
        assert!(root.admits(&reqwest::Url::parse("http://127.0.0.1:8080/any/path").unwrap()));
        assert!(
            !root.admits(&reqwest::Url::parse("http://127.0.0.1:1@evil.example:8080/").unwrap())
        );
        assert!(UrlPrefix::parse("https://u@hooks.example.com/").is_err());
        assert!(UrlPrefix::parse("https://hooks.example.com/?q").is_err());
    }

    #[test]
    fn a_client_that_cannot_be_built_is_an_error_not_another_client() {
        use_ring();
        let impossible = reqwest::Client::builder()
            .min_tls_version(reqwest::tls::Version::TLS_1_3)
            .max_tls_version(reqwest::tls::Version::TLS_1_2);
        let error = with_policy(impossible).unwrap_err();
        assert!(error.contains("SSL_CERT_FILE"), "{error}");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;

        // A server that answers every request with a redirect to another one,
        // which counts the connections it gets.
        let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}/stolen", elsewhere.local_addr().unwrap());
        let redirecting = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", redirecting.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = redirecting.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let reached = tokio::spawn(async move { elsewhere.accept().await.is_ok() });

        let response = client()
            .unwrap()
            .post(&url)
            .body("secret")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 307);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!reached.is_finished(), "the redirect was followed");
        reached.abort();
    }

    #[test]
    fn tls_unless_loopback() {
        assert!(require_tls("https://idp.example/token").is_ok());
        assert!(require_tls("http://127.0.0.1:8080/token").is_ok());
        let refused = require_tls("http://idp.example/token?secret=s").unwrap_err();
        assert!(refused.contains("http://idp.example/token") && !refused.contains("secret=s"));
    }
}
