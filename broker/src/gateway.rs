//! One client connection from CONNECT to close, in front of rumqttd's router.
//!
//! rumqttd alone has no topic ACL, no way to learn who published, no way to disconnect a
//! client, and a will that misfires on reconnect. So the gateway decodes every packet a
//! client sends, checks it against [`acl`](crate::acl), and only then hands it to the
//! client's router link. Wills are checked and then dropped: the gateway owns presence and
//! publishes `online`/`offline` itself, from the connection's own life.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::task::Poll;
use std::time::Duration;

use rumqttd::local::{LinkError, LinkRx, LinkTx};
use rumqttd::protocol::{ConnAck, ConnectReturnCode, LastWill, Login, Packet, PingResp, PubAck, PubAckReason, Publish};
use rumqttd::Notification;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, timeout_at, Instant};
use tracing::{debug, info, warn};

use crate::acl::{self, Violation};
use crate::auth::{CredentialTable, Identity};
use crate::backlog::Backlog;
use crate::clones::{CloneDetected, CloneDetector, CloneRules};
use crate::codec::{CodecError, Framed};
use crate::ingest::{Acks, Delivery, Ingest, Outcome};
use crate::limit::{AttemptLimiter, Rate};
use crate::router::{self, Router};
use crate::sessions::Sessions;
use crate::stats::Stats;

mod outbox;
mod presence;
#[cfg(test)]
mod sizes;

use outbox::Outbox;
use presence::{Joined, Presence};

/// Limits of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest publish payload accepted (default 256 KiB).
    pub max_payload: usize,
    /// Deadline for the whole opening: handshakes and the CONNECT packet.
    pub connect_timeout: Duration,
    /// Most simultaneous client connections.
    pub max_connections: usize,
    /// Idle limit for a client that asks for no keepalive (keepalive 0).
    pub max_idle: Duration,
    /// Connect attempts per source address (loopback exempt; see [`crate::limit`]).
    pub attempts: Rate,
    /// Most addresses the attempt limiter tracks at once.
    pub max_tracked_addresses: usize,
    /// Most live sessions of one observer credential (different client ids); over it,
    /// the credential's oldest session is closed.
    pub max_observer_sessions: usize,
    /// When a host's session changing address means two agents share its token.
    pub clones: CloneRules,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_payload: 256 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            max_idle: Duration::from_secs(300),
            attempts: Rate::default(),
            max_tracked_addresses: 100_000,
            max_observer_sessions: 16,
            clones: CloneRules::default(),
        }
    }
}

/// Asked when a CONNECT fails authentication: brings the gateway's credentials up to date
/// (through [`Gateway::set_credentials`]) and says whether that worked, so that a host
/// registered a moment ago by another process gets in at once. The refresher installs the
/// table itself, rather than returning it, so that it can order every install (its own and
/// the server's install loop's): a table installed late over a newer one would refuse, and
/// kick, credentials made in between.
pub type Refresh = Arc<dyn Fn(Gateway) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

struct Inner {
    router: Router,
    /// Where hosts' publishes go to be stored, when the server has a consumer for them:
    /// a host's PUBACK then waits for the commit (see [`crate::ingest`]).
    ingest: Option<Ingest>,
    /// With `ingest`: one router link that carries every host's publishes to the router
    /// (for observers and Home Assistant), so that a host that only publishes, every
    /// agent, holds no router link of its own: a link costs tens of KiB in rumqttd.
    hosts_link: Option<Mutex<LinkTx>>,
    refresh: Option<Refresh>,
    config: GatewayConfig,
    credentials: RwLock<Arc<CredentialTable>>,
    presence: Mutex<Presence>,
    /// Hosts' `online`/`offline`, queued under the presence lock and published by the
    /// task `new` spawns, which holds a `Weak` of it and ends when the gateway drops.
    outbox: Arc<Outbox>,
    /// One permit per open connection, up to `max_connections`.
    slots: Arc<Semaphore>,
    /// A short lock, never held across an await.
    attempts: StdMutex<AttemptLimiter>,
    next_session: AtomicU64,
    stats: Stats,
    /// Each trip of the clone detector. The gateway keeps the sender; the server's wiring
    /// subscribes (`clone_events`) and hands each to the recorder. Nobody listening is fine.
    clone_events: broadcast::Sender<CloneDetected>,
}

