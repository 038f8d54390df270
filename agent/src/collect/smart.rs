//! Disk health from smartmontools: `smartctl --scan-open --json` lists the disks, then
//! `smartctl --json -a -n standby -d <type> <dev>` reads each one, one at a time, each with
//! its own deadline.
//!
//! smartctl's exit status is a bit mask (smartctl(8), "RETURN VALUES"), not a plain failure:
//! bit 0, the command line did not parse; bit 1, the device could not be opened *or* was in
//! a low-power mode under `-n standby` (then its messages say so); bits 2–7 report on the
//! disk (a SMART command failed, the disk says it is failing, attributes at or past their
//! threshold, errors in the error or self-test log). So bits 0–1 end that disk's reading
//! (a disk asleep is reported as `standby`, not as an error), and with bits 2–7 the JSON is
//! still read and the bits are kept in `smartctl_status`.
//!
//! `-n standby` never spins a sleeping disk up: smartctl asks the power mode first (ATA
//! CHECK POWER MODE) and stops if the disk is in standby or sleep.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use wire::{AtaHealth, Disk, NvmeHealth};

use super::ParseError;

/// The discovery command's arguments.
pub const SCAN_ARGS: &[&str] = &["--scan-open", "--json"];

/// One device of `--scan-open`: its path and the `-d` type smartctl found for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEntry {
    pub path: String,
    pub kind: String,
    pub protocol: String,
    /// `--scan-open` could not open it (a RAID controller's virtual disk, a USB bridge).
    pub open_error: Option<String>,
}

impl ScanEntry {
    /// The name without `/dev/`: `sda`, `nvme0`, `bus/0`.
    pub fn name(&self) -> &str {
        self.path.strip_prefix("/dev/").unwrap_or(&self.path)
    }

    /// `smartctl --json -a -n standby -d <type> <path>`.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["--json", "-a", "-n", "standby"].map(String::from).to_vec();
        if !self.kind.is_empty() {
            args.extend(["-d".to_string(), self.kind.clone()]);
        }
        args.push(self.path.clone());
        args
    }
}

/// The devices of `smartctl --scan-open --json`.
pub fn parse_scan(text: &str) -> Result<Vec<ScanEntry>, ParseError> {
    let v: Value = serde_json::from_str(text).map_err(|e| ParseError::new(format!("scan is not JSON: {e}")))?;
    let Some(devices) = v.get("devices") else {
        // No disks at all (a VM without SMART-capable devices): smartctl leaves the list out.
        return Ok(Vec::new());
    };
    let devices = devices.as_array().ok_or_else(|| ParseError::new("scan: devices is not a list"))?;
    let text = |d: &Value, k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    devices
        .iter()
        .map(|d| {
            Ok(ScanEntry {
                path: text(d, "name").ok_or_else(|| ParseError::new("scan: a device without a name"))?,
                kind: text(d, "type").unwrap_or_default(),
                protocol: text(d, "protocol").unwrap_or_default(),
                open_error: text(d, "open_error"),
            })
        })
        .collect()
}

/// What one device's smartctl run gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Disk(Box<Disk>),
    /// Asleep: not woken, no data this time.
    Standby,
}

/// Why one disk could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DiskError {
    #[error("smartctl did not accept its command line (exit status {0})")]
    CommandLine(i32),
    #[error("cannot open the device: {0}")]
    Open(String),
    #[error("smartctl was killed by a signal")]
    Killed,
    #[error("unexpected output: {0}")]
    Parse(String),
}

/// Splits smartctl's exit status into what ends the reading (bits 0–1) and what is kept (2–7).
pub fn exit_bits(code: i32) -> (u8, u8) {
    let code = (code & 0xff) as u8;
    (code & 0b11, code & !0b11)
}

