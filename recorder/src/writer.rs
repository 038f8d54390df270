//! The one thread that writes SQLite. Fed by a bounded channel: when the disk is slow,
//! the channel fills and the subscription stops acking, so memory stays bounded.
//! Batches form by themselves: everything queued while the last commit ran goes into the
//! next transaction.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, Transaction};
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};
use wire::{Medium, Payload};

use crate::ingest::Item;
use crate::view::{self, Card, HostState};
use crate::{db, now_ms, Stats};

/// Most items in one transaction.
const MAX_BATCH: usize = 5000;
/// How long a batch may gather after its first item.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Rows deleted per retention statement: adapted so that each statement takes about
/// PRUNE_PAUSE, which bounds the ingest pause whether the pages are cached or not.
const PRUNE_CHUNK: (usize, usize, usize) = (50, 500, 10_000);
const PRUNE_PAUSE: Duration = Duration::from_millis(40);
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often the writer settles: moves fast samples from `fast_recent` into `fast_history`
/// (see migration 003) and writes each host's latest payloads and last-seen time. These
/// touch a page or more per host, so doing them at most four times a second rather than in
/// every batch keeps commits small when hundreds of hosts send at once; and a settle moves
/// at most a quarter second of samples, which bounds its pause (about 50 ms at 20,000
/// samples/s, where a settle every second paused ingest for 150-250 ms).
const SETTLE_EVERY: Duration = Duration::from_millis(250);
/// Events are kept longer than samples: they are the host's timeline.
const EVENT_RETENTION_MS: i64 = 30 * 86_400_000;

pub struct Writer {
    conn: Connection,
    /// The latest state of every host, for live cards and change events.
    states: HashMap<String, HostState>,
    live: broadcast::Sender<Card>,
    stats: Arc<Stats>,
    retention_ms: i64,
    /// What the next settle writes, and when the last one ran.
    pending: Pending,
    last_settle: Instant,
}

impl Writer {
    pub fn new(
        conn: Connection,
        live: broadcast::Sender<Card>,
        stats: Arc<Stats>,
        retention: Duration,
    ) -> rusqlite::Result<Writer> {
        let states = view::load_states(&conn)?.into_iter().map(|s| (s.host_id.clone(), s)).collect();
        Ok(Writer {
            conn,
            states,
            live,
            stats,
            retention_ms: retention.as_millis() as i64,
            pending: Pending::default(),
            last_settle: Instant::now(),
        })
    }