/// The gateway; cheap to clone, shared by every listener.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

/// Leave to open a connection, from [`Gateway::admit`]: one of the `max_connections`
/// slots, held by the connection's task and given back when it drops, and the deadline
/// for the whole opening (TLS or WebSocket handshake and CONNECT), which starts at
/// admission. Listeners ask for it before any handshake, so refused clients cost no TLS
/// or WebSocket work.
#[must_use]
pub struct Admission {
    _slot: OwnedSemaphorePermit,
    deadline: Instant,
}

impl Admission {
    /// When the opening (handshakes and CONNECT) must be done.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// An accepted connection, from CONNACK on. Boxed by [`Gateway::open`]: it lives as long
/// as the session, and an async fn keeps a second copy of what it is handed by value.
struct Opened<S> {
    framed: Framed<S>,
    /// The client's address, for the log.
    peer: SocketAddr,
    identity: Identity,
    /// The session as registered in the presence table.
    session: Joined,
    /// How long the client may stay silent: 1.5 × its keepalive.
    keepalive: Duration,
    /// The session's own router link: opened at CONNECT, or for a host whose publishes go
    /// to the ingest sink only once it subscribes (or acks a delivery).
    link_tx: Option<LinkTx>,
    /// The receiving end of `link_tx` as opened at CONNECT, until `run` waits on it.
    link_rx: Option<LinkRx>,
    /// A host's publishes awaiting their PUBACK, when its publishes go to the ingest sink.
    acks: Option<Acks>,
}

/// How a session ended, for the log and the counters.
#[derive(Debug)]
enum End {
    Disconnected,
    #[allow(dead_code)] // Read through `Debug` in the disconnect log line.
    Closed(CodecError),
    Kicked,
    KeepaliveTimeout,
    Violation(Violation, String),
    RouterGone,
    /// The ingest consumer dropped a publish unstored, or is gone: the client resends
    /// what was not acked after reconnecting.
    NotStored,
}

impl Gateway {
    /// A gateway in front of `router`. With `ingest`, hosts' publishes also go to that
    /// sink and their PUBACKs wait for it (see [`crate::ingest`]); without, a publish is
    /// acked once it is on the router link.
    pub async fn new(
        router: Router,
        config: GatewayConfig,
        refresh: Option<Refresh>,
        ingest: Option<Ingest>,
    ) -> anyhow::Result<Gateway> {
        let (link, rx) = router.link("gateway-presence").await?;
        router::drain(rx);
        let hosts_link = match &ingest {
            Some(_) => {
                let (link, rx) = router.link("gateway-hosts").await?;
                router::drain(rx);
                Some(Mutex::new(link))
            }
            None => None,
        };
        let presence = Presence {
            sessions: Sessions::new(config.max_observer_sessions),
            clones: CloneDetector::new(config.clones),
        };
        let outbox = Arc::new(Outbox::new());
        tokio::spawn(outbox::run_publisher(Arc::downgrade(&outbox), link, ingest.clone(), router.clone()));
        Ok(Gateway(Arc::new(Inner {
            slots: Arc::new(Semaphore::new(config.max_connections)),
            attempts: StdMutex::new(AttemptLimiter::new(config.attempts, config.max_tracked_addresses)),
            router,
            ingest,
            hosts_link,
            refresh,
            config,
            credentials: RwLock::new(Arc::new(CredentialTable::default())),
            presence: Mutex::new(presence),
            outbox,
            next_session: AtomicU64::new(1),
            stats: Stats::default(),
            clone_events: broadcast::channel(64).0,
        })))
    }

    pub fn stats(&self) -> &Stats {
        &self.0.stats
    }

    pub fn backlog(&self) -> &Backlog {
        self.0.router.backlog()
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.0.config
    }

