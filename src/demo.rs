//! `demo`: the server on a temporary database with a simulated fleet of a dozen hosts.
//! The simulated agents run the agent's own scheduler and publisher over real MQTT over
//! WebSocket with real per-host tokens; only their collectors are simulated.

use std::time::Duration;

use anyhow::Context;
use proxmox_monitor_agent::collect::Errors;
use proxmox_monitor_agent::config::{ServerUrl, Settings};
use proxmox_monitor_agent::outbox::Outbox;
use proxmox_monitor_agent::publisher;
use proxmox_monitor_agent::schedule::{self, Envelopes, Intervals};
use proxmox_monitor_agent::source::{Source, TierData};
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use wire::{
    DatasetSnapshots, Fast, Guest, GuestStatus, HostId, Kind, Medium, Pool, PoolState, Scan, ScanFunction, ScanState,
    Slow, Snapshots, Storage, Vdev, Versions,
};

use proxmox_monitor::{Listeners, ServerConfig};
use proxmox_monitor_agent::daemon::shutdown_signal;

const HOSTS: usize = 12;
/// The host with a degraded pool, and the one that goes offline now and then.
const DEGRADED: usize = 3;
const FLAKY: usize = 7;

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
        retention: recorder::Retention::raw(Duration::from_secs(48 * 3600)),
    };
    let mut tokens = Vec::new();
    {
        let mut conn = recorder::db::open_and_migrate(&database)?;
        for i in 0..HOSTS {
            let (host, token) = recorder::hosts::add_host(&mut conn, &format!("pve-{:02}", i + 1))?;
            tokens.push((host, token));
        }
    }
    // The same path as `serve`; a port in use falls back to any free one.
    let listeners = match Listeners::bind(&config).await {
        Ok(listeners) => listeners,
        Err(_) => {
            config.port = 0;
            Listeners::bind(&config).await?
        }
    };
    let http = listeners.bound().http;
    let server = tokio::spawn(proxmox_monitor::run(config, listeners, shutdown_signal()));
    println!("\nProxmox Monitor demo\n  dashboard: http://{http}/\n  password:  {password}\n  data:      {} (deleted on exit)\n  {HOSTS} simulated hosts connect over MQTT/WebSocket; pve-{:02} has a degraded pool, pve-{:02} drops out now and then.\n  Ctrl+C to stop.\n", dir.path().display(), DEGRADED + 1, FLAKY + 1);
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
        tokio::spawn(simulate(settings, i));
    }
    server.await?
}

