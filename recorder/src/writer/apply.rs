//! One item into the batch's transaction: one function per tier. The writer's state cache
//! mirrors the `latest` table, so "newer" is decided in memory.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{params, Transaction};
use wire::{FastPayload, Held, Kind, Medium, MediumPayload, Payload, SlowPayload};

use super::skew::Stamp;
use super::{exec, Store};
use crate::ingest::Item;
use crate::partitions::Series;
use crate::rollup;
use crate::state::{held_slow, HostState};
use crate::status::{PreviousMedium, PreviousSlow, SharedToken};
use crate::Stats;

/// Applies one item; returns whether the host's card may have changed.
pub(super) fn apply(
    store: &mut Store,
    states: &mut HashMap<String, HostState>,
    item: &Item,
    stamp: &Stamp,
    now: i64,
    stats: &Stats,
) -> rusqlite::Result<bool> {
    let Some(state) = state_of(store.tx, states, item.host()) else {
        stats.unknown_host.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    };
    match item {
        Item::Status { online, .. } => apply_status(store.tx, state, *online, now),
        Item::Fast(p, raw) => apply_fast(store, state, p, raw, stamp, now, stats),
        Item::Medium(p, raw) => apply_medium(store, state, p, raw, stamp, now, stats),
        Item::Slow(p, raw) => apply_slow(store, state, p, raw, stamp, now, stats),
        Item::SharedToken(detected) => apply_shared_token(store.tx, state, detected, now),
    }
}

/// The gateway's clone detector tripped: an event, and the finding the card and alerting
/// read (`status::Rule::SharedToken`).
fn apply_shared_token(
    tx: &Transaction,
    state: &mut HostState,
    detected: &broker::CloneDetected,
    now: i64,
) -> rusqlite::Result<bool> {
    let shared = SharedToken { addresses: detected.addresses.clone(), detected_ms: now };
    let message = format!(
        "{}; {} stays connected, the others are refused for {} min",
        shared.describe(),
        detected.kept,
        detected.cool_down.as_secs().div_ceil(60)
    );
    event(tx, &state.host_id, now, "clone", &message)?;
    state.shared_token = Some(shared);
    Ok(true)
}

/// The host's state, or None if it isn't registered. A host missing from the cache is
/// looked up once more: a removed host's last messages, or a race with `host add`.
fn state_of<'s>(tx: &Transaction, states: &'s mut HashMap<String, HostState>, host: &str) -> Option<&'s mut HostState> {
    if !states.contains_key(host) {
        if tx.query_row("SELECT 1 FROM hosts WHERE host_id = ?1", [host], |_| Ok(())).is_err() {
            return None;
        }
        states.insert(host.to_owned(), HostState { host_id: host.to_owned(), ..HostState::default() });
    }
    states.get_mut(host)
}

/// Presence: a flip is recorded on the host and as an event.
fn apply_status(tx: &Transaction, state: &mut HostState, online: bool, now: i64) -> rusqlite::Result<bool> {
    if state.online != online {
        state.online = online;
        state.online_changed_ms = Some(now);
        exec(
            tx,
            "UPDATE hosts SET online = ?2, online_changed_ms = ?3 WHERE host_id = ?1",
            params![state.host_id, online, now],
        )?;
        let (kind, message) = if online { ("online", "came online") } else { ("offline", "went offline") };
        event(tx, &state.host_id, now, kind, message)?;
    }
    Ok(true)
}

fn apply_fast(
    store: &mut Store,
    state: &mut HostState,
    p: &FastPayload,
    raw: &str,
    stamp: &Stamp,
    now: i64,
    stats: &Stats,
) -> rusqlite::Result<bool> {
    if !insert_fast(store, p, stamp)? {
        stats.duplicates.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    }
    let newer = state.fast.as_ref().is_none_or(|old| p.ts_ms >= old.ts_ms);
    store.pending.count_rows(p.ts_ms, 1);
    store.pending.note(p, Kind::Fast, raw, stamp.agent_ts_ms, newer, now);
    seen(state, p, now);
    if newer {
        if let Some(prev) = &state.fast {
            if prev.boot_id == p.boot_id && p.ts_ms > prev.ts_ms {
                state.fast_interval_ms = Some(p.ts_ms - prev.ts_ms);
            }
        }
        state.fast = Some(Arc::new(p.clone()));
        state.fast_received_ms = Some(now);
    }
    Ok(newer)
}