    /// Every trip of the clone detector from now on: two agents use one host's token.
    pub fn clone_events(&self) -> broadcast::Receiver<CloneDetected> {
        self.0.clone_events.subscribe()
    }

    /// Decides whether a new connection from `peer` may open: the per-address attempt
    /// limit, then the connection cap. `peer` is the client's address (the forwarded one
    /// when behind a trusted proxy). Refusals are counted; the caller just closes.
    pub fn admit(&self, peer: SocketAddr) -> Option<Admission> {
        let stats = &self.0.stats;
        // The lock is never held across an await or a panic point.
        let allowed =
            self.0.attempts.lock().unwrap_or_else(|e| e.into_inner()).allow(peer.ip(), std::time::Instant::now());
        if !allowed {
            // One line per refused attempt would let a flood fill the log: warn at the
            // 1st, 2nd, 4th, 8th ... refusal; `pmon_mqtt_refused_total{reason="rate"}`
            // has the exact count.
            let refused = stats.refused_rate.fetch_add(1, Ordering::Relaxed) + 1;
            if refused.is_power_of_two() {
                warn!(%peer, refused, "connect attempts over the per-address limit; refusing");
            } else {
                debug!(%peer, "connect attempts over the per-address limit; refused");
            }
            return None;
        }
        let Ok(slot) = self.0.slots.clone().try_acquire_owned() else {
            Stats::add(&stats.refused_busy);
            warn!(%peer, "connection limit reached; refusing a connection");
            return None;
        };
        Some(Admission { _slot: slot, deadline: Instant::now() + self.0.config.connect_timeout })
    }

    /// Serves one client connection to its end. `peer` is the client's address (the
    /// forwarded one when behind a trusted proxy); `admission` comes from [`Gateway::admit`].
    ///
    /// Not an `async fn`: the stream goes straight into the boxed opening, so that the
    /// future the connection's task holds for its whole life does not also keep a copy
    /// of the stream and the admission (an async fn keeps its arguments' room in every
    /// state); and `'static`, with a gateway of its own, so that a listener spawns it as
    /// it is rather than inside an async block, which would keep that room too. Boxed,
    /// like every step below that waits on the router or the ingest sink: a session's
    /// task is as large as its largest state, and that task was most of a held
    /// connection's memory (docs/PERFORMANCE.md). Boxed, a step costs its memory only
    /// while it runs.
    pub fn serve<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        admission: Admission,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let gateway = self.clone();
        let opening = Box::pin(async move { gateway.open(stream, peer, admission).await.map(|open| (gateway, open)) });
        async move {
            let Some((gateway, mut open)) = opening.await else { return };
            gateway.connected(&open);
            let end = gateway.run(&mut open).await;
            // Boxed: what the ending holds across its awaits would otherwise be room in
            // the session's task while it is idle.
            Box::pin(gateway.close(open, end)).await;
        }
    }

    /// Counts and logs a session that has just opened.
    fn connected<S>(&self, open: &Opened<S>) {
        let stats = &self.0.stats;
        Stats::add(&stats.accepted);
        stats.sessions.fetch_add(1, Ordering::Relaxed);
        info!(peer = %open.peer, user = open.identity.name(), "connected");
    }

    /// The session's end: the router told, counted and logged, and the presence left.
    async fn close<S>(&self, open: Box<Opened<S>>, end: End) {
        let stats = &self.0.stats;
        let Opened { identity, session, link_tx, peer, .. } = *open;
        if let Some(mut link_tx) = link_tx {
            if !matches!(end, End::Disconnected) {
                // Boxed: a router send holds rumqttd's whole `Event` (a KiB) while pending.
                let _ = Box::pin(link_tx.send(disconnect())).await;
            }
        }
        match &end {
            End::Violation(v, topic) => {
                stats.violation(*v);
                warn!(user = identity.name(), topic = %topic, violation = v.as_str(), "closed: ACL violation");
            }
            End::Kicked => Stats::add(&stats.kicked),
            End::KeepaliveTimeout => Stats::add(&stats.keepalive_timeouts),
            _ => {}
        }
        stats.sessions.fetch_sub(1, Ordering::Relaxed);
        Box::pin(self.leave(&identity, session.id)).await;
        info!(%peer, user = identity.name(), reason = ?end, "disconnected");
    }

