//! Reads for pages, the API and the CLI: host states and timelines from SQLite, on any
//! connection. The registry (which hosts exist) always comes from the database; a host's
//! state comes from the writer's [`Fleet`] when it has one, since parsing payloads is the
//! expensive part of a fleet-wide read.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use wire::{Held, Kind, SlowPayload};

use crate::fleet::Fleet;
use crate::state::{held_slow, HostState};

/// Every registered host in host id order: the registry is read from `conn`, each
/// host's state taken from `fleet` (the writer's, no parsing) where it is there, and
/// parsed from the `latest` rows where not.
pub fn all_hosts(conn: &Connection, fleet: &Fleet) -> rusqlite::Result<Vec<Arc<HostState>>> {
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
            None => Ok(parse_state(conn, host)?.map(Arc::new)),
        })
        .filter_map(Result::transpose)
        .collect()
}

/// One registered host's state (from `fleet` if there), or None if it isn't registered.
pub fn one_host(conn: &Connection, fleet: &Fleet, host_id: &str) -> rusqlite::Result<Option<Arc<HostState>>> {
    let registered = conn.prepare_cached("SELECT 1 FROM hosts WHERE host_id = ?1")?.exists([host_id])?;
    if !registered {
        return Ok(None);
    }
    match fleet.get(host_id) {
        Some(state) => Ok(Some(state)),
        None => Ok(parse_state(conn, host_id)?.map(Arc::new)),
    }
}

/// Every registered host with its latest payloads parsed from the database, in host id
/// order: the writer's start, and processes without a writer (`host list`).
pub fn parse_states(conn: &Connection) -> rusqlite::Result<Vec<HostState>> {
    let mut hosts = conn.prepare(
        "SELECT host_id, online, last_seen_ms, agent_version, online_changed_ms FROM hosts ORDER BY host_id",
    )?;
    let mut states: Vec<HostState> = hosts.query_map([], host_row)?.collect::<Result<_, _>>()?;
    let mut latest = conn.prepare("SELECT host_id, tier, received_ms, payload FROM latest")?;
    let rows = latest.query_map([], latest_row)?;
    for row in rows {
        let (host, tier, received, payload) = row?;
        let Ok(i) = states.binary_search_by(|s| s.host_id.as_str().cmp(&host)) else { continue };
        set_latest(&mut states[i], &tier, received, &payload);
    }
    Ok(states)
}

/// One registered host with its latest payloads parsed from the database, or None if it
/// isn't registered.
pub fn parse_state(conn: &Connection, host_id: &str) -> rusqlite::Result<Option<HostState>> {
    let state = conn
        .query_row(
            "SELECT host_id, online, last_seen_ms, agent_version, online_changed_ms FROM hosts WHERE host_id = ?1",
            [host_id],
            host_row,
        )
        .optional()?;
    let Some(mut state) = state else { return Ok(None) };
    let mut latest = conn.prepare("SELECT host_id, tier, received_ms, payload FROM latest WHERE host_id = ?1")?;
    let rows = latest.query_map([host_id], latest_row)?;
    for row in rows {
        let (_, tier, received, payload) = row?;
        set_latest(&mut state, &tier, received, &payload);
    }
    Ok(Some(state))
}

fn host_row(r: &Row) -> rusqlite::Result<HostState> {
    Ok(HostState {
        host_id: r.get(0)?,
        online: r.get(1)?,
        last_seen_ms: r.get(2)?,
        agent_version: r.get(3)?,
        online_changed_ms: r.get(4)?,
        ..HostState::default()
    })
}

/// (host, tier, received_ms, payload) of one `latest` row.
fn latest_row(r: &Row) -> rusqlite::Result<(String, String, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn set_latest(state: &mut HostState, tier: &str, received: i64, payload: &str) {
    // Stored payloads were validated on the way in; a bad one just stays unshown.
    match Kind::parse(tier) {
        Some(Kind::Fast) => {
            // Held parsed, as a clone: a parsed vector keeps the room it grew into (up to
            // twice its length), a clone just its length (the writer's are clones too).
            state.fast = parsed(payload).map(|p: wire::FastPayload| Arc::new(p.clone()));
            state.fast_received_ms = Some(received);
            state.clock_skew_ms = stored_skew(payload);
        }
        Some(Kind::Medium) => state.medium = parsed(payload).map(|p| Held::new(&p)),
        Some(Kind::Slow) => state.slow = parsed(payload).map(held_slow),
        Some(Kind::Status) | None => {}
    }
}

fn parsed<T: serde::de::DeserializeOwned>(payload: &str) -> Option<T> {
    serde_json::from_str(payload).ok()
}

/// A host's latest slow payload as the agent sent it, `snapshots.recent` included (the
/// host's state leaves it out: see [`held_slow`]); None if it has sent none.
pub fn latest_slow(conn: &Connection, host_id: &str) -> rusqlite::Result<Option<SlowPayload>> {
    let payload: Option<String> = conn
        .prepare_cached("SELECT payload FROM latest WHERE host_id = ?1 AND tier = ?2")?
        .query_row(params![host_id, Kind::Slow.as_str()], |r| r.get(0))
        .optional()?;
    Ok(payload.as_deref().and_then(parsed))
}

/// The skew the writer corrected a stored payload for (`agent_ts_ms` is the agent's
/// time, `ts_ms` the stored one; see `clock.rs`); None when it was stored as sent.
pub fn stored_skew(payload: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Times {
        ts_ms: i64,
        agent_ts_ms: Option<i64>,
    }
    let t: Times = serde_json::from_str(payload).ok()?;
    Some(t.agent_ts_ms? - t.ts_ms)
}

/// One line of a host's timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub ts_ms: i64,
    pub kind: String,
    pub message: String,
}

