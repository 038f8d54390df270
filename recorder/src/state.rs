//! What the dashboard shows of a host: its state, its health and its overview card.
//! Pure: pages and live updates build cards from the same state with the same code, so a
//! page load and a live update never disagree.

use std::sync::Arc;

use serde::Serialize;
use wire::{Fast, FastPayload, GuestStatus, MediumPayload, SlowPayload};

use crate::status::{self, Facts, Finding, Health, Latest, Level, Overrides, SharedToken};

/// Everything known about one host's current state.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    pub host_id: String,
    pub online: bool,
    /// When `online` last changed: a host that just reconnected isn't "silent" yet.
    pub online_changed_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub agent_version: Option<String>,
    // The payloads are shared, not copied, by the fleet's snapshot of this state (fleet.rs)
    // and by the previous tier's slot: a host's payloads are the bulk of its memory.
    pub fast: Option<Arc<FastPayload>>,
    pub fast_received_ms: Option<i64>,
    /// Time between the last two fast samples of one agent run.
    pub fast_interval_ms: Option<i64>,
    pub medium: Option<Arc<MediumPayload>>,
    pub previous_medium: Option<Arc<MediumPayload>>,
    /// When `previous_medium` was collected (its corrected `ts_ms`).
    pub previous_medium_ts_ms: Option<i64>,
    pub slow: Option<Arc<SlowPayload>>,
    pub previous_slow: Option<Arc<SlowPayload>>,
    /// Set when the gateway saw two agents using this host's token; in memory only (the
    /// gateway's detector starts afresh at a restart too).
    pub shared_token: Option<SharedToken>,
    /// How far the agent's clock is from the server's (positive = ahead), as measured by
    /// the writer (`clock.rs`); None until measured.
    pub clock_skew_ms: Option<i64>,
}

/// The slow payload as a host's state holds it: without `snapshots.recent`, the newest
/// snapshots' names (up to 200 a host), which no page, rule or mirror reads;
/// `/api/v1/hosts/<id>` reads the whole payload from `latest` (`read::latest_slow`).
/// A clone, so its vectors have no spare room.
pub fn held_slow(p: &SlowPayload) -> SlowPayload {
    let mut held = p.clone();
    if let Some(snapshots) = held.data.snapshots.as_mut() {
        snapshots.recent = Vec::new();
    }
    held
}

/// One overview card, also the JSON of a live update and of `/api/v1/hosts`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Card {
    pub host_id: String,
    /// `online`, `warning`, `critical` or `offline`.
    pub status: Level,
    pub reasons: Vec<String>,
    pub online: bool,
    pub last_seen_ms: Option<i64>,
    pub agent_version: Option<String>,
    pub load1: Option<f64>,
    pub load15: Option<f64>,
    pub cpus: Option<u32>,
    pub cpu_pct: Option<f64>,
    pub mem_total: Option<u64>,
    pub mem_used: Option<u64>,
    pub arc_bytes: Option<u64>,
    pub pools: usize,
    pub pools_healthy: usize,
    pub vms_running: usize,
    pub vms_total: usize,
    pub cts_running: usize,
    pub cts_total: usize,
}

/// How many hosts are at each level: the overview's filter links and `/metrics`' `pmon_hosts`
/// count with this, so the two never disagree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts([usize; Level::ALL.len()]);

impl StatusCounts {
    pub fn of(levels: impl IntoIterator<Item = Level>) -> StatusCounts {
        let mut counts = StatusCounts::default();
        for level in levels {
            counts.0[level as usize] += 1;
        }
        counts
    }

    pub fn get(&self, level: Level) -> usize {
        self.0[level as usize]
    }

    /// Every level with its count, best first, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (Level, usize)> + '_ {
        Level::ALL.into_iter().map(|level| (level, self.get(level)))
    }
}

impl Card {
    /// Memory used without the ZFS ARC, which the kernel would give back under pressure.
    pub fn mem_used_without_arc(&self) -> Option<u64> {
        Some(self.mem_used?.saturating_sub(self.arc_bytes.unwrap_or(0)))
    }
}

impl HostState {
    pub fn health(&self, now_ms: i64) -> Health {
        status::health(&self.findings(now_ms))
    }

