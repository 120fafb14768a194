//! HTTPS for the functions that call web APIs (webhooks, identity providers):
//! one client per process, built on first use, and the rules every such call
//! follows. New secret values travel only over TLS. This machine (a loopback
//! address, `localhost`, or a name that resolves to one) is refused unless the
//! deployer sets [`LOOPBACK_VAR`]: in Lambda the Runtime API and extensions
//! listen there, and a URL that a secret's writer chose must not reach them.
//! Tests and demos set it, and may then use plain HTTP to local receivers.
//! Answers are read up to [`MAX_BODY`] bytes. Messages name a URL by origin and
//! path, never its query string or user info.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
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

pub use crate::settings::LOOPBACK_VAR;

/// Whether URLs may name this machine, and so also use plain HTTP: this
/// process's [`LOOPBACK_VAR`], read once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loopback {
    /// Refused: production.
    Refused,
    /// Allowed, plain HTTP included: tests and demos.
    Allowed,
}

impl Loopback {
    /// The process's setting: [`Loopback::Allowed`] only when [`LOOPBACK_VAR`]
    /// is `true` (or `1`).
    pub fn from_env() -> Loopback {
        static SETTING: OnceLock<Loopback> = OnceLock::new();
        *SETTING.get_or_init(
            || match std::env::var(LOOPBACK_VAR).as_deref().map(str::trim) {
                Ok("true" | "1") => Loopback::Allowed,
                _ => Loopback::Refused,
            },
        )
    }
}

/// Whether `ip` reaches this machine: loopback, and the unspecified address
/// (a connection to `0.0.0.0` or `::` lands on this host), in IPv4, IPv6 or
/// IPv4-mapped IPv6.
pub fn is_this_machine(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    ip.is_loopback() || ip.is_unspecified()
}

/// The shared client: short timeouts, no redirects (a redirect could carry a
/// secret to another host), the TLS configuration every rotor connection uses
/// ([`crate::tls`]: the system's roots plus `SSL_CERT_FILE`'s, on ring), and a
/// resolver that drops this machine's addresses unless [`LOOPBACK_VAR`]
/// allows them. Built once per process; if
/// it cannot be built, every call fails with the reason. There is no fallback
/// client: reqwest's default one follows redirects.
pub fn client() -> Result<&'static reqwest::Client, ClientError> {
    static CLIENT: OnceLock<Result<reqwest::Client, ClientError>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            use_ring();
            with_policy(
                reqwest::Client::builder(),
                Loopback::from_env(),
                crate::tls::client_config(),
            )
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `builder` with rotor's policy and `tls`, built.
fn with_policy(
    builder: reqwest::ClientBuilder,
    loopback: Loopback,
    tls: Result<Arc<rustls::ClientConfig>, crate::tls::TlsSetupError>,
) -> Result<reqwest::Client, ClientError> {
    let mut tls = (*tls.map_err(|e| ClientError(e.to_string()))?).clone();
    // reqwest speaks HTTP/1.1 only here; say so in the handshake.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let builder = builder.tls_backend_preconfigured(tls);
    let builder = match loopback {
        Loopback::Allowed => builder,
        Loopback::Refused => builder.dns_resolver(Arc::new(NotThisMachine)),
    };
    builder
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError(e.to_string()))
}

/// The system resolver, less this machine's addresses: a host name that a
/// secret's writer controls (`localtest.me`, their own DNS) cannot lead a
/// request to the Runtime API. Literal addresses never reach a resolver;
/// [`parse_endpoint`] refuses those.
struct NotThisMachine;

/// A name that resolved only to this machine.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} resolves to this machine (a loopback address), which rotor refuses outside tests ({LOOPBACK_VAR})"
)]
struct ResolvesHere(String);

impl reqwest::dns::Resolve for NotThisMachine {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| !is_this_machine(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(
                    Box::new(ResolvesHere(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Makes ring the process's rustls provider. reqwest is built without a
/// provider of its own (its `rustls` feature would bring aws-lc) and panics
/// when it builds a TLS client with none installed: call this first.
pub fn use_ring() {
    crate::tls::install_default_provider();
}

/// Why a URL may not be used; each message names the URL by origin and path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// Plain http.
    #[error("{0} is not an https:// URL; rotor sends secrets only over TLS")]
    NotTls(String),
    /// A URL that names this machine, where the Lambda Runtime API and
    /// extensions listen.
    #[error(
        "{0} names this machine (a loopback or unspecified address, or localhost), where the Lambda Runtime API and extensions listen; rotor refuses it. Use the service's own host name (tests and demos set {LOOPBACK_VAR}=true)"
    )]
    ThisMachine(String),
    /// A path segment with an encoded `/` or `\`, which a receiver may
    /// decode into a path outside the one that was checked.
    #[error(
        "{0} has an encoded / or \\ (%2F or %5C) in its path, which rotor refuses: a server may decode it into another path. Write the path without it"
    )]
    EncodedSeparator(String),
    /// A prefix that does not parse.
    #[error("{0:?} is not a URL ({1}); write a prefix such as https://hooks.example.com/rotor")]
    NotAPrefix(String, String),
    /// A prefix with a query or fragment, or no host.
    #[error("{0} must be scheme://host[:port][/path], with no query or fragment")]
    PrefixShape(String),
}

