//! The recorder owns the database: it turns the MQTT stream into the operator's truth.
//!
//! # Layout
//! - [`db`]: opening SQLite (WAL, synchronous=NORMAL) and the embedded migrations.
//! - [`hosts`]: the host and observer registry and the gateway's credential table.
//! - [`ingest`]: validation at the edge: a message becomes an [`ingest::Item`] or a
//!   counted [`ingest::Reject`].
//! - [`writer`]: the one thread that writes, fed by a bounded channel; retention.
//! - [`status`]: the status rules (pure); [`changes`]: timeline events (pure).
//! - [`view`]: host state and overview cards, shared by pages and live updates.
//!
//! The recorder never writes from any thread but the writer's (the CLI's registry
//! commands are separate processes or short transactions), and never panics on input.

pub mod changes;
pub mod db;
pub mod hosts;
pub mod ingest;
pub mod status;
pub mod view;
pub mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use broker::router::{forwarded_pkid, subscribe_qos1};
use broker::Router;
use rumqttd::protocol::{Packet, PubAck, PubAckReason};
use rumqttd::Notification;
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

use crate::ingest::Reject;
use crate::view::Card;

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

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
    rejected: [AtomicU64; Reject::ALL.len()],
    /// When each reason was last logged, to log at most once per 10 s per reason.
    last_logged: Mutex<[Option<Instant>; Reject::ALL.len()]>,
}

impl Stats {
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
    pub stats: Arc<Stats>,
    subscription: tokio::task::JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
}

/// Bounded: when the writer falls behind, the subscription waits instead of buffering.
const QUEUE: usize = 10_000;

impl Recorder {
    /// Subscribes to `pmon/v1/#` on `router` and starts the writer on `config.database`
    /// (which must be migrated already).
    pub async fn start(router: &Router, config: RecorderConfig) -> anyhow::Result<Recorder> {
        let stats = Arc::new(Stats::default());
        let (live, _) = broadcast::channel(1024);
        let conn = db::open(&config.database)?;
        let writer = writer::Writer::new(conn, live.clone(), stats.clone(), config.retention)
            .context("failed to load host states")?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("recorder-writer".into())
            .spawn(move || writer.run(rx))
            .context("failed to start the writer thread")?;
        let (mut link_tx, mut link_rx) = router.link("recorder").await?;
        link_tx
            .send(subscribe_qos1(&format!("{}/#", wire::PREFIX)))
            .await
            .map_err(|e| anyhow::anyhow!("subscribe failed: {e}"))?;
        let sub_stats = stats.clone();
        let subscription = tokio::spawn(async move {
            loop {
                match link_rx.next().await {
                    Ok(Some(Notification::Forward(forward))) => {
                        let publish = forward.publish;
                        sub_stats.received.fetch_add(1, Ordering::Relaxed);
                        match ingest::parse(&publish.topic, &publish.payload, now_ms()) {
                            Ok(item) => {
                                if tx.send(item).await.is_err() {
                                    return;
                                }
                            }
                            Err(reason) => sub_stats.reject(reason, &publish.topic),
                        }
                        // Ack after the item is queued: the router keeps unacked messages.
                        let pkid = forwarded_pkid(&publish);
                        if pkid != 0 {
                            let ack = PubAck { pkid, reason: PubAckReason::Success };
                            if link_tx.send(Packet::PubAck(ack, None)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(Some(Notification::Unschedule)) => {
                        if link_rx.wake().await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(error = %e, "recorder link closed");
                        return;
                    }
                }
            }
        });
        Ok(Recorder { live, stats, subscription, writer })
    }

    /// Stops the subscription, lets the writer commit what is queued, and waits for it.
    pub async fn shutdown(self) {
        self.subscription.abort();
        let _ = self.subscription.await;
        let _ = tokio::task::spawn_blocking(move || self.writer.join()).await;
    }
}
