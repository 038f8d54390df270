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
use crate::{now_ms, Stats};

/// Most items in one transaction.
const MAX_BATCH: usize = 2000;
/// Rows deleted per retention statement, so that pruning never holds the lock long.
const PRUNE_CHUNK: usize = 2000;
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Events are kept longer than samples: they are the host's timeline.
const EVENT_RETENTION_MS: i64 = 30 * 86_400_000;

pub struct Writer {
    conn: Connection,
    /// The latest state of every host, for live cards and change events.
    states: HashMap<String, HostState>,
    live: broadcast::Sender<Card>,
    stats: Arc<Stats>,
    retention_ms: i64,
}

impl Writer {
    pub fn new(
        conn: Connection,
        live: broadcast::Sender<Card>,
        stats: Arc<Stats>,
        retention: Duration,
    ) -> rusqlite::Result<Writer> {
        let states = view::load_states(&conn)?.into_iter().map(|s| (s.host_id.clone(), s)).collect();
        Ok(Writer { conn, states, live, stats, retention_ms: retention.as_millis() as i64 })
    }

    /// Runs until every sender of `rx` is dropped, then commits what is left and returns.
    pub fn run(mut self, mut rx: mpsc::Receiver<Item>) {
        let mut next_prune = Instant::now();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            if Instant::now() >= next_prune && rx.is_empty() {
                self.prune();
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            let first = if rx.is_empty() {
                // Wake at least every few seconds to see whether retention is due.
                match rx.blocking_recv() {
                    Some(item) => item,
                    None => return,
                }
            } else {
                match rx.try_recv() {
                    Ok(item) => item,
                    Err(_) => continue,
                }
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            self.write(&mut batch);
        }
    }

    fn write(&mut self, batch: &mut Vec<Item>) {
        let started = Instant::now();
        let now = now_ms();
        let mut touched = Vec::new();
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            for item in batch.iter() {
                if apply(&tx, &mut self.states, item, now, &self.stats)? {
                    touched.push(item.host().to_owned());
                }
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                self.stats.stored.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.last_batch_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // The states cache may now be ahead of the database; reload it.
                warn!(error = %e, items = batch.len(), "write failed; batch lost");
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
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

    /// Deletes samples older than the retention window, in small chunks.
    fn prune(&mut self) {
        let cutoff = now_ms() - self.retention_ms;
        let mut pruned = 0;
        // `ingested` has no rowid: it is keyed by its primary key.
        for (table, key, cutoff) in [
            ("fast_samples", "rowid", cutoff),
            ("ingested", "host_id, tier, boot_id, seq", cutoff),
            ("events", "rowid", now_ms() - EVENT_RETENTION_MS),
        ] {
            let sql = format!(
                "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE ts_ms < ?1 LIMIT {PRUNE_CHUNK})"
            );
            loop {
                match self.conn.execute(&sql, [cutoff]) {
                    Ok(0) => break,
                    Ok(n) => {
                        if table != "events" {
                            pruned += n;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, table, "retention failed");
                        break;
                    }
                }
            }
        }
        info!("retention: pruned {pruned} stale samples");
    }
}

/// Applies one item; returns whether the host's card may have changed.
fn apply(
    tx: &Transaction,
    states: &mut HashMap<String, HostState>,
    item: &Item,
    now: i64,
    stats: &Stats,
) -> rusqlite::Result<bool> {
    let Some(state) = states.get_mut(item.host()) else {
        // A removed host's last messages, or a race with `host add`: look once more.
        if tx.query_row("SELECT 1 FROM hosts WHERE host_id = ?1", [item.host()], |_| Ok(())).is_ok() {
            states
                .insert(item.host().to_owned(), HostState { host_id: item.host().to_owned(), ..HostState::default() });
            return apply(tx, states, item, now, stats);
        }
        stats.unknown_host.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    };
    let host = state.host_id.clone();
    match item {
        Item::Status { online, .. } => {
            if state.online != *online {
                state.online = *online;
                tx.execute(
                    "UPDATE hosts SET online = ?2, online_changed_ms = ?3 WHERE host_id = ?1",
                    params![host, online, now],
                )?;
                let (kind, message) = if *online { ("online", "came online") } else { ("offline", "went offline") };
                event(tx, &host, now, kind, message)?;
            }
            Ok(true)
        }
        Item::Fast(p, raw) => {
            if !first_time(tx, p, "fast")? {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            let f = &p.data;
            tx.execute(
                "INSERT INTO fast_samples (host_id, ts_ms, load1, load5, load15, cpu_pct, iowait_pct,
                     mem_total, mem_used, arc_bytes, swap_total, swap_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    host,
                    p.ts_ms,
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
            )?;
            let newer = upsert_latest(tx, p, "fast", raw, now)?;
            seen(tx, state, p, now)?;
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
            let newer = upsert_latest(tx, p, "medium", raw, now)?;
            seen(tx, state, p, now)?;
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
            let newer = upsert_latest(tx, p, "slow", raw, now)?;
            seen(tx, state, p, now)?;
            if newer {
                state.slow = Some(p.clone());
            }
            Ok(newer)
        }
    }
}

/// Records (host, tier, boot, seq); false if it was stored before (a replay).
fn first_time<T>(tx: &Transaction, p: &Payload<T>, tier: &str) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "INSERT OR IGNORE INTO ingested (host_id, tier, boot_id, seq, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![p.host_id, tier, p.boot_id, p.seq as i64, p.ts_ms],
    )?;
    Ok(n == 1)
}

/// Replaces the latest payload unless the stored one is newer (a late replay).
fn upsert_latest<T>(tx: &Transaction, p: &Payload<T>, tier: &str, raw: &str, now: i64) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "INSERT INTO latest (host_id, tier, ts_ms, received_ms, payload) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (host_id, tier) DO UPDATE SET ts_ms = excluded.ts_ms,
             received_ms = excluded.received_ms, payload = excluded.payload
         WHERE excluded.ts_ms >= latest.ts_ms",
        params![p.host_id, tier, p.ts_ms, now, raw],
    )?;
    Ok(n == 1)
}

fn seen<T>(tx: &Transaction, state: &mut HostState, p: &Payload<T>, now: i64) -> rusqlite::Result<()> {
    state.last_seen_ms = Some(now);
    if state.agent_version.as_deref() != Some(p.agent_version.as_str()) {
        state.agent_version = Some(p.agent_version.clone());
    }
    tx.execute(
        "UPDATE hosts SET last_seen_ms = ?2, agent_version = ?3 WHERE host_id = ?1",
        params![p.host_id, now, p.agent_version],
    )?;
    Ok(())
}

fn event(tx: &Transaction, host: &str, ts: i64, kind: &str, message: &str) -> rusqlite::Result<()> {
    tx.execute(
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
