//! The host page's hardware sections: disks (SMART, with the pool vdevs on each disk),
//! network and disk I/O rates, temperatures. Pure: a host's state in, table rows out.

use recorder::state::Decoded;
use recorder::status::{limits, pool_level, Level, Overrides, Rule, Thresholds};
use wire::{Disk, Fast, Medium, TempKind};

use super::pages::{Row, Section};
use crate::format::{bytes, opt_f};

/// The disk a vdev is on, if the latest slow sample has it.
pub fn disk_of_vdev<'a>(disks: &'a [Disk], vdev: &str) -> Option<&'a Disk> {
    disks.iter().find(|d| d.matches_vdev(vdev))
}

/// `pool/vdev (STATE)` for every vdev on `disk`.
fn vdevs_on(medium: Option<&Medium>, disk: &Disk) -> (String, bool) {
    let mut names = Vec::new();
    let mut bad = false;
    for pool in medium.and_then(|m| m.pools.as_ref()).into_iter().flatten() {
        for v in pool.vdevs.iter().filter(|v| v.depth > 0 && disk.matches_vdev(&v.name)) {
            names.push(format!("{}/{} ({})", pool.name, v.name, v.state));
            bad |= pool_level(&v.state) != Level::Online || v.errors() > 0;
        }
    }
    (names.join(", "), bad)
}

fn health(d: &Disk) -> String {
    if d.standby {
        return "standby (not woken)".into();
    }
    let verdict = match d.smart_passed {
        Some(true) => "PASSED",
        Some(false) => "FAILED",
        None => "–",
    };
    let notes = d.status_notes();
    if notes.is_empty() {
        verdict.into()
    } else {
        format!("{verdict} ({})", notes.join(", "))
    }
}

fn wear(d: &Disk) -> String {
    let n = |v: Option<u64>| v.map_or_else(|| "–".into(), |v| v.to_string());
    if let Some(nvme) = &d.nvme {
        return format!(
            "{}% used, spare {}% (min {}%), {} media errors",
            n(nvme.percentage_used),
            n(nvme.available_spare),
            n(nvme.available_spare_threshold),
            n(nvme.media_errors)
        );
    }
    if let Some(ata) = &d.ata {
        return format!(
            "reallocated {}, pending {}, uncorrectable {}, CRC {}",
            n(ata.reallocated),
            n(ata.pending),
            n(ata.offline_uncorrectable),
            n(ata.crc_errors)
        );
    }
    String::new()
}

/// A host's name with the overrides it is judged under: rows are marked where its card
/// has a reason.
struct Judged<'a> {
    host: &'a str,
    limits: &'a Overrides,
}

impl Judged<'_> {
    fn flags(&self, rule: Rule, subject: &str, value: f64) -> bool {
        self.limits.flags(self.host, rule, subject, value)
    }
}

fn worn(d: &Disk, judged: &Judged) -> bool {
    d.nvme.as_ref().is_some_and(|n| {
        n.percentage_used.is_some_and(|u| judged.flags(Rule::DiskWear, &d.name, u as f64))
            || n.available_spare.is_some_and(|s| {
                let builtin = Some(Thresholds::for_drive(n.available_spare_threshold));
                judged.limits.flags_from(judged.host, Rule::DiskSpare, &d.name, s as f64, builtin)
            })
    })
}

/// Disks, network, disk I/O and temperatures, in that order.
pub fn sections(s: &Decoded) -> Vec<Section> {
    let medium = s.medium_data();
    let fast = s.fast_data();
    let disks = s.slow_data().and_then(|s| s.disks.as_deref()).unwrap_or_default();
    let limits = limits::current();
    let judged = Judged { host: &s.state.host_id, limits: &limits };
    vec![
        disks_section(medium, disks, &judged),
        network_section(fast),
        io_section(fast),
        temperatures_section(fast, &judged),
    ]
}

fn rate(b: u64) -> String {
    format!("{}/s", bytes(b))
}

/// Rates are differences between two fast samples, so the first sample has none.
const NO_RATES_YET: &str = "No rates yet (they need two fast samples).";

fn disks_section(medium: Option<&Medium>, disks: &[Disk], judged: &Judged) -> Section {
    let rows = disks.iter().map(|d| {
        let (vdevs, vdev_bad) = vdevs_on(medium, d);
        Row {
            cells: vec![
                d.name.clone(),
                d.model.clone().unwrap_or_default(),
                d.serial.clone().unwrap_or_default(),
                health(d),
                d.temp_c.map(|t| format!("{t:.0} °C")).unwrap_or_default(),
                d.power_on_hours.map(|h| format!("{h} h")).unwrap_or_default(),
                wear(d),
                vdevs,
            ],
            bad: d.smart_passed == Some(false) || vdev_bad || worn(d, judged),
        }
    });
    let head = vec!["Disk", "Model", "Serial", "Health", "Temp", "Power-on", "Wear / sectors", "Pool / vdev"];
    Section::new("Disks", head, "No disks reported (smartctl runs in the slow tier).", rows.collect())
}

