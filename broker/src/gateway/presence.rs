//! Presence: who is connected, judged and registered under one lock, and the retained
//! `online`/`offline` the gateway publishes from it.
//!
//! The lock is held only for decisions: publishing a state waits for the ingest sink and
//! the router, which a full disk can stall for as long as it lasts, so it is queued in
//! the [`super::outbox`] and published by one task after the lock.
//!
//! A CONNECT is judged and joined in one critical section: whether its token is still
//! valid, whether a host's CONNECT is a takeover from another address (the clone
//! detector), and the join that replaces the session it was judged against. Taken apart,
//! two CONNECTs of one host could both pass the check with no session live and then both
//! join, the second replacing the first unjudged (`broker/tests/takeover_race.rs`); and
//! a CONNECT authenticated just before a rotation could join after the rotation's kick
//! had passed over the sessions, and stay.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rumqttd::protocol::ConnectReturnCode;
use tokio::sync::Notify;
use tracing::{debug, info, warn};
use wire::HostId;

use super::outbox::{Queued, Ticket};
use super::Gateway;
use crate::auth::{CredentialTable, Identity};
use crate::clones::{CloneDetector, Decision};
use crate::sessions::{Displaced, Session, Sessions};
use crate::stats::Stats;

/// What the presence lock guards: the live sessions and the clone detector. One lock for
/// both, so that a takeover is judged against the session it replaces, and `online` and
/// `offline` of one host are queued for publishing (`queue_status`) in the order their
/// sessions started and ended. Nothing under it awaits anything but the lock itself.
pub(super) struct Presence {
    pub sessions: Sessions,
    pub clones: CloneDetector,
}

/// A session registered by [`Gateway::join`].
pub(super) struct Joined {
    pub id: u64,
    /// A host's `online`, queued for the publisher: the session hands nothing to the
    /// ingest sink before it is handed over (`Gateway::run`). None once it is, and for
    /// observers.
    pub online: Option<Ticket>,
    /// Notified to close the session (see [`Session::kick`]).
    pub kick: Arc<Notify>,
}

impl Gateway {
    /// Replaces the credential table and closes every session whose token is no longer
    /// valid (rotated or removed). Returns how many were closed.
    pub async fn set_credentials(&self, table: CredentialTable) -> usize {
        let table = Arc::new(table);
        // Installed before the sessions are scanned: a CONNECT joining after the scan
        // checks its token against this table (`join`).
        // The lock is never held across an await or a panic point.
        *self.0.credentials.write().unwrap_or_else(|e| e.into_inner()) = table.clone();
        let presence = self.0.presence.lock().await;
        let mut kicked = 0;
        for (user, session) in presence.sessions.all() {
            if !table.still_valid(user, &session.token_hash) {
                info!(user = %user, "credential revoked; closing its session");
                session.kick.notify_one();
                kicked += 1;
            }
        }
        kicked
    }

