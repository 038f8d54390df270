//! Back-filled history: each simulated host's past, written into the database through the
//! recorder's own code before its agent connects, so that every chart range has data.
//!
//! - The last 48 hours (the raw tier) go through the real writer
//!   ([`recorder::writer::Writer`]) as validated items ([`recorder::ingest::parse`]), as
//!   if an agent had sent them: hour tables, `fast_recent` and the settle, the minute and
//!   hour rollups of those hours and the `latest` rows are exactly what live ingest writes.
//!   The writer accepts any timestamp inside the raw retention window, so this needs no
//!   test-only switch, and nothing here writes a raw table by hand.
//! - Before that, the rollups only, as `bench_history` seeds them: samples are staged in
//!   temporary tables with the raw columns and folded by [`rollup::fold`], a day per
//!   transaction, then deleted. Not through the writer: it refuses samples older than the
//!   raw window (their hours are gone), and a year of raw rows would only be dropped.
//!   Staged in our own tables, not `fast_recent`, because older days may be seeded while
//!   the server's writer runs, and its settle folds whatever `fast_recent` holds.
//!
//! Samples are sparser the older they are ([`fast_every`]): a chart has at most 1,000
//! buckets per range, and a sample per bucket or two is all it can show. The flaky host's
//! outages and every host's reboots leave gaps (no samples), as real ones do.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use recorder::ingest::Item;
use recorder::rollup::{self, Group, Parts};
use rusqlite::{params, Connection, Transaction};
use serde::Serialize;
use wire::{Fast, HostId, Kind, Medium, Payload, SCHEMA_VERSION};

use super::model::HostModel;

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// The raw tier: written through the writer, and the demo's `RETENTION_HOURS`.
pub const RAW_MS: i64 = 48 * HOUR;

/// The interval of fast samples `age` ms before now. A chart has at most 1,000 buckets
/// (1 h: 4 s; 6 h: 22 s; 24 h: 87 s; 48 h: 3 min; 7 d: 11 min; 30 d: 44 min; 1 y: 9 h),
/// and a sample every bucket or two is all it can show; the raw tier is as dense as an
/// agent's default of 30 s only for the last hours, where the 1 h and 6 h ranges look.
fn fast_every(age: i64) -> i64 {
    match age {
        a if a <= HOUR => 10_000,
        a if a <= 6 * HOUR => 30_000,
        a if a <= RAW_MS => 2 * MIN,
        a if a <= 7 * DAY => 5 * MIN,
        a if a <= 30 * DAY => 20 * MIN,
        _ => 3 * HOUR,
    }
}

/// The interval of medium samples (pools, storages, guests: a dozen rows each, most of
/// the seeding's work): the agent's default of 5 minutes for the last 6 hours, sparser
/// further back.
fn medium_every(age: i64) -> i64 {
    match age {
        a if a <= HOUR => MIN,
        a if a <= 6 * HOUR => 5 * MIN,
        a if a <= RAW_MS => 10 * MIN,
        a if a <= 7 * DAY => 15 * MIN,
        a if a <= 30 * DAY => 40 * MIN,
        _ => 8 * HOUR,
    }
}

/// Sample times in `[from, to)` on the grid of `every(now - t)`, skipping the times the
/// host was offline.
fn times(host: &HostModel, from: i64, to: i64, now: i64, every: fn(i64) -> i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let step = every(now - t);
        t = t.div_euclid(step) * step + if t.rem_euclid(step) == 0 { 0 } else { step };
        if t < to && host.online_at(t) {
            out.push(t);
        }
        t += step;
    }
    out
}

