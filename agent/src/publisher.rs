//! The MQTT side of the agent: connect, announce presence, publish, reconnect.
//!
//! Presence follows the Home Assistant availability convention on `pmon/v1/<id>/status`:
//! retained `online` after every CONNACK, `offline` as the last will and before a clean
//! disconnect. The server's gateway publishes the same from the connection's life, and
//! is the authority; the agent's own messages make it work with any broker too.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, Request,
    TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tracing::{info, warn};
use wire::Kind;

use crate::config::{ServerUrl, Settings};
use crate::outbox::Outbox;
use crate::schedule::Message;

/// Largest payload the agent will send; the server refuses larger ones.
pub const MAX_PACKET: usize = 256 * 1024;

/// Requests rumqttc may queue between us and its event loop.
const REQUEST_QUEUE: usize = 256;

/// The one-line outcome of a connection attempt, as `--check` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The server refused the host id and token.
    InvalidToken,
    /// The token is right, but another agent with this host id holds the session from
    /// elsewhere (a cloned VM, a copied agent.toml): the server refuses this one for a while.
    HostIdInUse,
    /// No MQTT server answered at that address.
    Unreachable(String),
    /// TLS failed: certificate, name or protocol.
    TlsError(String),
    /// Something answered, but not like our server.
    ProtocolError(String),
}

impl Verdict {
    pub fn code(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::InvalidToken => "invalid_token",
            Verdict::HostIdInUse => "host_id_in_use",
            Verdict::Unreachable(_) => "unreachable",
            Verdict::TlsError(_) => "tls_error",
            Verdict::ProtocolError(_) => "protocol_error",
        }
    }

    /// One line for the log or `--check`: the code, then the detail.
    pub fn line(&self) -> String {
        match self {
            Verdict::Ok => "ok".into(),
            Verdict::InvalidToken => "invalid_token: the server refused this host_id and token; \
                 check both in agent.toml against `proxmox-monitor host add/rotate`"
                .into(),
            Verdict::HostIdInUse => "host_id_in_use: another agent with this host_id and token is connected from \
                 another address (a cloned VM or a copied agent.toml?); give each host its own with \
                 `proxmox-monitor host add`"
                .into(),
            Verdict::Unreachable(d) | Verdict::TlsError(d) | Verdict::ProtocolError(d) => {
                format!("{}: {d}", self.code())
            }
        }
    }

    fn of(error: &ConnectionError) -> Verdict {
        match error {
            ConnectionError::ConnectionRefused(
                ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword,
            ) => Verdict::InvalidToken,
            // "Identifier rejected": the server's clone detector (its `broker::clones`).
            ConnectionError::ConnectionRefused(ConnectReturnCode::BadClientId) => Verdict::HostIdInUse,
            ConnectionError::ConnectionRefused(code) => Verdict::ProtocolError(format!("connection refused: {code:?}")),
            ConnectionError::Tls(e) => Verdict::TlsError(e.to_string()),
            // Over wss:// a certificate error arrives as an I/O error inside a WebSocket
            // error (the end-to-end test through Caddy covers it).
            ConnectionError::Io(e) if is_tls(e) => Verdict::TlsError(e.to_string()),
            ConnectionError::Websocket(e) if is_tls(e) => Verdict::TlsError(e.to_string()),
            ConnectionError::Io(e) => Verdict::Unreachable(e.to_string()),
            ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => Verdict::Unreachable("timed out".into()),
            // tungstenite reports a closed socket during the handshake as a WebSocket error.
            ConnectionError::Websocket(e) => Verdict::Unreachable(e.to_string()),
            other => Verdict::ProtocolError(other.to_string()),
        }
    }
}

/// Whether a TLS (rustls) error is anywhere in `error`'s chain. An `io::Error` hides the
/// error it wraps from `source()`, so it is opened with `get_ref`.
fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if is_tls(inner) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// Builds the MQTT options for `settings`: client id and username are the host id.
pub fn mqtt_options(settings: &Settings) -> anyhow::Result<MqttOptions> {
    let id = settings.host_id.as_str();
    let mut options = match &settings.server {
        ServerUrl::Mqtt { host, port } | ServerUrl::Mqtts { host, port } => MqttOptions::new(id, host.clone(), *port),
        ServerUrl::Ws { url, port } | ServerUrl::Wss { url, port, .. } => MqttOptions::new(id, url.clone(), *port),
    };
    options
        .set_credentials(id, settings.token.clone())
        // rumqttc refuses keepalives under a second; the config refuses 0.
        .set_keep_alive(settings.keepalive.max(Duration::from_secs(1)))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_last_will(LastWill::new(
            settings.host_id.topic(Kind::Status),
            wire::topic::OFFLINE,
            QoS::AtLeastOnce,
            true,
        ));
    match &settings.server {
        ServerUrl::Mqtt { .. } => {}
        ServerUrl::Mqtts { .. } => {
            options.set_transport(Transport::tls_with_config(tls_config(settings)?));
        }
        ServerUrl::Ws { .. } => {
            options.set_transport(Transport::Ws);
        }
        ServerUrl::Wss { .. } => {
            options.set_transport(Transport::wss_with_config(tls_config(settings)?));
        }
    }
    Ok(options)
}

