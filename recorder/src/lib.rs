//! The recorder owns the database: it turns the MQTT stream into the operator's truth.
//!
//! # Layout
//! - [`db`]: opening SQLite (WAL, synchronous=NORMAL) and the embedded migrations.
//! - [`hosts`]: the host and observer registry and the gateway's credential table.
//! - [`ingest`]: validation at the edge: a message becomes an [`ingest::Item`] or a
//!   counted [`ingest::Reject`].
//! - [`writer`]: the one thread that writes, fed by a bounded channel: batching and
//!   commit (`mod.rs`), one function per tier (`apply.rs`), the settle (`settle.rs`),
//!   retention (`retention.rs`).
//! - [`partitions`]: the time series, one set of tables per hour, behind SQL views.
//! - [`status`]: the status rules (pure); [`changes`]: timeline events (pure);
//!   [`clock`]: each agent's clock skew, and the corrected time of its samples (pure).
//! - [`state`]: a host's state, health and overview card (pure), shared by pages and
//!   live updates; [`fleet`]: the writer's copy of every host's state.
//! - [`read`]: SQL reads for pages, API and CLI: every host, one host, timelines.
//! - [`rollup`]: minute and hour rollups, folded in as samples settle; [`history`]:
//!   chart reads that pick raw samples or a rollup by range.
//! - [`sessions`]: the dashboard's live sign-in sessions (sign-out deletes one);
//!   [`api_tokens`]: read-only Bearer tokens for `/api/v1` and `/metrics`.
//!
//! The recorder never writes from any thread but the writer's (the CLI's registry
//! commands are separate processes or short transactions), and never panics on input.

pub mod api_tokens;
pub mod changes;
pub mod clock;
pub mod db;
pub mod fleet;
pub mod history;
pub mod hosts;
pub mod ingest;
pub mod partitions;
pub mod read;
pub mod rollup;
pub mod sessions;
#[cfg(test)]
mod sources;
pub mod state;
pub mod status;
pub mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use broker::{Deliveries, Pacing, Router, Subscription};
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

use crate::ingest::Reject;
use crate::state::Card;
use crate::writer::Queued;

// The clock lives in `wire`; imported here for the crate's modules (`crate::now_ms`).
pub(crate) use wire::now_ms;

/// Recorder counters, read by `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub unknown_host: AtomicU64,
    pub batches: AtomicU64,
    pub last_batch_us: AtomicU64,
    /// Failed commits; while the disk is full, every retry counts.
    pub write_errors: AtomicU64,
    /// Set while the writer's commits fail because the disk (or the database's
    /// filesystem) is full: it holds the batch and retries, and ingest waits.
    pub disk_full: AtomicBool,
    /// Items of batches that could not be committed and were dropped: a write error other
    /// than a full disk, or a disk still full at shutdown. Read through the ingest sink,
    /// their PUBACKs were never sent (their sessions are closed, the agents resend them);
    /// read through a router subscription, they were, and are lost.
    pub lost: AtomicU64,
    /// The last retention pass: its duration, and its longest single chunk (an ingest pause).
    pub last_prune_ms: AtomicU64,
    pub last_prune_longest_chunk_us: AtomicU64,
    /// Pages in the WAL at the checkpoint thread's last pass (see `db::open_writer`).
    pub wal_pages: AtomicI64,
    /// Time from a payload's `ts_ms` (set by the agent when it sent the sample) to its
    /// commit, as a histogram: counts per bucket of [`LAG_BUCKETS_MS`], plus the overflow.
    lag: [AtomicU64; LAG_BUCKETS_MS.len() + 1],
    lag_sum_ms: AtomicU64,
    rejected: [AtomicU64; Reject::ALL.len()],
    /// When each reason was last logged, to log at most once per 10 s per reason.
    last_logged: Mutex<[Option<Instant>; Reject::ALL.len()]>,
}

/// Upper bounds of the commit lag histogram, in milliseconds.
pub const LAG_BUCKETS_MS: [u64; 10] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