/// Stores a fast sample in `fast_recent`; false if it was stored before (a replay). The
/// key (host, ts_ms, seq) of `fast_recent` and of the hour table makes a replay a no-op:
/// fast samples need no row in `ingested`. Looking in the hour table only reads.
///
/// Except for a host whose samples were ever stored at a corrected time (`skew.rs`): a
/// replay corrected by a skew that has changed since would be stored at another time. Its
/// fast samples are keyed by (boot_id, seq) in `ingested`, like the other tiers, and a
/// sample stored as sent before its host's clock was measured is looked for at its
/// agent's time.
fn insert_fast(store: &mut Store, p: &FastPayload, stamp: &Stamp) -> rusqlite::Result<bool> {
    if stamp.by_seq {
        if !first_time(store, p, Kind::Fast, stamp)? {
            return Ok(false);
        }
        if stamp.agent_ts_ms != p.ts_ms && stored_as_sent(store, p, stamp.agent_ts_ms)? {
            return Ok(false);
        }
    }
    let f = &p.data;
    let history = store.table(Series::Fast, p.ts_ms)?;
    let moved = store
        .tx
        .prepare_cached(&format!("SELECT 1 FROM {history} WHERE host_id = ?1 AND ts_ms = ?2 AND seq = ?3"))?
        .exists(params![p.host_id, p.ts_ms, p.seq as i64])?;
    if moved {
        return Ok(false);
    }
    let stored = exec(
        store.tx,
        "INSERT OR IGNORE INTO fast_recent (host_id, ts_ms, seq, load1, load5, load15, cpu_pct,
         iowait_pct, mem_total, mem_used, arc_bytes, swap_total, swap_used, rootfs_total, rootfs_used)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            p.host_id,
            p.ts_ms,
            p.seq as i64,
            f.load1,
            f.load5,
            f.load15,
            f.cpu_pct,
            f.iowait_pct,
            as_i64(f.mem_total),
            as_i64(f.mem_used),
            as_i64(f.arc_bytes),
            as_i64(f.swap_total),
            as_i64(f.swap_used),
            as_i64(f.rootfs_total),
            as_i64(f.rootfs_used)
        ],
    )?;
    Ok(stored == 1)
}

/// Whether the fast sample `p` is stored at `agent_ts_ms`, the time its agent gave it.
fn stored_as_sent(store: &mut Store, p: &FastPayload, agent_ts_ms: i64) -> rusqlite::Result<bool> {
    let key = params![p.host_id, agent_ts_ms, p.seq as i64];
    let mut recent =
        store.tx.prepare_cached("SELECT 1 FROM fast_recent WHERE ts_ms = ?2 AND host_id = ?1 AND seq = ?3")?;
    if recent.exists(key)? {
        return Ok(true);
    }
    let hour = crate::partitions::hour_of(agent_ts_ms);
    if !store.hours.contains(&hour) {
        return Ok(false);
    }
    let history = Series::Fast.table(hour);
    store
        .tx
        .prepare_cached(&format!("SELECT 1 FROM {history} WHERE host_id = ?1 AND ts_ms = ?2 AND seq = ?3"))?
        .exists(key)
}

fn apply_medium(
    store: &mut Store,
    state: &mut HostState,
    p: &MediumPayload,
    raw: &str,
    stamp: &Stamp,
    now: i64,
    stats: &Stats,
) -> rusqlite::Result<bool> {
    if !first_time(store, p, Kind::Medium, stamp)? {
        stats.duplicates.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    }
    let rows = insert_pools(store, p)? + insert_storages(store, p)? + insert_guests(store, p)?;
    store.pending.count_rows(p.ts_ms, rows);
    let tables = [
        (rollup::Group::Pool, store.table(Series::Pool, p.ts_ms)?),
        (rollup::Group::Storage, store.table(Series::Storage, p.ts_ms)?),
        (rollup::Group::Guest, store.table(Series::Guest, p.ts_ms)?),
    ];
    rollup::fold_medium(store.tx, store.parts, &tables, &p.host_id, p.ts_ms)?;
    // Decoded once: for its time here and for the timeline's diff below.
    let old = state.medium.as_ref().map(Held::get);
    let newer = old.as_ref().is_none_or(|old| p.ts_ms >= old.ts_ms);
    store.pending.note(p, Kind::Medium, raw, stamp.agent_ts_ms, newer, now);
    seen(state, p, now);
    if newer {
        state.previous_medium_ts_ms = old.as_ref().map(|m| m.ts_ms);
        medium_events(store.tx, &state.host_id, old.as_ref().map(|m| &m.data), &p.data, now)?;
        state.previous_medium = old.as_ref().map(|m| Arc::new(PreviousMedium::of(&m.data)));
        state.medium = Some(Held::new(p));
    }
    Ok(newer)
}

