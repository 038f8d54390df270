//! The MQTT side of the agent: connect, announce presence, publish, reconnect.
//!
//! Presence follows the Home Assistant availability convention on `pmon/v1/<id>/status`:
//! retained `online` after every CONNACK, `offline` as the last will and before a clean
//! disconnect. The server's gateway publishes the same from the connection's life, and
//! is the authority; the agent's own messages make it work with any broker too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tracing::{info, warn};
use wire::Kind;

use crate::config::{ServerUrl, Settings};
use crate::schedule::Message;

/// Largest payload the agent will send; the server refuses larger ones.
pub const MAX_PACKET: usize = 256 * 1024;

/// Payloads kept in memory while the server is unreachable; the oldest go first.
const OUTBOX_CAP: usize = 1000;

/// The one-line outcome of a connection attempt, as `--check` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The server refused the host id and token.
    InvalidToken,
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
            ConnectionError::ConnectionRefused(code) => Verdict::ProtocolError(format!("connection refused: {code:?}")),
            ConnectionError::Tls(e) => Verdict::TlsError(e.to_string()),
            ConnectionError::Io(e) => Verdict::Unreachable(e.to_string()),
            ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => Verdict::Unreachable("timed out".into()),
            // tungstenite reports a closed socket during the handshake as a WebSocket error.
            ConnectionError::Websocket(e) => Verdict::Unreachable(e.to_string()),
            other => Verdict::ProtocolError(other.to_string()),
        }
    }
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
    /// A refused token waits the maximum, since retrying sooner cannot help.
    pub fn next(&mut self, verdict: &Verdict) -> Duration {
        let base = if *verdict == Verdict::InvalidToken {
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

/// Runs the connection until `shutdown` resolves: publishes what arrives on `messages`,
/// reconnects with backoff, and says goodbye (`offline`, then DISCONNECT) at the end.
pub async fn run(
    settings: &Settings,
    mut messages: mpsc::Receiver<Message>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let options = mqtt_options(settings)?;
    let status_topic = settings.host_id.topic(Kind::Status);
    let (client, mut eventloop) = AsyncClient::new(options, OUTBOX_CAP);
    let mut outbox: VecDeque<Message> = VecDeque::new();
    let mut connected = false;
    let mut backoff = Backoff::new();
    let mut retry_at: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let waiting = retry_at.is_some();
        tokio::select! {
            _ = &mut shutdown => break,
            _ = async { tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)).await }, if waiting => {
                retry_at = None;
            }
            event = eventloop.poll(), if !waiting => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!(host_id = %settings.host_id, "connected");
                    connected = true;
                    backoff.reset();
                    let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, wire::topic::ONLINE);
                    while let Some(m) = outbox.pop_front() {
                        if let Err(e) = client.try_publish(m.topic, QoS::AtLeastOnce, false, m.payload) {
                            warn!(error = %e, "publish queue full; payload dropped");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let verdict = Verdict::of(&e);
                    let delay = backoff.next(&verdict);
                    if connected {
                        warn!("disconnected: {}", verdict.line());
                    }
                    warn!("connect failed: {}; retrying in {:.1}s", verdict.line(), delay.as_secs_f32());
                    connected = false;
                    retry_at = Some(tokio::time::Instant::now() + delay);
                }
            },
            message = messages.recv() => match message {
                Some(m) if connected => {
                    if let Err(e) = client.try_publish(m.topic, QoS::AtLeastOnce, false, m.payload) {
                        warn!(error = %e, "publish queue full; payload dropped");
                    }
                }
                Some(m) => {
                    if outbox.len() >= OUTBOX_CAP {
                        outbox.pop_front();
                    }
                    outbox.push_back(m);
                }
                None => break,
            },
        }
    }
    if connected {
        let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, wire::topic::OFFLINE);
        let _ = client.try_disconnect();
        drain(&mut eventloop).await;
    }
    info!("stopped");
    Ok(())
}

/// Lets the event loop send what is queued (the `offline` and the DISCONNECT), briefly.
async fn drain(eventloop: &mut EventLoop) {
    let _ = tokio::time::timeout(Duration::from_secs(3), async { while eventloop.poll().await.is_ok() {} }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn refused_token_is_invalid_token() {
        let e = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        assert_eq!(Verdict::of(&e).code(), "invalid_token");
        let e = ConnectionError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(Verdict::of(&e).code(), "unreachable");
    }
}