    /// The opening: the CONNECT within the admission's deadline, the token, the will, the
    /// session's join, a router link and the CONNACK. None when refused (counted and
    /// logged here).
    async fn open<S>(&self, stream: S, peer: SocketAddr, admission: Admission) -> Option<Box<Opened<S>>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let stats = &self.0.stats;
        let opening = timeout_at(admission.deadline, async {
            let mut framed = Framed::accept(stream, self.0.config.max_payload + 1024).await?;
            let packet = framed.next().await?;
            Ok::<_, CodecError>((framed, packet))
        })
        .await;
        let (mut framed, packet) = match opening {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                Stats::add(&stats.refused_protocol);
                debug!(%peer, error = %e, "bad opening");
                return None;
            }
            Err(_) => {
                Stats::add(&stats.connect_timeouts);
                debug!(%peer, "no CONNECT within the deadline");
                return None;
            }
        };
        let Packet::Connect(connect, _props, will, _will_props, login) = packet else {
            Stats::add(&stats.refused_protocol);
            return None;
        };
        let (identity, token_hash) = self.authorize(&mut framed, peer, &connect.client_id, will, login).await?;
        let session = match Box::pin(self.join(&identity, &connect.client_id, token_hash, peer.ip())).await {
            Ok(joined) => joined,
            Err(code) => {
                framed.refuse(code).await;
                return None;
            }
        };
        let sink_only = matches!(identity, Identity::Host(_)) && self.0.ingest.is_some();
        let Some((link_tx, link_rx)) = self.acknowledge(&mut framed, &identity, sink_only).await else {
            Box::pin(self.leave(&identity, session.id)).await;
            return None;
        };
        let keepalive = match connect.keep_alive {
            0 => self.0.config.max_idle,
            secs => Duration::from_secs(u64::from(secs)).mul_f32(1.5),
        };
        let acks = sink_only.then(Acks::new);
        Some(Box::new(Opened { framed, peer, identity, session, keepalive, link_tx, link_rx, acks }))
    }

    /// Who the CONNECT is: its token (refreshing the credentials once if it fails) and a
    /// will only on its own topics. None when refused (counted, logged and answered).
    async fn authorize<S>(
        &self,
        framed: &mut Framed<S>,
        peer: SocketAddr,
        client_id: &str,
        will: Option<LastWill>,
        login: Option<Login>,
    ) -> Option<(Identity, [u8; 32])>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let stats = &self.0.stats;
        let mut accepted = self.authenticate(client_id, login.as_ref());
        if accepted.is_none() && self.refresh().await {
            accepted = self.authenticate(client_id, login.as_ref());
        }
        let Some((identity, token_hash)) = accepted else {
            Stats::add(&stats.refused_auth);
            let user = login.as_ref().map(|l| l.username.as_str()).unwrap_or("");
            info!(%peer, user, client_id, "refused: not authorized");
            framed.refuse(ConnectReturnCode::NotAuthorized).await;
            return None;
        };
        if let Some(will) = &will {
            let topic = String::from_utf8_lossy(&will.topic);
            if let Err(v) = acl::check_will(&identity, &topic) {
                stats.violation(v);
                warn!(user = identity.name(), topic = %topic, violation = v.as_str(), "refused: will on a foreign topic");
                framed.refuse(ConnectReturnCode::NotAuthorized).await;
                return None;
            }
        }
        Some((identity, token_hash))
    }

    /// The session's router link (none for a host whose publishes go to the ingest sink,
    /// `sink_only`) and the CONNACK. None when that failed (the link, if any, closed).
    async fn acknowledge<S>(
        &self,
        framed: &mut Framed<S>,
        identity: &Identity,
        sink_only: bool,
    ) -> Option<(Option<LinkTx>, Option<LinkRx>)>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (mut link_tx, link_rx) = if sink_only {
            (None, None)
        } else {
            match self.0.router.link(identity.name()).await {
                Ok((tx, rx)) => (Some(tx), Some(rx)),
                Err(e) => {
                    warn!(error = %e, "router refused a link");
                    framed.refuse(ConnectReturnCode::ServerUnavailable).await;
                    return None;
                }
            }
        };
        let ack = ConnAck { session_present: false, code: ConnectReturnCode::Success };
        if framed.queue(Packet::ConnAck(ack, None)).is_err() || framed.flush().await.is_err() {
            if let Some(link_tx) = &mut link_tx {
                let _ = link_tx.send(disconnect()).await;
            }
            return None;
        }
        Some((link_tx, link_rx))
    }

    /// The session: client packets to the router and the router's notifications to the
    /// client, until the client leaves, breaks a rule, goes quiet or is kicked.
    async fn run<S>(&self, open: &mut Opened<S>) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let Opened { framed, identity, session, keepalive, link_tx, link_rx, acks, .. } = open;
        let keepalive = *keepalive;
        // Made once per session, not per packet: re-registering a timer and two waiters
        // for every packet cost more CPU under load than the ACL. The idle
        // timer is moved only when it fires before its time.
        let mut last_packet = Instant::now();
        let idle = sleep_until(last_packet + keepalive);
        let kicked = session.kick.notified();
        // Boxed, and only for a session with a link: the wait is 500 bytes, and most
        // sessions (agents) have no link.
        let mut notes = link_rx.take().map(|rx| Box::pin(next_note(rx)));
        tokio::pin!(idle, kicked);
        if let (Identity::Host(host), Some(online)) = (&*identity, session.online.take()) {
            // The host's data after its `online`, as the recorder and subscribers expect:
            // while the ingest sink is full the publisher may not have handed it over
            // yet, and until then this session reads nothing (as it would, waiting for
            // the sink). Boxed: most sessions never wait here.
            tokio::select! {
                _ = &mut kicked => return End::Kicked,
                _ = Box::pin(self.0.outbox.wait_handed(host, online)) => {}
            }
            last_packet = Instant::now();
            idle.as_mut().reset(last_packet + keepalive);
        }
        loop {
            tokio::select! {
                _ = &mut kicked => return End::Kicked,
                _ = &mut idle => {
                    if last_packet.elapsed() >= keepalive {
                        return End::KeepaliveTimeout;
                    }
                    idle.as_mut().reset(last_packet + keepalive);
                }
                // What the branches resolve to is kept small (an error, an outcome, a
                // box): the select's output is part of the session's state while idle.
                filled = framed.fill() => {
                    if let Err(e) = filled {
                        return End::Closed(e);
                    }
                    // Any bytes count as life, as a whole packet did before: a client
                    // sending a packet slower than its keepalive is cut off at max_packet.
                    last_packet = Instant::now();
                    match Box::pin(self.forward_packets(identity, framed, link_tx, acks)).await {
                        Ok(Some(opened)) => notes = Some(Box::pin(next_note(opened))),
                        Ok(None) => {}
                        Err(end) => return end,
                    }
                }
                outcome = next_outcome(acks) => {
                    if let Err(end) = queue_acks(acks, outcome, framed) {
                        return end;
                    }
                    if let Err(e) = framed.flush().await {
                        return End::Closed(e);
                    }
                }
                note = next_of(&mut notes) => {
                    // Boxed: a notification is 800 bytes, and the session's task would
                    // hold room for it while idle.
                    match Box::pin(deliver(note, framed)).await {
                        Ok(link_rx) => notes = Some(Box::pin(next_note(link_rx))),
                        Err(end) => return end,
                    }
                }
            }
        }
    }

    /// Checks and forwards every whole packet buffered, so a burst (an agent replaying
    /// its outage buffer) costs one wake.
    /// `Err` ends the session; `Ok(Some(rx))` hands `run` the receiving end of a router
    /// link opened on the way (see `link_for`).
    ///
    /// A host's publish goes to the ingest sink when there is one, and its PUBACK waits
    /// for the commit (`acks`). Otherwise a QoS 1 publish is acked here. Either way the
    /// router gets it as QoS 0, for observers: the router would ack it as soon as it is
    /// in its in-memory log, which promises nothing more, and its ack would cost a second
    /// wake of this session and of the router per publish. Subscribers still get it at
    /// their subscription's QoS.
    async fn forward_packets<S>(
        &self,
        identity: &Identity,
        framed: &mut Framed<S>,
        link_tx: &mut Option<LinkTx>,
        acks: &mut Option<Acks>,
    ) -> Result<Option<LinkRx>, End>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut opened = None;
        loop {
            let packet = match framed.try_next() {
                Ok(Some(p)) => p,
                Ok(None) => return framed.flush().await.map(|()| opened).map_err(End::Closed),
                // A publish far over the limit is refused by the codec before the ACL
                // sees it: count it as the same violation (its topic was never decoded).
                Err(CodecError::TooLarge(n)) => {
                    return Err(End::Violation(Violation::Oversized, format!("(a {n}-byte packet, not decoded)")))
                }
                Err(e) => return Err(End::Closed(e)),
            };
            if let Err((v, topic)) = self.check(identity, &packet) {
                return Err(End::Violation(v, topic));
            }
            let last = matches!(packet, Packet::Disconnect(..));
            let packet = match packet {
                // Without a link of its own, the gateway answers pings (the router would).
                Packet::PingReq(_) if link_tx.is_none() => {
                    framed.queue(Packet::PingResp(PingResp)).map_err(End::Closed)?;
                    None
                }
                Packet::Disconnect(..) if link_tx.is_none() => None,
                Packet::Publish(publish, props) => {
                    // Stop reading this socket while the recorder is far behind.
                    self.0.router.backlog().admit(publish.topic.len() + publish.payload.len()).await;
                    let (qos, pkid) = router::qos_and_pkid(&publish);
                    if let (Some(acks), Some(ingest)) = (acks.as_mut(), &self.0.ingest) {
                        let done = (qos == 1).then(|| acks.track(pkid));
                        let delivery =
                            Delivery { topic: publish.topic.clone(), payload: publish.payload.clone(), done };
                        if !ingest.send(delivery).await {
                            return Err(End::NotStored);
                        }
                    } else if qos == 1 {
                        framed.queue(puback(pkid)).map_err(End::Closed)?;
                    }
                    let publish = match qos {
                        1 => Packet::Publish(Publish::new(publish.topic, publish.payload, publish.retain), props),
                        _ => Packet::Publish(publish, props),
                    };
                    if let (None, Some(shared)) = (&link_tx, &self.0.hosts_link) {
                        if shared.lock().await.send(publish).await.is_err() {
                            return Err(End::RouterGone);
                        }
                        None
                    } else {
                        Some(publish)
                    }
                }
                other => Some(other),
            };
            if let Some(packet) = packet {
                if link_tx.is_none() {
                    opened = Some(self.link_for(identity, link_tx).await?);
                }
                let Some(link) = link_tx.as_mut() else { return Err(End::RouterGone) };
                if link.send(packet).await.is_err() {
                    return Err(End::RouterGone);
                }
            }
            if last {
                let _ = framed.flush().await;
                return Err(End::Disconnected);
            }
        }
    }

    /// Opens the session's own router link, for a host that had none (it subscribes).
    async fn link_for(&self, identity: &Identity, link_tx: &mut Option<LinkTx>) -> Result<LinkRx, End> {
        match self.0.router.link(identity.name()).await {
            Ok((tx, rx)) => {
                *link_tx = Some(tx);
                Ok(rx)
            }
            Err(e) => {
                warn!(error = %e, "router refused a link");
                Err(End::RouterGone)
            }
        }
    }

    async fn refresh(&self) -> bool {
        match &self.0.refresh {
            Some(refresh) => refresh(self.clone()).await,
            None => false,
        }
    }

    /// The username must match a credential, and a host's client id must be its host id.
    fn authenticate(&self, client_id: &str, login: Option<&Login>) -> Option<(Identity, [u8; 32])> {
        let login = login?;
        let (identity, hash) = self.credentials().verify(&login.username, &login.password)?;
        match &identity {
            Identity::Host(host) if host.as_str() != client_id => None,
            _ => Some((identity, hash)),
        }
    }

    /// The ACL, applied to one packet from the client.
    fn check(&self, who: &Identity, packet: &Packet) -> Result<(), (Violation, String)> {
        match packet {
            Packet::Publish(publish, _) => {
                let topic = String::from_utf8_lossy(&publish.topic);
                acl::check_publish(who, &topic, publish.payload.len(), self.0.config.max_payload)
                    .map_err(|v| (v, topic.into_owned()))
            }
            Packet::Subscribe(subscribe, _) => subscribe
                .filters
                .iter()
                .try_for_each(|f| acl::check_subscribe(who, &f.path).map_err(|v| (v, f.path.clone()))),
            _ => Ok(()),
        }
    }
}

