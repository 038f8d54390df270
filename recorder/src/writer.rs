//! The one thread that writes SQLite. Fed by a bounded channel: when the disk is slow,
//! the channel fills and the subscription stops acking, so memory stays bounded.
//! Batches form by themselves: everything queued while the last commit ran goes into the
//! next transaction.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, Transaction};
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};
use wire::{Medium, Payload};

use crate::fleet::Fleet;
use crate::ingest::{Item, Reject};
use crate::partitions::{self, hour_of, Series, HOUR_MS};
use crate::view::{self, Card, HostState};
use crate::{db, now_ms, Stats};

/// Most items in one transaction.
const MAX_BATCH: usize = 5000;
/// How long a batch may gather after its first item.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Events deleted per retention statement: there are few (changes, not samples).
const EVENT_PRUNE_CHUNK: i64 = 1000;
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often the writer settles: moves fast samples from `fast_recent` into their hour table
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
    /// The same, as of the last settle, for readers.
    fleet: Fleet,
    live: broadcast::Sender<Card>,
    stats: Arc<Stats>,
    retention_ms: i64,
    /// What the next settle writes, and when the last one ran.
    pending: Pending,
    last_settle: Instant,
    /// The hours whose tables exist and are attached (see partitions.rs); mirrors
    /// `sample_hours`.
    hours: BTreeSet<i64>,
}