    /// Runs until every sender of `rx` is dropped, then commits and settles what is left.
    /// Retention runs one chunk at a time between ingest batches, so it never stalls
    /// ingest for longer than one chunk.
    pub fn run(mut self, mut rx: mpsc::Receiver<Item>, runtime: tokio::runtime::Handle) {
        let mut next_prune = Instant::now();
        let mut pruning: Option<Prune> = None;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        // How long the last write took: items queued meanwhile have waited that long.
        let mut last_write = Duration::ZERO;
        'ingest: loop {
            if pruning.is_none() && Instant::now() >= next_prune {
                pruning = Some(Prune::new(now_ms() - self.retention_ms));
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            // While retention runs, each chunk alternates with whatever ingest is queued,
            // without waiting for a batch window.
            let window = if let Some(prune) = &mut pruning {
                if prune.step(&self.conn) {
                    prune.report(&self.stats);
                    pruning = None;
                }
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(mpsc::error::TryRecvError::Empty) => {}
                    Err(mpsc::error::TryRecvError::Disconnected) => break 'ingest,
                }
                Duration::ZERO
            } else {
                match rx.try_recv() {
                    // Items queued while the last write ran: their window began then.
                    Ok(item) => {
                        batch.push(item);
                        BATCH_WINDOW.saturating_sub(last_write)
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break 'ingest,
                    // Idle: wait for an item, waking to settle what is pending and each
                    // second to see whether retention is due; then let the batch gather
                    // for BATCH_WINDOW.
                    Err(mpsc::error::TryRecvError::Empty) => {
                        let wait = if self.pending.is_empty() { Duration::from_secs(1) } else { SETTLE_EVERY };
                        match runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                            Ok(Some(item)) => batch.push(item),
                            Ok(None) => break 'ingest,
                            Err(_) => {
                                if !self.pending.is_empty() {
                                    self.write_and_settle(&mut batch);
                                }
                                continue;
                            }
                        }
                        BATCH_WINDOW
                    }
                }
            };
            // One commit then covers many samples of the same hosts and touches each page
            // once, not once per sample. Sleeping through the window, rather than waking
            // for every item, keeps the hand-off cheap.
            if !window.is_zero() {
                std::thread::sleep(window);
            }
            while !batch.is_empty() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => break 'ingest,
                }
            }
            if !batch.is_empty() {
                let started = Instant::now();
                self.write(&mut batch);
                last_write = started.elapsed();
            }
        }
        self.write_and_settle(&mut batch);
    }

    /// Commits a batch, settling too if a settle is due.
    pub fn write(&mut self, batch: &mut Vec<Item>) {
        let settle = self.last_settle.elapsed() >= SETTLE_EVERY;
        self.commit(batch, settle);
    }

    /// Commits a batch and settles: at shutdown, and in tests that read `latest`.
    pub fn write_and_settle(&mut self, batch: &mut Vec<Item>) {
        self.commit(batch, true);
    }

    fn commit(&mut self, batch: &mut Vec<Item>, settle: bool) {
        let started = Instant::now();
        let now = now_ms();
        let mut touched = Vec::new();
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            for item in batch.iter() {
                if apply(&tx, &mut self.states, &mut self.pending, item, now, &self.stats)? {
                    touched.push(item.host().to_owned());
                }
            }
            if settle {
                self.pending.flush(&tx)?;
                move_recent(&tx)?;
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                if settle {
                    self.pending = Pending::default();
                    self.last_settle = Instant::now();
                    if self.stats.wal_pages.load(Ordering::Relaxed) > db::WRITER_CHECKPOINT_PAGES {
                        self.stats.wal_pages.store(0, Ordering::Relaxed);
                        if let Err(e) = db::checkpoint_now(&self.conn) {
                            warn!(error = %e, "WAL checkpoint failed");
                        }
                    }
                }
                self.stats.stored.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.last_batch_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                let committed = now_ms();
                for ts in batch.iter().filter_map(Item::ts_ms) {
                    self.stats.record_lag(committed - ts);
                }
            }
            Err(e) => {
                // The states cache and the pending rows may now be ahead of the database;
                // start again from what it holds.
                warn!(error = %e, items = batch.len(), "write failed; batch lost");
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                self.pending = Pending::default();
                if let Ok(states) = view::load_states(&self.conn) {
                    self.states = states.into_iter().map(|s| (s.host_id.clone(), s)).collect();
                }
                touched.clear();
            }
        }
        batch.clear();
        touched.sort();
        touched.dedup();
        for host in touched {
            if let Some(state) = self.states.get(&host) {
                // No browser listening is fine.
                let _ = self.live.send(state.card(now));
            }
        }
    }

    /// Runs a whole retention pass at once (tests and benchmarks).
    pub fn prune_now(&mut self) {
        let mut prune = Prune::new(now_ms() - self.retention_ms);
        while !prune.step(&self.conn) {}
        prune.report(&self.stats);
    }
}

/// Tables pruned by retention: (table, key columns, whether it is a sample table).
/// `ingested` has no rowid: it is keyed by its primary key. Events keep 30 days.
const PRUNED: [(&str, &str, bool); 7] = [
    ("fast_history", "rowid", true),
    ("fast_recent", "rowid", true),
    ("pool_samples", "rowid", true),
    ("storage_samples", "rowid", true),
    ("guest_samples", "rowid", true),
    ("ingested", "host_id, tier, boot_id, seq", false),
    ("events", "rowid", false),
];

/// One retention pass in progress.
struct Prune {
    cutoff_ms: i64,
    table: usize,
    /// Rows per statement, adapted to the observed time per statement.
    chunk: usize,
    pruned: usize,
    started: Instant,
    longest: Duration,
}

