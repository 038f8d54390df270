//! `demo`: the server on a temporary database with a simulated fleet of a dozen hosts.
//! The simulated agents run the agent's own scheduler and publisher over real MQTT over
//! WebSocket with real per-host tokens; only their collectors are simulated.
//!
//! - `fleet.rs`: the hosts (sizes, pools) and the guests each runs, as data.
//! - `model.rs`: a host's values as a function of time, for the live agent and the past.
//! - `history.rs`: the past seeded through the recorder's writer and rollup code.
//! - `backups.rs`: each host's backup job and its guests' last backups.

mod backups;
mod fleet;
mod history;
mod model;

use std::time::{Duration, Instant};

use anyhow::Context;
use proxmox_monitor_agent::collect::Errors;
use proxmox_monitor_agent::config::{ServerUrl, Settings};
use proxmox_monitor_agent::outbox::Outbox;
use proxmox_monitor_agent::publisher;
use proxmox_monitor_agent::schedule::{self, Envelopes, Intervals};
use proxmox_monitor_agent::source::{Source, TierData};
use rand::Rng;
use tokio::sync::mpsc;
use wire::Kind;

use self::fleet::{DEGRADED, FLAKY, HOSTS};
use self::model::HostModel;
use proxmox_monitor::{Listeners, ServerConfig};
use proxmox_monitor_agent::daemon::shutdown_signal;

const DAY_MS: i64 = 86_400_000;
/// Days of history seeded before the server starts.
const DAYS: i64 = 365;

pub async fn run(port: u16) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("proxmox-monitor-demo-")
        .tempdir()
        .context("failed to create a temporary directory")?;
    let database = dir.path().join("monitor.db");
    let password: String =
        rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(16).map(char::from).collect();
    let mut config = ServerConfig {
        database: database.clone(),
        secret_key_base: crate::gen_secret(),
        password_hash: crate::hash_password(&password)?,
        public_host: None,
        bind: [127, 0, 0, 1].into(),
        port,
        mqtt_port: None,
        mqtts: None,
        retention: recorder::Retention::raw(Duration::from_millis(history::RAW_MS as u64)),
        backup_max_age_hours: 36,
        alert_group_wait: None,
        alert_group_interval: None,
        metrics: Default::default(),
        ha_discovery: false,
        ha_prefix: wire::DiscoveryPrefix::default(),
    };
    let mut tokens = Vec::new();
    {
        let mut conn = recorder::db::open_and_migrate(&database)?;
        for i in 0..HOSTS {
            let (host, token) = recorder::hosts::add_host(&mut conn, &format!("pve-{:02}", i + 1))?;
            tokens.push((host, token));
        }
    }
    // The same path as `serve`; a port in use falls back to any free one. Bound before
    // the history is seeded, so the address is known at once; a browser that comes
    // early waits in the listen backlog until the server runs.
    let listeners = match Listeners::bind(&config).await {
        Ok(listeners) => listeners,
        Err(_) => {
            config.port = 0;
            Listeners::bind(&config).await?
        }
    };
    let http = listeners.bound().http;
    println!("\nProxmox Monitor demo\n  dashboard: http://{http}/\n  password:  {password}\n  data:      {} (deleted on exit)\n  {HOSTS} simulated hosts with {DAYS} days of history connect over MQTT/WebSocket; pve-{:02} has a degraded pool, pve-{:02} drops out now and then.\n  Ctrl+C to stop.\n", dir.path().display(), DEGRADED + 1, FLAKY + 1);
    // Before the server runs: the writer must be the only one writing once it does (a
    // commit from another connection between its read and its write fails its batch).
    // The live agents continue the same model from `now`, so there is no jump.
    let now = wire::now_ms();
    let seeding = {
        let database = database.clone();
        tokio::task::spawn_blocking(move || seed(&database, now))
    };
    seeding.await.context("history seeding panicked")??;
    let server = tokio::spawn(proxmox_monitor::run(config, listeners, shutdown_signal()));
    for (i, (host, token)) in tokens.into_iter().enumerate() {
        let settings = Settings {
            server: ServerUrl::Ws { url: format!("ws://{http}/mqtt"), port: http.port() },
            token,
            host_id: host.clone(),
            node: host.to_string(),
            fast: Duration::from_secs(2),
            medium: Duration::from_secs(5),
            slow: Duration::from_secs(30),
            keepalive: Duration::from_secs(15),
            ca_file: None,
            state_dir: dir.path().join("agents").join(host.as_str()),
            buffer_max_bytes: 1 << 20,
        };
        tokio::spawn(simulate(settings, i, now));
    }
    server.await?
}

/// Seeds every host's history: the last 48 hours first, then the rollups newest first.
fn seed(database: &std::path::Path, now: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    let hosts: Vec<HostModel> = (0..HOSTS).map(|i| HostModel::new(i, now)).collect();
    eprintln!("seeding {DAYS} days of history for {HOSTS} hosts…");
    let samples = history::seed_raw(database, &hosts, now).context("failed to seed the last 48 hours")?;
    let raw = started.elapsed();
    history::seed_rollups(database, &hosts, now - DAYS * DAY_MS, now - history::RAW_MS, |_| {})
        .context("failed to seed the rollups")?;
    eprintln!(
        "seeded in {:.1} s: the last 48 hours ({samples} samples through the writer) in {:.1} s, {DAYS} days of rollups in {:.1} s",
        started.elapsed().as_secs_f64(),
        raw.as_secs_f64(),
        (started.elapsed() - raw).as_secs_f64()
    );
    Ok(())
}

/// One simulated agent; the flaky one stops for 20 s every minute.
async fn simulate(settings: Settings, index: usize, anchor_ms: i64) {
    loop {
        let (tx, rx) = mpsc::channel(16);
        let intervals = Intervals { fast: settings.fast, medium: settings.medium, slow: settings.slow };
        let source = SimHost(HostModel::new(index, anchor_ms));
        let Ok(outbox) = Outbox::open(&settings.state_dir, settings.buffer_max_bytes) else { return };
        let envelopes = Envelopes::new(settings.host_id.clone(), outbox.dropped.clone());
        let scheduler = tokio::spawn(schedule::run(source, envelopes, intervals, tx));
        let up = if index == FLAKY { Duration::from_secs(40) } else { Duration::MAX };
        let stop = tokio::time::sleep(up.min(Duration::from_secs(86_400 * 365)));
        let _ = publisher::run(&settings, rx, outbox, stop).await;
        scheduler.abort();
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
}

/// A simulated host as the agent's scheduler sees it: the model at the wall clock.
struct SimHost(HostModel);

impl Source for SimHost {
    async fn collect(&mut self, tier: Kind, _timeout: Duration) -> (TierData, Errors) {
        let now = wire::now_ms();
        let data = match tier {
            Kind::Medium => TierData::Medium(self.0.medium_at(now)),
            Kind::Slow => TierData::Slow(self.0.slow_at(now)),
            Kind::Fast | Kind::Status => TierData::Fast(self.0.fast_at(now)),
        };
        (data, Errors::new())
    }
}