fn apply_slow(
    store: &mut Store,
    state: &mut HostState,
    p: &SlowPayload,
    raw: &str,
    stamp: &Stamp,
    now: i64,
    stats: &Stats,
) -> rusqlite::Result<bool> {
    if !first_time(store, p, Kind::Slow, stamp)? {
        stats.duplicates.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    }
    let old = state.slow.as_ref().map(Held::get);
    let newer = old.as_ref().is_none_or(|old| p.ts_ms >= old.ts_ms);
    store.pending.note(p, Kind::Slow, raw, stamp.agent_ts_ms, newer, now);
    seen(state, p, now);
    if newer {
        state.previous_slow = old.as_ref().map(|s| Arc::new(PreviousSlow::of(&s.data)));
        state.slow = Some(held_slow(p.clone()));
    }
    Ok(newer)
}

fn as_i64(v: Option<u64>) -> Option<i64> {
    v.map(|v| v as i64)
}

// In the three series below, OR IGNORE: a payload naming the same pool, storage or guest
// twice keeps the first.

/// One row per pool, for the charts; returns how many.
fn insert_pools(store: &mut Store, p: &MediumPayload) -> rusqlite::Result<usize> {
    let pools = store.table(Series::Pool, p.ts_ms)?;
    let mut pool = store.tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {pools} (host_id, ts_ms, pool, state, cap_pct, frag_pct, alloc, size,
             read_errors, write_errors, checksum_errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?;
    let mut rows = 0;
    for pl in p.data.pools.iter().flatten() {
        let [read, write, checksum] = pl.vdev_errors_by_type().map(|n| n as i64);
        rows += pool.execute(params![
            p.host_id,
            p.ts_ms,
            pl.name,
            pl.state.as_str(),
            pl.cap_pct,
            pl.frag_pct,
            as_i64(pl.alloc),
            as_i64(pl.size),
            read,
            write,
            checksum
        ])?;
    }
    Ok(rows)
}

/// One row per storage, for the charts; returns how many.
fn insert_storages(store: &mut Store, p: &MediumPayload) -> rusqlite::Result<usize> {
    let storages = store.table(Series::Storage, p.ts_ms)?;
    let mut storage = store.tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {storages} (host_id, ts_ms, storage, used, total) VALUES (?1, ?2, ?3, ?4, ?5)"
    ))?;
    let mut rows = 0;
    for st in p.data.storages.iter().flatten() {
        rows += storage.execute(params![p.host_id, p.ts_ms, st.name, as_i64(st.used), as_i64(st.total)])?;
    }
    Ok(rows)
}

/// One row per VM and CT, for the charts; returns how many.
fn insert_guests(store: &mut Store, p: &MediumPayload) -> rusqlite::Result<usize> {
    let guests = store.table(Series::Guest, p.ts_ms)?;
    let mut guest = store.tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {guests} (host_id, ts_ms, vmid, kind, status, cpu, mem, maxmem)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?;
    let mut rows = 0;
    for (kind, list) in [("vm", &p.data.vms), ("ct", &p.data.cts)] {
        for g in list.iter().flatten() {
            rows += guest.execute(params![
                p.host_id,
                p.ts_ms,
                g.vmid,
                kind,
                g.status.as_str(),
                g.cpu,
                as_i64(g.mem),
                as_i64(g.maxmem)
            ])?;
        }
    }
    Ok(rows)
}

/// Records (host, tier, boot, seq); false if it was stored before (a replay). Keyed by
/// the agent's time, never the corrected one (see `Store::ingested`).
fn first_time<T>(store: &mut Store, p: &Payload<T>, tier: Kind, stamp: &Stamp) -> rusqlite::Result<bool> {
    let ingested = store.ingested(stamp.agent_ts_ms, p.ts_ms)?;
    let n = exec(
        store.tx,
        &format!("INSERT OR IGNORE INTO {ingested} (host_id, tier, boot_id, seq) VALUES (?1, ?2, ?3, ?4)"),
        params![p.host_id, tier.as_str(), p.boot_id, p.seq as i64],
    )?;
    Ok(n == 1)
}

fn seen<T>(state: &mut HostState, p: &Payload<T>, now: i64) {
    state.last_seen_ms = Some(now);
    if state.agent_version.as_deref() != Some(p.agent_version.as_str()) {
        state.agent_version = Some(p.agent_version.clone());
    }
}

fn event(tx: &Transaction, host: &str, ts: i64, kind: &str, message: &str) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO events (host_id, ts_ms, kind, message) VALUES (?1, ?2, ?3, ?4)",
        params![host, ts, kind, message],
    )?;
    Ok(())
}

/// Pool state changes, growing error counters, and guests appearing, disappearing or
/// changing state.
fn medium_events(
    tx: &Transaction,
    host: &str,
    before: Option<&Medium>,
    now_m: &Medium,
    ts: i64,
) -> rusqlite::Result<()> {
    for line in crate::changes::diff(before, now_m) {
        event(tx, host, ts, line.kind, &line.message)?;
    }
    Ok(())
}