/// HTTPS to another machine (plain HTTP to this one where [`LOOPBACK_VAR`]
/// allows it); see [`parse_endpoint`].
pub fn require_tls(url: &str) -> Result<(), UrlError> {
    parse_endpoint(url).map(|_| ())
}

/// Parses a URL that a secret or a credential may be sent to, under the
/// process's [`Loopback`] setting; see [`parse_endpoint_with`].
pub fn parse_endpoint(url: &str) -> Result<reqwest::Url, UrlError> {
    parse_endpoint_with(url, Loopback::from_env())
}

/// Parses a URL that a secret or a credential may be sent to. It must be
/// `https://` to another machine. A URL naming this machine (`127.0.0.0/8`,
/// `::1`, `0.0.0.0`, `::`, an IPv4-mapped form of those, or `localhost`, as
/// the parsed host, never a text prefix: `http://127.0.0.1:1@evil/` is a URL
/// for `evil`) is refused, unless `loopback` allows it, and then it may be
/// plain `http://`. User info (`user@host`) is refused: it hides the real host
/// from a reader and would send credentials of its own. So is an encoded `/`
/// or `\` in the path.
pub fn parse_endpoint_with(url: &str, loopback: Loopback) -> Result<reqwest::Url, UrlError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| UrlError::NotAUrl {
        url: display_url(url),
        reason: e.to_string(),
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::UserInfo(display_url(url)));
    }
    let this_machine = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => is_this_machine(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_this_machine(IpAddr::V6(ip)),
        None => return Err(UrlError::NoHost(display_url(url))),
    };
    if has_encoded_separator(&parsed) {
        return Err(UrlError::EncodedSeparator(display_url(url)));
    }
    match (parsed.scheme(), this_machine, loopback) {
        (_, true, Loopback::Refused) => Err(UrlError::ThisMachine(display_url(url))),
        ("https", _, _) | ("http", true, Loopback::Allowed) => Ok(parsed),
        _ => Err(UrlError::NotTls(display_url(url))),
    }
}

