//! Disk I/O rates per whole disk from `/proc/diskstats` deltas.
//!
//! Whole disks are `sd*`, `vd*`, `xvd*` and `hd*` without a partition number and NVMe
//! namespaces `nvme<c>n<n>` (not their `p<k>` partitions, nor the hidden multipath paths
//! `nvme<c>c<x>n<n>`). Zvols (`zd<n>`, one per guest disk on ZFS) are summed into one entry,
//! [`wire::DiskIo::ZVOLS`]: a host can have hundreds, and which pool each belongs to is only
//! known from `/dev/zvol` links, which a fast cycle does not walk. Everything else (`loop`,
//! `dm-`, `zram`, `md`) is left out.

use std::collections::HashMap;

use wire::DiskIo;

use super::ParseError;

/// `/proc/diskstats`, relative to the proc root.
pub const PATH: &str = "diskstats";

/// The kernel counts sectors of 512 bytes in this file, whatever the device's sector size.
const SECTOR: u64 = 512;

/// The cumulative counters of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub reads: u64,
    pub read_sectors: u64,
    pub writes: u64,
    pub write_sectors: u64,
    /// Milliseconds with I/O in flight (`io_ticks`).
    pub busy_ms: u64,
}

/// What a device name is to this collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Disk,
    Zvol,
}

/// Whether `name` is a whole disk, a zvol, or neither (None).
pub fn classify(name: &str) -> Option<Device> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    if let Some(rest) = name.strip_prefix("zd") {
        return digits(rest).then_some(Device::Zvol);
    }
    if let Some(rest) = name.strip_prefix("nvme") {
        let (controller, namespace) = rest.split_once('n')?;
        return (digits(controller) && digits(namespace)).then_some(Device::Disk);
    }
    ["xvd", "sd", "vd", "hd"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .filter(|rest| letters(rest))
        .map(|_| Device::Disk)
}

/// The counters of every whole disk and zvol, in file order.
pub fn parse(text: &str) -> Result<Vec<(String, Device, Counters)>, ParseError> {
    let mut out = Vec::new();
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        lines += 1;
        let f: Vec<&str> = line.split_whitespace().collect();
        // major minor name, then at least the 11 fields every kernel since 2.6 prints.
        if f.len() < 14 {
            return Err(ParseError::new(format!("{} fields in {line:?}, expected at least 14", f.len())));
        }
        let Some(device) = classify(f[2]) else { continue };
        let n = |i: usize| f[i].parse::<u64>().map_err(|_| ParseError::new(format!("bad counter {:?}", f[i])));
        let c = Counters { reads: n(3)?, read_sectors: n(5)?, writes: n(7)?, write_sectors: n(9)?, busy_ms: n(12)? };
        out.push((f[2].to_string(), device, c));
    }
    if lines == 0 {
        return Err(ParseError::new("empty"));
    }
    Ok(out)
}

/// Per-second rates of the devices in `now` that were also in `prev`, over `secs`, with every
/// zvol summed into one entry (its busy % the busiest zvol's) after the disks. A device whose
/// counters went backwards is left out until its next sample.
pub fn rates(prev: &HashMap<String, Counters>, now: &[(String, Device, Counters)], secs: f64) -> Vec<DiskIo> {
    if secs <= 0.0 {
        return Vec::new();
    }
    let mut disks = Vec::new();
    let mut zvols: Option<(Counters, u64)> = None;
    for (name, device, c) in now {
        let Some(p) = prev.get(name) else { continue };
        let delta = (|| {
            Some(Counters {
                reads: c.reads.checked_sub(p.reads)?,
                read_sectors: c.read_sectors.checked_sub(p.read_sectors)?,
                writes: c.writes.checked_sub(p.writes)?,
                write_sectors: c.write_sectors.checked_sub(p.write_sectors)?,
                busy_ms: c.busy_ms.checked_sub(p.busy_ms)?,
            })
        })();
        let Some(d) = delta else { continue };
        match device {
            Device::Disk => disks.push(rate(name, d, d.busy_ms, secs)),
            Device::Zvol => {
                let (sum, busiest) = zvols.get_or_insert((Counters::default(), 0));
                // Saturating: counters are the kernel's, but a bogus jump must not panic.
                sum.reads = sum.reads.saturating_add(d.reads);
                sum.read_sectors = sum.read_sectors.saturating_add(d.read_sectors);
                sum.writes = sum.writes.saturating_add(d.writes);
                sum.write_sectors = sum.write_sectors.saturating_add(d.write_sectors);
                *busiest = (*busiest).max(d.busy_ms);
            }
        }
    }
    if let Some((sum, busiest)) = zvols {
        disks.push(rate(DiskIo::ZVOLS, sum, busiest, secs));
    }
    disks
}

