//! Gateway counters, read by `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::acl::Violation;

/// Counters only grow, except `sessions`, the live count.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    /// Wrong or unknown token, or a client id that isn't the username.
    pub refused_auth: AtomicU64,
    /// Not MQTT, an unsupported version, or a malformed CONNECT.
    pub refused_protocol: AtomicU64,
    /// No CONNECT (or no handshake) within the deadline.
    pub connect_timeouts: AtomicU64,
    /// Over the connection cap.
    pub refused_busy: AtomicU64,
    /// Over the per-address connect-attempt rate.
    pub refused_rate: AtomicU64,
    /// A host's takeover from another address while two agents share its token.
    pub refused_clone: AtomicU64,
    /// Closed because the token was rotated, the host removed, a newer session came, or
    /// its observer credential went over its session cap.
    pub kicked: AtomicU64,
    /// Observer sessions closed because their credential went over its cap (also kicks).
    pub observer_evictions: AtomicU64,
    /// Trips of the clone detector (two agents sharing one host's token).
    pub clones_detected: AtomicU64,
    pub keepalive_timeouts: AtomicU64,
    /// Hosts' `online`/`offline` dropped unpublished: a host flapping while the ingest
    /// sink was full lost its oldest pairs (never its last state).
    pub presence_dropped: AtomicU64,
    pub sessions: AtomicI64,
    violations: [AtomicU64; Violation::ALL.len()],
}

impl Stats {
    pub fn violation(&self, v: Violation) {
        self.violations[v as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn violations(&self) -> Vec<(Violation, u64)> {
        Violation::ALL.into_iter().map(|v| (v, self.violations[v as usize].load(Ordering::Relaxed))).collect()
    }

    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
