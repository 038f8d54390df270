//! The recorder owns the database: it turns the MQTT stream into the operator's truth.
//!
//! # Layout
//! - [`db`]: opening SQLite (WAL, synchronous=NORMAL) and the embedded migrations.
//! - [`hosts`]: the host and observer registry and the gateway's credential table.
//! - [`ingest`]: validation at the edge: a message becomes an [`ingest::Item`] or a
//!   counted [`ingest::Reject`].
//! - [`writer`]: the one thread that writes, fed by a bounded channel; retention.
//! - [`partitions`]: the time series, one set of tables per hour, behind views.
//! - [`status`]: the status rules (pure); [`changes`]: timeline events (pure).
//! - [`view`]: host state and overview cards, shared by pages and live updates;
//!   [`fleet`]: the writer's copy of every host's state, for fleet-wide reads.
//!
//! The recorder never writes from any thread but the writer's (the CLI's registry
//! commands are separate processes or short transactions), and never panics on input.

pub mod changes;
pub mod db;
pub mod fleet;
pub mod hosts;
pub mod ingest;
pub mod partitions;
pub mod status;
pub mod view;
pub mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use broker::router::{qos_and_pkid, subscribe_qos1};
use broker::Router;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, PubAck, PubAckReason};
use rumqttd::Notification;
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

use crate::ingest::Reject;
use crate::view::Card;

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
    pub write_errors: AtomicU64,
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
    pub retention: Duration,
}

/// A running recorder: the subscription task and the writer thread.
pub struct Recorder {
    /// Every changed card, after its commit; the dashboard subscribes per browser.
    pub live: broadcast::Sender<Card>,
    /// Every host's state as of the last settle (at most 250 ms old).
    pub fleet: fleet::Fleet,
    pub stats: Arc<Stats>,
    subscription: tokio::task::JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
    /// Set at shutdown; the checkpoint thread then runs a last TRUNCATE checkpoint.
    stop_checkpoints: Arc<AtomicBool>,
    checkpointer: std::thread::JoinHandle<()>,
}

/// Bounded: when the writer falls behind, the subscription waits instead of buffering.
const QUEUE: usize = 10_000;

impl Recorder {
    /// Subscribes to `pmon/v1/#` on `router` and starts the writer on `config.database`
    /// (which must be migrated already).
    pub async fn start(router: &Router, config: RecorderConfig) -> anyhow::Result<Recorder> {
        let stats = Arc::new(Stats::default());
        let (live, _) = broadcast::channel(1024);
        let conn = db::open_writer(&config.database)?;
        let writer = writer::Writer::new(conn, live.clone(), stats.clone(), config.retention)
            .context("failed to load host states")?;
        let fleet = writer.fleet();
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
        let (mut link_tx, link_rx) = router.link("recorder").await?;
        link_tx
            .send(subscribe_qos1(&format!("{}/#", wire::PREFIX)))
            .await
            .map_err(|e| anyhow::anyhow!("subscribe failed: {e}"))?;
        router.backlog().attach();
        let subscription = tokio::spawn(subscribe(link_tx, link_rx, tx, stats.clone(), router.clone()));
        Ok(Recorder { live, fleet, stats, subscription, writer, stop_checkpoints, checkpointer })
    }

    /// Stops the subscription, lets the writer commit what is queued, and waits for it.
    pub async fn shutdown(self) {
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

/// Most notifications handled per round, between acks.
const ROUND: usize = 512;

/// The subscription loop: takes every notification already queued, queues the valid
/// items for the writer (waiting when it is full), then acks the whole round at once, so
/// that the router keeps what is not yet queued and sees one event per round, not per
/// message.
async fn subscribe(
    mut link_tx: LinkTx,
    mut link_rx: LinkRx,
    tx: mpsc::Sender<ingest::Item>,
    stats: Arc<Stats>,
    router: Router,
) {
    let mut acks = Vec::with_capacity(ROUND);
    loop {
        let first = match link_rx.next().await {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(e) => {
                warn!(error = %e, "recorder link closed");
                return;
            }
        };
        let mut round = vec![first];
        // `recv_deadline(now)` returns at once: what is already queued, or nothing.
        while round.len() < ROUND {
            match link_rx.recv_deadline(std::time::Instant::now()) {
                Ok(Some(n)) => round.push(n),
                _ => break,
            }
        }
        let mut unscheduled = false;
        for note in round {
            match note {
                Notification::Forward(forward) => {
                    let publish = forward.publish;
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    router.backlog().taken(publish.topic.len() + publish.payload.len());
                    match ingest::parse(&publish.topic, &publish.payload, now_ms()) {
                        Ok(item) => {
                            if tx.send(item).await.is_err() {
                                return;
                            }
                        }
                        Err(reason) => stats.reject(reason, &publish.topic),
                    }
                    let (_, pkid) = qos_and_pkid(&publish);
                    if pkid != 0 {
                        acks.push(pkid);
                    }
                }
                Notification::Unschedule => unscheduled = true,
                _ => {}
            }
        }
        if let Some(last) = acks.pop() {
            let ack = |pkid| Packet::PubAck(PubAck { pkid, reason: PubAckReason::Success }, None);
            link_tx.buffer().extend(acks.drain(..).map(ack));
            if link_tx.send(ack(last)).await.is_err() {
                return;
            }
        }
        if unscheduled && link_rx.wake().await.is_err() {
            return;
        }
    }
}
