//! Payloads of the `fast`, `medium` and `slow` tiers.
//!
//! Every payload is a [`Payload`] envelope: schema version, host id, timestamp and a
//! per-boot sequence number (so that a replay is recognised and stored once), plus the
//! tier's data. Sizes are bytes, times are Unix seconds unless a field says `_ms`, and
//! percentages are 0–100. A collector that failed leaves its fields empty and names its
//! error in `errors`; the other sections still arrive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backups::{Backups, OperatorStop};
use crate::signals::{Disk, DiskIo, NetIf, Temp};
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
    /// Physical interfaces, bonds and bridges; None on an agent's first cycle (rates need two
    /// samples) and from older agents.
    #[serde(default)]
    pub net: Option<Vec<NetIf>>,
    /// Whole disks and the zvols together; None on the first cycle.
    #[serde(default)]
    pub diskio: Option<Vec<DiskIo>>,
    /// CPU packages and NVMe controllers; None on a host without such sensors.
    #[serde(default)]
    pub temps: Option<Vec<Temp>>,
}

impl Fast {
    /// Memory used without the ZFS ARC, which the kernel would give back under pressure.
    pub fn mem_used_without_arc(&self) -> Option<u64> {
        Some(self.mem_used?.saturating_sub(self.arc_bytes.unwrap_or(0)))
    }
}