/// rustls with the ring provider, the system's roots and the optional `ca_file`.
fn tls_config(settings: &Settings) -> anyhow::Result<TlsConfiguration> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A broken system certificate must not stop the agent; the others still work.
        let _ = roots.add(cert);
    }
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).with_context(|| format!("failed to read ca_file {}", path.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.with_context(|| format!("bad PEM in ca_file {}", path.display()))?;
            roots.add(cert).with_context(|| format!("bad certificate in {}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls has no safe protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

/// Tries one authenticated connection and says how it went.
pub async fn check(settings: &Settings, deadline: Duration) -> Verdict {
    let options = match mqtt_options(settings) {
        Ok(o) => o,
        Err(e) => return Verdict::TlsError(format!("{e:#}")),
    };
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let verdict = tokio::time::timeout(deadline, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Verdict::Ok,
                Ok(_) => {}
                Err(e) => return Verdict::of(&e),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Verdict::Unreachable(format!("no answer within {deadline:?}")));
    if verdict == Verdict::Ok {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    }
    verdict
}

/// Jittered exponential backoff between reconnect attempts, capped at 60 s.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub const MAX: Duration = Duration::from_secs(60);

    pub fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay: 1 s, 2 s, 4 s ... up to 60 s, each scaled by a random 50–100 %.
    /// A refused token, or a host id in use elsewhere, waits the maximum, since retrying
    /// sooner cannot help.
    pub fn next(&mut self, verdict: &Verdict) -> Duration {
        let base = if matches!(verdict, Verdict::InvalidToken | Verdict::HostIdInUse) {
            Self::MAX
        } else {
            Duration::from_secs(1u64 << self.attempt.min(6)).min(Self::MAX)
        };
        self.attempt = self.attempt.saturating_add(1);
        base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// What the event loop task tells the publishing loop.
enum Link {
    Up,
    /// The link dropped; these payloads were sent or queued but never acknowledged.
    Down(Vec<Message>),
}

/// The payloads rumqttc held unacknowledged when the link dropped, taken from it. It keeps
/// them to resend in the same session, but our sessions are clean (the server never has
/// one to resume), so the next CONNACK would make it forget them: they go back to the
/// outage buffer instead, to be replayed (the server stores a payload sent twice once).
/// Retained ones are presence, which the next CONNACK announces anew.
fn take_unacked(eventloop: &mut EventLoop) -> Vec<Message> {
    let pending = std::mem::take(&mut eventloop.pending);
    pending
        .into_iter()
        .filter_map(|request| match request {
            Request::Publish(p) if !p.retain => Some(Message { topic: p.topic, payload: p.payload.to_vec() }),
            _ => None,
        })
        .collect()
}

/// Polls the event loop forever: reconnects with backoff, and reports each change.
async fn drive(mut eventloop: EventLoop, host_id: String, links: mpsc::UnboundedSender<Link>) {
    let mut backoff = Backoff::new();
    let mut up = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(host_id = %host_id, "connected");
                backoff.reset();
                up = true;
                if links.send(Link::Up).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let verdict = Verdict::of(&e);
                let delay = backoff.next(&verdict);
                let unacked = take_unacked(&mut eventloop);
                if up || !unacked.is_empty() {
                    if up {
                        warn!("disconnected: {}", verdict.line());
                    }
                    up = false;
                    if links.send(Link::Down(unacked)).is_err() {
                        return;
                    }
                }
                warn!("connect failed: {}; retrying in {:.1}s", verdict.line(), delay.as_secs_f32());
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Runs the connection until `shutdown` resolves: publishes what arrives on `messages`,
/// buffers to `outbox` while disconnected and replays it after each CONNACK, and says
/// goodbye (`offline`, then DISCONNECT) at the end.
pub async fn run(
    settings: &Settings,
    mut messages: mpsc::Receiver<Message>,
    mut outbox: Outbox,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let options = mqtt_options(settings)?;
    let status_topic = settings.host_id.topic(Kind::Status);
    let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let (links_tx, mut links) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(eventloop, settings.host_id.to_string(), links_tx));
    let mut connected = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            link = links.recv() => match link {
                Some(Link::Up) => {
                    connected = true;
                    let _ = client.publish(&status_topic, QoS::AtLeastOnce, true, wire::topic::ONLINE).await;
                    replay(&client, &mut outbox).await;
                }
                Some(Link::Down(unacked)) => {
                    connected = false;
                    if !unacked.is_empty() {
                        info!(count = unacked.len(), "buffering the payloads the server did not acknowledge");
                    }
                    for m in &unacked {
                        buffer(&mut outbox, m);
                    }
                }
                None => break,
            },
            message = messages.recv() => match message {
                Some(m) if connected && outbox.is_empty() => {
                    if let Err(e) = client.try_publish(&m.topic, QoS::AtLeastOnce, false, m.payload.clone()) {
                        warn!(error = %e, "publish queue full; buffering");
                        buffer(&mut outbox, &m);
                    }
                }
                Some(m) => buffer(&mut outbox, &m),
                None => break,
            },
        }
    }
    if connected {
        let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, wire::topic::OFFLINE);
        let _ = client.try_disconnect();
        // Let the event loop send the `offline` and the DISCONNECT, briefly.
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(link) = links.recv().await {
                if let Link::Down(unacked) = link {
                    // Kept for the next start rather than lost.
                    unacked.iter().for_each(|m| buffer(&mut outbox, m));
                    break;
                }
            }
        })
        .await;
    }
    driver.abort();
    info!("stopped");
    Ok(())
}

