//! A simulated host's values as a function of time: the same function answers the live
//! agent and the back-filled history, so the charts run on into "now" without a jump.
//!
//! Deterministic per host (seeded hashes, no state): a daily and weekly cycle plus smooth
//! noise for CPU, load and guests; memory drifting slowly; the ARC filling after each
//! reboot; root filesystem and pools growing. Special events (the degraded pool, the
//! flaky host's outages) sit at fixed offsets before `anchor_ms`, the demo's start.

use std::f64::consts::PI;

use wire::{
    AtaHealth, DatasetSnapshots, Disk, DiskIo, Fast, Guest, Medium, NetIf, NetKind, NvmeHealth, Pool, Scan, Slow,
    Snapshots, Storage, Temp, TempKind, Vdev, Versions,
};

use super::fleet::{self, GuestSpec, HostSpec, Role, DEGRADED, FLAKY};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
const GIB: f64 = (1u64 << 30) as f64;

/// Where the flaky host's history has no samples: (start before the anchor, length).
const OUTAGES: [(i64, i64); 7] = [
    (3 * HOUR + 20 * MIN, 25 * MIN),
    (20 * HOUR, 50 * MIN),
    (4 * DAY + 2 * HOUR, 6 * HOUR),
    (12 * DAY, 2 * HOUR),
    (19 * DAY + 5 * HOUR, 9 * HOUR),
    (45 * DAY, DAY),
    (200 * DAY, 3 * DAY),
];
/// When the degraded host's disk started failing, and when its errors grew again.
const DEGRADED_SINCE: i64 = 62 * HOUR;
const ERRORS_GREW: i64 = 55 * HOUR;

/// One simulated host.
pub struct HostModel {
    pub index: usize,
    seed: u64,
    spec: &'static HostSpec,
    guests: &'static [GuestSpec],
    first_vmid: u32,
    anchor_ms: i64,
}