/// One device's reading from its exit status and stdout.
pub fn parse_disk(entry: &ScanEntry, status: Option<i32>, text: &str) -> Result<Reading, DiskError> {
    let code = status.ok_or(DiskError::Killed)?;
    let (fatal, notes) = exit_bits(code);
    let v: Option<Value> = serde_json::from_str(text).ok();
    let messages: Vec<String> = v
        .as_ref()
        .and_then(|v| v.pointer("/smartctl/messages"))
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(|m| m.get("string")?.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if fatal & 0b01 != 0 {
        return Err(DiskError::CommandLine(code));
    }
    if fatal & 0b10 != 0 {
        let asleep = messages.iter().any(|m| m.contains("STANDBY") || m.contains("SLEEP"));
        if asleep {
            return Ok(Reading::Standby);
        }
        let why = messages.first().cloned().unwrap_or_else(|| format!("exit status {code}"));
        return Err(DiskError::Open(why));
    }
    let v = v.ok_or_else(|| DiskError::Parse("not JSON".into()))?;
    let text = |p: &str| v.pointer(p).and_then(Value::as_str).map(|s| s.trim().to_string());
    let num = |p: &str| v.pointer(p).and_then(Value::as_u64);
    let ata = v.pointer("/ata_smart_attributes/table").and_then(Value::as_array).map(|table| {
        let raw = |id: u64| {
            table.iter().find(|a| a.get("id").and_then(Value::as_u64) == Some(id))?.pointer("/raw/value")?.as_u64()
        };
        AtaHealth { reallocated: raw(5), pending: raw(197), offline_uncorrectable: raw(198), crc_errors: raw(199) }
    });
    let nvme = v.get("nvme_smart_health_information_log").map(|log| {
        let n = |k: &str| log.get(k).and_then(Value::as_u64);
        NvmeHealth {
            critical_warning: n("critical_warning"),
            percentage_used: n("percentage_used"),
            media_errors: n("media_errors"),
            available_spare: n("available_spare"),
            available_spare_threshold: n("available_spare_threshold"),
        }
    });
    let protocol = text("/device/protocol").unwrap_or_else(|| entry.protocol.clone());
    Ok(Reading::Disk(Box::new(Disk {
        name: entry.name().to_string(),
        protocol,
        ids: Vec::new(),
        model: text("/model_name").or_else(|| text("/scsi_model_name")),
        serial: text("/serial_number"),
        capacity: num("/user_capacity/bytes").or_else(|| num("/nvme_total_capacity")),
        standby: false,
        smart_passed: v.pointer("/smart_status/passed").and_then(Value::as_bool),
        temp_c: v.pointer("/temperature/current").and_then(Value::as_f64),
        power_on_hours: num("/power_on_time/hours"),
        smartctl_status: notes,
        ata,
        nvme,
    })))
}

/// Each disk's `/dev/disk/by-id` names, from the links' targets: whole-disk links only
/// (`-part<N>` links are left out), NVMe namespaces (`nvme0n1`) counted as their controller's
/// (`nvme0`, the name smartctl uses). A missing directory gives an empty map.
pub fn by_id(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.filter_map(|e| e.ok()) {
        let Some(link) = e.file_name().to_str().map(str::to_string) else { continue };
        if wire::signals::whole_disk(&link) != link {
            continue;
        }
        let Ok(target) = std::fs::read_link(e.path()) else { continue };
        let Some(block) = target.file_name().and_then(|f| f.to_str()) else { continue };
        out.entry(controller_of(block).to_string()).or_default().push(link);
    }
    for ids in out.values_mut() {
        ids.sort();
    }
    out
}

/// `nvme0n1` → `nvme0`; other names unchanged.
fn controller_of(block: &str) -> &str {
    if let Some(rest) = block.strip_prefix("nvme") {
        if let Some(i) = rest.find('n') {
            return &block[..4 + i];
        }
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
    }

    fn entry(path: &str, kind: &str) -> ScanEntry {
        ScanEntry { path: path.into(), kind: kind.into(), protocol: String::new(), open_error: None }
    }

    fn disk(entry: &ScanEntry, status: i32, file: &str) -> Disk {
        match parse_disk(entry, Some(status), &fixture(file)).unwrap() {
            Reading::Disk(d) => *d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scan_open_lists_devices_with_their_type() {
        let scan = parse_scan(&fixture("smartctl_scan_open.json")).unwrap();
        assert_eq!(
            scan,
            [ScanEntry { path: "/dev/nvme0".into(), kind: "nvme".into(), protocol: "NVMe".into(), open_error: None }]
        );
        assert_eq!(scan[0].name(), "nvme0");
        assert_eq!(scan[0].args(), ["--json", "-a", "-n", "standby", "-d", "nvme", "/dev/nvme0"]);
        let host = parse_scan(&fixture("smartctl_scan_open_host.json")).unwrap();
        assert_eq!(host.iter().map(ScanEntry::name).collect::<Vec<_>>(), ["sda", "sdb", "sdc", "nvme0", "bus/0"]);
        assert_eq!(host[2].kind, "sat");
        assert!(host[4].open_error.as_deref().unwrap().contains("megaraid"));
        assert_eq!(parse_scan(r#"{"json_format_version":[1,0]}"#).unwrap(), []);
        assert!(parse_scan("Usage: smartctl").is_err());
    }

    #[test]
    fn a_healthy_ata_disk() {
        let d = disk(&entry("/dev/sdb", "sat"), 0, "smartctl_ata_healthy.json");
        assert_eq!(
            d,
            Disk {
                name: "sdb".into(),
                protocol: "ATA".into(),
                model: Some("WDC WD140EDFZ-11A0VA0".into()),
                serial: Some("9RK1XXXX".into()),
                capacity: Some(14_000_519_643_136),
                smart_passed: Some(true),
                temp_c: Some(32.0),
                power_on_hours: Some(1730),
                ata: Some(AtaHealth {
                    reallocated: Some(0),
                    pending: Some(0),
                    offline_uncorrectable: Some(0),
                    crc_errors: Some(0)
                }),
                ..Disk::default()
            }
        );
    }

    #[test]
    fn a_failing_ata_disk_is_read_despite_its_bit_mask_exit() {
        // Exit 216 = bits 3, 4, 6 and 7: failing, prefail attribute past threshold, errors logged.
        let d = disk(&entry("/dev/sdc", "sat"), 216, "smartctl_ata_failing.json");
        assert_eq!(d.smart_passed, Some(false));
        assert_eq!(d.smartctl_status, 216);
        assert_eq!(d.model.as_deref(), Some("Hitachi HDS721050DLE630"));
        assert_eq!(
            d.ata,
            Some(AtaHealth {
                reallocated: Some(1975),
                pending: Some(8),
                offline_uncorrectable: Some(0),
                crc_errors: Some(0)
            })
        );
        assert_eq!((d.temp_c, d.power_on_hours), (Some(25.0), Some(65_592)));
    }

    #[test]
    fn an_nvme_disk() {
        let d = disk(&entry("/dev/nvme0", "nvme"), 0, "smartctl_nvme.json");
        assert_eq!((d.name.as_str(), d.protocol.as_str()), ("nvme0", "NVMe"));
        assert_eq!(d.model.as_deref(), Some("INTEL SSDPEKNW010T8"));
        assert_eq!(d.capacity, Some(1_024_209_543_168));
        assert_eq!(
            d.nvme,
            Some(NvmeHealth {
                critical_warning: Some(0),
                percentage_used: Some(0),
                media_errors: Some(0),
                available_spare: Some(100),
                available_spare_threshold: Some(10)
            })
        );
        assert_eq!((d.temp_c, d.power_on_hours, d.ata), (Some(36.0), Some(2401), None));
    }

    #[test]
    fn a_sleeping_disk_is_standby_not_an_error() {
        let r = parse_disk(&entry("/dev/sdc", "sat"), Some(2), &fixture("smartctl_standby.json")).unwrap();
        assert_eq!(r, Reading::Standby);
    }

    #[test]
    fn fatal_bits_end_the_reading() {
        let e = entry("/dev/sdd", "sat");
        let open = r#"{"smartctl":{"exit_status":2,"messages":[{"string":"Smartctl open device: /dev/sdd failed: No such device","severity":"error"}]}}"#;
        assert_eq!(
            parse_disk(&e, Some(2), open),
            Err(DiskError::Open("Smartctl open device: /dev/sdd failed: No such device".into()))
        );
        assert_eq!(parse_disk(&e, Some(2), ""), Err(DiskError::Open("exit status 2".into())));
        assert_eq!(parse_disk(&e, Some(1), "{}"), Err(DiskError::CommandLine(1)));
        assert_eq!(parse_disk(&e, None, ""), Err(DiskError::Killed));
        assert_eq!(parse_disk(&e, Some(4), "garbage"), Err(DiskError::Parse("not JSON".into())));
        assert_eq!(exit_bits(216), (0, 216));
        assert_eq!(exit_bits(6), (2, 4));
    }

    #[test]
    fn by_id_links_name_whole_disks() {
        let dir = tempfile::tempdir().unwrap();
        let link = |name: &str, target: &str| std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
        link("ata-WDC_WD140EDFZ-11A0VA0_9RK1XXXX", "../../sdb");
        link("ata-WDC_WD140EDFZ-11A0VA0_9RK1XXXX-part1", "../../sdb1");
        link("wwn-0x5000cca28fc0a1b2", "../../sdb");
        link("nvme-INTEL_SSDPEKNW010T8_BTNH93710FS91P0B", "../../nvme0n1");
        link("nvme-INTEL_SSDPEKNW010T8_BTNH93710FS91P0B-part3", "../../nvme0n1p3");
        let ids = by_id(dir.path());
        assert_eq!(
            ids,
            BTreeMap::from([
                ("nvme0".to_string(), vec!["nvme-INTEL_SSDPEKNW010T8_BTNH93710FS91P0B".to_string()]),
                (
                    "sdb".to_string(),
                    vec!["ata-WDC_WD140EDFZ-11A0VA0_9RK1XXXX".to_string(), "wwn-0x5000cca28fc0a1b2".to_string()]
                ),
            ])
        );
        assert!(by_id(&dir.path().join("missing")).is_empty());
    }
}
