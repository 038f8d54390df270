//! The settle: what the writer records once per host every SETTLE_EVERY rather than per
//! sample. Fast samples are folded into the rollups and move from `fast_recent` into their
//! hour table, and each host's `latest` rows and last-seen time are written once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use rusqlite::{params, Transaction};
use tracing::warn;
use wire::{Kind, Payload};

use super::{exec, skew, Writer};
use crate::db;
use crate::partitions::{self, hour_of, Series, HOUR_MS};
use crate::rollup::{self, Parts};

/// What the next settle writes: the `latest` row of each tier and the host's last-seen
/// time. Under load every batch holds samples of hundreds of hosts, and each of these rows
/// would otherwise be rewritten in every commit. Until the settle, the writer's state
/// cache is ahead of these rows (by at most SETTLE_EVERY); the samples themselves are
/// committed with their batch.
#[derive(Default)]
pub(super) struct Pending {
    /// (host, tier) → the newest payload.
    latest: HashMap<(String, Kind), Latest>,
    /// host → (when seen, agent version of its newest payload).
    seen: HashMap<String, (i64, String)>,
    /// hour → sample rows stored in it since the last settle.
    rows: HashMap<i64, i64>,
    /// Hosts whose state changed: the fleet gets their new states at the settle, not at
    /// every commit, since a copy per host per commit is a measurable share of a core
    /// under load.
    changed: HashSet<String>,
}

/// A `latest` row to write: the payload's JSON as sent, rewritten at the settle if its
/// time was corrected (`skew::stored_json`), once rather than for every sample.
struct Latest {
    ts_ms: i64,
    agent_ts_ms: i64,
    received_ms: i64,
    raw: String,
}

impl Pending {
    /// Notes a stored payload received at `now`, sent as `raw` at `agent_ts_ms`, `newer`
    /// than the host's latest of its tier.
    pub(super) fn note<T>(&mut self, p: &Payload<T>, tier: Kind, raw: &str, agent_ts_ms: i64, newer: bool, now: i64) {
        if newer {
            let latest = Latest { ts_ms: p.ts_ms, agent_ts_ms, received_ms: now, raw: raw.to_owned() };
            self.latest.insert((p.host_id.clone(), tier), latest);
        }
        // Every sample of a host lands here: allocate only for its first in a settle.
        match self.seen.get_mut(p.host_id.as_str()) {
            Some((seen, version)) => {
                *seen = now;
                if *version != p.agent_version {
                    version.clone_from(&p.agent_version);
                }
            }
            None => {
                self.seen.insert(p.host_id.clone(), (now, p.agent_version.clone()));
            }
        }
    }

    pub(super) fn count_rows(&mut self, ts_ms: i64, n: usize) {
        *self.rows.entry(hour_of(ts_ms)).or_default() += n as i64;
    }

    pub(super) fn changed(&mut self, host: &str) {
        if !self.changed.contains(host) {
            self.changed.insert(host.to_owned());
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.latest.is_empty() && self.seen.is_empty() && self.rows.is_empty() && self.changed.is_empty()
    }

    fn flush(&self, tx: &Transaction) -> rusqlite::Result<()> {
        for ((host, tier), Latest { ts_ms, agent_ts_ms, received_ms, raw }) in &self.latest {
            let payload = skew::stored_json(raw, *ts_ms, *agent_ts_ms);
            exec(
                tx,
                "INSERT INTO latest (host_id, tier, ts_ms, received_ms, payload) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (host_id, tier) DO UPDATE SET ts_ms = excluded.ts_ms,
                     received_ms = excluded.received_ms, payload = excluded.payload
                 WHERE excluded.ts_ms >= latest.ts_ms",
                params![host, tier.as_str(), ts_ms, received_ms, payload.as_ref()],
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

/// Writes what is pending, folds the recent fast samples into the rollups and moves them
/// into their hour tables, in the batch's transaction.
pub(super) fn settle(
    tx: &Transaction,
    pending: &Pending,
    hours: &BTreeSet<i64>,
    parts: &mut Parts,
) -> rusqlite::Result<()> {
    pending.flush(tx)?;
    rollup::fold_recent(tx, parts)?;
    move_recent(tx, hours)
}

impl Writer {
    /// After a settle's commit: readers get the changed hosts' states, and the writer
    /// checkpoints if the checkpoint thread reported a large WAL.
    pub(super) fn settled(&mut self) {
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
