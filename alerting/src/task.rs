//! The running service: every round (a few seconds, sooner after a live card change or a
//! registry change) it reads what the CLI may have changed (silences, acknowledgements,
//! channels, rule overrides; the hosts come from the server's registry watcher),
//! evaluates every host of the fleet, stores the alerts, and hands each due message to
//! each channel through the rate limiter; deliveries run as tasks of their own. Each
//! host's firing set and its transitions go to MQTT ([`crate::mqtt`]).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recorder::fleet::Fleet;
use recorder::hosts::Registry;
use recorder::state::Card;
use rusqlite::Connection;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::channel::{email, Channel, Kind, Notification};
use crate::engine::Engine;
use crate::http::{Delivery, HttpClient, RetryPolicy};
use crate::limit::{Admit, Limiter};
use crate::mqtt::{Mirror, Publication};
use crate::overrides::Overrides;
use crate::settings::Settings;
use crate::store::{self, LogEntry};

#[derive(Debug, Clone)]
pub struct AlertingConfig {
    /// The server's database (migrated).
    pub database: PathBuf,
    pub settings: Settings,
    pub retry: RetryPolicy,
    /// The longest time between two rounds.
    pub every: Duration,
}

impl AlertingConfig {
    pub fn new(database: PathBuf) -> AlertingConfig {
        AlertingConfig {
            database,
            settings: Settings::default(),
            retry: RetryPolicy::default(),
            every: Duration::from_secs(5),
        }
    }
}

/// The shortest time between two rounds triggered by live card changes.
const MIN_ROUND: Duration = Duration::from_secs(1);
/// How long shutdown waits for deliveries in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// The database connection, used only inside `spawn_blocking` for short statements.
type Db = Arc<Mutex<Connection>>;

async fn blocking<T: Send + 'static>(
    db: &Db,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let db = db.clone();
    let result = tokio::task::spawn_blocking(move || {
        // Never held across a panic point that matters: the statements are short.
        let mut conn = db.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    })
    .await?;
    Ok(result?)
}

/// Runs alerting until `shutdown` resolves, then waits up to 5 s for deliveries. With a
/// `publisher`, every host's firing set is republished (retained) at once, and then
/// whenever it changes, with each transition. The registered hosts come from `registry`.
pub async fn run(
    config: AlertingConfig,
    fleet: Fleet,
    mut live: broadcast::Receiver<Card>,
    mut registry: watch::Receiver<Arc<Registry>>,
    publisher: Option<broker::Publisher>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let db: Db = Arc::new(Mutex::new(recorder::db::open(&config.database)?));
    let mut hosts = host_names(&registry.borrow_and_update());
    let (alerts, overrides) = blocking(&db, |c| Ok((store::load_alerts(c)?, store::overrides(c)?))).await?;
    // The cards judge with the operator's overrides from the start, not after the first round.
    recorder::status::limits::set_current(Overrides::new(overrides));
    let (mirror, retained) = Mirror::start(alerts.iter(), &hosts, wire::now_ms());
    let settings = config.settings.clone();
    let mut service = Service {
        limiter: Limiter::new(settings.channel_rate, settings.host_rate),
        engine: Engine::new(settings, alerts),
        client: HttpClient::new(config.retry),
        db,
        deliveries: JoinSet::new(),
        mirror,
        publisher,
    };
    service.publish(retained).await;
    tokio::pin!(shutdown);
    let mut changed = false;
    let mut last = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(MIN_ROUND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            card = live.recv() => match card {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => changed = true,
                // The recorder stopped: rounds on the timer only.
                Err(broadcast::error::RecvError::Closed) => live = broadcast::channel(1).1,
            },
            Ok(()) = registry.changed() => {
                hosts = host_names(&registry.borrow_and_update());
                changed = true;
            }
            _ = tick.tick() => {
                if changed || last.elapsed() >= config.every {
                    changed = false;
                    last = tokio::time::Instant::now();
                    if let Err(e) = service.round(&fleet, &hosts, wire::now_ms()).await {
                        warn!(error = format!("{e:#}"), "alerting round failed");
                    }
                }
                while service.deliveries.try_join_next().is_some() {}
            }
        }
    }
    let pending = service.deliveries.len();
    if tokio::time::timeout(DRAIN, async { while service.deliveries.join_next().await.is_some() {} }).await.is_err() {
        warn!(pending, "alerting stopped with deliveries in flight");
    }
    Ok(())
}

/// The registered hosts' names, as the engine and the MQTT mirror take them.
fn host_names(registry: &Registry) -> HashSet<String> {
    registry.hosts.iter().map(|h| h.to_string()).collect()
}

struct Service {
    engine: Engine,
    limiter: Limiter,
    client: HttpClient,
    db: Db,
    deliveries: JoinSet<()>,
    /// What the MQTT topics last said.
    mirror: Mirror,
    publisher: Option<broker::Publisher>,
}

