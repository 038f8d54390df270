//! The discovery service `serve` runs with `HA_DISCOVERY=1`.
//!
//! Driven by the recorder's live updates (each changed card names a host; its state is
//! read from the fleet), not by a second subscription to the agents' payloads. Besides
//! those, it subscribes (unpaced) to Home Assistant's birth on `<prefix>/status` and to
//! the server's own `pmon/v1/+/alerts` (the firing count), and takes the hosts added or
//! removed by the CLI from the server's registry watcher.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use broker::{Pacing, Publisher, Router};
use rand::Rng;
use recorder::fleet::Fleet;
use recorder::hosts::Registry;
use recorder::state::{Card, HostState};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};
use wire::{DiscoveryPrefix, Held, HostId, MediumPayload, ServerKind, SlowPayload};

use crate::derived;
use crate::discovery::{self, Context};

/// What `serve` passes in.
#[derive(Debug, Clone)]
pub struct HaConfig {
    pub prefix: DiscoveryPrefix,
    pub context: Context,
    /// Configs are republished this long (at random within it) after Home Assistant's
    /// birth, so that a fleet of servers does not answer at the same instant, as Home
    /// Assistant's documentation recommends.
    pub birth_delay: (Duration, Duration),
}

impl HaConfig {
    pub fn new(prefix: DiscoveryPrefix, context: Context) -> HaConfig {
        HaConfig { prefix, context, birth_delay: (Duration::from_secs(1), Duration::from_secs(5)) }
    }
}

/// How often every host's status (which changes with time alone: a silent host) is
/// recomputed.
const STATUS_REFRESH: Duration = Duration::from_secs(30);

/// Something a subscription saw.
enum Event {
    /// Home Assistant published `online` on `<prefix>/status`.
    Birth,
    /// A host's retained firing set: how many alerts fire.
    Alerts(String, usize),
}

/// What was last published for one host.
#[derive(Default)]
struct Published {
    config: String,
    /// The components of the last config, without the removed ones (id → platform).
    components: BTreeMap<String, String>,
    /// Components published before and gone since: declared with their platform only.
    removed: BTreeMap<String, String>,
    fast: String,
    /// The payloads the last medium and slow states were derived from: a state is
    /// published again only when its payload's bytes changed.
    medium: Option<Held<MediumPayload>>,
    slow: Option<Held<SlowPayload>>,
}

/// The messages that bring Home Assistant up to date, decided without I/O.
pub struct Mirror {
    prefix: DiscoveryPrefix,
    context: Context,
    published: BTreeMap<HostId, Published>,
    alerts: HashMap<String, usize>,
}

/// One retained message.
pub type Publication = (String, Vec<u8>);

impl Mirror {
    pub fn new(prefix: DiscoveryPrefix, context: Context) -> Mirror {
        Mirror { prefix, context, published: BTreeMap::new(), alerts: HashMap::new() }
    }

    /// Records a host's firing count; true when it changed.
    pub fn set_alerts(&mut self, host: &str, firing: usize) -> bool {
        self.alerts.insert(host.to_owned(), firing) != Some(firing)
    }

    /// The config and state messages of `host` that differ from what was published, or all
    /// of them with `force` (Home Assistant's birth).
    pub fn sync(&mut self, host: &HostId, state: &HostState, now_ms: i64, force: bool) -> Vec<Publication> {
        let ctx = &self.context;
        // Decoded once for the config and the three states.
        let decoded = state.decoded();
        let mut config = discovery::config(host, &decoded, ctx);
        let full = discovery::platforms(&config);
        let force = force || !self.published.contains_key(host);
        let p = self.published.entry(host.clone()).or_default();
        for (id, platform) in &p.components {
            if !full.contains_key(id) {
                p.removed.insert(id.clone(), platform.clone());
            }
        }
        p.removed.retain(|id, _| !full.contains_key(id));
        p.components = full;
        let mut out = Vec::new();
        discovery::declare_removed(&mut config, &p.removed);
        let config = config.to_string();
        if force || config != p.config {
            out.push((self.prefix.device_topic(host), config.clone().into_bytes()));
            p.config = config;
        }
        let firing = self.alerts.get(host.as_str()).copied().unwrap_or(0);
        let fast = serde_json::Value::Object(derived::fast(&decoded, firing, now_ms)).to_string();
        if force || fast != p.fast {
            out.push((host.server_topic(ServerKind::HaFast), fast.clone().into_bytes()));
            p.fast = fast;
        }
        if force || p.medium != state.medium {
            let medium = serde_json::Value::Object(derived::medium(&decoded)).to_string();
            out.push((host.server_topic(ServerKind::HaMedium), medium.into_bytes()));
            p.medium = state.medium.clone();
        }
        if force || p.slow != state.slow {
            let slow = serde_json::Value::Object(derived::slow(&decoded)).to_string();
            out.push((host.server_topic(ServerKind::HaSlow), slow.into_bytes()));
            p.slow = state.slow.clone();
        }
        out
    }

