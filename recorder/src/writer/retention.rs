//! Retention: stale hours and stale rollup partitions are detached and their tables
//! dropped, and old events deleted, one short step at a time between ingest batches.

use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tracing::{info, warn};

use super::Writer;
use crate::{db, now_ms, Stats};
use crate::{partitions, rollup};

/// How often retention runs.
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Events deleted per retention statement: there are few (changes, not samples).
const EVENT_PRUNE_CHUNK: i64 = 1000;
/// Events are kept longer than samples: they are the host's timeline.
const EVENT_RETENTION_MS: i64 = 30 * 86_400_000;

/// One retention pass in progress. Stale hours are dropped whole: dropping a table frees
/// its pages without visiting its rows. Each stage runs between ingest batches, one step
/// at a time.
pub(super) struct Prune {
    first_kept: i64,
    stage: Stage,
    /// Sample rows in the detached hours.
    pruned: i64,
    started: Instant,
    longest: Duration,
}

enum Stage {
    /// Waiting for [`prefetch`]; then detach the stale hours.
    Prefetch(Option<JoinHandle<()>>),
    /// Drop these tables, one per step.
    Drop(Vec<String>),
    /// Delete events older than 30 days, a chunk per step.
    Events,
    Done,
}

impl Prune {
    pub(super) fn report(&self, stats: &Stats) {
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

impl Writer {
    /// Runs a whole retention pass at once (tests and benchmarks).
    pub fn prune_now(&mut self) {
        let mut prune = self.start_prune();
        while !self.prune_step(&mut prune) {}
        prune.report(&self.stats);
    }

    /// Starts a retention pass (see [`Prune`]).
    pub(super) fn start_prune(&self) -> Prune {
        let first_kept = self.first_kept_hour(now_ms());
        let prefetch = self.conn.path().and_then(|path| prefetch(path.into(), first_kept, self.rollups_kept));
        Prune {
            first_kept,
            stage: Stage::Prefetch(prefetch),
            pruned: 0,
            started: Instant::now(),
            longest: Duration::ZERO,
        }
    }

    /// Runs one step of a retention pass; returns true when it is done.
    pub(super) fn prune_step(&mut self, prune: &mut Prune) -> bool {
        if let Stage::Prefetch(Some(reading)) = &prune.stage {
            if !reading.is_finished() {
                // Ingest goes on meanwhile; this only keeps the loop from spinning.
                std::thread::sleep(Duration::from_millis(5));
                return false;
            }
        }
        let started = Instant::now();
        prune.stage = match std::mem::replace(&mut prune.stage, Stage::Done) {
            Stage::Prefetch(_) => self.detach_step(prune),
            Stage::Drop(tables) => self.drop_step(tables),
            Stage::Events => self.events_step(),
            Stage::Done => Stage::Done,
        };
        prune.longest = prune.longest.max(started.elapsed());
        matches!(prune.stage, Stage::Done)
    }

    fn detach_step(&mut self, prune: &mut Prune) -> Stage {
        match self.detach(prune.first_kept) {
            Ok((rows, tables)) => {
                prune.pruned = rows;
                Stage::Drop(tables)
            }
            Err(e) => {
                warn!(error = %e, "retention failed to detach stale hours; trying again in an hour");
                Stage::Events
            }
        }
    }

    fn drop_step(&mut self, mut tables: Vec<String>) -> Stage {
        let Some(table) = tables.pop() else { return Stage::Events };
        if let Err(e) = self.conn.execute_batch(&format!("DROP TABLE IF EXISTS {table}")) {
            warn!(error = %e, table, "retention failed to drop a stale table; trying again in an hour");
        }
        Stage::Drop(tables)
    }

    fn events_step(&mut self) -> Stage {
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

    /// Detaches the hours before `first_kept` from the views and the stale rollup
    /// partitions from their catalog (a short transaction); returns the sample rows the
    /// hours held and the tables to drop.
    fn detach(&mut self, first_kept: i64) -> rusqlite::Result<(i64, Vec<String>)> {
        let now = now_ms();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let rows = partitions::detach_before(&tx, first_kept)?;
        for resolution in rollup::Resolution::ALL {
            self.parts.detach_before(&tx, resolution, self.rollups_kept.first_kept_part(resolution, now))?;
        }
        tx.commit()?;
        self.hours.retain(|h| *h >= first_kept);
        // Cached statements of the tables about to go would never run again.
        self.conn.flush_prepared_statement_cache();
        Ok((rows, stale_tables(&self.conn, first_kept, self.rollups_kept)?))
    }
}

/// Reads, on another thread, every page that retention is about to touch: the schema and
/// the catalog, which it rewrites, and the stale tables with their indexes, which it
/// drops (dropping reads each page). Hours written two days ago may have left the OS page
/// cache, and reading them from disk on the writer's thread would pause ingest for each
/// statement that does. A failure here only costs that time.
fn prefetch(path: std::path::PathBuf, first_kept: i64, rollups_kept: rollup::Keep) -> Option<JoinHandle<()>> {
    let reading = std::thread::Builder::new().name("recorder-prefetch".into()).spawn(move || {
        let Ok(conn) = db::open_read(&path) else { return };
        let tables = stale_tables(&conn, first_kept, rollups_kept).unwrap_or_default();
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

/// Every table retention drops: stale hours of raw samples and stale rollup partitions.
fn stale_tables(conn: &Connection, first_kept: i64, rollups_kept: rollup::Keep) -> rusqlite::Result<Vec<String>> {
    let mut tables = partitions::stale_tables(conn, first_kept)?;
    tables.extend(rollup::stale_tables(conn, rollups_kept, now_ms())?);
    Ok(tables)
}