impl Stats {
    pub fn record_lag(&self, lag_ms: i64) {
        let lag = lag_ms.max(0) as u64;
        let i = LAG_BUCKETS_MS.iter().position(|b| lag <= *b).unwrap_or(LAG_BUCKETS_MS.len());
        self.lag[i].fetch_add(1, Ordering::Relaxed);
        self.lag_sum_ms.fetch_add(lag, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket bound (`None` = +Inf), and the sum in ms.
    pub fn lag_histogram(&self) -> (Vec<(Option<u64>, u64)>, u64) {
        let mut total = 0;
        let mut out = Vec::new();
        for (i, count) in self.lag.iter().enumerate() {
            total += count.load(Ordering::Relaxed);
            out.push((LAG_BUCKETS_MS.get(i).copied(), total));
        }
        (out, self.lag_sum_ms.load(Ordering::Relaxed))
    }

    pub fn rejected(&self) -> Vec<(Reject, u64)> {
        Reject::ALL.into_iter().map(|r| (r, self.rejected[r as usize].load(Ordering::Relaxed))).collect()
    }

    fn reject(&self, reason: Reject, topic: &[u8]) {
        self.rejected[reason as usize].fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut last[reason as usize];
        if slot.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            *slot = Some(Instant::now());
            warn!(reason = reason.as_str(), topic = %String::from_utf8_lossy(topic), "payload rejected (logged at most every 10 s per reason)");
        }
    }
}

#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub database: PathBuf,
    pub retention: Retention,
}

/// How long raw samples and each rollup are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Raw samples (`RETENTION_HOURS`).
    pub raw: Duration,
    /// Minute and hour rollups (`ROLLUP_MINUTE_DAYS`, `ROLLUP_HOUR_DAYS`).
    pub rollups: rollup::Keep,
}

impl Retention {
    /// Raw samples for `raw`, rollups for their defaults.
    pub fn raw(raw: Duration) -> Retention {
        Retention { raw, rollups: rollup::Keep::DEFAULT }
    }
}

/// Where the recorder reads what hosts publish.
pub enum Source<'a> {
    /// The gateway's ingest sink (`broker::ingest`): each publish comes with the
    /// completion its PUBACK waits for, fired after its commit. What `serve` uses.
    Ingest(Deliveries),
    /// A QoS 1 subscription to `pmon/v1/#` on a router, owning its backlog: for a broker
    /// whose publishes are acked before they are stored.
    Router(&'a Router),
}

/// A running recorder: the reading task and the writer thread.
pub struct Recorder {
    /// Every changed card, after its commit; the dashboard subscribes per browser.
    pub live: broadcast::Sender<Card>,
    /// Every host's state as of the last settle (at most 250 ms old).
    pub fleet: fleet::Fleet,
    pub stats: Arc<Stats>,
    /// What the server learns outside MQTT, for the writer (see [`Reports`]).
    pub reports: Reports,
    subscription: tokio::task::JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
    /// Set at shutdown: a writer retrying a batch on a full disk gives up (see
    /// `Writer::closing`).
    closing: Arc<AtomicBool>,
    /// Set at shutdown; the checkpoint thread then runs a last TRUNCATE checkpoint.
    stop_checkpoints: Arc<AtomicBool>,
    checkpointer: std::thread::JoinHandle<()>,
}

/// Bounded: when the writer falls behind, the subscription waits instead of buffering.
const QUEUE: usize = 10_000;