/// Seeds the last 48 hours before `now` (which must be the wall clock: the writer checks
/// timestamps against it) through the writer. Returns the samples written.
pub fn seed_raw(database: &Path, hosts: &[HostModel], now: i64) -> anyhow::Result<usize> {
    // Building and validating the payloads is most of the work outside SQLite: a thread
    // per host.
    let built: Vec<anyhow::Result<Vec<Item>>> = std::thread::scope(|scope| {
        let threads: Vec<_> = hosts.iter().map(|host| scope.spawn(move || host_items(host, now))).collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a history thread panicked"))))
            .collect()
    });
    let mut items = Vec::new();
    for host_items in built {
        items.extend(host_items?);
    }
    items.sort_by_key(|i| i.ts_ms());
    let written = items.len();
    let conn = recorder::db::open_writer(database)?;
    let (live, _) = tokio::sync::broadcast::channel(1);
    let stats = Arc::new(recorder::Stats::default());
    let retention = recorder::Retention::raw(Duration::from_millis(RAW_MS as u64));
    let mut writer = recorder::writer::Writer::new(conn, live, stats.clone(), retention)?;
    let mut batch = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        batch.extend(items.by_ref().take(2000));
        writer.write(&mut batch);
    }
    writer.write_and_settle(&mut batch);
    let refused = stats.write_errors.load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(refused == 0, "the writer failed {refused} batches of history");
    Ok(written)
}

/// One host's samples of the raw window, as its agent would have sent them.
fn host_items(host: &HostModel, now: i64) -> anyhow::Result<Vec<Item>> {
    let id = HostId::parse(&host.name())?;
    let from = now - RAW_MS;
    let mut items = Vec::new();
    for (seq, t) in times(host, from, now, now, fast_every).into_iter().enumerate() {
        items.push(item(&id, Kind::Fast, seq, t, host.fast_at(t))?);
    }
    for (seq, t) in times(host, from, now, now, medium_every).into_iter().enumerate() {
        items.push(item(&id, Kind::Medium, seq, t, host.medium_at(t))?);
    }
    items.push(item(&id, Kind::Slow, 0, now - MIN, host.slow_at(now - MIN))?);
    Ok(items)
}

/// One sample as an agent would send it, validated as the recorder validates a message.
fn item<T: Serialize>(host: &HostId, tier: Kind, seq: usize, ts_ms: i64, data: T) -> anyhow::Result<Item> {
    let payload = Payload {
        schema: SCHEMA_VERSION,
        host_id: host.to_string(),
        ts_ms,
        boot_id: "demo-history".into(),
        seq: seq as u64 + 1,
        agent_version: proxmox_monitor_agent::VERSION.into(),
        dropped: 0,
        errors: Default::default(),
        data,
    };
    let json = serde_json::to_vec(&payload)?;
    recorder::ingest::parse(host.topic(tier).as_bytes(), &json, wire::now_ms())
        .map_err(|reject| anyhow::anyhow!("a {tier} sample of {host} was rejected: {}", reject.as_str()))
}

/// One day of one host's samples, computed ahead of SQLite.
struct HostDay {
    name: String,
    fast: Vec<(i64, Fast)>,
    medium: Vec<(i64, Medium)>,
}

/// Seeds the rollups of `[from, to)`, a day per transaction, newest day first;
/// `progress` hears of each day. The model runs a day ahead on another thread, so that
/// it overlaps SQLite's work.
pub fn seed_rollups(
    database: &Path,
    hosts: &[HostModel],
    from: i64,
    to: i64,
    mut progress: impl FnMut(i64),
) -> anyhow::Result<()> {
    let mut conn = recorder::db::open(database)?;
    stage(&conn)?;
    let mut parts = Parts::load(&conn)?;
    let now = wire::now_ms();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(i64, Vec<HostDay>)>(2);
        scope.spawn(move || {
            let mut hi = to;
            while hi > from {
                // Whole UTC days: the minute tier's partitions.
                let lo = ((hi - 1).div_euclid(DAY) * DAY).max(from);
                let day = hosts
                    .iter()
                    .map(|host| HostDay {
                        name: host.name(),
                        fast: times(host, lo, hi, now, fast_every).into_iter().map(|t| (t, host.fast_at(t))).collect(),
                        medium: times(host, lo, hi, now, medium_every)
                            .into_iter()
                            .map(|t| (t, host.medium_at(t)))
                            .collect(),
                    })
                    .collect();
                if tx.send((lo, day)).is_err() {
                    return;
                }
                hi = lo;
            }
        });
        for (lo, day) in rx {
            // Days the minute tier no longer keeps go into the hour tier only.
            fold_day(&mut conn, &mut parts, &day)?;
            progress(lo);
        }
        Ok(())
    })
}