/// Whether a path segment holds `%2F` or `%5C` (either case).
fn has_encoded_separator(url: &reqwest::Url) -> bool {
    let path = url.path().to_ascii_lowercase();
    path.contains("%2f") || path.contains("%5c")
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

    /// Whether `url` lies under this prefix. A path with an encoded `/` or
    /// `\\` lies under none: the receiver may decode it into another path.
    pub fn admits(&self, url: &reqwest::Url) -> bool {
        let prefix = &self.0;
        if has_encoded_separator(url) {
            return false;
        }
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

/// The most of an answer's body rotor reads: 64 KiB, far above any token,
/// client or error document, and far below what could exhaust a warm process
/// (whose memory also holds other secrets' kept values).
pub const MAX_BODY: usize = 64 * 1024;

/// Reads an answer's body, at most `limit` bytes: a longer one (by its
/// `Content-Length`, or as it arrives) is a [`Cause::Protocol`] failure, and
/// the rest is not read.
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, TargetError> {
    let too_large = || {
        TargetError::new(
            Cause::Protocol,
            format!(
                "answered with a body over {} KiB, which rotor does not read; check the URL",
                limit / 1024
            ),
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| send_error(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads an answer's body as JSON, at most [`MAX_BODY`] bytes; an empty or
/// unparsable body is `Value::Null` (callers that need fields say which is
/// missing), a longer one a [`Cause::Protocol`] failure.
pub async fn read_json(response: reqwest::Response) -> Result<serde_json::Value, TargetError> {
    let body = read_body(response, MAX_BODY).await?;
    Ok(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
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
        let allowed = |u: &str| parse_endpoint_with(u, Loopback::Allowed);
        for ok in [
            "http://127.0.0.1:8080/token",
            "http://127.9.9.9/x",
            "http://localhost/x",
            "http://LOCALHOST:1/x",
            "http://[::1]:99/x",
            "https://idp.example/token",
        ] {
            assert!(allowed(ok).is_ok(), "{ok}");
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
            let refused = allowed(bad).unwrap_err().to_string();
            assert!(!refused.contains("pw@"), "{refused}");
        }
    }

    #[test]
    fn this_machine_is_refused_unless_the_deployer_allows_it() {
        let refused = |u: &str| parse_endpoint_with(u, Loopback::Refused);
        for here in [
            "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
            "https://127.0.0.1:9001/",
            "http://127.1/",
            "http://2130706433/",
            "http://0.0.0.0:9001/",
            "http://[::]:9001/",
            "http://[::ffff:127.0.0.1]:9001/",
            "https://localhost/",
            "https://LocalHost./",
            "https://api.localhost/",
        ] {
            assert!(
                matches!(refused(here), Err(UrlError::ThisMachine(_))),
                "{here}: {:?}",
                refused(here)
            );
        }
        assert!(refused("https://idp.example/token").is_ok());
        assert!(matches!(
            refused("http://idp.example/token"),
            Err(UrlError::NotTls(_))
        ));
    }

    #[test]
    fn encoded_separators_are_refused_in_paths() {
        for bad in [
            "https://hooks.example.com/rotor/..%2Fadmin",
            "https://hooks.example.com/rotor/..%2fadmin",
            "https://hooks.example.com/rotor/..%5Cadmin",
            "https://hooks.example.com/rotor%5c..%5cadmin",
        ] {
            assert!(
                matches!(
                    parse_endpoint_with(bad, Loopback::Refused),
                    Err(UrlError::EncodedSeparator(_))
                ),
                "{bad}"
            );
            let prefix = UrlPrefix::parse("https://hooks.example.com/rotor").unwrap();
            assert!(!prefix.admits(&reqwest::Url::parse(bad).unwrap()), "{bad}");
        }
        assert!(parse_endpoint_with("https://h.example/a%20b", Loopback::Refused).is_ok());
    }

    #[tokio::test]
    async fn names_that_resolve_here_are_not_connected_to() {
        use_ring();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let refusing = test_client(Loopback::Refused);
        // `localhost` resolves to 127.0.0.1 through the system resolver, as a
        // writer's own DNS name could.
        let error = refusing
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(
            describe(&error).contains("resolves to this machine"),
            "{}",
            describe(&error)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!accepted.is_finished(), "a connection reached this machine");
        accepted.abort();
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;

        // Two answers: one of 10 bytes, one of 100 KiB in chunks with no length.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        tokio::spawn(async move {
            for big in [false, true, true] {
                let (mut socket, _) = server.accept().await.unwrap();
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                if big {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await;
                    let chunk = vec![b'a'; 4096];
                    for _ in 0..25 {
                        let head = format!("{:x}\r\n", chunk.len());
                        if socket.write_all(head.as_bytes()).await.is_err()
                            || socket.write_all(&chunk).await.is_err()
                            || socket.write_all(b"\r\n").await.is_err()
                        {
                            break;
                        }
                    }
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                } else {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"a\": 12}")
                        .await;
                }
            }
        });
        use_ring();
        let client = test_client(Loopback::Allowed);
        let small = client.get(format!("{base}/a")).send().await.unwrap();
        assert_eq!(read_json(small).await.unwrap()["a"], 12);
        let big = client.get(format!("{base}/b")).send().await.unwrap();
        let error = read_json(big).await.unwrap_err();
        assert_eq!(error.cause, Cause::Protocol);
        let big = client.get(format!("{base}/c")).send().await.unwrap();
        assert_eq!(read_body(big, 200 * 1024).await.unwrap().len(), 100 * 1024);
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

    /// The shared client for tests: rotor's policy on the process's roots.
    fn test_client(loopback: Loopback) -> reqwest::Client {
        use_ring();
        with_policy(
            reqwest::Client::builder(),
            loopback,
            crate::tls::client_config(),
        )
        .unwrap()
    }

    #[test]
    fn a_client_that_cannot_be_built_is_an_error_not_another_client() {
        use_ring();
        let no_roots = Err(crate::tls::TlsSetupError::NoRoots);
        let error = with_policy(reqwest::Client::builder(), Loopback::Refused, no_roots)
            .unwrap_err()
            .to_string();
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

        let response = test_client(Loopback::Allowed)
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

        use_ring();
        let client = test_client(Loopback::Allowed);
        let client = || Ok::<_, ClientError>(&client);
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
        assert!(parse_endpoint_with("http://127.0.0.1:8080/token", Loopback::Allowed).is_ok());
        let refused = require_tls("http://idp.example/token?secret=s")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("http://idp.example/token") && !refused.contains("secret=s"));
    }
}
