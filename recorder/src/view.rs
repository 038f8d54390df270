//! What the dashboard shows of a host, built from the database or the writer's cache by
//! the same code, so a page load and a live update never disagree.

use std::sync::Arc;

use rusqlite::Connection;
use serde::Serialize;
use wire::{Fast, FastPayload, Medium, MediumPayload, SlowPayload};

use crate::fleet::Fleet;
use crate::status::{self, Facts, Health, Level};

/// Everything known about one host's current state.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    pub host_id: String,
    pub online: bool,
    /// When `online` last changed: a host that just reconnected isn't "silent" yet.
    pub online_changed_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub agent_version: Option<String>,
    pub fast: Option<FastPayload>,
    pub fast_received_ms: Option<i64>,
    /// Time between the last two fast samples of one agent run.
    pub fast_interval_ms: Option<i64>,
    pub medium: Option<MediumPayload>,
    pub previous_medium: Option<Medium>,
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

impl HostState {
    pub fn health(&self, now_ms: i64) -> Health {
        status::evaluate(&Facts {
            online: self.online,
            now_ms,
            fast: self.fast.as_ref().map(|p| &p.data),
            // Silence counts from the later of the last sample and the reconnect.
            fast_received_ms: self.fast_received_ms.max(self.online_changed_ms),
            fast_interval_ms: self.fast_interval_ms,
            medium: self.medium.as_ref().map(|p| &p.data),
            previous_medium: self.previous_medium.as_ref(),
        })
    }

    pub fn card(&self, now_ms: i64) -> Card {
        let health = self.health(now_ms);
        let fast = self.fast.as_ref().map(|p| &p.data);
        let get = |f: fn(&Fast) -> Option<f64>| fast.and_then(f);
        let medium = self.medium.as_ref().map(|p| &p.data);
        let pools = medium.and_then(|m| m.pools.as_ref());
        let running = |g: Option<&Vec<wire::Guest>>| {
            g.map_or((0, 0), |g| (g.iter().filter(|g| g.status == "running").count(), g.len()))
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
            pools_healthy: pools.map_or(0, |p| p.iter().filter(|p| p.state == "ONLINE").count()),
            vms_running,
            vms_total,
            cts_running,
            cts_total,
        }
    }
}

/// Every registered host in host id order: the registry is read from `conn`, each
/// host's state taken from `fleet` (the writer's, no parsing) where it is there, and
/// parsed from the `latest` rows where not.
pub fn load_states(conn: &Connection, fleet: &Fleet) -> rusqlite::Result<Vec<Arc<HostState>>> {
    let hosts: Vec<String> = conn
        .prepare_cached("SELECT host_id FROM hosts ORDER BY host_id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let known = fleet.get_all(&hosts);
    hosts
        .iter()
        .zip(known)
        .map(|(host, state)| match state {
            Some(state) => Ok(Some(state)),
            None => Ok(load(conn, Some(host))?.pop().map(Arc::new)),
        })
        .filter_map(Result::transpose)
        .collect()
}

/// One registered host's state (from `fleet` if there), or None if it isn't registered.
pub fn load_state(conn: &Connection, fleet: &Fleet, host_id: &str) -> rusqlite::Result<Option<Arc<HostState>>> {
    let registered = conn.prepare_cached("SELECT 1 FROM hosts WHERE host_id = ?1")?.exists([host_id])?;
    if !registered {
        return Ok(None);
    }
    match fleet.get(host_id) {
        Some(state) => Ok(Some(state)),
        None => Ok(load(conn, Some(host_id))?.pop().map(Arc::new)),
    }
}

/// Every registered host with its latest payloads parsed from the database, in host id
/// order: the writer's start, and processes without a writer (`host list`).
pub fn parse_states(conn: &Connection) -> rusqlite::Result<Vec<HostState>> {
    load(conn, None)
}

/// All hosts, or only `only`.
fn load(conn: &Connection, only: Option<&str>) -> rusqlite::Result<Vec<HostState>> {
    let mut hosts = conn.prepare(
        "SELECT host_id, online, last_seen_ms, agent_version, online_changed_ms FROM hosts
         WHERE ?1 IS NULL OR host_id = ?1 ORDER BY host_id",
    )?;
    let mut states: Vec<HostState> = hosts
        .query_map([only], |r| {
            Ok(HostState {
                host_id: r.get(0)?,
                online: r.get(1)?,
                last_seen_ms: r.get(2)?,
                agent_version: r.get(3)?,
                online_changed_ms: r.get(4)?,
                ..HostState::default()
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut latest =
        conn.prepare("SELECT host_id, tier, received_ms, payload FROM latest WHERE ?1 IS NULL OR host_id = ?1")?;
    let rows = latest.query_map([only], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
    })?;
    for row in rows {
        let (host, tier, received, payload) = row?;
        let Ok(i) = states.binary_search_by(|s| s.host_id.as_str().cmp(&host)) else { continue };
        let state = &mut states[i];
        // Stored payloads were validated on the way in; a bad one just stays unshown.
        match tier.as_str() {
            "fast" => {
                state.fast = serde_json::from_str(&payload).ok();
                state.fast_received_ms = Some(received);
            }
            "medium" => state.medium = serde_json::from_str(&payload).ok(),
            "slow" => state.slow = serde_json::from_str(&payload).ok(),
            _ => {}
        }
    }
    Ok(states)
}

/// One line of a host's timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub ts_ms: i64,
    pub kind: String,
    pub message: String,
}

pub fn recent_events(conn: &Connection, host_id: &str, limit: usize) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = conn
        .prepare("SELECT ts_ms, kind, message FROM events WHERE host_id = ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2")?;
    let rows = stmt.query_map(rusqlite::params![host_id, limit as i64], |r| {
        Ok(Event { ts_ms: r.get(0)?, kind: r.get(1)?, message: r.get(2)? })
    })?;
    rows.collect()
}