/// Stages one day of every host and folds it into both rollups, in one transaction.
fn fold_day(conn: &mut Connection, parts: &mut Parts, day: &[HostDay]) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    for host in day {
        stage_host(&tx, host)?;
    }
    rollup::fold(&tx, parts, Group::Host, "stage_fast", "1", &[])?;
    for (group, table) in
        [(Group::Pool, "stage_pool"), (Group::Storage, "stage_storage"), (Group::Guest, "stage_guest")]
    {
        rollup::fold(&tx, parts, group, table, "1", &[])?;
    }
    tx.execute_batch(
        "DELETE FROM stage_fast; DELETE FROM stage_pool; DELETE FROM stage_storage; DELETE FROM stage_guest",
    )?;
    tx.commit().context("failed to commit a day of history")
}

/// Temporary tables with the raw columns the rollup metrics read (see
/// `recorder::rollup::metrics` and the writer's `apply.rs`).
fn stage(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE stage_fast (host_id TEXT, ts_ms INTEGER, load1 REAL, load5 REAL, load15 REAL,
             cpu_pct REAL, iowait_pct REAL, mem_total INTEGER, mem_used INTEGER, arc_bytes INTEGER,
             swap_total INTEGER, swap_used INTEGER, rootfs_total INTEGER, rootfs_used INTEGER);
         CREATE TEMP TABLE stage_pool (host_id TEXT, ts_ms INTEGER, pool TEXT, state TEXT, cap_pct REAL,
             frag_pct REAL, alloc INTEGER, size INTEGER, read_errors INTEGER, write_errors INTEGER,
             checksum_errors INTEGER);
         CREATE TEMP TABLE stage_storage (host_id TEXT, ts_ms INTEGER, storage TEXT, used INTEGER, total INTEGER);
         CREATE TEMP TABLE stage_guest (host_id TEXT, ts_ms INTEGER, vmid INTEGER, kind TEXT, status TEXT,
             cpu REAL, mem INTEGER, maxmem INTEGER);",
    )
}

/// Stages one host's samples of a day.
fn stage_host(tx: &Transaction, host: &HostDay) -> rusqlite::Result<()> {
    let mut fast = tx.prepare_cached(
        "INSERT INTO stage_fast VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    let n = |v: Option<u64>| v.map(|v| v as i64);
    for (t, f) in &host.fast {
        fast.execute(params![
            host.name,
            t,
            f.load1,
            f.load5,
            f.load15,
            f.cpu_pct,
            f.iowait_pct,
            n(f.mem_total),
            n(f.mem_used),
            n(f.arc_bytes),
            n(f.swap_total),
            n(f.swap_used),
            n(f.rootfs_total),
            n(f.rootfs_used)
        ])?;
    }
    for (t, m) in &host.medium {
        stage_medium(tx, &host.name, *t, m)?;
    }
    Ok(())
}

/// The rows the writer stores for a medium sample (`apply.rs`: `insert_pools`,
/// `insert_storages`, `insert_guests`).
fn stage_medium(tx: &Transaction, host: &str, t: i64, m: &Medium) -> rusqlite::Result<()> {
    let n = |v: Option<u64>| v.map(|v| v as i64);
    let mut pool = tx.prepare_cached("INSERT INTO stage_pool VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")?;
    for p in m.pools.iter().flatten() {
        let [read, write, checksum] = p.vdev_errors_by_type().map(|n| n as i64);
        pool.execute(params![
            host,
            t,
            p.name,
            p.state.as_str(),
            p.cap_pct,
            p.frag_pct,
            n(p.alloc),
            n(p.size),
            read,
            write,
            checksum
        ])?;
    }
    let mut storage = tx.prepare_cached("INSERT INTO stage_storage VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for s in m.storages.iter().flatten() {
        storage.execute(params![host, t, s.name, n(s.used), n(s.total)])?;
    }
    let mut guest = tx.prepare_cached("INSERT INTO stage_guest VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?;
    for (kind, list) in [("vm", &m.vms), ("ct", &m.cts)] {
        for g in list.iter().flatten() {
            guest.execute(params![host, t, g.vmid, kind, g.status.as_str(), g.cpu, n(g.mem), n(g.maxmem)])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
