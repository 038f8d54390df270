//! The hardware signals of the payloads: network and disk I/O rates and temperatures
//! (fast tier), SMART health of the disks (slow tier), and how a disk is matched to the ZFS
//! vdevs that use it.
//!
//! Every section is optional in its tier (`None` from an older agent, or when its source
//! failed, with the reason in `errors`), and is left out of the JSON when empty, so old
//! agents and old servers keep working.

use serde::{Deserialize, Serialize};

/// What kind of interface a [`NetIf`] is. Guest ports (`tap*`, `veth*`, `fwbr*`, ...) and
/// other virtual interfaces are not reported at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetKind {
    Physical,
    Bond,
    Bridge,
    /// A kind a newer agent sends.
    #[serde(other)]
    Other,
}

impl NetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NetKind::Physical => "physical",
            NetKind::Bond => "bond",
            NetKind::Bridge => "bridge",
            NetKind::Other => "other",
        }
    }
}

/// One interface's traffic per second since the previous fast sample, from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetIf {
    pub name: String,
    pub kind: NetKind,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Errors and drops per second, to two decimals (a few an hour still show).
    pub rx_errors: f64,
    pub tx_errors: f64,
    pub rx_drops: f64,
    pub tx_drops: f64,
}

/// One whole disk's I/O per second since the previous fast sample, from `/proc/diskstats`.
/// All zvols (`zd*`) together are one entry named [`DiskIo::ZVOLS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskIo {
    pub name: String,
    pub read_bytes: u64,
    pub write_bytes: u64,
    /// Completed operations per second, to one decimal.
    pub reads: f64,
    pub writes: f64,
    /// Time the device had I/O in flight, percent of the interval (for [`DiskIo::ZVOLS`],
    /// the busiest zvol's).
    pub busy_pct: f64,
}

impl DiskIo {
    /// The name of the entry that sums every zvol.
    pub const ZVOLS: &'static str = "zvols";
}

/// What a [`Temp`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TempKind {
    /// A CPU package (Intel `coretemp` "Package id N", AMD `k10temp` Tctl/Tdie).
    Cpu,
    /// An NVMe controller's composite temperature.
    Nvme,
    #[serde(other)]
    Other,
}

/// One temperature from `/sys/class/hwmon`, in °C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temp {
    /// `cpu0`, `cpu1`, ... per package; `nvme0`, ... per NVMe controller.
    pub name: String,
    pub kind: TempKind,
    pub celsius: f64,
    /// The hottest core (coretemp "Core N", k10temp "TccdN") of a CPU package.
    #[serde(default)]
    pub cores_max: Option<f64>,
}

impl Temp {
    /// The hottest reading of the sensor: its package or its hottest core.
    pub fn hottest(&self) -> f64 {
        self.cores_max.map_or(self.celsius, |c| c.max(self.celsius))
    }
}

/// One disk's SMART data, from `smartctl --json -a -n standby` (slow tier).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    /// The device smartctl names, without `/dev/`: `sda`, `nvme0` (a controller).
    pub name: String,
    /// `ATA`, `NVMe`, `SCSI`, as smartctl says.
    pub protocol: String,
    /// The disk's names under `/dev/disk/by-id` (whole disk, no `-partN`).
    #[serde(default)]
    pub ids: Vec<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub capacity: Option<u64>,
    /// The disk was asleep and was not woken (`-n standby`): no SMART data this time.
    #[serde(default)]
    pub standby: bool,
    /// SMART overall health: false means the disk itself predicts its failure.
    pub smart_passed: Option<bool>,
    pub temp_c: Option<f64>,
    pub power_on_hours: Option<u64>,
    /// smartctl's exit status, a bit mask (bits 2–7: see [`Disk::status_notes`]); 0 when clean.
    #[serde(default)]
    pub smartctl_status: u8,
    #[serde(default)]
    pub ata: Option<AtaHealth>,
    #[serde(default)]
    pub nvme: Option<NvmeHealth>,
}

/// The ATA attributes that predict failure (raw values).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AtaHealth {
    /// Attribute 5, Reallocated_Sector_Ct.
    pub reallocated: Option<u64>,
    /// Attribute 197, Current_Pending_Sector.
    pub pending: Option<u64>,
    /// Attribute 198, Offline_Uncorrectable.
    pub offline_uncorrectable: Option<u64>,
    /// Attribute 199, UDMA_CRC_Error_Count (usually a cable, not the disk).
    pub crc_errors: Option<u64>,
}

/// The NVMe SMART/health log's wear and error fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NvmeHealth {
    /// Bit field; 0 when the controller reports nothing wrong.
    pub critical_warning: Option<u64>,
    /// Endurance used, percent; may pass 100.
    pub percentage_used: Option<u64>,
    pub media_errors: Option<u64>,
    pub available_spare: Option<u64>,
    pub available_spare_threshold: Option<u64>,
}

