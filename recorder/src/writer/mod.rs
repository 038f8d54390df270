//! The one thread that writes SQLite. Fed by a bounded channel: when the disk is slow,
//! the channel fills and the gateway stops reading its publishers (or the subscription
//! stops acking), so memory stays bounded.
//! Batches form by themselves: everything queued while the last commit ran goes into the
//! next transaction.
//!
//! - `mod.rs`: the [`Writer`] and the commit of a batch.
//! - `batching.rs`: the loop: how queued items gather into batches, between the steps of
//!   retention and packing, and whose PUBACKs each commit releases.
//! - `apply.rs`: one item into the transaction, one function per tier.
//! - `settle.rs`: what is written once per settle rather than per sample.
//! - `skew.rs`: each sample's time corrected for its agent's clock, before it is stored.
//! - `retention.rs`: dropping stale hours and old events, a step at a time.
//! - `packing.rs`: packing the hour rollups of ended blocks, a step at a time.

mod apply;
mod batching;
mod packing;
mod retention;
mod settle;
mod skew;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction};
use tokio::sync::broadcast;
use tracing::{info, warn};

pub use self::batching::Queued;
use self::settle::Pending;
use self::skew::Stamp;
use crate::clock::Clock;
use crate::fleet::Fleet;
use crate::ingest::{Item, Reject};
use crate::partitions::{self, hour_of, Series, HOUR_MS};
use crate::read;
use crate::rollup::{self, Parts};
use crate::state::{Card, HostState};
use crate::{now_ms, Retention, Stats};

/// How often the writer settles: moves fast samples from `fast_recent` into their hour table
/// (see migration 003) and writes each host's latest payloads and last-seen time. These
/// touch a page or more per host, so doing them at most four times a second rather than in
/// every batch keeps commits small when hundreds of hosts send at once; and a settle moves
/// at most a quarter second of samples, which bounds its pause.
const SETTLE_EVERY: Duration = Duration::from_millis(250);
/// How often a batch is retried while the disk is full.
const DISK_FULL_RETRY: Duration = Duration::from_secs(1);

pub struct Writer {
    conn: Connection,
    /// The latest state of every host, for live cards and change events.
    states: HashMap<String, HostState>,
    /// The same, as of the last settle, for readers.
    fleet: Fleet,
    live: broadcast::Sender<Card>,
    stats: Arc<Stats>,
    retention_ms: i64,
    /// How long the rollups are kept.
    rollups_kept: rollup::Keep,
    /// The rollup partitions that exist; mirrors `rollup_parts`.
    parts: Parts,
    /// Hour blocks before this one are packed (see `packing.rs`); none at start, so that
    /// the first pass packs what an earlier run or version left open.
    packed_cut: i64,
    /// What the next settle writes, and when the last one ran.
    pending: Pending,
    last_settle: Instant,
    /// The hours whose tables exist and are attached (see partitions.rs); mirrors
    /// `sample_hours`.
    hours: BTreeSet<i64>,
    /// Every host's clock, to store its samples at corrected times (see `skew.rs`).
    clocks: HashMap<String, Clock>,
    /// Set by the recorder at shutdown (it keeps a clone): a batch held on a full disk is
    /// then dropped rather than retried for ever.
    closing: Arc<AtomicBool>,
}