/// A notification from the router, or why there was none, and the link it came on.
type Note = (LinkRx, Result<Option<Notification>, LinkError>);

/// The session's next notification from the router, with the link handed back: the
/// session keeps this one future across packets rather than making (and registering) a
/// new receive for each. Boxed: the two are 900 bytes, which the session's task would
/// otherwise hold while idle (docs/PERFORMANCE.md); only sessions with a link, not
/// agents, receive notifications.
async fn next_note(mut link_rx: LinkRx) -> Box<Note> {
    let note = link_rx.next().await;
    Box::new((link_rx, note))
}

/// The router's notification sent on to the client (or the link woken), and the link
/// handed back to wait on again.
async fn deliver<S>(note: Box<Note>, framed: &mut Framed<S>) -> Result<LinkRx, End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (link_rx, note) = *note;
    match note {
        Ok(Some(Notification::Unschedule)) => {
            if link_rx.wake().await.is_err() {
                return Err(End::RouterGone);
            }
        }
        Ok(Some(note)) => {
            if let Some(packet) = Option::<Packet>::from(note) {
                framed.queue(packet).map_err(End::Closed)?;
            }
            framed.flush().await.map_err(End::Closed)?;
        }
        Ok(None) => {}
        Err(_) => return Err(End::RouterGone),
    }
    Ok(link_rx)
}