impl Prune {
    fn new(cutoff_ms: i64) -> Prune {
        Prune { cutoff_ms, table: 0, chunk: PRUNE_CHUNK.1, pruned: 0, started: Instant::now(), longest: Duration::ZERO }
    }

    /// Deletes one chunk; returns true when the pass is done.
    fn step(&mut self, conn: &Connection) -> bool {
        let Some((table, key, is_sample)) = PRUNED.get(self.table) else { return true };
        let cutoff = if *table == "events" { now_ms() - EVENT_RETENTION_MS } else { self.cutoff_ms };
        let sql = format!("DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE ts_ms < ?1 LIMIT ?2)");
        let started = Instant::now();
        let result = conn.prepare_cached(&sql).and_then(|mut s| s.execute(params![cutoff, self.chunk as i64]));
        let took = started.elapsed();
        self.longest = self.longest.max(took);
        let (min, _, max) = PRUNE_CHUNK;
        if took > PRUNE_PAUSE {
            self.chunk = (self.chunk / 2).max(min);
        } else if took < PRUNE_PAUSE / 3 {
            self.chunk = (self.chunk * 2).min(max);
        }
        match result {
            Ok(n) if n > 0 => {
                if *is_sample {
                    self.pruned += n;
                }
            }
            Ok(_) => self.table += 1,
            Err(e) => {
                warn!(error = %e, table, "retention failed on this table; trying the next");
                self.table += 1;
            }
        }
        self.table >= PRUNED.len()
    }

    fn report(&self, stats: &Stats) {
        let ms = self.started.elapsed().as_millis() as u64;
        stats.last_prune_ms.store(ms, Ordering::Relaxed);
        stats.last_prune_longest_chunk_us.store(self.longest.as_micros() as u64, Ordering::Relaxed);
        info!(
            "retention: pruned {} stale samples in {ms} ms (longest pause {} ms)",
            self.pruned,
            self.longest.as_millis()
        );
    }
}

/// What the writer records once per host at each settle rather than per sample: the
/// `latest` row of each tier and the host's last-seen time. Under load every batch holds
/// samples of hundreds of hosts, and each of these rows would otherwise be rewritten in
/// every commit. Until the settle, the writer's state cache is ahead of these rows (by at
/// most SETTLE_EVERY); the samples themselves are committed with their batch.
#[derive(Default)]
struct Pending {
    /// (host, tier) → (ts_ms, received, raw payload) of the newest payload.
    latest: HashMap<(String, &'static str), (i64, i64, String)>,
    /// host → (when seen, agent version of its newest payload).
    seen: HashMap<String, (i64, String)>,
}

impl Pending {
    fn note<T>(&mut self, p: &Payload<T>, tier: &'static str, raw: &str, newer: bool, now: i64) {
        if newer {
            self.latest.insert((p.host_id.clone(), tier), (p.ts_ms, now, raw.to_owned()));
        }
        self.seen.insert(p.host_id.clone(), (now, p.agent_version.clone()));
    }

    fn is_empty(&self) -> bool {
        self.latest.is_empty() && self.seen.is_empty()
    }