impl Writer {
    pub fn new(
        conn: Connection,
        live: broadcast::Sender<Card>,
        stats: Arc<Stats>,
        retention: Retention,
    ) -> rusqlite::Result<Writer> {
        let fleet = Fleet::default();
        let states = load_states(&conn, &fleet)?;
        // Reading every host's `latest` filled the page cache (about 20 MiB at 10,000
        // hosts) with pages ingest reads again only as it needs them.
        conn.execute_batch("PRAGMA shrink_memory")?;
        let hours = partitions::hours(&conn)?;
        let parts = Parts::load(&conn)?.keeping(retention.rollups);
        // Each series has its statements per hour: keep two hours' worth and the rest.
        conn.set_prepared_statement_cache_capacity(64);
        let mut writer = Writer {
            conn,
            states,
            fleet,
            live,
            stats,
            retention_ms: retention.raw.as_millis() as i64,
            rollups_kept: retention.rollups,
            parts,
            packed_cut: i64::MIN,
            pending: Pending::default(),
            last_settle: Instant::now(),
            hours,
            clocks: HashMap::new(),
            closing: Arc::default(),
        };
        writer.restore_clocks();
        Ok(writer)
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

    /// The flag that makes a writer holding a batch on a full disk drop it: set it at
    /// shutdown.
    pub fn closing(&self) -> Arc<AtomicBool> {
        self.closing.clone()
    }

    /// Commits `batch` in one transaction. On a full disk it holds the batch and retries
    /// every DISK_FULL_RETRY until it fits (or the recorder closes): the channel fills
    /// meanwhile, the gateway stops reading publishers (or the subscription stops acking),
    /// so agents buffer. Any other error drops the batch (counted in `lost`). True when
    /// the batch is stored.
    fn commit(&mut self, batch: &mut Vec<Item>, settle: bool) -> bool {
        let started = Instant::now();
        let mut now = now_ms();
        let stamps = self.stamp(batch, now);
        let mut stored = false;
        loop {
            let mut touched = Vec::new();
            // Online/offline flips (and a shared token) reach the fleet at their commit, not
            // at the next settle: a page must never show a host online that the registry
            // already calls offline.
            let mut flipped = Vec::new();
            match self.store_batch(batch, &stamps, settle, now, &mut touched, &mut flipped) {
                Ok(()) => {
                    if self.stats.disk_full.swap(false, Ordering::Relaxed) {
                        info!(items = batch.len(), "the disk has room again: ingest resumed");
                    }
                    if settle {
                        self.settled();
                    }
                    self.fleet.update(flipped.iter().filter_map(|h| self.states.get(*h)));
                    self.count_commit(batch, started);
                    self.publish_cards(touched, now);
                    stored = true;
                    break;
                }
                Err(e) if is_disk_full(&e) && !self.closing.load(Ordering::Relaxed) => {
                    if !self.stats.disk_full.swap(true, Ordering::Relaxed) {
                        warn!(error = %e, items = batch.len(), "disk full: holding the batch and retrying every second; ingest waits");
                    }
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    self.reload();
                    std::thread::sleep(DISK_FULL_RETRY);
                    now = now_ms();
                }
                Err(e) => {
                    warn!(error = %e, items = batch.len(), "write failed; batch lost");
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    self.stats.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.reload();
                    break;
                }
            }
        }
        batch.clear();
        stored
    }

    /// Applies every item of `batch` in one transaction, and settles in it if `settle`.
    /// Notes the hosts whose card may have changed in `touched`, and those whose presence
    /// flipped in `flipped`.
    fn store_batch<'b>(
        &mut self,
        batch: &'b [Item],
        stamps: &[Stamp],
        settle: bool,
        now: i64,
        touched: &mut Vec<&'b str>,
        flipped: &mut Vec<&'b str>,
    ) -> rusqlite::Result<()> {
        let kept = self.first_kept_hour(now)..=hour_of(now) + 1;
        let kept_from = *kept.start() * HOUR_MS;
        // Immediate: the write lock is taken (waiting up to the busy timeout) before the
        // first read. Other connections write too (alerting, the CLI), and a deferred
        // transaction that read first and then found another's commit would fail at once
        // (SQLITE_BUSY_SNAPSHOT) and lose the batch.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (item, stamp) in batch.iter().zip(stamps) {
            if item.ts_ms().is_some_and(|ts| ts < kept_from) {
                self.stats.reject(Reject::Stale, item.topic().as_bytes());
                continue;
            }
            let mut store = Store {
                tx: &tx,
                hours: &mut self.hours,
                parts: &mut self.parts,
                pending: &mut self.pending,
                kept: kept.clone(),
            };
            if apply::apply(&mut store, &mut self.states, item, stamp, now, &self.stats)? {
                touched.push(item.host());
                match item {
                    Item::Status { .. } | Item::SharedToken(_) => flipped.push(item.host()),
                    _ => self.pending.changed(item.host()),
                }
            }
        }
        if settle {
            settle::settle(&tx, &self.pending, &self.hours, &mut self.parts)?;
        }
        tx.commit()
    }

    fn count_commit(&self, batch: &[Item], started: Instant) {
        self.stats.stored.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.last_batch_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let committed = now_ms();
        for ts in batch.iter().filter_map(Item::ts_ms) {
            self.stats.record_lag(committed - ts);
        }
    }

    /// After a failed write the states cache and the pending rows may be ahead of the
    /// database: start again from what it holds.
    fn reload(&mut self) {
        self.pending = Pending::default();
        if let Ok(mut states) = load_states(&self.conn, &self.fleet) {
            for (host, clock) in &self.clocks {
                if let Some(state) = states.get_mut(host) {
                    state.clock_skew_ms = clock.skew_ms();
                }
            }
            self.states = states;
        }
        if let Ok(hours) = partitions::hours(&self.conn) {
            self.hours = hours;
        }
        if let Ok(parts) = Parts::load(&self.conn) {
            self.parts = parts.keeping(self.rollups_kept);
        }
    }

    /// Sends each touched host's new card to the live subscribers, once per host.
    fn publish_cards(&self, mut touched: Vec<&str>, now: i64) {
        touched.sort();
        touched.dedup();
        for state in touched.iter().filter_map(|h| self.states.get(*h)) {
            // No browser listening is fine.
            let _ = self.live.send(state.card(now));
        }
    }

    /// Every host's state as of the last settle, for readers on other threads.
    pub fn fleet(&self) -> Fleet {
        self.fleet.clone()
    }

    /// The oldest hour kept: the hour that the start of the retention window falls in.
    /// Retention drops whole hours, so it keeps between RETENTION_HOURS and one hour more.
    fn first_kept_hour(&self, now: i64) -> i64 {
        hour_of(now - self.retention_ms)
    }
}

