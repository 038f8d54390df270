//! What the dashboard shows of a host: its state, its health and its overview card.
//! Pure: pages and live updates build cards from the same state with the same code, so a
//! page load and a live update never disagree.

use std::sync::Arc;

use serde::Serialize;
use wire::{Fast, FastPayload, GuestStatus, Held, Medium, MediumPayload, Slow, SlowPayload};

use crate::status::{
    self, Facts, Finding, Health, Latest, Level, Overrides, PreviousMedium, PreviousSlow, SharedToken,
};

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
    // and by the previous tier's slot: a host's payloads are the bulk of its memory, so
    // medium and slow are held encoded ([`Held`], about a sixth of their parsed size) and
    // decoded by [`HostState::decoded`]. Fast stays parsed: small, and read on every card.
    pub fast: Option<Arc<FastPayload>>,
    pub fast_received_ms: Option<i64>,
    /// Time between the last two fast samples of one agent run.
    pub fast_interval_ms: Option<i64>,
    pub medium: Option<Held<MediumPayload>>,
    /// What the rules compare `medium` with, of the medium sample before it.
    pub previous_medium: Option<Arc<PreviousMedium>>,
    /// When `previous_medium` was collected (its corrected `ts_ms`).
    pub previous_medium_ts_ms: Option<i64>,
    /// Without `snapshots.recent`: see [`held_slow`].
    pub slow: Option<Held<SlowPayload>>,
    /// What the rules compare `slow` with, of the slow sample before it.
    pub previous_slow: Option<Arc<PreviousSlow>>,
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
pub fn held_slow(mut p: SlowPayload) -> Held<SlowPayload> {
    if let Some(snapshots) = p.data.snapshots.as_mut() {
        snapshots.recent = Vec::new();
    }
    Held::new(&p)
}

/// A host's state with its held payloads decoded: built once per host per request or
/// round ([`HostState::decoded`]); its findings, card and latest samples borrow from it.
pub struct Decoded<'a> {
    pub state: &'a HostState,
    pub medium: Option<MediumPayload>,
    pub slow: Option<SlowPayload>,
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
    /// The state with its medium and slow payloads decoded; read it once and pass it on.
    pub fn decoded(&self) -> Decoded<'_> {
        Decoded { state: self, medium: self.medium.as_ref().map(Held::get), slow: self.slow.as_ref().map(Held::get) }
    }

    /// Decodes for this one read: a caller that also reads the payloads uses [`Self::decoded`].
    pub fn health(&self, now_ms: i64) -> Health {
        self.decoded().health(now_ms)
    }

    /// Decodes for this one read, as [`Self::health`].
    pub fn findings(&self, now_ms: i64) -> Vec<Finding> {
        self.decoded().findings(now_ms)
    }

    /// Decodes for this one read, as [`Self::health`].
    pub fn card(&self, now_ms: i64) -> Card {
        self.decoded().card(now_ms)
    }
}

impl Decoded<'_> {
    pub fn medium_data(&self) -> Option<&Medium> {
        self.medium.as_ref().map(|p| &p.data)
    }

    pub fn slow_data(&self) -> Option<&Slow> {
        self.slow.as_ref().map(|p| &p.data)
    }

    pub fn fast_data(&self) -> Option<&Fast> {
        self.state.fast.as_ref().map(|p| &p.data)
    }

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
        let state = self.state;
        status::findings(&Facts {
            host_id: &state.host_id,
            limits,
            online: state.online,
            now_ms,
            fast: self.fast_data(),
            // Silence counts from the later of the last sample and the reconnect.
            fast_received_ms: state.fast_received_ms.max(state.online_changed_ms),
            fast_interval_ms: state.fast_interval_ms,
            medium: self.medium_data(),
            previous_medium: state.previous_medium.as_deref(),
            medium_ts_ms: self.medium.as_ref().map(|p| p.ts_ms),
            previous_medium_ts_ms: state.previous_medium_ts_ms,
            daily_backup_max_age_s: status::daily_backup_max_age_s(),
            slow: self.slow_data(),
            previous_slow: state.previous_slow.as_deref(),
            shared_token: state.shared_token.as_ref(),
            clock_skew_ms: state.clock_skew_ms,
        })
    }

    /// The latest sample of each tier, where alerting measures a numeric rule's subject.
    pub fn latest(&self) -> Latest<'_> {
        Latest {
            fast: self.fast_data(),
            medium: self.medium_data(),
            slow: self.slow_data(),
            clock_skew_ms: self.state.clock_skew_ms,
        }
    }

    pub fn card(&self, now_ms: i64) -> Card {
        let state = self.state;
        let health = self.health(now_ms);
        let fast = self.fast_data();
        let get = |f: fn(&Fast) -> Option<f64>| fast.and_then(f);
        let medium = self.medium_data();
        let pools = medium.and_then(|m| m.pools.as_ref());
        let running = |g: Option<&Vec<wire::Guest>>| {
            g.map_or((0, 0), |g| (g.iter().filter(|g| g.status == GuestStatus::Running).count(), g.len()))
        };
        let (vms_running, vms_total) = running(medium.and_then(|m| m.vms.as_ref()));
        let (cts_running, cts_total) = running(medium.and_then(|m| m.cts.as_ref()));
        Card {
            host_id: state.host_id.clone(),
            status: health.level,
            reasons: health.reasons,
            online: state.online,
            last_seen_ms: state.last_seen_ms,
            agent_version: state.agent_version.clone(),
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
