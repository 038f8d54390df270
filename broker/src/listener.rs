//! The gateway's own TCP and TLS listeners, and the accept loop they share with the
//! dashboard. Every connection is handled in its own task, so a slow TLS handshake or an
//! idle socket never delays the next `accept`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::gateway::{Admission, Gateway};
use crate::stats::Stats;

/// Accepts connections on `listener` until `shutdown` resolves, then drops the listener.
/// `connection` sees each accepted socket at once and returns the task that serves it
/// (spawned here, so one slow client never delays the next `accept`), or None to close
/// it. The one accept loop of the server: MQTT, MQTTS and the dashboard's HTTP.
pub async fn accept_loop<F, Fut>(listener: TcpListener, shutdown: impl Future<Output = ()>, mut connection: F)
where
    F: FnMut(TcpStream, SocketAddr) -> Option<Fut>,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: pause instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Some(task) = connection(stream, peer) {
            tokio::spawn(task);
        }
    }
}

/// Accepts MQTT (or, with `tls`, MQTTS) clients until `shutdown` resolves.
///
/// Each connection's task is the gateway's (or `serve_tls`'s) future as it is, not wrapped
/// in an async block: a task is as large as its future, and a wrapper would keep room for
/// the stream, the address and the admission for the connection's whole life
/// (docs/PERFORMANCE.md, "Memory per held connection").
pub async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    match tls {
        None => {
            accept_loop(listener, shutdown, |stream, peer| {
                let admission = admit(&gateway, &stream, peer)?;
                Some(gateway.serve(stream, peer, admission))
            })
            .await
        }
        Some(acceptor) => {
            accept_loop(listener, shutdown, |stream, peer| {
                let admission = admit(&gateway, &stream, peer)?;
                Some(serve_tls(gateway.clone(), stream, peer, admission, acceptor.clone()))
            })
            .await
        }
    }
}

/// Limits first, before any handshake work: a refused client is just closed.
fn admit(gateway: &Gateway, stream: &TcpStream, peer: SocketAddr) -> Option<Admission> {
    let admission = gateway.admit(peer)?;
    let _ = stream.set_nodelay(true);
    Some(admission)
}

/// One MQTTS connection: the TLS handshake, then the gateway.
async fn serve_tls(gateway: Gateway, stream: TcpStream, peer: SocketAddr, admission: Admission, acceptor: TlsAcceptor) {
    // One deadline for the handshake and the CONNECT together. Boxed: rustls' handshake
    // states are several KiB, which the task would otherwise keep for the session's life.
    // The session is awaited after the `match`, whose handshake result (the 1.2 KiB TLS
    // stream) would otherwise stay room in the task while it runs.
    let session = match Box::pin(tokio::time::timeout_at(admission.deadline(), acceptor.accept(stream))).await {
        Ok(Ok(tls_stream)) => gateway.serve(tls_stream, peer, admission),
        Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => {
            Stats::add(&gateway.stats().connect_timeouts);
            return debug!(%peer, "TLS handshake timed out");
        }
    };
    session.await
}

/// A rustls acceptor from PEM files (`TLS_CERT`, `TLS_KEY`).
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let cert_pem = std::fs::read(cert).with_context(|| format!("failed to read TLS_CERT {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("failed to read TLS_KEY {}", key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad PEM in TLS_CERT {}", cert.display()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("bad PEM in TLS_KEY {}", key.display()))?
        .with_context(|| format!("no private key in TLS_KEY {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls has no safe protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS_CERT and TLS_KEY do not form a valid pair")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    /// The size of the future `f` returns, without calling it.
    fn size5<A, B, C, D, E, Fut>(_: impl FnOnce(A, B, C, D, E) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn an_mqtts_connections_task_keeps_no_handshake_state() {
        // Measured 640 bytes (rustc 1.95), from 6,584 with the handshake and its result
        // (the TLS stream) inline: room the task kept for the session's whole life.
        let size = size5(super::serve_tls);
        assert!(size <= 768, "an MQTTS connection's future is {size} bytes");
    }
}
