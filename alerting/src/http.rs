//! The one HTTP client every channel sends through: a deadline per attempt, retries on
//! connection errors, timeouts, 429 and 5xx, honouring `Retry-After` (seconds).
//!
//! A connection per request (HTTP/1.1 over TCP, or TLS with the system's roots) rather
//! than a pool: notifications are minutes apart, so a pool would only hold idle sockets.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One request to send. Its URL and headers carry the channel's secrets (a bearer token, a
/// signature, a secret ntfy topic): `Debug` shows only what `Channel`'s does.
#[derive(Clone, PartialEq)]
pub struct Request {
    pub url: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| match name.as_str() {
                "content-type" | "user-agent" | "title" | "tags" | "priority" => (name.as_str(), value.as_str()),
                _ => (name.as_str(), "(redacted)"),
            })
            .collect();
        f.debug_struct("Request")
            .field("url", &crate::channel::redact_url(&self.url))
            .field("headers", &headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    /// For the whole attempt: connect, TLS, request and response.
    pub timeout: Duration,
    /// The wait before the second attempt, doubled for each one after.
    pub backoff: Duration,
    /// A longer `Retry-After` is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The last response's status, if any came.
    pub status: Option<u16>,
    pub attempts: u32,
    /// Why it failed; None when the last status was 2xx.
    pub error: Option<String>,
}

impl Delivery {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    tls: TlsConnector,
    policy: RetryPolicy,
}

enum Attempt {
    Status(u16, Option<Duration>),
    Failed(String),
}

impl HttpClient {
    pub fn new(policy: RetryPolicy) -> HttpClient {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            // The ring provider supports the default protocol versions.
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        HttpClient { tls: TlsConnector::from(Arc::new(config)), policy }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Sends `request`, retrying as the policy says.
    pub async fn send(&self, request: &Request) -> Delivery {
        let mut attempts = 0;
        let mut backoff = self.policy.backoff;
        loop {
            attempts += 1;
            let outcome = match tokio::time::timeout(self.policy.timeout, self.attempt(request)).await {
                Ok(outcome) => outcome,
                Err(_) => Attempt::Failed(format!("no response within {:?}", self.policy.timeout)),
            };
            let (status, retry_after, error) = match outcome {
                Attempt::Status(s, _) if (200..300).contains(&s) => {
                    return Delivery { status: Some(s), attempts, error: None }
                }
                Attempt::Status(s, after) => {
                    let retry = s == 429 || s >= 500;
                    if !retry {
                        return Delivery { status: Some(s), attempts, error: Some(format!("HTTP {s}")) };
                    }
                    (Some(s), after, format!("HTTP {s}"))
                }
                Attempt::Failed(e) => (None, None, e),
            };
            if attempts >= self.policy.attempts {
                return Delivery { status, attempts, error: Some(format!("{error} after {attempts} attempt(s)")) };
            }
            let wait = retry_after.map_or(backoff, |d| d.min(self.policy.max_retry_after));
            tokio::time::sleep(wait).await;
            backoff *= 2;
        }
    }

    async fn attempt(&self, request: &Request) -> Attempt {
        match self.try_attempt(request).await {
            Ok(attempt) => attempt,
            Err(e) => Attempt::Failed(format!("{e:#}")),
        }
    }

    async fn try_attempt(&self, request: &Request) -> anyhow::Result<Attempt> {
        let uri: Uri = request.url.parse()?;
        let host = uri.host().ok_or_else(|| anyhow::anyhow!("no host in {}", request.url))?.to_owned();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
        tcp.set_nodelay(true)?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())?;
            let tls = self.tls.connect(name, tcp).await?;
            exchange(tls, &uri, &host, request).await
        } else {
            exchange(tcp, &uri, &host, request).await
        }
    }
}

async fn exchange<S>(stream: S, uri: &Uri, host: &str, request: &Request) -> anyhow::Result<Attempt>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Ends when the exchange is done or the sender is dropped (our timeout).
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let mut builder = hyper::Request::post(path)
        .header("host", authority)
        .header("user-agent", concat!("proxmox-monitor/", env!("CARGO_PKG_VERSION")));
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = sender.send_request(builder.body(Full::new(Bytes::from(request.body.clone())))?).await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read (and drop) the body so the receiver sees a complete exchange.
    let _ = response.into_body().collect().await;
    Ok(Attempt::Status(status, retry_after))
}