    fn flush(&self, tx: &Transaction) -> rusqlite::Result<()> {
        for ((host, tier), (ts_ms, received_ms, raw)) in &self.latest {
            exec(
                tx,
                "INSERT INTO latest (host_id, tier, ts_ms, received_ms, payload) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (host_id, tier) DO UPDATE SET ts_ms = excluded.ts_ms,
                     received_ms = excluded.received_ms, payload = excluded.payload
                 WHERE excluded.ts_ms >= latest.ts_ms",
                params![host, tier, ts_ms, received_ms, raw],
            )?;
        }
        for (host, (seen_ms, version)) in &self.seen {
            exec(
                tx,
                "UPDATE hosts SET last_seen_ms = ?2, agent_version = ?3 WHERE host_id = ?1",
                params![host, seen_ms, version],
            )?;
        }
        Ok(())
    }
}

/// Applies one item; returns whether the host's card may have changed. The writer's
/// state cache mirrors the `latest` table, so "newer" is decided in memory.
fn apply(
    tx: &Transaction,
    states: &mut HashMap<String, HostState>,
    pending: &mut Pending,
    item: &Item,
    now: i64,
    stats: &Stats,
) -> rusqlite::Result<bool> {
    let Some(state) = states.get_mut(item.host()) else {
        // A removed host's last messages, or a race with `host add`: look once more.
        if tx.query_row("SELECT 1 FROM hosts WHERE host_id = ?1", [item.host()], |_| Ok(())).is_ok() {
            states
                .insert(item.host().to_owned(), HostState { host_id: item.host().to_owned(), ..HostState::default() });
            return apply(tx, states, pending, item, now, stats);
        }
        stats.unknown_host.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    };
    let host = state.host_id.clone();
    match item {
        Item::Status { online, .. } => {
            if state.online != *online {
                state.online = *online;
                state.online_changed_ms = Some(now);
                exec(
                    tx,
                    "UPDATE hosts SET online = ?2, online_changed_ms = ?3 WHERE host_id = ?1",
                    params![host, online, now],
                )?;
                let (kind, message) = if *online { ("online", "came online") } else { ("offline", "went offline") };
                event(tx, &host, now, kind, message)?;
            }
            Ok(true)
        }
        Item::Fast(p, raw) => {
            let f = &p.data;
            // The unique key (host, ts_ms, seq) of both tables makes a replay a no-op: fast
            // samples need no row in `ingested`. Looking in `fast_history` only reads.
            let moved = tx
                .prepare_cached("SELECT 1 FROM fast_history WHERE host_id = ?1 AND ts_ms = ?2 AND seq = ?3")?
                .exists(params![host, p.ts_ms, p.seq as i64])?;
            let stored = !moved
                && exec(
                    tx,
                    "INSERT OR IGNORE INTO fast_recent (host_id, ts_ms, seq, load1, load5, load15, cpu_pct,
                     iowait_pct, mem_total, mem_used, arc_bytes, swap_total, swap_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    params![
                        host,
                        p.ts_ms,
                        p.seq as i64,
                        f.load1,
                        f.load5,
                        f.load15,
                        f.cpu_pct,
                        f.iowait_pct,
                        f.mem_total.map(|v| v as i64),
                        f.mem_used.map(|v| v as i64),
                        f.arc_bytes.map(|v| v as i64),
                        f.swap_total.map(|v| v as i64),
                        f.swap_used.map(|v| v as i64)
                    ],
                )? == 1;
            if !stored {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            let newer = state.fast.as_ref().is_none_or(|old| p.ts_ms >= old.ts_ms);
            pending.note(p, "fast", raw, newer, now);
            seen(state, p, now);
            if newer {
                if let Some(prev) = &state.fast {
                    if prev.boot_id == p.boot_id && p.ts_ms > prev.ts_ms {
                        state.fast_interval_ms = Some(p.ts_ms - prev.ts_ms);
                    }
                }
                state.fast = Some(p.clone());
                state.fast_received_ms = Some(now);
            }
            Ok(newer)
        }
        Item::Medium(p, raw) => {
            if !first_time(tx, p, "medium")? {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            medium_series(tx, p)?;
            let newer = state.medium.as_ref().is_none_or(|old| p.ts_ms >= old.ts_ms);
            pending.note(p, "medium", raw, newer, now);
            seen(state, p, now);
            if newer {
                let previous = state.medium.take().map(|m| m.data);
                medium_events(tx, &host, previous.as_ref(), &p.data, now)?;
                state.previous_medium = previous;
                state.medium = Some(p.clone());
            }
            Ok(newer)
        }
        Item::Slow(p, raw) => {
            if !first_time(tx, p, "slow")? {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            let newer = state.slow.as_ref().is_none_or(|old| p.ts_ms >= old.ts_ms);
            pending.note(p, "slow", raw, newer, now);
            seen(state, p, now);
            if newer {
                state.slow = Some(p.clone());
            }
            Ok(newer)
        }
    }
}

/// Executes through the statement cache: the same few statements run thousands of times
/// a second under load.
fn exec(tx: &Transaction, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

/// Moves every fast sample from `fast_recent` into `fast_history`, sorted by host so that
/// each host's index page is written once. No sample is in both (`apply` looks in
/// history first); OR IGNORE only keeps a broken invariant from losing the batch.
fn move_recent(tx: &Transaction) -> rusqlite::Result<()> {
    const COLUMNS: &str =
        "host_id, ts_ms, seq, load1, load5, load15, cpu_pct, iowait_pct, mem_total, mem_used, arc_bytes, swap_total, swap_used";
    exec(
        tx,
        &format!("INSERT OR IGNORE INTO fast_history ({COLUMNS}) SELECT {COLUMNS} FROM fast_recent ORDER BY host_id, ts_ms, seq"),
        [],
    )?;
    exec(tx, "DELETE FROM fast_recent", [])?;
    Ok(())
}

/// One row per pool, storage and guest, for the charts.
fn medium_series(tx: &Transaction, p: &wire::MediumPayload) -> rusqlite::Result<()> {
    let as_i64 = |v: Option<u64>| v.map(|v| v as i64);
    let mut pool = tx.prepare_cached(
        "INSERT INTO pool_samples (host_id, ts_ms, pool, state, cap_pct, frag_pct, alloc, size,
             read_errors, write_errors, checksum_errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for pl in p.data.pools.iter().flatten() {
        let sum = |f: fn(&wire::Vdev) -> u64| pl.vdevs.iter().map(f).sum::<u64>() as i64;
        pool.execute(params![
            p.host_id,
            p.ts_ms,
            pl.name,
            pl.state,
            pl.cap_pct,
            pl.frag_pct,
            as_i64(pl.alloc),
            as_i64(pl.size),
            sum(|v| v.read_errors),
            sum(|v| v.write_errors),
            sum(|v| v.checksum_errors)
        ])?;
    }
    let mut storage = tx.prepare_cached(
        "INSERT INTO storage_samples (host_id, ts_ms, storage, used, total) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for st in p.data.storages.iter().flatten() {
        storage.execute(params![p.host_id, p.ts_ms, st.name, as_i64(st.used), as_i64(st.total)])?;
    }
    let mut guest = tx.prepare_cached(
        "INSERT INTO guest_samples (host_id, ts_ms, vmid, kind, status, cpu, mem, maxmem)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (kind, guests) in [("vm", &p.data.vms), ("ct", &p.data.cts)] {
        for g in guests.iter().flatten() {
            guest.execute(params![
                p.host_id,
                p.ts_ms,
                g.vmid,
                kind,
                g.status,
                g.cpu,
                as_i64(g.mem),
                as_i64(g.maxmem)
            ])?;
        }
    }
    Ok(())
}

/// Records (host, tier, boot, seq); false if it was stored before (a replay).
fn first_time<T>(tx: &Transaction, p: &Payload<T>, tier: &str) -> rusqlite::Result<bool> {
    let n = exec(
        tx,
        "INSERT OR IGNORE INTO ingested (host_id, tier, boot_id, seq, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![p.host_id, tier, p.boot_id, p.seq as i64, p.ts_ms],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse;

    fn setup() -> (tempfile::TempDir, Writer, broadcast::Receiver<Card>) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open_and_migrate(&dir.path().join("w.db")).unwrap();
        crate::hosts::add_host(&mut conn, "pve1").unwrap();
        let (live, rx) = broadcast::channel(16);
        let writer = Writer::new(conn, live, Arc::new(Stats::default()), Duration::from_secs(3600)).unwrap();
        (dir, writer, rx)
    }

    fn fast(host: &str, seq: u64, ts_ms: i64, load1: f64) -> Item {
        let json = format!(
            r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts_ms},"boot_id":"b","seq":{seq},"agent_version":"t","data":{{"load1":{load1}}}}}"#
        );
        parse(format!("pmon/v1/{host}/fast").as_bytes(), json.as_bytes(), now_ms()).unwrap()
    }

    fn count(w: &Writer, sql: &str) -> i64 {
        w.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn replays_are_stored_once_and_late_ones_do_not_replace_latest() {
        let (_dir, mut w, mut live) = setup();
        let now = now_ms();
        w.write(&mut vec![fast("pve1", 1, now - 2000, 1.0), fast("pve1", 2, now - 1000, 2.0)]);
        w.write(&mut vec![fast("pve1", 1, now - 2000, 1.0), fast("pve1", 2, now - 1000, 2.0)]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 2);
        assert_eq!(w.stats.duplicates.load(Ordering::Relaxed), 2);
        // A replay from the outage buffer arrives after newer data: history, not "latest".
        w.write(&mut vec![fast("pve1", 3, now - 500, 3.0), fast("pve1", 4, now - 60_000, 9.0)]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 4);
        assert_eq!(count(&w, "SELECT count(*) FROM latest"), 0, "latest is written when the writer settles");
        w.write_and_settle(&mut vec![]);
        let latest: String = w.conn.query_row("SELECT payload FROM latest", [], |r| r.get(0)).unwrap();
        assert!(latest.contains("\"load1\":3"), "{latest}");
        assert_eq!(live.try_recv().unwrap().load1, Some(2.0));
    }

    #[test]
    fn samples_moved_into_history_are_still_known() {
        let (_dir, mut w, _live) = setup();
        let now = now_ms();
        w.write(&mut vec![fast("pve1", 1, now - 2000, 1.0), fast("pve1", 2, now - 1000, 2.0)]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_recent"), 2);
        w.write_and_settle(&mut vec![fast("pve1", 3, now, 3.0)]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_recent"), 0);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_history"), 3);
        // Replays of moved samples, and of one in each table, are stored once.
        w.write(&mut vec![fast("pve1", 1, now - 2000, 1.0), fast("pve1", 4, now + 1, 4.0)]);
        w.write(&mut vec![fast("pve1", 3, now, 3.0), fast("pve1", 4, now + 1, 4.0)]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 4);
        assert_eq!(count(&w, "SELECT count(DISTINCT seq) FROM fast_samples"), 4);
        assert_eq!(w.stats.duplicates.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn unknown_hosts_are_counted_not_stored() {
        let (_dir, mut w, _live) = setup();
        w.write(&mut vec![fast("ghost", 1, now_ms(), 1.0)]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 0);
        assert_eq!(w.stats.unknown_host.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn presence_changes_are_events() {
        let (_dir, mut w, _live) = setup();
        let status = |online| Item::Status { host: wire::HostId::parse("pve1").unwrap(), online };
        w.write(&mut vec![status(true), status(true), status(false)]);
        assert_eq!(count(&w, "SELECT count(*) FROM events WHERE kind = 'online'"), 1);
        assert_eq!(count(&w, "SELECT count(*) FROM events WHERE kind = 'offline'"), 1);
        assert_eq!(count(&w, "SELECT online FROM hosts"), 0);
    }

    #[test]
    fn a_host_that_just_reconnected_is_not_called_silent() {
        let (_dir, mut w, mut live) = setup();
        let long_ago = now_ms() - 600_000;
        w.write(&mut vec![fast("pve1", 1, long_ago - 1000, 1.0), fast("pve1", 2, long_ago, 1.0)]);
        let state = w.states.get_mut("pve1").unwrap();
        state.fast_received_ms = Some(long_ago);
        w.write(&mut vec![Item::Status { host: wire::HostId::parse("pve1").unwrap(), online: true }]);
        let card = std::iter::from_fn(|| live.try_recv().ok()).last().unwrap();
        assert_eq!(card.status, crate::status::Level::Online, "{:?}", card.reasons);
    }

    #[test]
    fn retention_prunes_only_stale_rows() {
        let (_dir, mut w, _live) = setup();
        let now = now_ms();
        let old = now - 2 * 3600 * 1000;
        w.write_and_settle(&mut vec![fast("pve1", 1, old, 1.0), fast("pve1", 2, now, 2.0)]);
        // A stale sample still in fast_recent (the writer has not settled since) goes too.
        w.write(&mut vec![fast("pve1", 3, old + 1, 1.0)]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_recent"), 1);
        w.prune_now();
        assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 1);
        assert_eq!(count(&w, "SELECT count(*) FROM latest"), 1, "latest is never pruned");
    }
}