impl Disk {
    /// The informational bits of smartctl's exit status (2–7), as words. Bits 0 and 1 are
    /// fatal for the disk (bad command line, open failed or asleep) and never arrive here.
    pub fn status_notes(&self) -> Vec<&'static str> {
        const BITS: [(u8, &str); 6] = [
            (2, "a SMART command failed"),
            (3, "SMART status says failing"),
            (4, "prefail attributes at threshold"),
            (5, "attributes were at threshold"),
            (6, "errors in the error log"),
            (7, "errors in the self-test log"),
        ];
        BITS.iter().filter(|(bit, _)| self.smartctl_status & (1 << bit) != 0).map(|(_, s)| *s).collect()
    }

    /// Whether the ZFS vdev named `vdev` is (a partition of) this disk. Matches on, in order:
    /// the kernel name (`sda3` → `sda`, `nvme0n1p3` → namespace of `nvme0`), a by-id name
    /// (`ata-…-part3` → `ata-…`), and the serial number inside the vdev's name (by-id names
    /// carry it; at least 6 characters, so a short serial never matches by accident).
    pub fn matches_vdev(&self, vdev: &str) -> bool {
        let vdev = vdev.rsplit('/').next().unwrap_or(vdev);
        let base = whole_disk(vdev);
        if base == self.name || nvme_namespace_of(base, &self.name) {
            return true;
        }
        if self.ids.iter().any(|id| id == base) {
            return true;
        }
        self.serial.as_deref().map(str::trim).is_some_and(|s| s.len() >= 6 && vdev.contains(s))
    }
}

/// `nvme0n1` belongs to controller `nvme0`.
fn nvme_namespace_of(block: &str, controller: &str) -> bool {
    controller.starts_with("nvme")
        && block
            .strip_prefix(controller)
            .and_then(|r| r.strip_prefix('n'))
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
}

/// The whole disk a partition name belongs to: `sda3` → `sda`, `nvme0n1p3` → `nvme0n1`,
/// `ata-X-part3` → `ata-X`; other names unchanged.
pub fn whole_disk(name: &str) -> &str {
    if let Some((base, n)) = name.rsplit_once("-part") {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            return base;
        }
    }
    if name.starts_with("nvme") {
        if let Some((base, n)) = name.rsplit_once('p') {
            if base.contains('n') && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                return base;
            }
        }
        return name;
    }
    if ["sd", "vd", "hd", "xvd"].iter().any(|p| name.starts_with(p)) {
        return name.trim_end_matches(|c: char| c.is_ascii_digit());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, serial: &str, ids: &[&str]) -> Disk {
        Disk {
            name: name.into(),
            serial: Some(serial.into()),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            ..Disk::default()
        }
    }

    #[test]
    fn partitions_map_to_their_whole_disk() {
        assert_eq!(whole_disk("sda3"), "sda");
        assert_eq!(whole_disk("nvme0n1p3"), "nvme0n1");
        assert_eq!(whole_disk("nvme0n1"), "nvme0n1");
        assert_eq!(whole_disk("ata-ST4000VN008-2DR166_ZDH1ABCD-part1"), "ata-ST4000VN008-2DR166_ZDH1ABCD");
        assert_eq!(whole_disk("wwn-0x5000c500a1b2c3d4"), "wwn-0x5000c500a1b2c3d4");
        assert_eq!(whole_disk("mirror-0"), "mirror-0");
    }

    #[test]
    fn vdevs_match_by_kernel_name_by_id_and_serial() {
        let sda = disk("sda", "ZDH1ABCD", &["ata-ST4000VN008-2DR166_ZDH1ABCD", "wwn-0x5000c500a1b2c3d4"]);
        assert!(sda.matches_vdev("sda"));
        assert!(sda.matches_vdev("sda3"));
        assert!(sda.matches_vdev("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1"));
        assert!(sda.matches_vdev("ata-ST4000VN008-2DR166_ZDH1ABCD-part3"));
        assert!(!sda.matches_vdev("sdb3"));
        assert!(!sda.matches_vdev("mirror-0"));
        let by_serial = disk("sdq", "ZDH1ABCD", &[]);
        assert!(by_serial.matches_vdev("ata-ST4000VN008-2DR166_ZDH1ABCD-part3"), "no by-id list: the serial");
        let nvme = disk("nvme0", "S4EWNX0N123456", &["nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456"]);
        assert!(nvme.matches_vdev("nvme0n1p3"));
        assert!(nvme.matches_vdev("nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0N123456-part3"));
        assert!(!nvme.matches_vdev("nvme1n1p3"));
        assert!(!nvme.matches_vdev("nvme01n1"));
        assert!(!disk("sdb", "X1", &[]).matches_vdev("ata-X1-part1"), "short serials never match");
    }

    #[test]
    fn status_notes_name_the_informational_bits() {
        let d = Disk { smartctl_status: 216, ..Disk::default() };
        assert_eq!(
            d.status_notes(),
            [
                "SMART status says failing",
                "prefail attributes at threshold",
                "errors in the error log",
                "errors in the self-test log"
            ]
        );
        assert!(Disk::default().status_notes().is_empty());
    }

    #[test]
    fn unknown_kinds_are_kept_as_other() {
        let n: NetKind = serde_json::from_str("\"vlan\"").unwrap();
        assert_eq!(n, NetKind::Other);
        let t: TempKind = serde_json::from_str("\"gpu\"").unwrap();
        assert_eq!(t, TempKind::Other);
    }
}