impl Writer {
    pub fn new(
        conn: Connection,
        live: broadcast::Sender<Card>,
        stats: Arc<Stats>,
        retention: Duration,
    ) -> rusqlite::Result<Writer> {
        let fleet = Fleet::default();
        let states = load_states(&conn, &fleet)?;
        let hours = partitions::hours(&conn)?;
        // Each series has its statements per hour: keep two hours' worth and the rest.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Writer {
            conn,
            states,
            fleet,
            live,
            stats,
            retention_ms: retention.as_millis() as i64,
            pending: Pending::default(),
            last_settle: Instant::now(),
            hours,
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
                pruning = Some(self.start_prune());
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            // While retention runs, each chunk alternates with whatever ingest is queued,
            // without waiting for a batch window.
            let window = if let Some(prune) = &mut pruning {
                if self.prune_step(prune) {
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
        // Online/offline flips reach the fleet at their commit, not at the next settle:
        // a page must never show a host online that the registry already calls offline.
        let mut flipped = Vec::new();
        let kept_from = self.first_kept_hour(now) * HOUR_MS;
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            for item in batch.iter() {
                if item.ts_ms().is_some_and(|ts| ts < kept_from) {
                    self.stats.reject(Reject::Stale, item.topic().as_bytes());
                    continue;
                }
                let mut store = Store { tx: &tx, hours: &mut self.hours, pending: &mut self.pending };
                if apply(&mut store, &mut self.states, item, now, &self.stats)? {
                    touched.push(item.host().to_owned());
                    match item {
                        Item::Status { .. } => flipped.push(item.host()),
                        _ => self.pending.changed(item.host()),
                    }
                }
            }
            if settle {
                self.pending.flush(&tx)?;
                move_recent(&tx, &self.hours)?;
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                if settle {
                    let settled = std::mem::take(&mut self.pending);
                    self.fleet.update(settled.changed.iter().filter_map(|h| self.states.get(h)));
                    self.last_settle = Instant::now();
                    if self.stats.wal_pages.load(Ordering::Relaxed) > db::WRITER_CHECKPOINT_PAGES {
                        self.stats.wal_pages.store(0, Ordering::Relaxed);
                        if let Err(e) = db::checkpoint_now(&self.conn) {
                            warn!(error = %e, "WAL checkpoint failed");
                        }
                    }
                }
                self.fleet.update(flipped.iter().filter_map(|h| self.states.get(*h)));
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
                if let Ok(states) = load_states(&self.conn, &self.fleet) {
                    self.states = states;
                }
                if let Ok(hours) = partitions::hours(&self.conn) {
                    self.hours = hours;
                }
                touched.clear();
            }
        }
        batch.clear();
        touched.sort();
        touched.dedup();
        for state in touched.iter().filter_map(|h| self.states.get(h)) {
            // No browser listening is fine.
            let _ = self.live.send(state.card(now));
        }
    }

    /// Every host's state as of the last settle, for readers on other threads.
    pub fn fleet(&self) -> Fleet {
        self.fleet.clone()
    }

    /// Runs a whole retention pass at once (tests and benchmarks).
    pub fn prune_now(&mut self) {
        let mut prune = self.start_prune();
        while !self.prune_step(&mut prune) {}
        prune.report(&self.stats);
    }

    /// The oldest hour kept: the hour that the start of the retention window falls in.
    /// Retention drops whole hours, so it keeps between RETENTION_HOURS and one hour more.
    fn first_kept_hour(&self, now: i64) -> i64 {
        hour_of(now - self.retention_ms)
    }

    /// Starts a retention pass (see [`Prune`]).
    fn start_prune(&self) -> Prune {
        let first_kept = self.first_kept_hour(now_ms());
        let prefetch = self.conn.path().and_then(|path| prefetch(path.into(), first_kept));
        Prune {
            first_kept,
            stage: Stage::Prefetch(prefetch),
            pruned: 0,
            started: Instant::now(),
            longest: Duration::ZERO,
        }
    }

    /// Runs one step of a retention pass; returns true when it is done.
    fn prune_step(&mut self, prune: &mut Prune) -> bool {
        if let Stage::Prefetch(Some(reading)) = &prune.stage {
            if !reading.is_finished() {
                // Ingest goes on meanwhile; this only keeps the loop from spinning.
                std::thread::sleep(Duration::from_millis(5));
                return false;
            }
        }
        let started = Instant::now();
        prune.stage = match std::mem::replace(&mut prune.stage, Stage::Done) {
            Stage::Prefetch(_) => match self.detach(prune.first_kept) {
                Ok((rows, tables)) => {
                    prune.pruned = rows;
                    Stage::Drop(tables)
                }
                Err(e) => {
                    warn!(error = %e, "retention failed to detach stale hours; trying again in an hour");
                    Stage::Events
                }
            },
            Stage::Drop(mut tables) => match tables.pop() {
                Some(table) => {
                    if let Err(e) = self.conn.execute_batch(&format!("DROP TABLE IF EXISTS {table}")) {
                        warn!(error = %e, table, "retention failed to drop a stale table; trying again in an hour");
                    }
                    Stage::Drop(tables)
                }
                None => Stage::Events,
            },
            Stage::Events => {
                let cutoff = now_ms() - EVENT_RETENTION_MS;
                match self
                    .conn
                    .prepare_cached("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts_ms < ?1 LIMIT ?2)")
                    .and_then(|mut s| s.execute(params![cutoff, EVENT_PRUNE_CHUNK]))
                {
                    Ok(n) if n as i64 == EVENT_PRUNE_CHUNK => Stage::Events,
                    Ok(_) => Stage::Done,
                    Err(e) => {
                        warn!(error = %e, "retention failed on events; trying again in an hour");
                        Stage::Done
                    }
                }
            }
            Stage::Done => Stage::Done,
        };
        prune.longest = prune.longest.max(started.elapsed());
        matches!(prune.stage, Stage::Done)
    }

    /// Detaches the hours before `first_kept` from the views (a short transaction);
    /// returns the sample rows they held and the tables to drop.
    fn detach(&mut self, first_kept: i64) -> rusqlite::Result<(i64, Vec<String>)> {
        let tx = self.conn.transaction()?;
        let rows = partitions::detach_before(&tx, first_kept)?;
        tx.commit()?;
        self.hours.retain(|h| *h >= first_kept);
        // Cached statements of the tables about to go would never run again.
        self.conn.flush_prepared_statement_cache();
        Ok((rows, partitions::stale_tables(&self.conn, first_kept)?))
    }
}

/// One retention pass in progress. Stale hours are dropped whole: dropping a table frees
/// its pages without visiting its rows (an hour of 1,000 hosts takes milliseconds). Each
/// stage runs between ingest batches, one step at a time.
struct Prune {
    first_kept: i64,
    stage: Stage,
    /// Sample rows in the detached hours.
    pruned: i64,
    started: Instant,
    longest: Duration,
}

enum Stage {
    /// Waiting for [`prefetch`]; then detach the stale hours.
    Prefetch(Option<std::thread::JoinHandle<()>>),
    /// Drop these tables, one per step.
    Drop(Vec<String>),
    /// Delete events older than 30 days, a chunk per step.
    Events,
    Done,
}

impl Prune {
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

/// Reads, on another thread, every page that retention is about to touch: the schema and
/// the catalog, which it rewrites, and the stale tables with their indexes, which it
/// drops (dropping reads each page). Hours written two days ago may have left the OS page
/// cache, and reading them from disk on the writer's thread paused ingest for 80-370 ms
/// per statement (bench_writer, the database file dropped from the page cache). A
/// failure here only costs that time.
fn prefetch(path: std::path::PathBuf, first_kept: i64) -> Option<std::thread::JoinHandle<()>> {
    let reading = std::thread::Builder::new().name("recorder-prefetch".into()).spawn(move || {
        let Ok(conn) = db::open_read(&path) else { return };
        let tables = partitions::stale_tables(&conn, first_kept).unwrap_or_default();
        // Each b-tree by name (a table and its indexes): dbstat then reads only that one.
        let btrees_of = |table: &str| -> Vec<String> {
            conn.prepare("SELECT name FROM sqlite_schema WHERE tbl_name = ?1")
                .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
                .unwrap_or_default()
        };
        let mut btrees = vec!["sqlite_schema".to_owned(), "sample_hours".to_owned()];
        for table in tables {
            btrees.extend(btrees_of(&table));
        }
        for btree in btrees {
            let _ = conn.query_row("SELECT count(*) FROM dbstat WHERE name = ?1", [&btree], |_| Ok(()));
        }
    });
    reading.ok()
}

/// Every host's state parsed from the database, also installed in `fleet`: the writer's
/// start, and after a failed write.
fn load_states(conn: &Connection, fleet: &Fleet) -> rusqlite::Result<HashMap<String, HostState>> {
    let states: HashMap<String, HostState> =
        view::parse_states(conn)?.into_iter().map(|s| (s.host_id.clone(), s)).collect();
    fleet.reset(states.values());
    Ok(states)
}

/// What `apply` writes through: the batch's transaction, the attached hours (an hour's
/// tables are created when its first sample arrives), and what the next settle writes.
struct Store<'a, 't> {
    tx: &'a Transaction<'t>,
    hours: &'a mut BTreeSet<i64>,
    pending: &'a mut Pending,
}

impl Store<'_, '_> {
    /// The table of `series` for the hour of `ts_ms`, created if it is the hour's first.
    fn table(&mut self, series: Series, ts_ms: i64) -> rusqlite::Result<String> {
        let hour = hour_of(ts_ms);
        if self.hours.insert(hour) {
            partitions::create(self.tx, hour)?;
        }
        Ok(series.table(hour))
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
    /// hour → sample rows stored in it since the last settle.
    rows: HashMap<i64, i64>,
    /// Hosts whose state changed: the fleet gets their new states at the settle, not at
    /// every commit (a copy per host per commit cost ~5 % of a core at 20,000 samples/s).
    changed: HashSet<String>,
}

impl Pending {
    fn note<T>(&mut self, p: &Payload<T>, tier: &'static str, raw: &str, newer: bool, now: i64) {
        if newer {
            self.latest.insert((p.host_id.clone(), tier), (p.ts_ms, now, raw.to_owned()));
        }
        self.seen.insert(p.host_id.clone(), (now, p.agent_version.clone()));
    }