    /// What is wrong with the host at `now_ms` under the server's current overrides
    /// ([`status::limits::current`]): the card's reasons.
    pub fn findings(&self, now_ms: i64) -> Vec<Finding> {
        self.findings_under(now_ms, &status::limits::current())
    }

    /// What is wrong with the host at `now_ms` under `limits`: alerting passes the
    /// overrides it read this round (the same ones the cards then read).
    pub fn findings_under(&self, now_ms: i64, limits: &Overrides) -> Vec<Finding> {
        status::findings(&Facts {
            host_id: &self.host_id,
            limits,
            online: self.online,
            now_ms,
            fast: self.fast.as_ref().map(|p| &p.data),
            // Silence counts from the later of the last sample and the reconnect.
            fast_received_ms: self.fast_received_ms.max(self.online_changed_ms),
            fast_interval_ms: self.fast_interval_ms,
            medium: self.medium.as_ref().map(|p| &p.data),
            previous_medium: self.previous_medium.as_ref().map(|p| &p.data),
            medium_ts_ms: self.medium.as_ref().map(|p| p.ts_ms),
            previous_medium_ts_ms: self.previous_medium_ts_ms,
            daily_backup_max_age_s: status::daily_backup_max_age_s(),
            slow: self.slow.as_ref().map(|p| &p.data),
            previous_slow: self.previous_slow.as_ref().map(|p| &p.data),
            shared_token: self.shared_token.as_ref(),
            clock_skew_ms: self.clock_skew_ms,
        })
    }

    /// The latest sample of each tier, where alerting measures a numeric rule's subject.
    pub fn latest(&self) -> Latest<'_> {
        Latest {
            fast: self.fast.as_ref().map(|p| &p.data),
            medium: self.medium.as_ref().map(|p| &p.data),
            slow: self.slow.as_ref().map(|p| &p.data),
            clock_skew_ms: self.clock_skew_ms,
        }
    }

    pub fn card(&self, now_ms: i64) -> Card {
        let health = self.health(now_ms);
        let fast = self.fast.as_ref().map(|p| &p.data);
        let get = |f: fn(&Fast) -> Option<f64>| fast.and_then(f);
        let medium = self.medium.as_ref().map(|p| &p.data);
        let pools = medium.and_then(|m| m.pools.as_ref());
        let running = |g: Option<&Vec<wire::Guest>>| {
            g.map_or((0, 0), |g| (g.iter().filter(|g| g.status == GuestStatus::Running).count(), g.len()))
        };
        let (vms_running, vms_total) = running(medium.and_then(|m| m.vms.as_ref()));
        let (cts_running, cts_total) = running(medium.and_then(|m| m.cts.as_ref()));
        Card {
            host_id: self.host_id.clone(),
            status: health.level,
            reasons: health.reasons,
            online: self.online,
            last_seen_ms: self.last_seen_ms,
            agent_version: self.agent_version.clone(),
            load1: get(|f| f.load1),
            load15: get(|f| f.load15),
            cpus: fast.and_then(|f| f.cpus),
            cpu_pct: get(|f| f.cpu_pct),
            mem_total: fast.and_then(|f| f.mem_total),
            mem_used: fast.and_then(|f| f.mem_used),
            arc_bytes: fast.and_then(|f| f.arc_bytes),
            pools: pools.map_or(0, Vec::len),
            pools_healthy: pools
                .map_or(0, |p| p.iter().filter(|p| status::pool_level(&p.state) == Level::Online).count()),
            vms_running,
            vms_total,
            cts_running,
            cts_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_count_every_level_in_order() {
        let counts = StatusCounts::of([Level::Critical, Level::Online, Level::Critical, Level::Offline]);
        let all: Vec<(&str, usize)> = counts.iter().map(|(l, n)| (l.as_str(), n)).collect();
        assert_eq!(all, [("online", 1), ("warning", 0), ("critical", 2), ("offline", 1)]);
        assert_eq!(counts.get(Level::Warning), 0);
        assert_eq!(StatusCounts::of([]).iter().map(|(_, n)| n).sum::<usize>(), 0);
    }
}