/// What `wait` gives; pending for ever without one (a session with no router link).
/// Polls rather than an async fn, as `next_outcome`: the idle session holds it.
fn next_of<F: Future + Unpin>(wait: &mut Option<F>) -> impl Future<Output = F::Output> + '_ {
    std::future::poll_fn(move |cx| match wait {
        Some(wait) => Pin::new(wait).poll(cx),
        None => Poll::Pending,
    })
}

fn puback(pkid: u16) -> Packet {
    Packet::PubAck(PubAck { pkid, reason: PubAckReason::Success }, None)
}

fn disconnect() -> Packet {
    use rumqttd::protocol::{Disconnect, DisconnectReasonCode};
    Packet::Disconnect(Disconnect { reason_code: DisconnectReasonCode::NormalDisconnection }, None)
}

/// The next outcome of a publish handed to the ingest sink; pending for ever for a
/// session without one. Polls rather than holding a receive future: the idle session
/// holds this one, and its size is part of every held connection's.
fn next_outcome(acks: &mut Option<Acks>) -> impl Future<Output = Outcome> + '_ {
    std::future::poll_fn(move |cx| match acks {
        Some(acks) => acks.poll_next(cx),
        None => Poll::Pending,
    })
}

/// Queues the PUBACKs that `outcome` (and any others already arrived) allow, in order.
/// Not async, so that its list is not part of the session's state: the caller flushes.
fn queue_acks<S>(acks: &mut Option<Acks>, outcome: Outcome, framed: &mut Framed<S>) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Some(acks) = acks else { return Ok(()) };
    let mut ready = Vec::new();
    if acks.settle(outcome, &mut ready).is_err() {
        return Err(End::NotStored);
    }
    for pkid in ready {
        framed.queue(puback(pkid)).map_err(End::Closed)?;
    }
    Ok(())
}
