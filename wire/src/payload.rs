//! Payloads of the `fast`, `medium` and `slow` tiers.
//!
//! Every payload is a [`Payload`] envelope: schema version, host id, timestamp and a
//! per-boot sequence number (so that a replay is recognised and stored once), plus the
//! tier's data. Sizes are bytes, times are Unix seconds unless a field says `_ms`, and
//! percentages are 0–100. A collector that failed leaves its fields empty and names its
//! error in `errors`; the other sections still arrive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::value::{GuestStatus, PoolState, ScanFunction, ScanState};

/// Bump when a payload changes incompatibly; the recorder refuses versions it doesn't know.
pub const SCHEMA_VERSION: u32 = 1;

/// The envelope of every tier payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload<T> {
    /// Always [`SCHEMA_VERSION`] when sent by this version.
    pub schema: u32,
    /// Must equal the host id in the topic.
    pub host_id: String,
    /// When the data was collected, Unix milliseconds. Replays keep their original time.
    pub ts_ms: i64,
    /// Random id of this agent run; `seq` restarts at 1 with each new `boot_id`.
    pub boot_id: String,
    /// Sequence number, per tier and `boot_id`.
    pub seq: u64,
    /// The agent's version, for the hosts table.
    pub agent_version: String,
    /// Payloads the agent's outage buffer had to drop (oldest first) since the last report.
    #[serde(default)]
    pub dropped: u64,
    /// Collector name to error message, for every collector that failed this cycle.
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
    pub data: T,
}

impl<T> Payload<T> {
    /// The same envelope around other data.
    pub fn with_data<U>(self, data: U) -> Payload<U> {
        Payload {
            schema: self.schema,
            host_id: self.host_id,
            ts_ms: self.ts_ms,
            boot_id: self.boot_id,
            seq: self.seq,
            agent_version: self.agent_version,
            dropped: self.dropped,
            errors: self.errors,
            data,
        }
    }
}

pub type FastPayload = Payload<Fast>;
pub type MediumPayload = Payload<Medium>;
pub type SlowPayload = Payload<Slow>;

/// Fast tier: load, CPU, memory, swap, uptime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fast {
    /// Logical CPUs.
    pub cpus: Option<u32>,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    /// Busy CPU since the previous sample, from `/proc/stat` deltas (None on the first cycle).
    pub cpu_pct: Option<f64>,
    pub iowait_pct: Option<f64>,
    pub mem_total: Option<u64>,
    /// Used memory as the kernel reports it, which counts the ZFS ARC as used.
    pub mem_used: Option<u64>,
    /// Current ZFS ARC size; `mem_used - arc_bytes` is memory used by everything else.
    pub arc_bytes: Option<u64>,
    pub swap_total: Option<u64>,
    pub swap_used: Option<u64>,
    pub rootfs_total: Option<u64>,
    pub rootfs_used: Option<u64>,
    pub uptime_s: Option<u64>,
}

impl Fast {
    /// Memory used without the ZFS ARC, which the kernel would give back under pressure.
    pub fn mem_used_without_arc(&self) -> Option<u64> {
        Some(self.mem_used?.saturating_sub(self.arc_bytes.unwrap_or(0)))
    }
}

/// Medium tier: ZFS pools, Proxmox storages, VMs and containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Medium {
    pub pools: Option<Vec<Pool>>,
    pub storages: Option<Vec<Storage>>,
    pub vms: Option<Vec<Guest>>,
    pub cts: Option<Vec<Guest>>,
}

/// One ZFS pool, from `zpool status` and `zpool list -Hp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    /// `ONLINE`, `DEGRADED`, `FAULTED`, `OFFLINE`, `UNAVAIL`, `REMOVED` or `SUSPENDED`.
    pub state: PoolState,
    /// The `status:` text of `zpool status`, when there is one.
    pub status: Option<String>,
    /// The `action:` text of `zpool status`, when there is one.
    pub action: Option<String>,
    pub size: Option<u64>,
    pub alloc: Option<u64>,
    pub free: Option<u64>,
    pub frag_pct: Option<f64>,
    pub cap_pct: Option<f64>,
    pub dedup_ratio: Option<f64>,
    pub vdevs: Vec<Vdev>,
    pub scan: Option<Scan>,
    /// Data errors (`errors:` line); 0 for "No known data errors".
    pub error_count: u64,
}

impl Pool {
    /// Read, write and checksum errors of all its vdevs together.
    pub fn vdev_errors(&self) -> u64 {
        self.vdevs.iter().map(Vdev::errors).sum()
    }
}

/// One line of the vdev tree of `zpool status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vdev {
    pub name: String,
    /// Nesting below the pool: 0 for top-level vdevs (mirror-0, raidz1-0, a single disk).
    pub depth: u8,
    /// As a pool's; empty for the header of a class (`logs`, `cache`, ...).
    pub state: PoolState,
    pub read_errors: u64,
    pub write_errors: u64,
    pub checksum_errors: u64,
}

impl Vdev {
    /// Read, write and checksum errors together.
    pub fn errors(&self) -> u64 {
        self.read_errors + self.write_errors + self.checksum_errors
    }
}