/// Whether `e` says the database's disk is full (SQLITE_FULL).
fn is_disk_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

/// Every host's state parsed from the database, also installed in `fleet`: the writer's
/// start, and after a failed write.
fn load_states(conn: &Connection, fleet: &Fleet) -> rusqlite::Result<HashMap<String, HostState>> {
    let states: HashMap<String, HostState> =
        read::parse_states(conn)?.into_iter().map(|s| (s.host_id.clone(), s)).collect();
    fleet.reset(states.values());
    Ok(states)
}

/// What `apply` writes through: the batch's transaction, the attached hours (an hour's
/// tables are created when its first sample arrives), and what the next settle writes.
struct Store<'a, 't> {
    tx: &'a Transaction<'t>,
    hours: &'a mut BTreeSet<i64>,
    parts: &'a mut Parts,
    pending: &'a mut Pending,
    /// The hours a replay key may go in: those retention keeps, and the next one.
    kept: std::ops::RangeInclusive<i64>,
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

    /// The `ingested` table that records a sample the agent stamped `agent_ts_ms`, stored
    /// at `ts_ms`: the hour of the agent's time, so that the key never depends on the
    /// correction; the hour it is stored in if the agent's is not kept (a clock more than
    /// the retention behind, or over an hour ahead).
    fn ingested(&mut self, agent_ts_ms: i64, ts_ms: i64) -> rusqlite::Result<String> {
        let at = if self.kept.contains(&hour_of(agent_ts_ms)) { agent_ts_ms } else { ts_ms };
        self.table(Series::Ingested, at)
    }
}

/// Executes through the statement cache: the same few statements run thousands of times
/// a second under load.
fn exec(tx: &Transaction, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}