/// Medium tier: ZFS pools, Proxmox storages, VMs and containers, backups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Medium {
    pub pools: Option<Vec<Pool>>,
    pub storages: Option<Vec<Storage>>,
    pub vms: Option<Vec<Guest>>,
    pub cts: Option<Vec<Guest>>,
    /// Backup jobs and each guest's last backup; None when they could not be read, and
    /// from older agents.
    #[serde(default)]
    pub backups: Option<Backups>,
    /// Stops and shutdowns an operator ran lately, so a guest they stopped is not reported
    /// as stopped unexpectedly; None when the task list could not be read.
    #[serde(default)]
    pub operator_stops: Option<Vec<OperatorStop>>,
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
    /// Saturating, like every error sum here: counts come from an agent, and a wrapped sum
    /// of huge counts would read as few errors (or panic a debug build).
    pub fn vdev_errors(&self) -> u64 {
        self.vdevs.iter().map(Vdev::errors).fold(0, u64::saturating_add)
    }

    /// Read, write and checksum errors of all its vdevs, each type on its own.
    pub fn vdev_errors_by_type(&self) -> [u64; 3] {
        let sum = |f: fn(&Vdev) -> u64| self.vdevs.iter().map(f).fold(0, u64::saturating_add);
        [sum(|v| v.read_errors), sum(|v| v.write_errors), sum(|v| v.checksum_errors)]
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
        self.read_errors.saturating_add(self.write_errors).saturating_add(self.checksum_errors)
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
    /// Every disk `smartctl --scan-open` finds, with its SMART data.
    #[serde(default)]
    pub disks: Option<Vec<Disk>>,
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
            backups: Some(crate::Backups {
                jobs: vec![crate::BackupJob {
                    id: "backup-1".into(),
                    schedule: "21:00".into(),
                    all: true,
                    ..Default::default()
                }],
                guests: vec![crate::GuestBackup {
                    vmid: 100,
                    end: 5,
                    ok: false,
                    error: Some("x".into()),
                    last_ok: Some(1),
                }],
                since: 1,
            }),
            operator_stops: Some(vec![crate::OperatorStop {
                vmid: 100,
                task: "qmstop".into(),
                user: "root@pam".into(),
                end: 4,
            }]),
        }));
        round_trip(&envelope(Slow {
            snapshots: Some(Snapshots { total: 1, ..Snapshots::default() }),
            versions: Some(Versions { kernel: Some("6.8.12-4-pve".into()), ..Versions::default() }),
            disks: Some(vec![crate::Disk {
                name: "sda".into(),
                ids: vec!["ata-X_S1".into()],
                smart_passed: Some(true),
                ata: Some(crate::AtaHealth { reallocated: Some(3), ..Default::default() }),
                ..Default::default()
            }]),
        }));
    }

    /// The backups section of a node with 100 guests in 4 jobs, one failed: the size that
    /// topics.md states.
    #[test]
    fn a_backups_section_of_100_guests_stays_under_8_kib() {
        use crate::{BackupJob, Backups, GuestBackup};
        let end = 1_789_910_600;
        let mut guests: Vec<GuestBackup> =
            (100..200).map(|vmid| GuestBackup { vmid, end, ok: true, error: None, last_ok: None }).collect();
        guests[7] = GuestBackup {
            vmid: 107,
            end,
            ok: false,
            error: Some("VM 107 qmp command 'backup' failed - got timeout".into()),
            last_ok: Some(end - 86_400),
        };
        let job = |id: &str, vmids: Vec<u32>| BackupJob {
            id: id.into(),
            schedule: "mon..fri 21:00".into(),
            vmids,
            ..BackupJob::default()
        };
        let backups = Backups {
            jobs: vec![
                job("backup-4d0c6f1a-2b9e", (100..130).collect()),
                job("backup-9a1f3e7c-5d2b", (130..160).collect()),
                job("backup-1b8e2d4f-7a6c", (160..200).collect()),
                BackupJob {
                    id: "backup-all".into(),
                    schedule: "sat 02:00".into(),
                    all: true,
                    exclude: vec![199],
                    ..Default::default()
                },
            ],
            guests,
            since: end - 864_000,
        };
        let len = serde_json::to_string(&backups).unwrap().len();
        // Every guest carries `"error":null,"last_ok":null` (held payloads need every field).
        assert!(len < 8 * 1024, "{len} bytes");
        eprintln!("backups section of 100 guests: {len} bytes");
    }

    /// A big host's fast payload: 16 cores in two packages, 8 disks and the zvols, 6
    /// interfaces, 2 NVMe sensors, with large values everywhere.
    fn big_fast() -> Fast {
        use crate::{DiskIo, NetIf, NetKind, Temp, TempKind};
        let net = ["eno1", "eno2", "enp65s0f0", "enp65s0f1", "bond0", "vmbr0"]
            .iter()
            .map(|n| NetIf {
                name: (*n).into(),
                kind: NetKind::Physical,
                rx_bytes: 1_234_567_890,
                tx_bytes: 1_234_567_890,
                rx_packets: 1_234_567,
                tx_packets: 1_234_567,
                rx_errors: 12.34,
                tx_errors: 0.03,
                rx_drops: 123.45,
                tx_drops: 0.0,
            })
            .collect();
        let diskio = ["sda", "sdb", "sdc", "sdd", "sde", "sdf", "nvme0n1", "nvme1n1", DiskIo::ZVOLS]
            .iter()
            .map(|n| DiskIo {
                name: (*n).into(),
                read_bytes: 1_234_567_890,
                write_bytes: 1_234_567_890,
                reads: 12_345.6,
                writes: 12_345.6,
                busy_pct: 99.9,
            })
            .collect();
        let temp = |name: &str, kind, cores| Temp { name: name.into(), kind, celsius: 65.5, cores_max: cores };
        Fast {
            cpus: Some(64),
            load1: Some(12.34),
            load5: Some(12.34),
            load15: Some(12.34),
            cpu_pct: Some(12.345678901234),
            iowait_pct: Some(1.2345678901234),
            mem_total: Some(540_000_000_000),
            mem_used: Some(500_000_000_000),
            arc_bytes: Some(200_000_000_000),
            swap_total: Some(8_589_930_496),
            swap_used: Some(8_000_000_000),
            rootfs_total: Some(100_861_726_720),
            rootfs_used: Some(12_315_713_536),
            uptime_s: Some(123_456_789),
            net: Some(net),
            diskio: Some(diskio),
            temps: Some(vec![
                temp("cpu0", TempKind::Cpu, Some(71.5)),
                temp("cpu1", TempKind::Cpu, Some(71.5)),
                temp("nvme0", TempKind::Nvme, None),
                temp("nvme1", TempKind::Nvme, None),
            ]),
        }
    }

    #[test]
    fn a_big_hosts_fast_payload_stays_under_4_kib() {
        let mut p = envelope(big_fast());
        p.host_id = "pve-rack12-node-0042.example.com".into();
        p.errors.clear();
        round_trip(&p);
        let size = serde_json::to_vec(&p).unwrap().len();
        // topics.md states this size; update it when the payload grows.
        assert!(size < 4096, "{size} bytes");
        assert!((2_800..3_000).contains(&size), "{size} bytes: update topics.md");
    }

    #[test]
    fn old_payloads_have_no_signals_and_new_fields_are_sent_as_null() {
        // Sent every time, as null: the recorder holds payloads encoded with postcard,
        // which is not self-describing (wire::held); older agents' JSON still parses.
        let json = serde_json::to_string(&Fast::default()).unwrap();
        assert!(json.contains(r#""net":null"#) && json.contains(r#""temps":null"#), "{json}");
        let slow: Slow = serde_json::from_str(r#"{"snapshots":null,"versions":null}"#).unwrap();
        assert_eq!(slow.disks, None);
    }

    #[test]
    fn error_sums_saturate_rather_than_wrap() {
        // Issue 15: u64::MAX + 1 read errors wrapped to 0 (or panicked a debug build).
        let v = |read_errors| Vdev { read_errors, write_errors: 1, ..Vdev::default() };
        let pool = Pool { vdevs: vec![v(u64::MAX), v(5)], ..Pool::default() };
        assert_eq!(pool.vdevs[0].errors(), u64::MAX);
        assert_eq!(pool.vdev_errors(), u64::MAX);
        assert_eq!(pool.vdev_errors_by_type(), [u64::MAX, 2, 0]);
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
