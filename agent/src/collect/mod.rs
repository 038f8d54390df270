//! Collectors: what the agent reads from the host, one file per source.
//!
//! - Fast tier, no child process: [`proc_stat`] (CPU count, busy and iowait percentages from
//!   `/proc/stat` deltas), [`loadavg`], [`meminfo`] (memory and swap as Proxmox VE defines
//!   them), [`uptime`], [`arcstats`] (the ZFS ARC size) and [`rootfs`] (`statvfs` of `/`).
//! - [`zpool_status`] (JSON on OpenZFS ≥ 2.3, text before) and [`zpool_list`]: pools.
//! - [`storage`], [`guests`]: `pvesh` storages, VMs and containers.
//! - [`backups`]: backup jobs ([`backup_jobs`]), each guest's last backup and operators'
//!   stops from the node's task list ([`tasks`]), remembered across cycles.
//! - [`snapshots`], [`versions`]: `zfs list -t snapshot`, `pveversion`, kernel and ZFS versions.
//! - [`hardware`]: network ([`net_dev`]), disk I/O ([`diskstats`]) and temperatures ([`hwmon`])
//!   in the fast tier, SMART ([`smart`]) in the slow tier.
//!
//! Every source is read-only: commands run from an argv with no shell ([`command`]), one at a
//! time per agent (the [`command::Runner`]'s queue), each with its deadline, and a
//! source that fails (not installed, non-zero exit, timeout, unparseable output) leaves only its
//! own section empty and adds one line to [`Errors`] under its collector name (`proc_stat`,
//! `loadavg`, `meminfo`, `uptime`, `rootfs`, `arcstats`, `zpool_status`, `zpool_list`, `storage`,
//! `qemu`, `lxc`, `backup_jobs`, `tasks`, `backup_log`, `snapshots`, `versions`, `net_dev`, `diskstats`, `hwmon`, `smart`,
//! `smart/<disk>`).
//!
//! Missing ZFS: a host without the ZFS module has no arcstats file and no `/sys/module/zfs`,
//! which is normal and gives `None` with no error. A missing `zpool` or `zfs` *command* is
//! reported as an error, though: on Proxmox VE it ships with every install, so its absence is
//! something an operator wants to see.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use wire::{Fast, Medium, Slow, Versions};

pub mod arcstats;
pub mod backup_jobs;
pub mod backups;
pub mod command;
pub mod diskstats;
pub mod guests;
pub mod hardware;
pub mod hwmon;
pub mod lenient;
pub mod loadavg;
pub mod meminfo;
pub mod net_dev;
pub mod proc_stat;
#[cfg(test)]
mod proptests;
pub mod rootfs;
pub mod smart;
pub mod snapshots;
pub mod storage;
pub mod tasks;
#[cfg(test)]
mod tests;
pub mod uptime;
pub mod versions;
pub mod zpool_list;
pub mod zpool_status;

use command::{CommandError, Runner};
use guests::Kind;
use proc_stat::CpuSample;

/// Collector name to error message, for the payload's `errors` map.
pub type Errors = BTreeMap<String, String>;

/// Output that does not have the shape a parser expects.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> ParseError {
        ParseError(message.into())
    }
}

/// Why one collector produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("unexpected output: {0}")]
    Parse(#[from] ParseError),
    #[error("failed to read {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
}