/// A hash of `key` under `seed`, in [0, 1).
fn unit(seed: u64, key: u64) -> f64 {
    let mut z = seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// Smooth noise in [-1, 1] that changes over about `period` ms.
fn wave(seed: u64, t: i64, period: i64) -> f64 {
    let k = t.div_euclid(period);
    let f = t.rem_euclid(period) as f64 / period as f64;
    let (a, b) = (unit(seed, k as u64), unit(seed, (k + 1) as u64));
    let w = (1.0 - (f * PI).cos()) / 2.0;
    (a + (b - a) * w) * 2.0 - 1.0
}

/// Office hours in UTC: 0 at 4:00, 1 at 16:00, lower at weekends.
fn daily(t: i64) -> f64 {
    let hour = t.rem_euclid(DAY) as f64 / HOUR as f64;
    let curve = 0.5 - 0.5 * (2.0 * PI * (hour - 4.0) / 24.0).cos();
    // 1970-01-01 was a Thursday: day 0 + 3 is Monday = 0.
    let weekday = (t.div_euclid(DAY) + 3).rem_euclid(7);
    if weekday >= 5 {
        curve * 0.4
    } else {
        curve
    }
}

fn gib(v: f64) -> u64 {
    (v.max(0.0) * GIB) as u64
}

impl HostModel {
    pub fn new(index: usize, anchor_ms: i64) -> HostModel {
        let (guests, first_vmid) = fleet::guests_of(index);
        HostModel {
            index,
            seed: 0xDE30_0000 + index as u64 * 7919,
            spec: &fleet::SPECS[index],
            guests,
            first_vmid,
            anchor_ms,
        }
    }

    pub fn name(&self) -> String {
        format!("pve-{:02}", self.index + 1)
    }

    fn key(&self, what: u64) -> u64 {
        self.seed.wrapping_mul(31).wrapping_add(what)
    }

    /// The last boot at or before `t`: every 40 to 90 days.
    fn boot_ms(&self, t: i64) -> i64 {
        let period = (40 + (self.seed % 50) as i64) * DAY;
        let phase = self.anchor_ms - (3 + self.index as i64 * 4) * DAY - (self.seed % 600) as i64 * MIN;
        phase + (t - phase).div_euclid(period) * period
    }

    /// Whether the host was up and its agent sending at `t`: not while it rebooted, and
    /// not in the flaky host's outages.
    pub fn online_at(&self, t: i64) -> bool {
        if t - self.boot_ms(t) < 3 * MIN {
            return false;
        }
        self.index != FLAKY
            || !OUTAGES.iter().any(|(ago, len)| (self.anchor_ms - ago..self.anchor_ms - ago + len).contains(&t))
    }

    /// Days since a year before the anchor: what slow growth counts from.
    fn days(&self, t: i64) -> f64 {
        (t - (self.anchor_ms - 400 * DAY)) as f64 / DAY as f64
    }

    /// The nightly backup: from 01:00 plus a few minutes per host, about 4 minutes a guest.
    fn backup_slot(&self, t: i64) -> Option<usize> {
        let start = HOUR + self.index as i64 * 7 * MIN;
        let since = t.rem_euclid(DAY) - start;
        (since >= 0).then_some((since / (4 * MIN)) as usize).filter(|slot| *slot < self.guests.len())
    }

    fn guest_cpu(&self, g: usize, spec: &GuestSpec, t: i64) -> f64 {
        let seed = self.key(1000 + g as u64);
        let base = 0.02 + 0.1 * unit(seed, 1);
        let slow = wave(seed, t, 20 * MIN);
        let fast = wave(seed ^ 1, t, 90_000);
        let day = daily(t);
        let v = match spec.role {
            Role::Web => base + 0.35 * day * (1.0 + 0.3 * slow) + 0.04 * fast,
            Role::Db => base + 0.1 + 0.2 * day + 0.05 * slow + 0.03 * fast,
            Role::K8s => base + 0.25 + 0.2 * day + 0.08 * slow + 0.05 * fast,
            Role::Batch => base + 0.6 * (slow - 0.4).max(0.0) + 0.05 * fast.abs(),
            Role::Infra => base * 0.3 + 0.01 * fast.abs(),
            Role::Desktop => base + 0.6 * day.powi(2) + 0.05 * fast,
            Role::Off => 0.0,
        };
        let backup = if self.backup_slot(t) == Some(g) { 0.25 } else { 0.0 };
        (v + backup).clamp(0.0, 1.0)
    }

    fn guest_mem(&self, g: usize, spec: &GuestSpec, t: i64) -> u64 {
        let seed = self.key(2000 + g as u64);
        let level = match spec.role {
            Role::Db => 0.85 + 0.08 * unit(seed, 1),
            _ if spec.container => 0.2 + 0.4 * unit(seed, 1),
            _ => 0.45 + 0.35 * unit(seed, 1),
        };
        let drift = 0.05 * wave(seed, t, 3 * DAY) + 0.02 * wave(seed ^ 1, t, 30 * MIN);
        gib(spec.mem_gib as f64 * (level + drift).clamp(0.05, 0.98))
    }

    pub fn fast_at(&self, t: i64) -> Fast {
        let spec = self.spec;
        let cores = f64::from(spec.cores);
        let mut busy = 0.0;
        let mut guests_mem = 0u64;
        for (g, guest) in self.guests.iter().enumerate().filter(|(_, g)| g.role != Role::Off) {
            busy += self.guest_cpu(g, guest, t) * f64::from(guest.cores);
            // KVM and the container's cgroup cost a little beside what the guest uses.
            guests_mem += self.guest_mem(g, guest, t) + (1 << 28);
        }
        let util = (busy / cores + 0.01).min(1.0);
        let backup = self.backup_slot(t).is_some();
        let iowait = 0.3 + 0.3 * wave(self.key(1), t, 5 * MIN).abs() + if backup { 6.0 } else { 0.0 };
        let load_base = cores * util * 1.05 + if backup { 2.0 } else { 0.0 };
        let load1 = (load_base * (1.0 + 0.12 * wave(self.key(2), t, 40_000))).max(0.01);

        let total = spec.mem_gib << 30;
        let os = gib(1.5 + spec.mem_gib as f64 * 0.01 + 0.2 * wave(self.key(3), t, 2 * HOUR));
        let booted = t - self.boot_ms(t);
        let arc_max = spec.arc_share * total as f64;
        let arc_fill = 1.0 - (-(booted as f64) / (1.5 * DAY as f64)).exp();
        let arc = (arc_max * arc_fill * (0.95 + 0.04 * wave(self.key(4), t, HOUR))) as u64;
        let room = (total as f64 * 0.96) as u64;
        let arc = arc.min(room.saturating_sub(os + guests_mem)).max(64 << 20);
        let swap_total: u64 = if self.index % 4 == 1 { 0 } else { 8 << 30 };
        let swap = ((booted as f64 / DAY as f64) * (5.0 + (self.seed % 40) as f64) * (1u64 << 20) as f64) as u64;
        let (rootfs_total, rootfs) = self.rootfs(t);
        Fast {
            cpus: Some(spec.cores),
            load1: Some(load1),
            load5: Some(load_base.max(0.01)),
            load15: Some((0.6 * load_base + 0.4 * cores * (0.05 + 0.3 * daily(t - HOUR))).max(0.01)),
            cpu_pct: Some((util * 100.0).min(100.0)),
            iowait_pct: Some(iowait.min(100.0)),
            mem_total: Some(total),
            mem_used: Some((os + guests_mem + arc).min(total)),
            arc_bytes: Some(arc),
            swap_total: Some(swap_total),
            swap_used: Some(swap.min(swap_total / 2)),
            rootfs_total: Some(rootfs_total),
            rootfs_used: Some(rootfs),
            uptime_s: Some((booted / 1000) as u64),
            net: Some(self.net_at(util, backup, t)),
            diskio: Some(self.diskio_at(util, backup, t)),
            temps: Some(self.temps_at(util)),
        }
    }

    /// Traffic follows the guests' CPU; a backup pushes to the backup server.
    fn net_at(&self, util: f64, backup: bool, t: i64) -> Vec<NetIf> {
        let rx = (2e6 + 60e6 * util * (1.0 + 0.2 * wave(self.key(20), t, 10 * MIN))) as u64;
        let tx = (1e6 + 40e6 * util + if backup { 90e6 } else { 0.0 }) as u64;
        let nic = |name: &str, kind, share: f64| NetIf {
            name: name.into(),
            kind,
            rx_bytes: (rx as f64 * share) as u64,
            tx_bytes: (tx as f64 * share) as u64,
            rx_packets: (rx as f64 * share / 900.0) as u64,
            tx_packets: (tx as f64 * share / 1100.0) as u64,
            rx_errors: 0.0,
            tx_errors: 0.0,
            rx_drops: if self.index == FLAKY { 0.4 } else { 0.0 },
            tx_drops: 0.0,
        };
        vec![
            nic("nic0", NetKind::Physical, 1.0),
            nic("nic1", NetKind::Physical, 0.01),
            nic("vmbr0", NetKind::Bridge, 0.98),
        ]
    }

    /// The rpool mirror's two NVMe disks, the tank's six disks, and the zvols.
    fn diskio_at(&self, util: f64, backup: bool, t: i64) -> Vec<DiskIo> {
        let base = 5e6 + 80e6 * util + if backup { 150e6 } else { 0.0 };
        let io = |name: String, share: f64| {
            let read = base * share * (1.0 + 0.3 * wave(self.key(21), t, 7 * MIN));
            DiskIo {
                name,
                read_bytes: read as u64,
                write_bytes: (base * share * 0.6) as u64,
                reads: ((read / 32_768.0) * 10.0).round() / 10.0,
                writes: ((base * share * 0.6 / 16_384.0) * 10.0).round() / 10.0,
                busy_pct: ((5.0 + 60.0 * util * share) * 10.0).round() / 10.0,
            }
        };
        let mut out = vec![io("nvme0n1".into(), 0.5), io("nvme1n1".into(), 0.5)];
        if self.spec.tank_tib.is_some() {
            out.extend((0..6).map(|i| io(format!("sd{}", (b'a' + i) as char), 0.2)));
        }
        out.push(io(DiskIo::ZVOLS.into(), 0.9));
        out
    }

    fn temps_at(&self, util: f64) -> Vec<Temp> {
        let package = 38.0 + 40.0 * util;
        vec![
            Temp {
                name: "cpu0".into(),
                kind: TempKind::Cpu,
                celsius: package.round(),
                cores_max: Some((package + 6.0).round()),
            },
            Temp { name: "nvme0".into(), kind: TempKind::Nvme, celsius: (35.0 + 15.0 * util).round(), cores_max: None },
            Temp { name: "nvme1".into(), kind: TempKind::Nvme, celsius: (36.0 + 15.0 * util).round(), cores_max: None },
        ]
    }

    /// SMART of the disks behind the pools' vdevs; the degraded host's faulted NVMe is worn.
    fn disks_at(&self, t: i64) -> Vec<Disk> {
        let hours = 8_000 + (self.seed % 20_000) + (self.days(t) * 24.0) as u64;
        let worn = self.index == DEGRADED;
        let nvme = |i: u64| Disk {
            name: format!("nvme{i}"),
            protocol: "NVMe".into(),
            ids: vec![format!("nvme-SAMSUNG_MZQL2960HCJR-00A07_S64FNE0R{:06}", self.seed % 1_000_000 + i)],
            model: Some("SAMSUNG MZQL2960HCJR-00A07".into()),
            serial: Some(format!("S64FNE0R{:06}", self.seed % 1_000_000 + i)),
            capacity: Some(960_197_124_096),
            smart_passed: Some(!(worn && i == 1)),
            temp_c: Some(38.0 + i as f64),
            power_on_hours: Some(hours),
            nvme: Some(NvmeHealth {
                critical_warning: Some(if worn && i == 1 { 4 } else { 0 }),
                percentage_used: Some(if worn && i == 1 { 97 } else { 3 + self.seed % 10 }),
                media_errors: Some(if worn && i == 1 { 14 } else { 0 }),
                available_spare: Some(100),
                available_spare_threshold: Some(10),
            }),
            ..Disk::default()
        };
        let mut disks = vec![nvme(0), nvme(1)];
        if self.spec.tank_tib.is_some() {
            disks.extend((0..6u64).map(|i| Disk {
                name: format!("sd{}", (b'a' + i as u8) as char),
                protocol: "ATA".into(),
                model: Some("ST16000NM001G-2KK103".into()),
                serial: Some(format!("ZL2{:05}", (self.seed + i) % 100_000)),
                capacity: Some(16_000_900_661_248),
                // A third of the fleet spins its tank disks down at night.
                standby: self.index % 3 == 2 && i >= 4,
                smart_passed: Some(true),
                temp_c: Some(33.0 + i as f64),
                power_on_hours: Some(hours),
                ata: Some(AtaHealth {
                    reallocated: Some(if i == 2 { 8 } else { 0 }),
                    pending: Some(0),
                    offline_uncorrectable: Some(0),
                    crc_errors: Some(0),
                }),
                ..Disk::default()
            }));
            for d in disks.iter_mut().filter(|d| d.standby) {
                *d = Disk { name: d.name.clone(), protocol: d.protocol.clone(), standby: true, ..Disk::default() };
            }
        }
        disks
    }

    /// The root filesystem's size and use: logs grow through a week and are rotated
    /// on Sunday nights; the rest grows slowly with updates.
    fn rootfs(&self, t: i64) -> (u64, u64) {
        let total: u64 = if self.spec.rpool_gib >= 960 { 100 << 30 } else { 64 << 30 };
        let week = t.rem_euclid(7 * DAY) as f64 / (7 * DAY) as f64;
        let used = gib(5.5 + 0.006 * self.days(t) + 0.8 * week + 0.05 * wave(self.key(5), t, HOUR));
        (total, used.min(total))
    }

    /// Bytes allocated in a pool of `size` bytes at `t`, growing from `fill` a year ago.
    fn pool_alloc(&self, key: u64, size: u64, fill: f64, t: i64) -> u64 {
        // 4 to 12 points a year.
        let grow = 0.0001 + 0.0002 * unit(self.key(key), 1);
        let share = fill + grow * self.days(t) + 0.004 * wave(self.key(key), t, 6 * HOUR);
        (size as f64 * share.clamp(0.01, 0.97)) as u64
    }

    pub fn medium_at(&self, t: i64) -> Medium {
        let spec = self.spec;
        let degraded = self.index == DEGRADED && t >= self.anchor_ms - DEGRADED_SINCE;
        let errors = match (degraded, t >= self.anchor_ms - ERRORS_GREW) {
            (false, _) => 0,
            (true, false) => 3,
            (true, true) => 14,
        };
        let rpool_size = spec.rpool_gib << 30;
        let (rootfs_total, rootfs_used) = self.rootfs(t);
        let rpool_alloc = self.pool_alloc(10, rpool_size, spec.fill, t);
        let mut pools = vec![self.pool("rpool", rpool_size, rpool_alloc, t, degraded, errors)];
        let mut storages = vec![
            storage("local", "dir", "iso,vztmpl,backup", false, rootfs_total, rootfs_used + (3 << 30)),
            storage("local-zfs", "zfspool", "images,rootdir", false, rpool_size * 9 / 10, rpool_alloc),
        ];
        if let Some(tib) = spec.tank_tib {
            let size = tib << 40;
            let alloc = self.pool_alloc(11, size, spec.fill + 0.05, t);
            pools.push(self.pool("tank", size, alloc, t, false, 0));
            // Two disks of six hold parity.
            storages.push(storage("tank", "zfspool", "images,rootdir", false, size * 2 / 3, alloc * 2 / 3));
        }
        if !matches!(self.index, 4 | 11) {
            // Shared: every host sees the same numbers.
            let used = (14.0 + 0.02 * self.days(t) + 0.3 * wave(77, t, DAY)) * 1024.0 * GIB;
            storages.push(storage("pbs", "pbs", "backup", true, 40 << 40, used as u64));
        }
        if self.index % 3 == 0 {
            storages.push(storage("nfs-iso", "nfs", "iso,vztmpl", true, 4 << 40, gib(1100.0 + 0.1 * self.days(t))));
        }
        let booted = t - self.boot_ms(t);
        let (mut vms, mut cts) = (Vec::new(), Vec::new());
        for (g, spec) in self.guests.iter().enumerate() {
            let guest = self.guest(g, spec, t, booted);
            if spec.container {
                cts.push(guest);
            } else {
                vms.push(guest);
            }
        }
        let vmids: Vec<u32> = vms.iter().chain(&cts).map(|g| g.vmid).collect();
        let backups = Some(super::backups::at(t, self.index, &vmids));
        Medium {
            pools: Some(pools),
            storages: Some(storages),
            vms: Some(vms),
            cts: Some(cts),
            backups,
            ..Medium::default()
        }
    }

    // Every wire::Pool, Vdev, Scan and Guest of the demo is built in the two functions
    // below (their state and status fields are about to become enums).

    fn pool(&self, name: &str, size: u64, alloc: u64, t: i64, degraded: bool, errors: u64) -> Pool {
        let state = |bad: bool| wire::PoolState::from(if bad { "DEGRADED" } else { "ONLINE" });
        let disk = |name: String, faulted: bool, checksum_errors: u64| Vdev {
            name,
            depth: 1,
            state: if faulted { "FAULTED".into() } else { "ONLINE".into() },
            checksum_errors,
            ..Vdev::default()
        };
        let (top, disks) = if name == "rpool" {
            ("mirror-0", vec![disk("nvme0n1p3".into(), false, 0), disk("nvme1n1p3".into(), degraded, errors)])
        } else {
            ("raidz2-0", (0..6).map(|i| disk(format!("sd{}", (b'a' + i) as char), false, 0)).collect())
        };
        let mut vdevs = vec![Vdev { name: top.into(), depth: 0, state: state(degraded), ..Vdev::default() }];
        vdevs.extend(disks);
        // Scrubs every two weeks; a big pool takes hours.
        let scrub_len = if name == "rpool" { 25 * MIN } else { 7 * HOUR };
        let phase = (self.seed % 14) as i64 * DAY + 2 * HOUR;
        let start = phase + (t - phase).div_euclid(14 * DAY) * 14 * DAY;
        let running = t < start + scrub_len;
        let cap = (alloc as f64 / size as f64 * 100.0).round();
        Pool {
            name: name.into(),
            state: state(degraded),
            status: degraded.then(|| "One or more devices are faulted in response to persistent errors.".into()),
            action: degraded
                .then(|| "Replace the faulted device, or use 'zpool clear' to mark the device repaired.".into()),
            size: Some(size),
            alloc: Some(alloc),
            free: Some(size - alloc),
            frag_pct: Some((2.0 + cap * 0.3 + 2.0 * wave(self.key(12), t, 5 * DAY)).round().max(0.0)),
            cap_pct: Some(cap),
            dedup_ratio: Some(1.0),
            vdevs,
            scan: Some(Scan {
                function: "SCRUB".into(),
                state: if running { "SCANNING" } else { "FINISHED" }.into(),
                start: Some(start / 1000),
                end: (!running).then_some((start + scrub_len) / 1000),
                errors: 0,
            }),
            error_count: 0,
        }
    }

    fn guest(&self, g: usize, spec: &GuestSpec, t: i64, host_booted: i64) -> Guest {
        let running = spec.role != Role::Off;
        let maxdisk = match spec.role {
            Role::Db => 200,
            Role::Batch | Role::Desktop => 120,
            _ if spec.container => 8,
            _ => 32,
        } << 30;
        let tags: &[&str] = match spec.role {
            Role::Web => &["prod", "web"],
            Role::Db => &["prod", "db"],
            Role::K8s => &["k8s"],
            Role::Batch => &["ci"],
            Role::Infra => &["infra"],
            Role::Desktop => &["office"],
            Role::Off => &[],
        };
        Guest {
            vmid: self.first_vmid + g as u32,
            name: spec.name.into(),
            status: if running { "running" } else { "stopped" }.into(),
            cpu: Some(if running { self.guest_cpu(g, spec, t) } else { 0.0 }),
            cpus: Some(f64::from(spec.cores)),
            mem: Some(if running { self.guest_mem(g, spec, t) } else { 0 }),
            maxmem: Some(spec.mem_gib << 30),
            // Proxmox reports a container's used disk, and 0 for a VM.
            disk: Some(if spec.container && running { maxdisk / 3 } else { 0 }),
            maxdisk: Some(maxdisk),
            uptime_s: Some(if running { (host_booted / 1000 - 60 - g as i64 * 20).max(0) as u64 } else { 0 }),
            tags: tags.iter().map(|t| (*t).to_string()).collect(),
            lock: (running && self.backup_slot(t) == Some(g)).then(|| "backup".into()),
        }
    }

    pub fn slow_at(&self, t: i64) -> Slow {
        let now_s = t / 1000;
        let (pve, kernel) = match self.index % 3 {
            0 => ("8.3.2", "6.8.12-5-pve"),
            1 => ("8.3.5", "6.8.12-8-pve"),
            _ => ("8.2.7", "6.8.12-2-pve"),
        };
        let datasets: Vec<DatasetSnapshots> = self
            .guests
            .iter()
            .enumerate()
            .filter(|(_, g)| matches!(g.role, Role::Db | Role::Web) && !g.container)
            .map(|(g, spec)| DatasetSnapshots {
                dataset: format!("rpool/data/vm-{}-disk-0", self.first_vmid + g as u32),
                count: 24,
                oldest: now_s - 86_400,
                newest: now_s - now_s % 3600,
                used: (spec.mem_gib << 28) / 4,
            })
            .collect();
        Slow {
            snapshots: Some(Snapshots {
                total: datasets.iter().map(|d| d.count).sum(),
                datasets,
                recent: vec![],
                truncated: false,
            }),
            versions: Some(Versions {
                pve_manager: Some(pve.into()),
                kernel: Some(kernel.into()),
                zfs: Some("2.2.6-pve1".into()),
            }),
            disks: Some(self.disks_at(t)),
        }
    }
}

fn storage(name: &str, kind: &str, content: &str, shared: bool, total: u64, used: u64) -> Storage {
    let used = used.min(total);
    Storage {
        name: name.into(),
        kind: kind.into(),
        active: true,
        enabled: true,
        shared,
        content: content.into(),
        total: Some(total),
        used: Some(used),
        avail: Some(total - used),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHOR: i64 = 1_780_000_000_000;

    #[test]
    fn values_move_continuously_and_stay_in_range() {
        for index in 0..fleet::HOSTS {
            let host = HostModel::new(index, ANCHOR);
            let mut previous: Option<Fast> = None;
            for step in 0..2000 {
                let t = ANCHOR - 2 * DAY + step * 5000;
                if !host.online_at(t) {
                    previous = None;
                    continue;
                }
                let f = host.fast_at(t);
                let (used, total) = (f.mem_used.unwrap(), f.mem_total.unwrap());
                assert!(used <= total && f.cpu_pct.unwrap() <= 100.0, "pve-{index}: {f:?}");
                if let Some(p) = previous {
                    let jump = used.abs_diff(p.mem_used.unwrap()) as f64 / total as f64;
                    assert!(jump < 0.02, "pve-{index}: memory jumped by {jump} in 5 s at {t}");
                }
                previous = Some(f);
            }
        }
    }

    #[test]
    fn hosts_differ_and_the_special_hosts_are_special() {
        let fill = |i: usize| {
            let f = HostModel::new(i, ANCHOR).fast_at(ANCHOR);
            f.mem_used.unwrap() as f64 / f.mem_total.unwrap() as f64
        };
        let fills: Vec<f64> = (0..fleet::HOSTS).map(fill).collect();
        let (lo, hi) = fills.iter().fold((1.0f64, 0.0f64), |(lo, hi), f| (lo.min(*f), hi.max(*f)));
        assert!(hi - lo > 0.3, "memory use ranges from {lo} to {hi}");
        // One pool full enough for a warning, none for a critical.
        let caps: Vec<f64> = (0..fleet::HOSTS)
            .flat_map(|i| HostModel::new(i, ANCHOR).medium_at(ANCHOR).pools.unwrap())
            .map(|p| p.cap_pct.unwrap())
            .collect();
        assert!(caps.iter().all(|c| *c < 90.0) && caps.iter().any(|c| *c >= 80.0), "{caps:?}");
        let pool = HostModel::new(DEGRADED, ANCHOR).medium_at(ANCHOR).pools.unwrap().remove(0);
        assert_eq!((pool.state.as_str(), pool.vdev_errors()), ("DEGRADED", 14));
        let flaky = HostModel::new(FLAKY, ANCHOR);
        assert!(!flaky.online_at(ANCHOR - 20 * HOUR + MIN) && flaky.online_at(ANCHOR - 21 * HOUR));
    }
}