fn rate(name: &str, d: Counters, busy_ms: u64, secs: f64) -> DiskIo {
    let one_decimal = |v: f64| (v * 10.0).round() / 10.0;
    DiskIo {
        name: name.to_string(),
        read_bytes: (d.read_sectors as f64 * SECTOR as f64 / secs).round() as u64,
        write_bytes: (d.write_sectors as f64 * SECTOR as f64 / secs).round() as u64,
        reads: one_decimal(d.reads as f64 / secs),
        writes: one_decimal(d.writes as f64 / secs),
        busy_pct: one_decimal((busy_ms as f64 / (secs * 10.0)).clamp(0.0, 100.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_VM: &str = include_str!("../../tests/fixtures/proc_diskstats.txt");
    const PVE_1: &str = include_str!("../../tests/fixtures/proc_diskstats_pve_1.txt");
    const PVE_2: &str = include_str!("../../tests/fixtures/proc_diskstats_pve_2.txt");

    #[test]
    fn whole_disks_and_zvols_only() {
        for disk in ["sda", "sdaa", "vdb", "xvda", "nvme0n1", "nvme12n2"] {
            assert_eq!(classify(disk), Some(Device::Disk), "{disk}");
        }
        assert_eq!(classify("zd16"), Some(Device::Zvol));
        for other in ["sda1", "nvme0n1p3", "nvme0c0n1", "zd16p1", "loop0", "dm-0", "zram0", "md0", "sr0", "nvme0"] {
            assert_eq!(classify(other), None, "{other}");
        }
    }

    #[test]
    fn parses_a_captured_file() {
        let all = parse(DEV_VM).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        let (name, device, c) = &all[0];
        assert_eq!((name.as_str(), *device), ("vda", Device::Disk));
        assert_eq!(
            *c,
            Counters {
                reads: 719_855,
                read_sectors: 30_963_282,
                writes: 1_732_076,
                write_sectors: 169_707_168,
                busy_ms: 86_200
            }
        );
    }

    #[test]
    fn rates_between_two_samples() {
        let first = parse(PVE_1).unwrap();
        let prev: HashMap<String, Counters> = first.into_iter().map(|(n, _, c)| (n, c)).collect();
        let r = rates(&prev, &parse(PVE_2).unwrap(), 30.0);
        let names: Vec<&str> = r.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sda", "sdb", "nvme0n1", "zvols"]);
        // sda: 3,000 reads of 61,440 sectors, 1,500 writes of 30,720 sectors, 6 s busy in 30 s.
        assert_eq!(
            r[0],
            DiskIo {
                name: "sda".into(),
                read_bytes: 1_048_576,
                write_bytes: 524_288,
                reads: 100.0,
                writes: 50.0,
                busy_pct: 20.0
            }
        );
        // The two zvols: writes summed, busy % the busier one's (9 s of 30).
        assert_eq!((r[3].writes, r[3].write_bytes, r[3].busy_pct), (30.0, 409_600, 30.0));
        assert!(rates(&prev, &parse(PVE_2).unwrap(), 0.0).is_empty());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("8 0 sda 1 2 3\n").is_err());
        assert!(parse("8 0 sda 1 2 3 4 5 6 x 8 9 10 11\n").is_err());
    }

    #[test]
    fn zvol_sums_that_overflow_saturate() {
        // Found by the property tests (issue 15): the zvols' summed deltas overflowed.
        let big = Counters { reads: u64::MAX, read_sectors: u64::MAX, writes: u64::MAX, write_sectors: 1, busy_ms: 1 };
        let prev = HashMap::from([("zd0".to_string(), Counters::default()), ("zd16".to_string(), Counters::default())]);
        let now = [("zd0".to_string(), Device::Zvol, big), ("zd16".to_string(), Device::Zvol, big)];
        let r = rates(&prev, &now, 1.0);
        assert_eq!((r[0].name.as_str(), r[0].write_bytes), (DiskIo::ZVOLS, 1024));
    }
}
