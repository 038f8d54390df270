//! Collectors: what the agent reads from the host, one file per source.
//!
//! - [`node_status`]: `pvesh get /nodes/<node>/status` (load, memory, swap, rootfs, uptime).
//! - [`proc_stat`]: CPU busy and iowait percentages from `/proc/stat` deltas.
//! - [`arcstats`]: the ZFS ARC size from `/proc/spl/kstat/zfs/arcstats`.
//! - [`zpool_status`] (JSON on OpenZFS ≥ 2.3, text before) and [`zpool_list`]: pools.
//! - [`storage`], [`guests`]: `pvesh` storages, VMs and containers.
//! - [`snapshots`], [`versions`]: `zfs list -t snapshot`, `pveversion`, kernel and ZFS versions.
//! - [`hardware`]: network ([`net_dev`]), disk I/O ([`diskstats`]) and temperatures ([`hwmon`])
//!   in the fast tier, SMART ([`smart`]) in the slow tier.
//!
//! Every source is read-only: commands run from an argv with no shell ([`command`]), and a
//! source that fails (not installed, non-zero exit, timeout, unparseable output) leaves only its
//! own section empty and adds one line to [`Errors`] under its collector name (`node_status`,
//! `proc_stat`, `arcstats`, `zpool_status`, `zpool_list`, `storage`, `qemu`, `lxc`, `snapshots`,
//! `versions`, `net_dev`, `diskstats`, `hwmon`, `smart`, `smart/<disk>`).
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

use wire::{Fast, Medium, Slow, Versions};

pub mod arcstats;
pub mod command;
pub mod diskstats;
pub mod guests;
pub mod hardware;
pub mod hwmon;
pub mod lenient;
pub mod net_dev;
pub mod node_status;
pub mod proc_stat;
pub mod smart;
pub mod snapshots;
pub mod storage;
#[cfg(test)]
mod tests;
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
    fn is_not_found(&self) -> bool {
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
    runner: Runner,
    prev_cpu: Option<CpuSample>,
    zpool_format: zpool_status::Format,
    hardware: hardware::Hardware,
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
            runner: Runner::default(),
            prev_cpu: None,
            zpool_format: zpool_status::Format::Unknown,
            hardware: hardware::Hardware::new(dev_root),
        }
    }

    /// Runs programs from `dir` instead of looking them up on PATH, for tests with fake
    /// `pvesh`/`zpool`/`zfs` scripts (changing PATH would leak into other tests of the binary).
    pub fn with_bin_dir(mut self, dir: PathBuf) -> Collectors {
        self.runner.bin_dir = Some(dir);
        self
    }

    /// The `zpool status` form found so far (Unknown until a run succeeds).
    pub fn zpool_format(&self) -> zpool_status::Format {
        self.zpool_format
    }

    /// Load, CPU, memory, ARC, swap, root filesystem, uptime. `cpu_pct` and `iowait_pct` are
    /// `None` on the first call, which only records the `/proc/stat` baseline.
    pub async fn fast(&mut self, timeout: Duration) -> (Fast, Errors) {
        let mut errors = Errors::new();
        let status_args = node_status::args(&self.node);
        let (stat_path, arc_path) = (self.proc_root.join("stat"), self.proc_root.join(arcstats::PATH));
        let (status, stat, arc) = tokio::join!(
            run_parse(&self.runner, "pvesh", &status_args, timeout, node_status::parse),
            read_parse(&stat_path, proc_stat::parse),
            read_parse(&arc_path, arcstats::parse),
        );
        let mut fast = Fast::default();
        match status {
            Ok(s) => {
                fast.cpus = s.cpus;
                [fast.load1, fast.load5, fast.load15] = s.load;
                fast.mem_total = s.mem_total;
                fast.mem_used = s.mem_used;
                fast.swap_total = s.swap_total;
                fast.swap_used = s.swap_used;
                fast.rootfs_total = s.rootfs_total;
                fast.rootfs_used = s.rootfs_used;
                fast.uptime_s = s.uptime_s;
            }
            Err(e) => record(&mut errors, "node_status", e),
        }
        match stat {
            Ok(sample) => {
                if let Some(usage) = self.prev_cpu.and_then(|prev| proc_stat::usage(prev, sample)) {
                    fast.cpu_pct = Some(usage.busy_pct);
                    fast.iowait_pct = Some(usage.iowait_pct);
                }
                self.prev_cpu = Some(sample);
            }
            Err(e) => record(&mut errors, "proc_stat", e),
        }
        match arc {
            Ok(size) => fast.arc_bytes = Some(size),
            Err(e) if e.is_not_found() => {}
            Err(e) => record(&mut errors, "arcstats", e),
        }
        self.hardware.fast(&self.proc_root, &self.sys_root, &mut fast, &mut errors).await;
        (fast, errors)
    }

    /// Pools, storages, VMs and containers, collected concurrently.
    ///
    /// Pools need `zpool status`; when only `zpool list` works, pools still arrive with their
    /// sizes and health (as `state`) but no vdevs, and the status error is reported.
    pub async fn medium(&mut self, timeout: Duration) -> (Medium, Errors) {
        let mut errors = Errors::new();
        let runner = &self.runner;
        let storage_args = storage::args(&self.node);
        let (qemu_args, lxc_args) = (Kind::Qemu.args(&self.node), Kind::Lxc.args(&self.node));
        let (status, list, storages, vms, cts) = tokio::join!(
            zpool_status::collect(runner, &mut self.zpool_format, timeout),
            run_parse(runner, "zpool", zpool_list::ARGS, timeout, zpool_list::parse),
            run_parse(runner, "pvesh", &storage_args, timeout, storage::parse),
            run_parse(runner, "pvesh", &qemu_args, timeout, guests::parse),
            run_parse(runner, "pvesh", &lxc_args, timeout, guests::parse),
        );
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
        };
        (medium, errors)
    }

    /// Snapshots and versions.
    pub async fn slow(&mut self, timeout: Duration) -> (Slow, Errors) {
        let mut errors = Errors::new();
        let runner = &self.runner;
        let osrelease = self.proc_root.join(versions::OSRELEASE);
        let (snapshots, pve_manager, kernel, zfs) = tokio::join!(
            run_parse(runner, "zfs", snapshots::ARGS, timeout, snapshots::parse),
            run_parse(runner, "pveversion", &[] as &[&str], timeout, versions::parse_pveversion),
            read_parse(&osrelease, versions::parse_one_line),
            zfs_version(runner, &self.sys_root, timeout),
        );
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
    if let Ok(v) = read_parse(&sys_root.join(versions::ZFS_MODULE_VERSION), versions::parse_one_line).await {
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

async fn read_parse<T>(path: &Path, parse: fn(&str) -> Result<T, ParseError>) -> Result<T, CollectError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| CollectError::Read { path: path.to_path_buf(), source })?;
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