    pub(super) fn credentials(&self) -> Arc<CredentialTable> {
        self.0.credentials.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Host ids with a live session right now.
    pub async fn online_hosts(&self) -> Vec<String> {
        let presence = self.0.presence.lock().await;
        let mut hosts: Vec<String> = presence.sessions.hosts().map(str::to_owned).collect();
        hosts.sort();
        hosts
    }

    /// Queues the retained `offline` of hosts nobody is connected as, e.g. at start,
    /// because rumqttd forgets retained messages when the server restarts. The publisher
    /// sends them shortly after this returns.
    pub async fn announce_offline(&self, hosts: &[HostId]) {
        let presence = self.0.presence.lock().await;
        for host in hosts {
            if presence.sessions.host(host.as_str()).is_none() {
                self.queue_status(host, false);
            }
        }
    }

    /// Judges an authenticated CONNECT and registers its session, in one critical
    /// section (see the module's doc): a revoked token is refused "not authorized", a
    /// host's takeover from another address while two agents share its token "identifier
    /// rejected". Otherwise the session replaces (and closes) an older one of the same
    /// key, or the credential's oldest over the observer cap, and a host is published
    /// `online`.
    pub(super) async fn join(
        &self,
        who: &Identity,
        client_id: &str,
        token_hash: [u8; 32],
        addr: IpAddr,
    ) -> Result<Joined, ConnectReturnCode> {
        let mut presence = self.0.presence.lock().await;
        if !self.credentials().still_valid(who.name(), &token_hash) {
            Stats::add(&self.0.stats.refused_auth);
            info!(user = who.name(), "refused: credential revoked while connecting");
            return Err(ConnectReturnCode::NotAuthorized);
        }
        if let Identity::Host(host) = who {
            let live = presence.sessions.host(host.as_str()).map(|s| s.addr);
            let decision = presence.clones.connect(host, live, addr, std::time::Instant::now());
            if !self.allow_takeover(host, addr, decision) {
                // "Identifier rejected" (3.1.1 code 2, MQTT 5 0x85): the agent says
                // `host_id_in_use` and waits its longest backoff before trying again.
                return Err(ConnectReturnCode::ClientIdentifierNotValid);
            }
        }
        let id = self.0.next_session.fetch_add(1, Ordering::Relaxed);
        let kick = Arc::new(Notify::new());
        let session = Session { id, token_hash, addr, kick: kick.clone() };
        match presence.sessions.join(who, client_id, session) {
            Some(Displaced::Replaced(old)) => {
                info!(user = who.name(), client_id, "a newer session replaces the live one");
                old.kick.notify_one();
            }
            Some(Displaced::Evicted(old, old_client)) => {
                // Logged at the 1st, 2nd, 4th, 8th ... eviction: clients reconnecting in
                // a loop must not fill the log; the counter has the exact count.
                let evictions = self.0.stats.observer_evictions.fetch_add(1, Ordering::Relaxed) + 1;
                let cap = self.0.config.max_observer_sessions;
                if evictions.is_power_of_two() {
                    warn!(user = who.name(), client_id = %old_client, cap, evictions, "observer over its session cap; closing its oldest session");
                } else {
                    debug!(user = who.name(), client_id = %old_client, "observer over its session cap; oldest closed");
                }
                old.kick.notify_one();
            }
            None => {}
        }
        let online = match who {
            Identity::Host(host) => Some(self.queue_status(host, true)),
            _ => None,
        };
        Ok(Joined { id, online, kick })
    }

    /// Acts on the clone detector's decision on a CONNECT of `host` from `addr`: true to
    /// let it in. A refusal is counted; a trip is also logged and published to
    /// [`Gateway::clone_events`].
    fn allow_takeover(&self, host: &HostId, addr: IpAddr, decision: Decision) -> bool {
        let stats = &self.0.stats;
        match decision {
            Decision::Allow => true,
            Decision::Refuse => {
                Stats::add(&stats.refused_clone);
                debug!(host = %host, %addr, "refused: another agent of this host is connected");
                false
            }
            Decision::Trip(detected) => {
                Stats::add(&stats.refused_clone);
                Stats::add(&stats.clones_detected);
                let addresses: Vec<String> = detected.addresses.iter().map(ToString::to_string).collect();
                warn!(
                    host = %host,
                    addresses = addresses.join(" "),
                    kept = %detected.kept,
                    cool_down_s = detected.cool_down.as_secs(),
                    "two agents use this host's token; keeping the connected one, refusing the others"
                );
                let _ = self.0.clone_events.send(detected);
                false
            }
        }
    }

    /// Queues the host's `online`/`offline` for the publisher (see [`super::outbox`]).
    /// Called under the presence lock, so a host's states queue in the order its
    /// sessions started and ended; never waits, so a full ingest sink holds up no CONNECT.
    fn queue_status(&self, host: &HostId, online: bool) -> Ticket {
        let (queued, ticket) = self.0.outbox.queue(host, online);
        if queued == Queued::DroppedOldestPair {
            // Logged at the 1st, 2nd, 4th ... drop: a flapping host must not fill the log.
            let dropped = self.0.stats.presence_dropped.fetch_add(2, Ordering::Relaxed) + 2;
            if (dropped / 2).is_power_of_two() {
                warn!(host = %host, dropped, "presence waiting to be stored; dropping a host's oldest online/offline pair");
            }
        }
        ticket
    }

    /// Unregisters a session; `offline` only if no newer session of that host is live.
    pub(super) async fn leave(&self, who: &Identity, id: u64) {
        let mut presence = self.0.presence.lock().await;
        if presence.sessions.leave(who, id) {
            if let Identity::Host(host) = who {
                self.queue_status(host, false);
            }
        }
    }
}