impl CollectError {
    /// True when the file or program does not exist at all.
    pub(crate) fn is_not_found(&self) -> bool {
        match self {
            CollectError::Command(CommandError::NotFound { .. }) => true,
            CollectError::Read { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Reads the host. Holds the state that spans cycles (the previous `/proc/stat` sample and the
/// `zpool status` form this host understands).
pub struct Collectors {
    node: String,
    proc_root: PathBuf,
    sys_root: PathBuf,
    /// The filesystem reported as `rootfs`: `/`, or a test's temp dir.
    rootfs: PathBuf,
    runner: Runner,
    prev_cpu: Option<CpuSample>,
    zpool_format: zpool_status::Format,
    hardware: hardware::Hardware,
    backups: backups::BackupWatch,
}

impl Collectors {
    pub fn new(node: String) -> Collectors {
        Collectors::with_roots(node, PathBuf::from("/proc"), PathBuf::from("/sys"))
    }

    /// Reads `/proc` and `/sys` from other directories, for tests against captured files.
    /// `/dev` is taken as the `dev` beside `sys_root` (`/dev` for `/sys`).
    pub fn with_roots(node: String, proc_root: PathBuf, sys_root: PathBuf) -> Collectors {
        let dev_root = sys_root.parent().unwrap_or(Path::new("/")).join("dev");
        Collectors {
            node,
            proc_root,
            sys_root,
            rootfs: PathBuf::from("/"),
            runner: Runner::default(),
            prev_cpu: None,
            zpool_format: zpool_status::Format::Unknown,
            hardware: hardware::Hardware::new(dev_root),
            backups: backups::BackupWatch::default(),
        }
    }

    /// Runs programs from `dir` instead of looking them up on PATH, for tests with fake
    /// `pvesh`/`zpool`/`zfs` scripts (changing PATH would leak into other tests of the binary).
    pub fn with_bin_dir(mut self, dir: PathBuf) -> Collectors {
        self.runner.bin_dir = Some(dir);
        self
    }

    /// Reports the filesystem holding `path` as the root filesystem, for tests.
    pub fn with_rootfs(mut self, path: PathBuf) -> Collectors {
        self.rootfs = path;
        self
    }

    /// The `zpool status` form found so far (Unknown until a run succeeds).
    pub fn zpool_format(&self) -> zpool_status::Format {
        self.zpool_format
    }

    /// Load, CPU, memory, ARC, swap, root filesystem, uptime. `cpu_pct` and `iowait_pct` are
    /// `None` on the first call, which only records the `/proc/stat` baseline.
    ///
    /// Starts no process (a `pvesh` here cost far more CPU than the rest of the agent, issue
    /// 14): `/proc` files and one `statvfs`. They are read synchronously: procfs answers from
    /// kernel memory and never waits for a disk, so a blocking-pool round trip per file would
    /// cost more than the read.
    pub fn fast(&mut self) -> (Fast, Errors) {
        let mut errors = Errors::new();
        let mut fast = Fast::default();
        match read_now(&self.proc_root.join("stat"), proc_stat::parse) {
            Ok(sample) => {
                fast.cpus = Some(sample.cpus).filter(|n| *n > 0);
                if let Some(usage) = self.prev_cpu.and_then(|prev| proc_stat::usage(prev, sample)) {
                    fast.cpu_pct = Some(usage.busy_pct);
                    fast.iowait_pct = Some(usage.iowait_pct);
                }
                self.prev_cpu = Some(sample);
            }
            Err(e) => record(&mut errors, "proc_stat", e),
        }
        match read_now(&self.proc_root.join("loadavg"), loadavg::parse) {
            Ok(load) => [fast.load1, fast.load5, fast.load15] = load.map(Some),
            Err(e) => record(&mut errors, "loadavg", e),
        }
        match read_now(&self.proc_root.join("meminfo"), meminfo::parse) {
            Ok(m) => {
                (fast.mem_total, fast.mem_used) = (Some(m.mem_total), Some(m.mem_used));
                (fast.swap_total, fast.swap_used) = (Some(m.swap_total), Some(m.swap_used));
            }
            Err(e) => record(&mut errors, "meminfo", e),
        }
        match read_now(&self.proc_root.join("uptime"), uptime::parse) {
            Ok(s) => fast.uptime_s = Some(s),
            Err(e) => record(&mut errors, "uptime", e),
        }
        match read_now(&self.proc_root.join(arcstats::PATH), arcstats::parse) {
            Ok(size) => fast.arc_bytes = Some(size),
            Err(e) if e.is_not_found() => {}
            Err(e) => record(&mut errors, "arcstats", e),
        }
        match rootfs::read(&self.rootfs) {
            Ok(u) => (fast.rootfs_total, fast.rootfs_used) = (Some(u.total), Some(u.used)),
            Err(e) => record(&mut errors, "rootfs", format!("statvfs {}: {e}", self.rootfs.display())),
        }
        self.hardware.fast(&self.proc_root, &self.sys_root, &mut fast, &mut errors);
        (fast, errors)
    }

    /// Pools, storages, VMs and containers: one command at a time, all within `timeout`.
    ///
    /// Pools need `zpool status`; when only `zpool list` works, pools still arrive with their
    /// sizes and health (as `state`) but no vdevs, and the status error is reported.
    pub async fn medium(&mut self, timeout: Duration) -> (Medium, Errors) {
        let mut errors = Errors::new();
        let runner = &self.runner;
        let storage_args = storage::args(&self.node);
        let (qemu_args, lxc_args) = (Kind::Qemu.args(&self.node), Kind::Lxc.args(&self.node));
        // One after the other (the runner would queue them anyway), against one deadline.
        // Storages go last: their status touches every storage, and a dead NFS or CIFS share
        // is what hangs, so a hang costs only that section, not the guests behind it.
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let status = zpool_status::collect(runner, &mut self.zpool_format, left()).await;
        let list = run_parse(runner, "zpool", zpool_list::ARGS, left(), zpool_list::parse).await;
        let vms = run_parse(runner, "pvesh", &qemu_args, left(), guests::parse).await;
        let cts = run_parse(runner, "pvesh", &lxc_args, left(), guests::parse).await;
        let on_node: Option<Vec<u32>> = match (&vms, &cts) {
            (Ok(vms), Ok(cts)) => Some(vms.iter().chain(cts).map(|g| g.vmid).collect()),
            _ => None,
        };
        let now_s = wire::now_ms() / 1000;
        let node = (self.node.as_str(), on_node.as_deref());
        let (backups, operator_stops) = self.backups.collect(runner, node, now_s, left(), &mut errors).await;
        let storages = run_parse(runner, "pvesh", &storage_args, left(), storage::parse).await;
        let pools = match (status, list) {
            (Ok(mut pools), list) => {
                match list {
                    Ok(rows) => zpool_list::merge(&mut pools, rows),
                    Err(e) => record(&mut errors, "zpool_list", e),
                }
                Some(pools)
            }
            (Err(e), Ok(rows)) => {
                record(&mut errors, "zpool_status", e);
                let mut pools = Vec::new();
                zpool_list::merge(&mut pools, rows);
                Some(pools)
            }
            (Err(status), Err(list)) => {
                record(&mut errors, "zpool_status", status);
                record(&mut errors, "zpool_list", list);
                None
            }
        };
        let medium = Medium {
            pools,
            storages: ok_or_record(&mut errors, "storage", storages),
            vms: ok_or_record(&mut errors, Kind::Qemu.name(), vms),
            cts: ok_or_record(&mut errors, Kind::Lxc.name(), cts),
            backups,
            operator_stops,
        };
        (medium, errors)
    }

    /// Snapshots and versions: one command at a time, all within `timeout`.
    pub async fn slow(&mut self, timeout: Duration) -> (Slow, Errors) {
        let mut errors = Errors::new();
        let runner = &self.runner;
        let osrelease = self.proc_root.join(versions::OSRELEASE);
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let snapshots = run_parse(runner, "zfs", snapshots::ARGS, left(), snapshots::parse).await;
        let pve_manager = run_parse(runner, "pveversion", &[] as &[&str], left(), versions::parse_pveversion).await;
        let kernel = read_now(&osrelease, versions::parse_one_line);
        let zfs = zfs_version(runner, &self.sys_root, left()).await;
        let snapshots = ok_or_record(&mut errors, "snapshots", snapshots);
        let mut failures = Vec::new();
        let pve_manager = pve_manager.map_err(|e| failures.push(format!("pveversion: {e}"))).ok();
        let kernel = kernel.map_err(|e| failures.push(format!("kernel: {e}"))).ok();
        let versions = Versions { pve_manager, kernel, zfs };
        if !failures.is_empty() {
            record(&mut errors, "versions", failures.join("; "));
        }
        let any = versions.pve_manager.is_some() || versions.kernel.is_some() || versions.zfs.is_some();
        let mut slow = Slow { snapshots, versions: any.then_some(versions), disks: None };
        self.hardware.slow(&self.runner, timeout, &mut slow, &mut errors).await;
        (slow, errors)
    }
}

/// The loaded ZFS module's version, else `zfs version`'s; `None` without error when neither
/// works, since a host without ZFS is normal.
async fn zfs_version(runner: &Runner, sys_root: &Path, timeout: Duration) -> Option<String> {
    if let Ok(v) = read_now(&sys_root.join(versions::ZFS_MODULE_VERSION), versions::parse_one_line) {
        return Some(v);
    }
    run_parse(runner, "zfs", &["version"], timeout, versions::parse_zfs_version).await.ok()
}

async fn run_parse<S, T>(
    runner: &Runner,
    program: &str,
    args: &[S],
    timeout: Duration,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Result<T, CollectError>
where
    S: AsRef<std::ffi::OsStr>,
{
    let output = runner.run(program, args, timeout).await?;
    Ok(parse(&output)?)
}

/// Reads and parses a procfs or sysfs file right here, not on tokio's blocking pool:
/// the kernel answers at once, and a pool thread would cost the agent resident memory
/// (its stack and a malloc arena) for the rest of its life.
fn read_now<T>(path: &Path, parse: fn(&str) -> Result<T, ParseError>) -> Result<T, CollectError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| CollectError::Read { path: path.to_path_buf(), source })?;
    Ok(parse(&text)?)
}

fn ok_or_record<T>(errors: &mut Errors, name: &str, result: Result<T, CollectError>) -> Option<T> {
    result.map_err(|e| record(errors, name, e)).ok()
}

/// Adds a one-line error for `name`; the payload carries it, so the log only gets a debug line.
fn record(errors: &mut Errors, name: &str, error: impl Display) {
    let message = command::truncate(&error.to_string().replace('\n', " "), 300);
    tracing::debug!(collector = name, error = %message, "collector failed");
    errors.insert(name.to_string(), message);
}
