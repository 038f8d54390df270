//! The fleet's series: per host, pool and storage (and per guest with `METRICS_GUESTS=1`),
//! from the states the recorder already holds (no payload is parsed per request).
//!
//! Label sets stay bounded by the fleet: `host`, `pool`, `storage`, and a fixed set of
//! `status`, `state`, `kind` and `type` values. A host's measured figures are exported
//! only while its agent is connected: Prometheus then shows a gap, not a flat line of stale
//! values; its presence, status and last-seen time are always there.

use std::sync::Arc;

use recorder::state::HostState;
use recorder::status::Level;
use wire::{Fast, Guest, GuestStatus, Medium, Pool, PoolState, Storage};

use super::text::Text;

/// One host with what the page needs of it, worked out once.
pub(super) struct Host {
    pub state: Arc<HostState>,
    pub level: Level,
    /// What the page reads of the medium payload: its guests only with the per-guest
    /// series, so that 10,000 decoded payloads are never in memory at once.
    medium: Option<Medium>,
    /// (kind, guests, running guests) of VMs and containers.
    guest_counts: Option<[(&'static str, usize, usize); 2]>,
}

impl Host {
    /// Decodes the host's state once: its level, and the parts of its medium payload
    /// the page reads.
    pub fn new(state: Arc<HostState>, now_ms: i64, guests: bool) -> Host {
        let decoded = state.decoded();
        let level = decoded.health(now_ms).level;
        let mut medium = decoded.medium.map(|p| p.data);
        let guest_counts = medium.as_ref().map(|m| {
            kinds(m).map(|(kind, g)| (kind, g.len(), g.iter().filter(|g| g.status == GuestStatus::Running).count()))
        });
        if let Some(m) = medium.as_mut() {
            (m.backups, m.operator_stops) = (None, None);
            if !guests {
                (m.vms, m.cts) = (None, None);
            }
        }
        Host { state, level, medium, guest_counts }
    }

    /// The latest fast figures, while the agent is connected.
    fn fast(&self) -> Option<&Fast> {
        self.state.online.then_some(())?;
        self.state.fast.as_ref().map(|p| &p.data)
    }

    fn medium(&self) -> Option<&Medium> {
        self.state.online.then_some(())?;
        self.medium.as_ref()
    }

    fn id(&self) -> &str {
        &self.state.host_id
    }
}

/// A per-host gauge read from the fast tier.
struct FastGauge {
    name: &'static str,
    help: &'static str,
    value: fn(&Fast) -> Option<f64>,
}

fn bytes(v: Option<u64>) -> Option<f64> {
    v.map(|b| b as f64)
}

fn ratio(pct: Option<f64>) -> Option<f64> {
    pct.map(|p| p / 100.0)
}

const FAST: &[FastGauge] = &[
    FastGauge { name: "pmon_host_cpus", help: "Logical CPUs.", value: |f| f.cpus.map(f64::from) },
    FastGauge { name: "pmon_host_load1", help: "Load average over 1 minute.", value: |f| f.load1 },
    FastGauge { name: "pmon_host_load5", help: "Load average over 5 minutes.", value: |f| f.load5 },
    FastGauge { name: "pmon_host_load15", help: "Load average over 15 minutes.", value: |f| f.load15 },
    FastGauge {
        name: "pmon_host_cpu_busy_ratio",
        help: "Busy CPU between the last two samples (0-1).",
        value: |f| ratio(f.cpu_pct),
    },
    FastGauge {
        name: "pmon_host_cpu_iowait_ratio",
        help: "CPU waiting for I/O between the last two samples (0-1).",
        value: |f| ratio(f.iowait_pct),
    },
    FastGauge { name: "pmon_host_memory_total_bytes", help: "Physical memory.", value: |f| bytes(f.mem_total) },
    FastGauge {
        name: "pmon_host_memory_used_bytes",
        help: "Used memory as the kernel reports it, the ZFS ARC included.",
        value: |f| bytes(f.mem_used),
    },
    FastGauge {
        name: "pmon_host_memory_used_without_arc_bytes",
        help: "Used memory without the ZFS ARC, which the kernel gives back under pressure.",
        value: |f| bytes(f.mem_used_without_arc()),
    },
    FastGauge { name: "pmon_host_arc_size_bytes", help: "Current size of the ZFS ARC.", value: |f| bytes(f.arc_bytes) },
    FastGauge { name: "pmon_host_swap_total_bytes", help: "Swap space.", value: |f| bytes(f.swap_total) },
    FastGauge { name: "pmon_host_swap_used_bytes", help: "Used swap space.", value: |f| bytes(f.swap_used) },
    FastGauge {
        name: "pmon_host_rootfs_size_bytes",
        help: "Size of the root filesystem.",
        value: |f| bytes(f.rootfs_total),
    },
    FastGauge {
        name: "pmon_host_rootfs_used_bytes",
        help: "Used space on the root filesystem.",
        value: |f| bytes(f.rootfs_used),
    },
    FastGauge { name: "pmon_host_uptime_seconds", help: "Time since the host booted.", value: |f| bytes(f.uptime_s) },
];

/// The pool states of the one-hot `pmon_pool_health`; any other is `OTHER`.
const POOL_STATES: [PoolState; 7] = [
    PoolState::Online,
    PoolState::Degraded,
    PoolState::Faulted,
    PoolState::Offline,
    PoolState::Unavail,
    PoolState::Removed,
    PoolState::Suspended,
];

/// A per-pool gauge.
struct PoolGauge {
    name: &'static str,
    help: &'static str,
    value: fn(&Pool) -> Option<f64>,
}

const POOL: &[PoolGauge] = &[
    PoolGauge { name: "pmon_pool_size_bytes", help: "Size of the ZFS pool.", value: |p| bytes(p.size) },
    PoolGauge { name: "pmon_pool_allocated_bytes", help: "Allocated space in the pool.", value: |p| bytes(p.alloc) },
    PoolGauge { name: "pmon_pool_free_bytes", help: "Free space in the pool.", value: |p| bytes(p.free) },
    PoolGauge {
        name: "pmon_pool_capacity_ratio",
        help: "Allocated share of the pool (0-1), as zpool list's CAP.",
        value: |p| ratio(p.cap_pct),
    },
    PoolGauge {
        name: "pmon_pool_fragmentation_ratio",
        help: "Free space fragmentation of the pool (0-1), as zpool list's FRAG.",
        value: |p| ratio(p.frag_pct),
    },
    PoolGauge {
        name: "pmon_pool_data_errors",
        help: "Known data errors in the pool (zpool status's errors: line).",
        value: |p| Some(p.error_count as f64),
    },
];

/// A per-storage gauge.
struct StorageGauge {
    name: &'static str,
    help: &'static str,
    value: fn(&Storage) -> Option<f64>,
}

const STORAGE: &[StorageGauge] = &[
    StorageGauge { name: "pmon_storage_size_bytes", help: "Size of the Proxmox storage.", value: |s| bytes(s.total) },
    StorageGauge { name: "pmon_storage_used_bytes", help: "Used space on the storage.", value: |s| bytes(s.used) },
    StorageGauge {
        name: "pmon_storage_active",
        help: "Whether Proxmox reports the storage active (1) or not (0).",
        value: |s| Some(if s.active { 1.0 } else { 0.0 }),
    },
];

/// Every fleet series of `hosts`, with the per-guest ones when `guests` is set.
pub(super) fn write(text: &mut Text, hosts: &[Host], guests: bool) {
    write_hosts(text, hosts);
    write_pools(text, hosts);
    write_storages(text, hosts);
    write_guest_counts(text, hosts);
    if guests {
        write_guests(text, hosts);
    }
}

fn write_hosts(text: &mut Text, hosts: &[Host]) {
    let name = "pmon_host_up";
    text.family(name, "gauge", "Whether the host's agent is connected (1) or not (0).");
    for h in hosts {
        text.sample(name, &[("host", h.id())], h.state.online);
    }
    let name = "pmon_host_status";
    text.family(name, "gauge", "The host's status: 1 for the status it has, 0 for the others.");
    for h in hosts {
        for level in Level::ALL {
            text.sample(name, &[("host", h.id()), ("status", level.as_str())], h.level == level);
        }
    }
    let name = "pmon_host_last_seen_timestamp_seconds";
    text.family(name, "gauge", "When the host last sent anything, in seconds since the epoch.");
    for h in hosts {
        if let Some(ms) = h.state.last_seen_ms {
            text.sample(name, &[("host", h.id())], ms as f64 / 1000.0);
        }
    }
    let name = "pmon_host_agent_info";
    text.family(name, "gauge", "The agent's version, as a label; always 1.");
    for h in hosts {
        if let Some(version) = &h.state.agent_version {
            text.sample(name, &[("host", h.id()), ("version", version)], 1u64);
        }
    }
    for gauge in FAST {
        text.family(gauge.name, "gauge", gauge.help);
        for h in hosts {
            if let Some(v) = h.fast().and_then(gauge.value) {
                text.sample(gauge.name, &[("host", h.id())], v);
            }
        }
    }
}

/// Every pool of every connected host, with its host.
fn pools(hosts: &[Host]) -> impl Iterator<Item = (&str, &Pool)> {
    hosts.iter().flat_map(|h| h.medium().and_then(|m| m.pools.as_ref()).into_iter().flatten().map(|p| (h.id(), p)))
}

fn write_pools(text: &mut Text, hosts: &[Host]) {
    let name = "pmon_pool_health";
    text.family(
        name,
        "gauge",
        "The pool's state: 1 for the state it is in, 0 for the others (OTHER: a state this version does not know).",
    );
    for (host, pool) in pools(hosts) {
        let known = POOL_STATES.contains(&pool.state);
        for state in POOL_STATES.iter().map(PoolState::as_str).chain(["OTHER"]) {
            let is = if known { pool.state.as_str() == state } else { state == "OTHER" };
            text.sample(name, &[("host", host), ("pool", &pool.name), ("state", state)], is);
        }
    }
    for gauge in POOL {
        text.family(gauge.name, "gauge", gauge.help);
        for (host, pool) in pools(hosts) {
            if let Some(v) = (gauge.value)(pool) {
                text.sample(gauge.name, &[("host", host), ("pool", &pool.name)], v);
            }
        }
    }
    let name = "pmon_pool_vdev_errors";
    text.family(name, "gauge", "Read, write and checksum errors of the pool's vdevs together, by type.");
    for (host, pool) in pools(hosts) {
        for (kind, n) in ["read", "write", "checksum"].into_iter().zip(pool.vdev_errors_by_type()) {
            text.sample(name, &[("host", host), ("pool", &pool.name), ("type", kind)], n);
        }
    }
}

fn write_storages(text: &mut Text, hosts: &[Host]) {
    let storages = || {
        hosts
            .iter()
            .flat_map(|h| h.medium().and_then(|m| m.storages.as_ref()).into_iter().flatten().map(move |s| (h.id(), s)))
    };
    for gauge in STORAGE {
        text.family(gauge.name, "gauge", gauge.help);
        for (host, storage) in storages() {
            if let Some(v) = (gauge.value)(storage) {
                text.sample(gauge.name, &[("host", host), ("storage", &storage.name)], v);
            }
        }
    }
}

/// A host's VMs (`vm`) and containers (`ct`).
fn kinds(medium: &Medium) -> [(&'static str, &[Guest]); 2] {
    [("vm", medium.vms.as_deref().unwrap_or_default()), ("ct", medium.cts.as_deref().unwrap_or_default())]
}

fn write_guest_counts(text: &mut Text, hosts: &[Host]) {
    for (name, help, running_only) in [
        ("pmon_host_guests", "VMs (kind=vm) and containers (kind=ct) on the host.", false),
        ("pmon_host_guests_running", "Running VMs (kind=vm) and containers (kind=ct) on the host.", true),
    ] {
        text.family(name, "gauge", help);
        for h in hosts {
            // As every medium series: while the agent is connected.
            let Some(counts) = h.guest_counts.as_ref().filter(|_| h.state.online) else { continue };
            for &(kind, all, running) in counts {
                let n = if running_only { running } else { all };
                text.sample(name, &[("host", h.id()), ("kind", kind)], n as u64);
            }
        }
    }
}

/// A per-guest gauge (`METRICS_GUESTS=1`).
struct GuestGauge {
    name: &'static str,
    help: &'static str,
    value: fn(&Guest) -> Option<f64>,
}

const GUEST: &[GuestGauge] = &[
    GuestGauge {
        name: "pmon_guest_running",
        help: "Whether the VM or container runs (1) or not (0).",
        value: |g| Some(if g.status == GuestStatus::Running { 1.0 } else { 0.0 }),
    },
    GuestGauge {
        name: "pmon_guest_cpu_ratio",
        help: "CPU use of the guest as Proxmox reports it (0-1 of its CPUs).",
        value: |g| g.cpu,
    },
    GuestGauge { name: "pmon_guest_cpus", help: "CPUs given to the guest.", value: |g| g.cpus },
    GuestGauge { name: "pmon_guest_memory_used_bytes", help: "Memory the guest uses.", value: |g| bytes(g.mem) },
    GuestGauge { name: "pmon_guest_memory_max_bytes", help: "Memory given to the guest.", value: |g| bytes(g.maxmem) },
    GuestGauge { name: "pmon_guest_disk_max_bytes", help: "Disk size of the guest.", value: |g| bytes(g.maxdisk) },
    GuestGauge {
        name: "pmon_guest_uptime_seconds",
        help: "Time since the guest started.",
        value: |g| bytes(g.uptime_s),
    },
];

fn write_guests(text: &mut Text, hosts: &[Host]) {
    let guests = || {
        hosts.iter().flat_map(|h| {
            h.medium()
                .into_iter()
                .flat_map(kinds)
                .flat_map(move |(kind, guests)| guests.iter().map(move |g| (h.id(), kind, g.vmid.to_string(), g)))
        })
    };
    for gauge in GUEST {
        text.family(gauge.name, "gauge", gauge.help);
        for (host, kind, vmid, guest) in guests() {
            if let Some(v) = (gauge.value)(guest) {
                text.sample(gauge.name, &[("host", host), ("kind", kind), ("vmid", &vmid), ("name", &guest.name)], v);
            }
        }
    }
}
