//! The hardware signals of the fast and slow tiers: network ([`net_dev`]), disk I/O
//! ([`diskstats`]) and temperatures ([`hwmon`]) every fast cycle, read from `/proc` and
//! `/sys` with no child process; SMART ([`smart`]) in the slow tier.
//!
//! Rates need the previous sample, kept here with its monotonic time: the first cycle only
//! records it, and its sections are `None`. Each source fails alone: its section stays
//! `None` and its error goes under its own name (`net_dev`, `diskstats`, `hwmon`, `smart`,
//! and `smart/<disk>` for one disk that did not answer).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use wire::{Disk, Fast, NetKind, Slow};

use super::command::{CommandError, Runner};
use super::{diskstats, hwmon, net_dev, record, smart, CollectError, Errors};

/// The longest one disk may take to answer smartctl.
const PER_DISK: Duration = Duration::from_secs(20);

/// State across cycles: the previous counters, and where `/dev` is.
pub struct Hardware {
    dev_root: PathBuf,
    prev_net: Option<(Instant, HashMap<String, net_dev::Counters>)>,
    prev_disks: Option<(Instant, HashMap<String, diskstats::Counters>)>,
}

/// What one fast cycle read from the files, before rates.
struct FastFiles {
    net: Result<Vec<(String, NetKind, net_dev::Counters)>, CollectError>,
    disks: Result<Vec<(String, diskstats::Device, diskstats::Counters)>, CollectError>,
    chips: Result<Vec<hwmon::Chip>, CollectError>,
}

impl Hardware {
    /// `dev_root` is `/dev` on a host; tests give the `dev/` beside their `proc/` and `sys/`.
    pub fn new(dev_root: PathBuf) -> Hardware {
        Hardware { dev_root, prev_net: None, prev_disks: None }
    }

    /// Fills `fast.net`, `fast.diskio` (from the second cycle on) and `fast.temps`. Read
    /// synchronously, like the rest of the fast tier: procfs and sysfs answer from kernel
    /// memory and never wait for a disk.
    pub fn fast(&mut self, proc_root: &Path, sys_root: &Path, fast: &mut Fast, errors: &mut Errors) {
        let files = read_fast_files(proc_root, sys_root);
        let now = Instant::now();
        match files.net {
            Ok(net) => {
                if let Some((then, prev)) = &self.prev_net {
                    fast.net = Some(net_dev::rates(prev, &net, (now - *then).as_secs_f64()));
                }
                self.prev_net = Some((now, net.into_iter().map(|(n, _, c)| (n, c)).collect()));
            }
            Err(e) => record(errors, "net_dev", e),
        }
        match files.disks {
            Ok(disks) => {
                if let Some((then, prev)) = &self.prev_disks {
                    fast.diskio = Some(diskstats::rates(prev, &disks, (now - *then).as_secs_f64()));
                }
                self.prev_disks = Some((now, disks.into_iter().map(|(n, _, c)| (n, c)).collect()));
            }
            Err(e) => record(errors, "diskstats", e),
        }
        match files.chips {
            Ok(chips) => fast.temps = Some(hwmon::summarize(&chips)),
            // No hwmon at all (a VM, a container): nothing to report, as with no ZFS.
            Err(e) if e.is_not_found() => {}
            Err(e) => record(errors, "hwmon", e),
        }
    }

    /// Fills `slow.disks`: every disk `--scan-open` finds, read one at a time.
    pub async fn slow(&self, runner: &Runner, timeout: Duration, slow: &mut Slow, errors: &mut Errors) {
        let scan = match runner.run_any_status("smartctl", smart::SCAN_ARGS, timeout).await {
            Ok((status, out)) if status.code().is_some_and(|c| c & 0b11 == 0) => smart::parse_scan(&out),
            Ok((status, _)) => {
                return record(errors, "smart", format!("smartctl --scan-open exited with {status}"));
            }
            Err(e) => return record(errors, "smart", e),
        };
        let entries = match scan {
            Ok(entries) => entries,
            Err(e) => return record(errors, "smart", CollectError::Parse(e)),
        };
        let by_id = smart::by_id(&self.dev_root.join("disk/by-id"));
        let per_disk = timeout.min(PER_DISK);
        let mut disks = Vec::new();
        for entry in entries {
            let name = entry.name().to_string();
            let mut disk = Disk { name: name.clone(), protocol: entry.protocol.clone(), ..Disk::default() };
            if let Some(why) = &entry.open_error {
                record(errors, &format!("smart/{name}"), format!("cannot open the device: {why}"));
            } else {
                match runner.run_any_status("smartctl", &entry.args(), per_disk).await {
                    Ok((status, out)) => match smart::parse_disk(&entry, status.code(), &out) {
                        Ok(smart::Reading::Disk(d)) => disk = *d,
                        Ok(smart::Reading::Standby) => disk.standby = true,
                        Err(e) => record(errors, &format!("smart/{name}"), e),
                    },
                    Err(e @ CommandError::NotFound { .. }) => return record(errors, "smart", e),
                    Err(e) => record(errors, &format!("smart/{name}"), e),
                }
            }
            disk.ids = by_id.get(&name).cloned().unwrap_or_default();
            disks.push(disk);
        }
        slow.disks = Some(disks);
    }
}

fn read_fast_files(proc_root: &Path, sys_root: &Path) -> FastFiles {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| CollectError::Read { path: path.clone(), source })
    };
    let net = read(proc_root.join(net_dev::PATH)).and_then(|text| {
        let all = net_dev::parse(&text)?;
        let class = sys_root.join("class/net");
        Ok(all
            .into_iter()
            .filter(|(name, _)| net_dev::worth_a_look(name))
            .filter_map(|(name, c)| {
                let dir = class.join(&name);
                let facts = net_dev::Facts {
                    device: dir.join("device").exists(),
                    bonding: dir.join("bonding").is_dir(),
                    bridge: dir.join("bridge").is_dir(),
                };
                net_dev::classify(&name, facts).map(|kind| (name, kind, c))
            })
            .collect())
    });
    let disks = read(proc_root.join(diskstats::PATH)).and_then(|text| Ok(diskstats::parse(&text)?));
    let hwmon_dir = sys_root.join(hwmon::PATH);
    let chips = hwmon::read_tree(&hwmon_dir).map_err(|source| CollectError::Read { path: hwmon_dir, source });
    FastFiles { net, disks, chips }
}