    fn count_rows(&mut self, ts_ms: i64, n: usize) {
        *self.rows.entry(hour_of(ts_ms)).or_default() += n as i64;
    }

    fn changed(&mut self, host: &str) {
        if !self.changed.contains(host) {
            self.changed.insert(host.to_owned());
        }
    }

    fn is_empty(&self) -> bool {
        self.latest.is_empty() && self.seen.is_empty() && self.rows.is_empty() && self.changed.is_empty()
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
        for (hour, n) in &self.rows {
            partitions::add_rows(tx, *hour, *n)?;
        }
        Ok(())
    }
}

/// Applies one item; returns whether the host's card may have changed. The writer's
/// state cache mirrors the `latest` table, so "newer" is decided in memory.
fn apply(
    store: &mut Store,
    states: &mut HashMap<String, HostState>,
    item: &Item,
    now: i64,
    stats: &Stats,
) -> rusqlite::Result<bool> {
    let tx = store.tx;
    let Some(state) = states.get_mut(item.host()) else {
        // A removed host's last messages, or a race with `host add`: look once more.
        if tx.query_row("SELECT 1 FROM hosts WHERE host_id = ?1", [item.host()], |_| Ok(())).is_ok() {
            states
                .insert(item.host().to_owned(), HostState { host_id: item.host().to_owned(), ..HostState::default() });
            return apply(store, states, item, now, stats);
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
            // The key (host, ts_ms, seq) of `fast_recent` and of the hour table makes a
            // replay a no-op: fast samples need no row in `ingested`. Looking in the hour
            // table only reads.
            let history = store.table(Series::Fast, p.ts_ms)?;
            let moved = tx
                .prepare_cached(&format!("SELECT 1 FROM {history} WHERE host_id = ?1 AND ts_ms = ?2 AND seq = ?3"))?
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
            store.pending.count_rows(p.ts_ms, 1);
            store.pending.note(p, "fast", raw, newer, now);
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
            if !first_time(store, p, "medium")? {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            let rows = medium_series(store, p)?;
            store.pending.count_rows(p.ts_ms, rows);
            let newer = state.medium.as_ref().is_none_or(|old| p.ts_ms >= old.ts_ms);
            store.pending.note(p, "medium", raw, newer, now);
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
            if !first_time(store, p, "slow")? {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            let newer = state.slow.as_ref().is_none_or(|old| p.ts_ms >= old.ts_ms);
            store.pending.note(p, "slow", raw, newer, now);
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

/// Moves every fast sample from `fast_recent` into its hour table, sorted by host so that
/// each host's page is written once. No sample is in both (`apply` looks in the hour
/// table first); OR IGNORE only keeps a broken invariant from losing the batch. Samples of
/// an hour that retention detached since they arrived are stale: they go.
fn move_recent(tx: &Transaction, hours: &BTreeSet<i64>) -> rusqlite::Result<()> {
    let columns = Series::Fast.columns();
    let recent: Vec<i64> = tx
        .prepare_cached("SELECT DISTINCT ts_ms / ?1 FROM fast_recent")?
        .query_map([HOUR_MS], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for hour in recent.into_iter().filter(|h| hours.contains(h)) {
        exec(
            tx,
            &format!(
                "INSERT OR IGNORE INTO {} ({columns}) SELECT {columns} FROM fast_recent
                 WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY host_id, ts_ms, seq",
                Series::Fast.table(hour)
            ),
            [hour * HOUR_MS, (hour + 1) * HOUR_MS],
        )?;
    }
    exec(tx, "DELETE FROM fast_recent", [])?;
    Ok(())
}

/// One row per pool, storage and guest, for the charts; returns how many.
fn medium_series(store: &mut Store, p: &wire::MediumPayload) -> rusqlite::Result<usize> {
    let as_i64 = |v: Option<u64>| v.map(|v| v as i64);
    let mut rows = 0;
    // OR IGNORE: a payload naming the same pool, storage or guest twice keeps the first.
    let pools = store.table(Series::Pool, p.ts_ms)?;
    let mut pool = store.tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {pools} (host_id, ts_ms, pool, state, cap_pct, frag_pct, alloc, size,
             read_errors, write_errors, checksum_errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?;
    for pl in p.data.pools.iter().flatten() {
        let sum = |f: fn(&wire::Vdev) -> u64| pl.vdevs.iter().map(f).sum::<u64>() as i64;
        rows += pool.execute(params![
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
    let storages = store.table(Series::Storage, p.ts_ms)?;
    let mut storage = store.tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {storages} (host_id, ts_ms, storage, used, total) VALUES (?1, ?2, ?3, ?4, ?5)"
    ))?;
    for st in p.data.storages.iter().flatten() {
        rows += storage.execute(params![p.host_id, p.ts_ms, st.name, as_i64(st.used), as_i64(st.total)])?;
    }
    let guests = store.table(Series::Guest, p.ts_ms)?;
    let mut guest = store.tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {guests} (host_id, ts_ms, vmid, kind, status, cpu, mem, maxmem)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?;
    for (kind, list) in [("vm", &p.data.vms), ("ct", &p.data.cts)] {
        for g in list.iter().flatten() {
            rows += guest.execute(params![
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
    Ok(rows)
}

/// Records (host, tier, boot, seq); false if it was stored before (a replay).
fn first_time<T>(store: &mut Store, p: &Payload<T>, tier: &str) -> rusqlite::Result<bool> {
    let ingested = store.table(Series::Ingested, p.ts_ms)?;
    let n = exec(
        store.tx,
        &format!("INSERT OR IGNORE INTO {ingested} (host_id, tier, boot_id, seq) VALUES (?1, ?2, ?3, ?4)"),
        params![p.host_id, tier, p.boot_id, p.seq as i64],
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
    fn readers_get_the_writers_states_and_the_registry_from_the_database() {
        let (dir, mut w, _live) = setup();
        let fleet = w.fleet();
        let reader = crate::db::open_read(&dir.path().join("w.db")).unwrap();
        w.write_and_settle(&mut vec![fast("pve1", 1, now_ms(), 1.5)]);
        // From the writer's copy, not parsed from `latest`: a spoilt row changes nothing.
        w.conn.execute("UPDATE latest SET payload = '{}'", []).unwrap();
        let states = view::load_states(&reader, &fleet).unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].fast.as_ref().and_then(|p| p.data.load1), Some(1.5));
        // Presence reaches readers at its commit, with the registry, not at the settle.
        assert!(!states[0].online);
        w.write(&mut vec![parse(b"pmon/v1/pve1/status", b"online", now_ms()).unwrap()]);
        assert!(view::load_states(&reader, &fleet).unwrap()[0].online);

        // A host registered by another process since the writer started is listed (parsed
        // from the database); a removed one is gone at once.
        let mut other = crate::db::open_and_migrate(&dir.path().join("w.db")).unwrap();
        crate::hosts::add_host(&mut other, "pve2").unwrap();
        let ids = |states: Vec<Arc<HostState>>| states.iter().map(|s| s.host_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(view::load_states(&reader, &fleet).unwrap()), ["pve1", "pve2"]);
        crate::hosts::remove_host(&mut other, "pve1").unwrap();
        assert_eq!(ids(view::load_states(&reader, &fleet).unwrap()), ["pve2"]);
        assert!(view::load_state(&reader, &fleet, "pve1").unwrap().is_none());
        assert_eq!(
            view::load_state(&reader, &fleet, "pve2").unwrap().map(|s| s.host_id.clone()).as_deref(),
            Some("pve2")
        );
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
        assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 3);
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
    fn retention_drops_stale_hours_and_refuses_stale_samples() {
        let (_dir, mut w, _live) = setup();
        let now = now_ms();
        let old = now - 3 * HOUR_MS;
        w.retention_ms = 4 * HOUR_MS;
        w.write_and_settle(&mut vec![fast("pve1", 1, old, 1.0), fast("pve1", 2, now, 2.0)]);
        // A sample of the stale hour still in fast_recent (the writer has not settled since).
        w.write(&mut vec![fast("pve1", 3, old + 1, 1.0)]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_recent"), 1);
        let stale_table = Series::Fast.table(hour_of(old));
        assert_eq!(count(&w, &format!("SELECT count(*) FROM {stale_table}")), 1);

        w.retention_ms = HOUR_MS;
        w.prune_now();
        w.write_and_settle(&mut vec![]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 1);
        assert_eq!(count(&w, "SELECT count(*) FROM latest"), 1, "latest is never pruned");
        let exists = format!("SELECT count(*) FROM sqlite_schema WHERE name = '{stale_table}'");
        assert_eq!(count(&w, &exists), 0, "the stale hour's tables are dropped");
        assert_eq!(count(&w, "SELECT count(*) FROM sample_hours"), 1);

        // A replay from before the window is refused, not stored in a new stale hour.
        w.write_and_settle(&mut vec![fast("pve1", 4, old + 2, 1.0)]);
        assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 1);
        assert_eq!(count(&w, &exists), 0);
        let stale = w.stats.rejected().into_iter().find(|(r, _)| *r == Reject::Stale).unwrap().1;
        assert_eq!(stale, 1);
    }

    #[test]
    fn samples_go_into_the_table_of_their_hour() {
        let (_dir, mut w, _live) = setup();
        let hour = hour_of(now_ms());
        let (a, b) = ((hour - 1) * HOUR_MS + 5, hour * HOUR_MS + 5);
        w.write_and_settle(&mut vec![fast("pve1", 1, a, 1.0), fast("pve1", 2, b, 2.0), fast("pve1", 3, b + 1, 3.0)]);
        assert_eq!(count(&w, &format!("SELECT count(*) FROM {}", Series::Fast.table(hour - 1))), 1);
        assert_eq!(count(&w, &format!("SELECT count(*) FROM {}", Series::Fast.table(hour))), 2);
        assert_eq!(count(&w, &format!("SELECT rows FROM sample_hours WHERE hour = {hour}")), 2);
        // The hour's tables are created once: a restart finds them.
        let stats = Arc::new(Stats::default());
        let conn = crate::db::open(&_dir.path().join("w.db")).unwrap();
        let mut again = Writer::new(conn, w.live.clone(), stats, Duration::from_secs(3600)).unwrap();
        again.write_and_settle(&mut vec![fast("pve1", 4, b + 2, 4.0), fast("pve1", 2, b, 2.0)]);
        assert_eq!(count(&again, "SELECT count(*) FROM fast_samples"), 4);
        assert_eq!(again.stats.duplicates.load(Ordering::Relaxed), 1);
    }
}
