//! HTTPS for the functions that call web APIs (webhooks, identity providers):
//! one client per process, built on first use, and the rules every such call
//! follows. New secret values travel only over TLS; plain HTTP is allowed to
//! this machine alone (local receivers in tests and demos). Messages name a URL
//! by origin and path, never its query string or user info.

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Cause, TargetError};

/// The shared HTTPS client could not be built (bad `SSL_CERT_FILE`, an
/// impossible TLS setting).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the function's HTTPS client could not be built ({0}); check SSL_CERT_FILE and the function's environment"
)]
pub struct ClientError(String);

impl From<ClientError> for TargetError {
    fn from(error: ClientError) -> Self {
        TargetError::new(Cause::Tls, error.to_string())
    }
}

/// The shared client: short timeouts, no redirects (a redirect could carry a
/// secret to another host), rustls on ring with the platform's roots (which
/// include `SSL_CERT_FILE`). Built once per process; if it cannot be built,
/// every call fails with the reason. There is no fallback client: reqwest's
/// default one follows redirects.
pub fn client() -> Result<&'static reqwest::Client, ClientError> {
    static CLIENT: OnceLock<Result<reqwest::Client, ClientError>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            use_ring();
            with_policy(reqwest::Client::builder())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `builder` with rotor's policy, built.
fn with_policy(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, ClientError> {
    builder
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError(e.to_string()))
}

/// Makes ring the process's rustls provider. reqwest is built without a
/// provider of its own (its `rustls` feature would bring aws-lc) and panics
/// when it builds a TLS client with none installed: call this first.
pub fn use_ring() {
    // An error means a provider is installed already: reqwest uses that one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why a URL may not be used; each message names the URL by origin and path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The text does not parse as a URL.
    #[error("{url} is not a URL ({reason})")]
    NotAUrl {
        /// The URL as shown in messages.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// The URL carries `user@host`.
    #[error(
        "{0} carries user info (user@host), which rotor refuses: it hides the host the request goes to. Remove it"
    )]
    UserInfo(String),
    /// The URL has no host.
    #[error("{0} has no host")]
    NoHost(String),
    /// Plain http to a host other than this machine.
    #[error(
        "{0} is not an https:// URL; rotor sends secrets only over TLS (plain http is allowed to 127.0.0.1 and localhost only)"
    )]
    NotTls(String),
    /// A prefix that does not parse.
    #[error("{0:?} is not a URL ({1}); write a prefix such as https://hooks.example.com/rotor")]
    NotAPrefix(String, String),
    /// A prefix with a query or fragment, or no host.
    #[error("{0} must be scheme://host[:port][/path], with no query or fragment")]
    PrefixShape(String),
}

/// HTTPS, or plain HTTP to this machine only (a loopback address or
/// `localhost`); see [`parse_endpoint`].
pub fn require_tls(url: &str) -> Result<(), UrlError> {
    parse_endpoint(url).map(|_| ())
}

/// Parses a URL that a secret or a credential may be sent to. It must be
/// `https://`, or plain `http://` to a loopback host (`127.0.0.0/8`, `::1` or
/// `localhost`, as the parsed host, never a text prefix: `http://127.0.0.1:1@evil/`
/// is a URL for `evil`). User info (`user@host`) is refused: it hides the real
/// host from a reader and would send credentials of its own.
pub fn parse_endpoint(url: &str) -> Result<reqwest::Url, UrlError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| UrlError::NotAUrl {
        url: display_url(url),
        reason: e.to_string(),
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::UserInfo(display_url(url)));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(UrlError::NoHost(display_url(url))),
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(UrlError::NotTls(display_url(url))),
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
    pub fn parse(text: &str) -> Result<UrlPrefix, UrlError> {
        let url = reqwest::Url::parse(text.trim())
            .map_err(|e| UrlError::NotAPrefix(text.to_owned(), e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo(display_url(text)));
        }
        if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
            return Err(UrlError::PrefixShape(display_url(text)));
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

/// Why a request got no answer, from reqwest's typed error: a failed TLS
/// handshake or certificate check (a `rustls::Error` in the source chain) is
/// [`Cause::Tls`]; no connection, a timeout or a connection dropped mid-way is
/// [`Cause::Unreachable`]; a body that cannot be decoded is [`Cause::Protocol`];
/// a request that cannot be built (a bad header value) is [`Cause::Rejected`].
pub fn send_cause(error: &reqwest::Error) -> Cause {
    if is_tls_failure(error) {
        Cause::Tls
    } else if error.is_connect() || error.is_timeout() {
        Cause::Unreachable
    } else if error.is_decode() {
        Cause::Protocol
    } else if error.is_builder() {
        Cause::Rejected
    } else {
        Cause::Unreachable
    }
}

/// Whether a rustls error lies in the error's source chain. `io::Error` hides
/// the error it wraps from `source()` (it returns that error's own source), so
/// each `io::Error` is also opened with `get_ref`.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && is_tls_failure(inner)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// A request that got no answer, as a target failure of the right cause.
pub fn send_error(error: &reqwest::Error) -> TargetError {
    TargetError::new(send_cause(error), describe(error))
}

/// The cause an HTTP error status stands for: 401 the credential was refused,
/// 403 it may not do this, 404 the thing is gone, 408/429/5xx the server is busy
/// or failing for now, any other status the request was refused.
pub fn status_cause(status: reqwest::StatusCode) -> Cause {
    match status.as_u16() {
        401 => Cause::Auth,
        403 => Cause::Permission,
        404 => Cause::NotFound,
        408 | 429 | 500..=599 => Cause::Unavailable,
        _ => Cause::Rejected,
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
            let refused = parse_endpoint(bad).unwrap_err().to_string();
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
        let error = with_policy(impossible).unwrap_err().to_string();
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

    #[tokio::test]
    async fn send_failures_are_classified_by_type_not_text() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;

        // Nothing listens: unreachable.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let refused = client()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(send_cause(&refused), Cause::Unreachable);

        // A server that answers a TLS hello with plain text: the handshake fails.
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://localhost:{}/", plain.local_addr().unwrap().port());
        tokio::spawn(async move {
            let (mut socket, _) = plain.accept().await.unwrap();
            let mut hello = [0u8; 1024];
            let _ = socket.read(&mut hello).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        });
        let handshake = client().unwrap().get(url).send().await.unwrap_err();
        assert_eq!(
            send_cause(&handshake),
            Cause::Tls,
            "{}",
            describe(&handshake)
        );
    }

    #[test]
    fn statuses_name_their_cause() {
        let cause = |code: u16| status_cause(reqwest::StatusCode::from_u16(code).unwrap());
        assert_eq!(cause(401), Cause::Auth);
        assert_eq!(cause(403), Cause::Permission);
        assert_eq!(cause(404), Cause::NotFound);
        for busy in [408, 429, 500, 503] {
            assert_eq!(cause(busy), Cause::Unavailable);
        }
        assert_eq!(cause(400), Cause::Rejected);
        assert_eq!(cause(409), Cause::Rejected);
    }

    #[test]
    fn tls_unless_loopback() {
        assert!(require_tls("https://idp.example/token").is_ok());
        assert!(require_tls("http://127.0.0.1:8080/token").is_ok());
        let refused = require_tls("http://idp.example/token?secret=s")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("http://idp.example/token") && !refused.contains("secret=s"));
    }
}