/// One simulated agent; the flaky one stops for 20 s every minute.
async fn simulate(settings: Settings, index: usize) {
    loop {
        let (tx, rx) = mpsc::channel(16);
        let intervals = Intervals { fast: settings.fast, medium: settings.medium, slow: settings.slow };
        let source = SimHost::new(&settings.host_id, index);
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

/// Realistic, varied numbers that drift over time.
struct SimHost {
    rng: rand::rngs::StdRng,
    index: usize,
    host: HostId,
    cpus: u32,
    mem_total: u64,
    load: f64,
}

impl SimHost {
    fn new(host: &HostId, index: usize) -> SimHost {
        let cpus = [8, 16, 32, 48, 64][index % 5];
        SimHost {
            rng: rand::rngs::StdRng::seed_from_u64(index as u64),
            index,
            host: host.clone(),
            cpus,
            mem_total: (u64::from(cpus) * 4) << 30,
            load: f64::from(cpus) * 0.2,
        }
    }

    fn fast(&mut self) -> Fast {
        self.load = (self.load + self.rng.gen_range(-0.5..0.5)).clamp(0.05, f64::from(self.cpus) * 1.2);
        let arc = self.mem_total / 4 + self.rng.gen_range(0..1 << 30);
        Fast {
            cpus: Some(self.cpus),
            load1: Some(self.load),
            load5: Some(self.load * 0.95),
            load15: Some(self.load * 0.9),
            cpu_pct: Some((self.load / f64::from(self.cpus) * 100.0).min(100.0)),
            iowait_pct: Some(self.rng.gen_range(0.0..3.0)),
            mem_total: Some(self.mem_total),
            mem_used: Some(self.mem_total / 2 + arc),
            arc_bytes: Some(arc),
            swap_total: Some(8 << 30),
            swap_used: Some(self.rng.gen_range(0..512 << 20)),
            rootfs_total: Some(100 << 30),
            rootfs_used: Some(30 << 30),
            uptime_s: Some(86_400 * (self.index as u64 + 3)),
        }
    }

    fn medium(&mut self) -> Medium {
        let degraded = self.index == DEGRADED;
        let disk = |name: &str, state: PoolState, cksum| Vdev {
            name: name.into(),
            depth: 1,
            state,
            checksum_errors: cksum,
            ..Vdev::default()
        };
        let now_s = wire::now_ms() / 1000;
        let rpool = Pool {
            name: "rpool".into(),
            state: if degraded { PoolState::Degraded } else { PoolState::Online },
            status: degraded
                .then(|| "One or more devices could not be used because the label is missing or invalid.".into()),
            action: degraded.then(|| "Replace the device using 'zpool replace'.".into()),
            size: Some(960 << 30),
            alloc: Some((300 + self.index as u64 * 40) << 30),
            free: Some((660 - self.index as u64 * 40) << 30),
            frag_pct: Some(12.0),
            cap_pct: Some(((300 + self.index * 40) * 100 / 960) as f64),
            dedup_ratio: Some(1.0),
            vdevs: vec![
                Vdev {
                    name: "mirror-0".into(),
                    depth: 0,
                    state: if degraded { PoolState::Degraded } else { PoolState::Online },
                    ..Vdev::default()
                },
                disk("nvme0n1p3", PoolState::Online, 0),
                disk(
                    "nvme1n1p3",
                    if degraded { PoolState::Faulted } else { PoolState::Online },
                    if degraded { 14 } else { 0 },
                ),
            ],
            scan: Some(Scan {
                function: ScanFunction::Scrub,
                state: ScanState::Finished,
                start: Some(now_s - 86_400 * 9),
                end: Some(now_s - 86_400 * 9 + 1800),
                errors: 0,
            }),
            error_count: 0,
        };
        let guests = |first: u32, n: u32, kind: &str, rng: &mut rand::rngs::StdRng| {
            (0..n)
                .map(|i| Guest {
                    vmid: first + i,
                    name: format!("{kind}-{}-{}", ["web", "db", "ci", "mail", "dns"][(i % 5) as usize], first + i),
                    status: if i % 4 == 3 { GuestStatus::Stopped } else { GuestStatus::Running },
                    cpu: Some(rng.gen_range(0.0..0.6)),
                    cpus: Some(f64::from(2 + i % 4)),
                    mem: Some(rng.gen_range(1u64..4) << 30),
                    maxmem: Some(4 << 30),
                    disk: Some(10 << 30),
                    maxdisk: Some(32 << 30),
                    uptime_s: Some(3600 * u64::from(i + 1)),
                    tags: if i % 2 == 0 { vec!["prod".into()] } else { vec![] },
                    lock: (i == 1).then(|| "backup".into()),
                })
                .collect::<Vec<_>>()
        };
        let n = self.index as u32;
        Medium {
            pools: Some(vec![rpool]),
            storages: Some(vec![
                Storage {
                    name: "local".into(),
                    kind: "dir".into(),
                    active: true,
                    enabled: true,
                    shared: false,
                    content: "iso,vztmpl,backup".into(),
                    total: Some(100 << 30),
                    used: Some(30 << 30),
                    avail: Some(70 << 30),
                },
                Storage {
                    name: "local-zfs".into(),
                    kind: "zfspool".into(),
                    active: true,
                    enabled: true,
                    shared: false,
                    content: "images,rootdir".into(),
                    total: Some(900 << 30),
                    used: Some((300 + u64::from(n) * 40) << 30),
                    avail: Some((600 - u64::from(n) * 40) << 30),
                },
            ]),
            vms: Some(guests(100 + n * 100, 2 + n % 4, "vm", &mut self.rng)),
            cts: Some(guests(150 + n * 100, 1 + n % 3, "ct", &mut self.rng)),
        }
    }

    fn slow(&self) -> Slow {
        let now_s = wire::now_ms() / 1000;
        Slow {
            snapshots: Some(Snapshots {
                total: 24,
                datasets: vec![DatasetSnapshots {
                    dataset: "rpool/data/vm-100-disk-0".into(),
                    count: 24,
                    oldest: now_s - 86_400 * 7,
                    newest: now_s - 3600,
                    used: 3 << 30,
                }],
                recent: vec![],
                truncated: false,
            }),
            versions: Some(Versions {
                pve_manager: Some("8.3.2".into()),
                kernel: Some("6.8.12-5-pve".into()),
                zfs: Some("2.2.6-pve1".into()),
            }),
        }
    }
}

impl Source for SimHost {
    async fn collect(&mut self, tier: Kind, _timeout: Duration) -> (TierData, Errors) {
        let _ = &self.host;
        let data = match tier {
            Kind::Medium => TierData::Medium(self.medium()),
            Kind::Slow => TierData::Slow(self.slow()),
            Kind::Fast | Kind::Status => TierData::Fast(self.fast()),
        };
        (data, Errors::new())
    }
}