/// The last or current scrub or resilver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scan {
    /// `SCRUB` or `RESILVER`.
    pub function: ScanFunction,
    /// `SCANNING`, `FINISHED` or `CANCELED`.
    pub state: ScanState,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub errors: u64,
}

/// One Proxmox storage, from `pvesh get /nodes/<node>/storage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    pub name: String,
    /// `dir`, `zfspool`, `lvmthin`, `nfs`, `pbs`, ...
    pub kind: String,
    pub active: bool,
    pub enabled: bool,
    pub shared: bool,
    pub content: String,
    pub total: Option<u64>,
    pub used: Option<u64>,
    pub avail: Option<u64>,
}

/// One VM or container, from `/nodes/<node>/qemu` or `/nodes/<node>/lxc`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Guest {
    pub vmid: u32,
    pub name: String,
    /// `running`, `stopped`, `paused`, ...
    pub status: GuestStatus,
    /// CPU use as a fraction of `cpus` (0.0–1.0 per core, as Proxmox reports it).
    pub cpu: Option<f64>,
    pub cpus: Option<f64>,
    pub mem: Option<u64>,
    pub maxmem: Option<u64>,
    pub disk: Option<u64>,
    pub maxdisk: Option<u64>,
    pub uptime_s: Option<u64>,
    pub tags: Vec<String>,
    /// `backup`, `migrate`, `snapshot`, ... while a lock is held.
    pub lock: Option<String>,
}

/// Slow tier: snapshots, versions and other slow-changing facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slow {
    pub snapshots: Option<Snapshots>,
    pub versions: Option<Versions>,
}

/// Snapshots summarised per dataset, with the newest ones listed (capped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshots {
    pub total: u64,
    pub datasets: Vec<DatasetSnapshots>,
    /// The newest snapshots, at most [`Snapshots::LIST_CAP`].
    pub recent: Vec<Snapshot>,
    /// True when `recent` was cut to the cap.
    pub truncated: bool,
}

impl Snapshots {
    pub const LIST_CAP: usize = 200;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetSnapshots {
    pub dataset: String,
    pub count: u64,
    pub oldest: i64,
    pub newest: i64,
    pub used: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `dataset@snapshot`.
    pub name: String,
    pub used: u64,
    pub creation: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub pve_manager: Option<String>,
    pub kernel: Option<String>,
    pub zfs: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope<T>(data: T) -> Payload<T> {
        Payload {
            schema: SCHEMA_VERSION,
            host_id: "pve1".into(),
            ts_ms: 1_764_000_000_000,
            boot_id: "b1".into(),
            seq: 7,
            agent_version: "0.1.0".into(),
            dropped: 0,
            errors: BTreeMap::from([("arcstats".to_string(), "not found".to_string())]),
            data,
        }
    }

    fn round_trip<T>(p: &Payload<T>)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_string(p).unwrap();
        let back: Payload<T> = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, p);
    }

    #[test]
    fn fast_round_trips() {
        round_trip(&envelope(Fast {
            cpus: Some(16),
            load1: Some(0.5),
            load5: Some(0.25),
            load15: Some(0.125),
            cpu_pct: Some(12.5),
            mem_total: Some(64 << 30),
            mem_used: Some(40 << 30),
            arc_bytes: Some(16 << 30),
            ..Fast::default()
        }));
    }

    #[test]
    fn medium_and_slow_round_trip() {
        round_trip(&envelope(Medium {
            pools: Some(vec![Pool {
                name: "rpool".into(),
                state: "DEGRADED".into(),
                vdevs: vec![Vdev { name: "mirror-0".into(), state: "DEGRADED".into(), ..Vdev::default() }],
                scan: Some(Scan { function: "SCRUB".into(), state: "FINISHED".into(), ..Scan::default() }),
                ..Pool::default()
            }]),
            storages: Some(vec![Storage { name: "local".into(), ..Storage::default() }]),
            vms: Some(vec![Guest { vmid: 100, tags: vec!["prod".into()], ..Guest::default() }]),
            cts: None,
        }));
        round_trip(&envelope(Slow {
            snapshots: Some(Snapshots { total: 1, ..Snapshots::default() }),
            versions: Some(Versions { kernel: Some("6.8.12-4-pve".into()), ..Versions::default() }),
        }));
    }

    #[test]
    fn arc_is_not_counted_as_used_memory() {
        let fast = Fast { mem_used: Some(40), arc_bytes: Some(16), ..Fast::default() };
        assert_eq!(fast.mem_used_without_arc(), Some(24));
        assert_eq!(Fast::default().mem_used_without_arc(), None);
    }

    #[test]
    fn missing_optional_envelope_fields_default() {
        let json = r#"{"schema":1,"host_id":"h","ts_ms":1,"boot_id":"b","seq":1,
            "agent_version":"x","data":{}}"#;
        let p: FastPayload = serde_json::from_str(json).unwrap();
        assert_eq!(p.dropped, 0);
        assert!(p.errors.is_empty());
        assert_eq!(p.data, Fast::default());
    }
}