fn network_section(fast: Option<&Fast>) -> Section {
    let rows = fast.and_then(|f| f.net.as_ref()).into_iter().flatten().map(|n| Row {
        cells: vec![
            n.name.clone(),
            n.kind.as_str().into(),
            rate(n.rx_bytes),
            rate(n.tx_bytes),
            format!("{} / {}", n.rx_packets, n.tx_packets),
            format!("{} / {}", n.rx_errors, n.tx_errors),
            format!("{} / {}", n.rx_drops, n.tx_drops),
        ],
        bad: n.rx_errors + n.tx_errors > 0.0,
    });
    let head =
        vec!["Interface", "Kind", "Receive", "Transmit", "Packets in / out", "Errors in / out", "Drops in / out"];
    Section::new("Network", head, NO_RATES_YET, rows.collect())
}

fn io_section(fast: Option<&Fast>) -> Section {
    let rows = fast.and_then(|f| f.diskio.as_ref()).into_iter().flatten().map(|d| Row {
        cells: vec![
            d.name.clone(),
            rate(d.read_bytes),
            rate(d.write_bytes),
            format!("{:.1}", d.reads),
            format!("{:.1}", d.writes),
            format!("{:.0}%", d.busy_pct),
        ],
        bad: false,
    });
    let head = vec!["Disk", "Read", "Write", "Reads/s", "Writes/s", "Busy"];
    Section::new("Disk I/O", head, NO_RATES_YET, rows.collect())
}

/// A sensor is marked from its warning threshold, as the status rules are.
fn temperatures_section(fast: Option<&Fast>, judged: &Judged) -> Section {
    let rows = fast.and_then(|f| f.temps.as_ref()).into_iter().flatten().map(|t| {
        let (kind, rule) = match t.kind {
            TempKind::Cpu => ("CPU", Some(Rule::CpuTemperature)),
            TempKind::Nvme => ("NVMe", Some(Rule::NvmeTemperature)),
            TempKind::Other => ("other", None),
        };
        Row {
            cells: vec![
                t.name.clone(),
                kind.into(),
                format!("{:.1} °C", t.celsius),
                t.cores_max.map(|c| format!("{} °C", opt_f(Some(c), 1))).unwrap_or_default(),
            ],
            bad: rule.is_some_and(|rule| judged.flags(rule, &t.name, t.hottest())),
        }
    });
    let head = vec!["Sensor", "Kind", "Temperature", "Hottest core"];
    Section::new("Temperatures", head, "No CPU or NVMe sensors reported.", rows.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recorder::state::HostState;
    use wire::Held;
    use wire::{Pool, Slow, Vdev};

    fn payload<T>(data: T) -> wire::Payload<T> {
        wire::Payload {
            schema: wire::SCHEMA_VERSION,
            host_id: "pve1".into(),
            ts_ms: 0,
            boot_id: String::new(),
            seq: 1,
            agent_version: String::new(),
            dropped: 0,
            errors: Default::default(),
            data,
        }
    }

    #[test]
    fn a_failing_disk_shows_with_its_vdev_and_the_vdev_with_its_disk() {
        let disk = Disk {
            name: "sdb".into(),
            model: Some("WDC X".into()),
            serial: Some("WD-ABC123".into()),
            ids: vec!["ata-WDC_X_WD-ABC123".into()],
            smart_passed: Some(false),
            smartctl_status: 8,
            ..Disk::default()
        };
        let pool = Pool {
            name: "rpool".into(),
            state: "DEGRADED".into(),
            vdevs: vec![
                Vdev { name: "mirror-0".into(), state: "DEGRADED".into(), ..Vdev::default() },
                Vdev { name: "ata-WDC_X_WD-ABC123-part3".into(), depth: 1, state: "FAULTED".into(), ..Vdev::default() },
            ],
            ..Pool::default()
        };
        let state = HostState {
            slow: Some(Held::new(&payload(Slow { disks: Some(vec![disk]), ..Slow::default() }))),
            medium: Some(Held::new(&payload(Medium { pools: Some(vec![pool]), ..Medium::default() }))),
            ..HostState::default()
        };
        let decoded = state.decoded();
        let sections = sections(&decoded);
        let row = &sections[0].rows[0];
        assert!(row.bad);
        assert_eq!(row.cells[3], "FAILED (SMART status says failing)");
        assert_eq!(row.cells[7], "rpool/ata-WDC_X_WD-ABC123-part3 (FAULTED)");
        let disks = decoded.slow_data().unwrap().disks.as_ref().unwrap();
        assert_eq!(disk_of_vdev(disks, "ata-WDC_X_WD-ABC123-part3").map(|d| d.name.as_str()), Some("sdb"));
        assert!(sections[1].rows.is_empty() && sections[3].rows.is_empty());
    }
}