    /// Empty retained payloads for every host published and no longer in `registered`:
    /// Home Assistant removes the device, and the state topics are cleared.
    pub fn remove_unregistered(&mut self, registered: &BTreeSet<HostId>) -> Vec<Publication> {
        let gone: Vec<HostId> = self.published.keys().filter(|h| !registered.contains(*h)).cloned().collect();
        let mut out = Vec::new();
        for host in gone {
            self.published.remove(&host);
            self.alerts.remove(host.as_str());
            out.push((self.prefix.device_topic(&host), Vec::new()));
            out.push((host.server_topic(ServerKind::HaFast), Vec::new()));
            out.push((host.server_topic(ServerKind::HaMedium), Vec::new()));
            out.push((host.server_topic(ServerKind::HaSlow), Vec::new()));
        }
        out
    }
}

/// A registered host's state: the fleet's, or an empty one for a host that has not
/// reported since the server started (its device still appears, with unknown values).
fn state_of(fleet: &Fleet, host: &HostId) -> Arc<HostState> {
    fleet
        .get(host.as_str())
        .unwrap_or_else(|| Arc::new(HostState { host_id: host.as_str().to_owned(), ..HostState::default() }))
}

/// Forwards what `filter` receives, parsed by `parse`, until the router or the service
/// is gone.
async fn forward(
    router: &Router,
    name: &str,
    filter: &str,
    tx: mpsc::Sender<Event>,
    parse: fn(&broker::Message) -> Option<Event>,
) -> anyhow::Result<()> {
    let mut sub = router.subscribe(name, filter, Pacing::Unpaced).await?;
    tokio::spawn(async move {
        loop {
            let events: Vec<Event> = match sub.next_round().await {
                Ok(round) => round.iter().filter_map(parse).collect(),
                Err(e) => {
                    warn!(error = %e, "home assistant subscription closed");
                    return;
                }
            };
            for event in events {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(())
}

fn parse_birth(m: &broker::Message) -> Option<Event> {
    (m.payload.as_ref() == wire::topic::ONLINE.as_bytes()).then_some(Event::Birth)
}

fn parse_alerts(m: &broker::Message) -> Option<Event> {
    let set: wire::alerts::AlertSet = serde_json::from_slice(&m.payload).ok()?;
    Some(Event::Alerts(set.host_id, set.alerts.len()))
}

/// Runs discovery until `shutdown` resolves: every registered host's config and states at
/// once (rumqttd forgets retained messages on restart), then as things change.
pub async fn run(
    config: HaConfig,
    router: Router,
    publisher: Publisher,
    fleet: Fleet,
    mut live: broadcast::Receiver<Card>,
    mut registry: watch::Receiver<Arc<Registry>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (tx, mut events) = mpsc::channel(1024);
    forward(&router, "ha-birth", &config.prefix.status_topic(), tx.clone(), parse_birth).await?;
    let alerts_filter = format!("{}/+/{}", wire::PREFIX, ServerKind::Alerts.as_str());
    forward(&router, "ha-alerts", &alerts_filter, tx, parse_alerts).await?;
    let first = registry.borrow_and_update().clone();
    let mut service = Service::start(config, publisher, fleet, &first).await;

    tokio::pin!(shutdown);
    let mut refresh = tokio::time::interval_at(Instant::now() + STATUS_REFRESH, STATUS_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut dirty = BTreeSet::new();
        let mut force = false;
        let birth = service.birth;
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            card = live.recv() => match card {
                Ok(card) => {
                    dirty.insert(card.host_id);
                    while let Ok(card) = live.try_recv() {
                        dirty.insert(card.host_id);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => service.all_dirty(&mut dirty),
                // The recorder stopped: registry polls and births only.
                Err(broadcast::error::RecvError::Closed) => live = broadcast::channel(1).1,
            },
            Some(event) = events.recv() => service.on_event(event, &mut dirty),
            _ = async { tokio::time::sleep_until(birth.unwrap_or_else(Instant::now)).await }, if birth.is_some() => {
                service.birth = None;
                force = true;
                service.all_dirty(&mut dirty);
            }
            Ok(()) = registry.changed() => {
                let current = registry.borrow_and_update().clone();
                service.on_registry(&current, &mut dirty).await;
            }
            _ = refresh.tick() => service.all_dirty(&mut dirty),
        }
        service.sync(&dirty, force).await;
    }
}

/// What the discovery loop keeps between events.
struct Service {
    config: HaConfig,
    publisher: Publisher,
    fleet: Fleet,
    mirror: Mirror,
    /// The registered hosts, as last seen.
    hosts: BTreeSet<HostId>,
    /// When to republish everything after Home Assistant's birth (a random delay, so
    /// that many servers do not answer one birth at once).
    birth: Option<Instant>,
}

impl Service {
    /// Publishes every registered host's config and states.
    async fn start(config: HaConfig, publisher: Publisher, fleet: Fleet, registry: &Registry) -> Service {
        let mirror = Mirror::new(config.prefix.clone(), config.context.clone());
        let hosts = registry.hosts.clone();
        let mut service = Service { config, publisher, fleet, mirror, hosts, birth: None };
        let mut out = Vec::new();
        for host in &service.hosts {
            out.extend(service.mirror.sync(host, &state_of(&service.fleet, host), wire::now_ms(), true));
        }
        info!(hosts = service.hosts.len(), prefix = %service.config.prefix, "home assistant discovery published");
        service.publish(out).await;
        service
    }

    async fn publish(&self, out: Vec<Publication>) {
        for (topic, payload) in out {
            self.publisher.publish(topic, payload, true).await;
        }
    }

    fn all_dirty(&self, dirty: &mut BTreeSet<String>) {
        dirty.extend(self.hosts.iter().map(|h| h.to_string()));
    }

    fn on_event(&mut self, event: Event, dirty: &mut BTreeSet<String>) {
        match event {
            Event::Birth => {
                let (lo, hi) = self.config.birth_delay;
                let delay = rand::thread_rng().gen_range(lo..=hi.max(lo));
                info!(?delay, "home assistant is online; republishing discovery");
                self.birth.get_or_insert(Instant::now() + delay);
            }
            Event::Alerts(host, firing) => {
                if self.mirror.set_alerts(&host, firing) {
                    dirty.insert(host);
                }
            }
        }
    }

    /// Hosts added or removed by a registry change: the removed ones cleared, the added
    /// ones published.
    async fn on_registry(&mut self, registry: &Registry, dirty: &mut BTreeSet<String>) {
        let removed = self.mirror.remove_unregistered(&registry.hosts);
        self.publish(removed).await;
        dirty.extend(registry.hosts.difference(&self.hosts).map(|h| h.to_string()));
        self.hosts = registry.hosts.clone();
    }

    /// Publishes what changed for the hosts in `dirty` (everything with `force`).
    async fn sync(&mut self, dirty: &BTreeSet<String>, force: bool) {
        let now_ms = wire::now_ms();
        let mut out = Vec::new();
        for host in self.hosts.iter().filter(|h| dirty.contains(h.as_str())) {
            out.extend(self.mirror.sync(host, &state_of(&self.fleet, host), now_ms, force));
        }
        self.publish(out).await;
    }
}