/// The newest `limit` lines of a host's timeline, newest first.
pub fn recent_events(conn: &Connection, host_id: &str, limit: usize) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = conn
        .prepare("SELECT ts_ms, kind, message FROM events WHERE host_id = ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2")?;
    let rows = stmt.query_map(rusqlite::params![host_id, limit as i64], |r| {
        Ok(Event { ts_ms: r.get(0)?, kind: r.get(1)?, message: r.get(2)? })
    })?;
    rows.collect()
}

/// One line of the fleet's timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FleetEvent {
    /// The row id: with `ts_ms`, the key the timeline pages by.
    pub id: i64,
    pub host_id: String,
    pub ts_ms: i64,
    pub kind: String,
    pub message: String,
}

/// Which events of the fleet's timeline to read: every field set narrows it.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub host_id: Option<String>,
    pub kind: Option<String>,
}

/// Where a page of the timeline starts: events strictly older than `(ts_ms, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub ts_ms: i64,
    pub id: i64,
}

impl EventCursor {
    /// Before every event: the first page.
    pub const NEWEST: EventCursor = EventCursor { ts_ms: i64::MAX, id: i64::MAX };

    /// Before every event at `ts_ms` and after: a time typed by hand.
    pub fn before_time(ts_ms: i64) -> EventCursor {
        EventCursor { ts_ms, id: i64::MIN }
    }

    /// Right after `event`: the page that follows it.
    pub fn after(event: &FleetEvent) -> EventCursor {
        EventCursor { ts_ms: event.ts_ms, id: event.id }
    }
}

/// At most `limit` events of the fleet matching `filter` and older than `before`, newest
/// first. Paged by `(ts_ms, id)`, so events sharing a millisecond are neither lost nor
/// repeated between pages; each filter has an index that reads in this order
/// (`events_ts`, `events_host_ts`, `events_kind_ts`, whose keys end in the row id).
pub fn fleet_events(
    conn: &Connection,
    filter: &EventFilter,
    before: EventCursor,
    limit: usize,
) -> rusqlite::Result<Vec<FleetEvent>> {
    let mut sql = String::from("SELECT id, host_id, ts_ms, kind, message FROM events WHERE (ts_ms, id) < (?1, ?2)");
    let mut params: Vec<rusqlite::types::Value> = vec![before.ts_ms.into(), before.id.into()];
    if let Some(host) = &filter.host_id {
        params.push(host.clone().into());
        sql.push_str(&format!(" AND host_id = ?{}", params.len()));
    }
    if let Some(kind) = &filter.kind {
        params.push(kind.clone().into());
        sql.push_str(&format!(" AND kind = ?{}", params.len()));
    }
    params.push((limit as i64).into());
    sql.push_str(&format!(" ORDER BY ts_ms DESC, id DESC LIMIT ?{}", params.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
        Ok(FleetEvent { id: r.get(0)?, host_id: r.get(1)?, ts_ms: r.get(2)?, kind: r.get(3)?, message: r.get(4)? })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(rows: &[(&str, i64, &str)]) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_and_migrate(&dir.path().join("r.db")).unwrap();
        for (host, ts, kind) in rows {
            conn.execute(
                "INSERT INTO events (host_id, ts_ms, kind, message) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![host, ts, kind, format!("{host} {kind} at {ts}")],
            )
            .unwrap();
        }
        (dir, conn)
    }

    fn messages(events: &[FleetEvent]) -> Vec<&str> {
        events.iter().map(|e| e.message.as_str()).collect()
    }

    #[test]
    fn fleet_events_are_newest_first_filtered_and_paged_without_losing_ties() {
        let (_dir, conn) =
            events(&[("pve1", 100, "online"), ("pve2", 200, "guest"), ("pve1", 200, "pool"), ("pve2", 300, "offline")]);
        let all = EventFilter::default();
        let first = fleet_events(&conn, &all, EventCursor::NEWEST, 2).unwrap();
        assert_eq!(messages(&first), ["pve2 offline at 300", "pve1 pool at 200"]);
        // The next page starts inside the millisecond the first one ended in.
        let next = fleet_events(&conn, &all, EventCursor::after(&first[1]), 2).unwrap();
        assert_eq!(messages(&next), ["pve2 guest at 200", "pve1 online at 100"]);
        assert!(fleet_events(&conn, &all, EventCursor::after(&next[1]), 2).unwrap().is_empty());
        let before_200 = fleet_events(&conn, &all, EventCursor::before_time(200), 10).unwrap();
        assert_eq!(messages(&before_200), ["pve1 online at 100"]);

        let pve1 = EventFilter { host_id: Some("pve1".into()), kind: None };
        assert_eq!(
            messages(&fleet_events(&conn, &pve1, EventCursor::NEWEST, 10).unwrap()),
            ["pve1 pool at 200", "pve1 online at 100"]
        );
        let guests = EventFilter { host_id: None, kind: Some("guest".into()) };
        assert_eq!(messages(&fleet_events(&conn, &guests, EventCursor::NEWEST, 10).unwrap()), ["pve2 guest at 200"]);
        let both = EventFilter { host_id: Some("pve1".into()), kind: Some("guest".into()) };
        assert!(fleet_events(&conn, &both, EventCursor::NEWEST, 10).unwrap().is_empty());
    }
}