impl Service {
    async fn round(&mut self, fleet: &Fleet, hosts: &HashSet<String>, now_ms: i64) -> anyhow::Result<()> {
        let (silences, acked, channels, overrides) = blocking(&self.db, move |c| {
            Ok((store::silences(c, now_ms)?, store::acked(c)?, store::channels(c)?, store::overrides(c)?))
        })
        .await?;
        self.engine.retain_hosts(hosts);
        self.engine.set_silences(silences);
        let overrides = Overrides::new(overrides);
        // The cards judge with the same overrides from now on (`HostState::findings`).
        recorder::status::limits::set_current(overrides.clone());
        self.engine.set_overrides(overrides);
        self.engine.set_acked(&acked);
        // A host that never reported is not installed yet rather than offline.
        let seen = |s: &&std::sync::Arc<recorder::state::HostState>| s.last_seen_ms.is_some();
        for state in fleet.all().iter().filter(|s| hosts.contains(&s.host_id)).filter(seen) {
            self.engine.evaluate(state, now_ms);
        }
        // Stored before the flush, so that every message carries its alerts' ids.
        self.save().await?;
        let outgoing = self.engine.flush(now_ms);
        // Stored before sending: a crash now loses a message rather than repeating it.
        self.save().await?;
        let publications = self.mirror.update(self.engine.alerts(), hosts, now_ms);
        self.publish(publications).await;
        let names: HashSet<String> = channels.iter().map(|c| c.name.clone()).collect();
        self.limiter.retain_channels(|c| names.contains(c));
        for message in outgoing {
            for channel in &channels {
                match self.limiter.admit(&channel.name, &message.host, now_ms) {
                    Admit::Send { suppressed } => {
                        let n = Notification::new(&message.host, message.items.clone(), suppressed);
                        self.deliver(channel.clone(), n);
                    }
                    Admit::Suppressed => {
                        let entry = LogEntry {
                            ts_ms: now_ms,
                            channel: channel.name.clone(),
                            host: Some(message.host.clone()),
                            event_id: String::new(),
                            outcome: "suppressed",
                            http_status: None,
                            attempts: 0,
                            detail: format!("{} item(s) over the rate limit", message.items.len()),
                        };
                        blocking(&self.db, move |c| store::log(c, &entry)).await?;
                    }
                }
            }
        }
        for (name, host, suppressed) in self.limiter.summaries(now_ms) {
            if let Some(channel) = channels.iter().find(|c| c.name == name) {
                self.deliver(channel.clone(), Notification::new(&host, Vec::new(), suppressed));
            }
        }
        Ok(())
    }

    async fn save(&mut self) -> anyhow::Result<()> {
        let dirty = self.engine.take_dirty();
        if dirty.is_empty() {
            return Ok(());
        }
        for a in dirty.iter().filter(|a| a.id == 0) {
            info!(alert = %a.identity, state = a.state.as_str(), "new alert");
        }
        let ids = blocking(&self.db, move |c| store::save_alerts(c, &dirty)).await?;
        for (identity, id) in ids {
            self.engine.set_id(&identity, id);
        }
        Ok(())
    }

    async fn publish(&self, publications: Vec<Publication>) {
        let Some(publisher) = &self.publisher else { return };
        for p in publications {
            publisher.publish(p.topic, p.payload, p.retain).await;
        }
    }

    fn deliver(&mut self, channel: Channel, n: Notification) {
        let (client, db) = (self.client.clone(), self.db.clone());
        self.deliveries.spawn(async move {
            let delivery = send(&client, &channel, &n).await;
            let entry = log_entry(&channel, &n, &delivery);
            if let Err(e) = blocking(&db, move |c| store::log(c, &entry)).await {
                warn!(error = format!("{e:#}"), "failed to log a notification");
            }
        });
    }
}

/// Sends `n` on `channel` (by SMTP for email, else by HTTP) and logs the outcome.
pub async fn send(client: &HttpClient, channel: &Channel, n: &Notification) -> Delivery {
    let delivery = match channel.kind {
        Kind::Email => email::send(channel, n, client.policy(), &[]).await,
        _ => client.send(&channel.request(n)).await,
    };
    match &delivery.error {
        None => info!(channel = channel.name, host = n.host, status = ?delivery.status, "notification sent"),
        Some(e) => warn!(channel = channel.name, host = n.host, error = e, "notification failed"),
    }
    delivery
}

pub fn log_entry(channel: &Channel, n: &Notification, d: &Delivery) -> LogEntry {
    LogEntry {
        ts_ms: wire::now_ms(),
        channel: channel.name.clone(),
        host: (!n.host.is_empty()).then(|| n.host.clone()),
        event_id: n.event_id.clone(),
        outcome: if d.ok() { "sent" } else { "failed" },
        http_status: d.status,
        attempts: d.attempts,
        detail: d.error.clone().unwrap_or_else(|| n.title()),
    }
}

/// `channel test`: sends a test notification on `channel` now, outside the rate limits.
pub async fn test_channel(channel: &Channel, retry: RetryPolicy) -> (Notification, Delivery) {
    let mut n = Notification::new("", Vec::new(), 0);
    n.test = true;
    n.host = "proxmox-monitor".into();
    let delivery = send(&HttpClient::new(retry), channel, &n).await;
    (n, delivery)
}