impl Recorder {
    /// Starts the writer on `config.database` (which must be migrated already) and a task
    /// that reads `source` into it.
    pub async fn start(source: Source<'_>, config: RecorderConfig) -> anyhow::Result<Recorder> {
        let stats = Arc::new(Stats::default());
        let (live, _) = broadcast::channel(1024);
        let conn = db::open_writer(&config.database)?;
        let writer = writer::Writer::new(conn, live.clone(), stats.clone(), config.retention)
            .context("failed to load host states")?;
        let fleet = writer.fleet();
        let closing = writer.closing();
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("recorder-writer".into())
            .spawn({
                let runtime = tokio::runtime::Handle::current();
                move || writer.run(rx, runtime)
            })
            .context("failed to start the writer thread")?;
        let stop_checkpoints = Arc::new(AtomicBool::new(false));
        let checkpointer = std::thread::Builder::new()
            .name("recorder-checkpoint".into())
            .spawn({
                let (path, stop, stats) = (config.database.clone(), stop_checkpoints.clone(), stats.clone());
                move || {
                    if let Err(e) = db::checkpoint(&path, &stop, &stats.wal_pages) {
                        warn!(error = format!("{e:#}"), "checkpoint thread stopped");
                    }
                }
            })
            .context("failed to start the checkpoint thread")?;
        let reports = Reports(tx.downgrade());
        let subscription = match source {
            Source::Ingest(deliveries) => tokio::spawn(ingest(deliveries, tx, stats.clone())),
            Source::Router(router) => {
                // The recorder owns the backlog: publishers wait for it, so that rumqttd
                // never skips it past messages their agents had acked.
                let filter = format!("{}/#", wire::PREFIX);
                let subscription = router.subscribe("recorder", &filter, Pacing::OwnsBacklog).await?;
                tokio::spawn(subscribe(subscription, tx, stats.clone()))
            }
        };
        Ok(Recorder { live, fleet, stats, reports, subscription, writer, closing, stop_checkpoints, checkpointer })
    }

    /// Stops the subscription, lets the writer commit what is queued, and waits for it.
    pub async fn shutdown(self) {
        self.closing.store(true, Ordering::Relaxed);
        self.subscription.abort();
        let _ = self.subscription.await;
        let _ = tokio::task::spawn_blocking(move || {
            let _ = self.writer.join();
            self.stop_checkpoints.store(true, Ordering::Relaxed);
            let _ = self.checkpointer.join();
        })
        .await;
    }
}

/// Queues what the server learns outside MQTT for the writer, beside the subscription's
/// items: the gateway's clone detections. Cheap to clone. Its sender is weak, so a copy
/// kept by a task never keeps the writer from ending at shutdown (the writer ends when the
/// subscription's sender drops); what is reported after that is dropped.
#[derive(Clone)]
pub struct Reports(mpsc::WeakSender<Queued>);

impl Reports {
    /// Two agents use `detected.host`'s token: an event, and a reason on its card.
    pub async fn shared_token(&self, detected: broker::CloneDetected) {
        if let Some(tx) = self.0.upgrade() {
            let _ = tx.send(ingest::Item::SharedToken(detected).into()).await;
        }
    }
}

/// The subscription loop: queues each round's valid items for the writer (waiting when
/// it is full) before asking for the next round, which acks this one, so that the router
/// keeps what is not yet queued. Ends when the writer's channel or the router link closes.
async fn subscribe(mut subscription: Subscription, tx: mpsc::Sender<Queued>, stats: Arc<Stats>) {
    loop {
        let round = match subscription.next_round().await {
            Ok(round) => round,
            Err(e) => {
                warn!(error = %e, "recorder subscription ended");
                return;
            }
        };
        for message in round {
            // The server's own alert topics are not a host's data.
            if std::str::from_utf8(&message.topic).is_ok_and(wire::ServerKind::matches) {
                continue;
            }
            stats.received.fetch_add(1, Ordering::Relaxed);
            match ingest::parse(&message.topic, &message.payload, now_ms()) {
                Ok(item) => {
                    if tx.send(item.into()).await.is_err() {
                        return;
                    }
                }
                Err(reason) => stats.reject(reason, &message.topic),
            }
        }
    }
}

/// The sink loop: queues each valid delivery for the writer with its completion (fired
/// after the commit); a refused one is completed at once, so that an invalid sample never
/// holds up its session's acks. Only hosts' own topics and the gateway's presence arrive
/// here (the gateway's ACL). Ends when the writer's channel or the sink closes.
async fn ingest(mut deliveries: Deliveries, tx: mpsc::Sender<Queued>, stats: Arc<Stats>) {
    while let Some(delivery) = deliveries.recv().await {
        stats.received.fetch_add(1, Ordering::Relaxed);
        match ingest::parse(&delivery.topic, &delivery.payload, now_ms()) {
            Ok(item) => {
                if tx.send(Queued { item, done: delivery.done }).await.is_err() {
                    return;
                }
            }
            Err(reason) => {
                stats.reject(reason, &delivery.topic);
                if let Some(done) = delivery.done {
                    done.complete();
                }
            }
        }
    }
}