fn buffer(outbox: &mut Outbox, message: &Message) {
    if let Err(e) = outbox.push(message) {
        warn!(error = %e, "outage buffer write failed; payload dropped");
        outbox.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Hands every buffered payload to the client, in order, then empties the buffer. If the
/// link drops meanwhile, what the server did not acknowledge comes back in `Link::Down`
/// and is buffered again (`take_unacked`).
async fn replay(client: &AsyncClient, outbox: &mut Outbox) {
    let messages = match outbox.read_all() {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "cannot read the outage buffer");
            return;
        }
    };
    if messages.is_empty() {
        return;
    }
    info!(count = messages.len(), "replaying buffered payloads");
    for m in messages {
        if client.publish(m.topic, QoS::AtLeastOnce, false, m.payload).await.is_err() {
            return;
        }
    }
    if let Err(e) = outbox.clear() {
        warn!(error = %e, "cannot clear the outage buffer; its payloads may be sent twice (stored once)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_error_is_a_tls_error_over_every_transport() {
        let cert = || {
            let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
            std::io::Error::new(std::io::ErrorKind::InvalidData, e)
        };
        // Over wss:// tungstenite wraps the I/O error: its `source()` is the io::Error.
        #[derive(Debug, thiserror::Error)]
        #[error("IO error: {0}")]
        struct Wrapped(#[source] std::io::Error);
        assert!(is_tls(&Wrapped(cert())));
        assert_eq!(Verdict::of(&ConnectionError::Io(cert())).code(), "tls_error");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert!(!is_tls(&Wrapped(refused)));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(Verdict::of(&ConnectionError::Io(refused)).code(), "unreachable");
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new();
        let unreachable = Verdict::Unreachable("x".into());
        let first = b.next(&unreachable);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        for _ in 0..20 {
            assert!(b.next(&unreachable) <= Backoff::MAX);
        }
        let late = b.next(&unreachable);
        assert!(late >= Duration::from_secs(30), "{late:?}");
        b.reset();
        assert!(b.next(&unreachable) <= Duration::from_secs(1));
        assert!(b.next(&Verdict::InvalidToken) >= Duration::from_secs(30));
        b.reset();
        assert!(b.next(&Verdict::HostIdInUse) >= Duration::from_secs(30), "a clone refused waits too");
    }

    #[test]
    fn refused_token_is_invalid_token() {
        let e = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        assert_eq!(Verdict::of(&e).code(), "invalid_token");
        let e = ConnectionError::ConnectionRefused(ConnectReturnCode::BadClientId);
        assert_eq!(Verdict::of(&e).code(), "host_id_in_use");
        let e = ConnectionError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(Verdict::of(&e).code(), "unreachable");
    }
}
