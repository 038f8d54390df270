//! CPU and NVMe temperatures from `/sys/class/hwmon`.
//!
//! Each `hwmon<N>` directory is one chip: a `name` file and `temp<i>_input` (millidegrees)
//! with an optional `temp<i>_label` (kernel Documentation/hwmon/sysfs-interface.rst).
//! [`read_tree`] reads the chips (the only I/O here); [`summarize`] picks what is reported:
//! - `coretemp` (Intel, one chip per package): "Package id N" (or "Physical id N") and the
//!   hottest "Core M" as `cores_max`, named `cpu<N>`.
//! - `k10temp` / `zenpower` (AMD, one chip per socket): Tdie, else Tctl (which may carry an
//!   offset on some models), and the hottest "Tccd<M>" as `cores_max`, named `cpu<k>` in
//!   chip order.
//! - `nvme`: the composite temperature (temp1), named after the controller (the chip's
//!   `device` link, e.g. `nvme0`).
//!
//! Other chips (ACPI zones, chipset, `drivetemp`, GPUs) are left out: the host page has the
//! disks' own temperatures from SMART.

use std::io;
use std::path::{Path, PathBuf};

use wire::{Temp, TempKind};

/// `/sys/class/hwmon`, relative to the sys root.
pub const PATH: &str = "class/hwmon";

/// One `temp<i>_*` set of a chip.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    pub index: u32,
    pub label: Option<String>,
    pub millidegrees: i64,
}

/// One `hwmon<N>` directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Chip {
    pub name: String,
    /// The last part of the `device` link's target (`nvme0`, `coretemp.0`), if any.
    pub device: Option<String>,
    pub sensors: Vec<Sensor>,
}

/// Reads every chip under `dir`, in `hwmon<N>` order. A chip or sensor that cannot be read
/// (a sensor that errors on read is common) is skipped; only a missing or unreadable `dir`
/// is an error.
pub fn read_tree(dir: &Path) -> io::Result<Vec<Chip>> {
    let mut entries: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_prefix("hwmon")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    entries.sort();
    Ok(entries.into_iter().filter_map(|(_, path)| read_chip(&path)).collect())
}

fn read_chip(path: &Path) -> Option<Chip> {
    let name = std::fs::read_to_string(path.join("name")).ok()?.trim().to_string();
    let device = std::fs::read_link(path.join("device"))
        .ok()
        .and_then(|t| t.file_name().and_then(|f| f.to_str()).map(str::to_string));
    let mut sensors: Vec<Sensor> = std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name();
            let index = file.to_str()?.strip_prefix("temp")?.strip_suffix("_input")?.parse().ok()?;
            let millidegrees = std::fs::read_to_string(e.path()).ok()?.trim().parse().ok()?;
            let label =
                std::fs::read_to_string(path.join(format!("temp{index}_label"))).ok().map(|l| l.trim().to_string());
            Some(Sensor { index, label, millidegrees })
        })
        .collect();
    sensors.sort_by_key(|s| s.index);
    Some(Chip { name, device, sensors })
}

/// The reported temperatures of `chips`: CPU packages first, then NVMe controllers.
pub fn summarize(chips: &[Chip]) -> Vec<Temp> {
    let celsius = |s: &Sensor| (s.millidegrees as f64 / 100.0).round() / 10.0;
    let hottest = |chip: &Chip, prefix: &str| {
        chip.sensors
            .iter()
            .filter(|s| s.label.as_deref().is_some_and(|l| l.starts_with(prefix)))
            .map(celsius)
            .reduce(f64::max)
    };
    let mut cpus = Vec::new();
    let mut nvmes = Vec::new();
    for chip in chips {
        match chip.name.as_str() {
            "coretemp" => {
                let package = chip.sensors.iter().find_map(|s| {
                    let l = s.label.as_deref()?;
                    let id = l.strip_prefix("Package id ").or_else(|| l.strip_prefix("Physical id "))?;
                    Some((id.trim().to_string(), celsius(s)))
                });
                let cores_max = hottest(chip, "Core ");
                match (package, cores_max) {
                    (Some((id, c)), cores_max) => cpus.push(cpu(format!("cpu{id}"), c, cores_max)),
                    // No package sensor (very old CPUs): the hottest core stands for it.
                    (None, Some(c)) => cpus.push(cpu(format!("cpu{}", cpus.len()), c, None)),
                    (None, None) => {}
                }
            }
            "k10temp" | "zenpower" => {
                let die = labelled(chip, "Tdie").or_else(|| labelled(chip, "Tctl")).map(celsius);
                if let Some(c) = die {
                    cpus.push(cpu(format!("cpu{}", cpus.len()), c, hottest(chip, "Tccd")));
                }
            }
            "nvme" => {
                let composite = labelled(chip, "Composite").or_else(|| chip.sensors.iter().find(|s| s.index == 1));
                if let Some(s) = composite {
                    let name = chip.device.clone().unwrap_or_else(|| format!("nvme?{}", nvmes.len()));
                    nvmes.push(Temp { name, kind: TempKind::Nvme, celsius: celsius(s), cores_max: None });
                }
            }
            _ => {}
        }
    }
    cpus.extend(nvmes);
    cpus
}

fn labelled<'a>(chip: &'a Chip, label: &str) -> Option<&'a Sensor> {
    chip.sensors.iter().find(|s| s.label.as_deref() == Some(label))
}

fn cpu(name: String, celsius: f64, cores_max: Option<f64>) -> Temp {
    Temp { name, kind: TempKind::Cpu, celsius, cores_max }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hwmon")
    }

    #[test]
    fn reads_a_sysfs_tree() {
        let chips = read_tree(&tree()).unwrap();
        let names: Vec<(&str, Option<&str>)> = chips.iter().map(|c| (c.name.as_str(), c.device.as_deref())).collect();
        assert_eq!(
            names,
            [("acpitz", None), ("nvme", Some("nvme0")), ("coretemp", Some("coretemp.0")), ("nvme", Some("nvme1"))]
        );
        let core = &chips[2];
        assert_eq!(core.sensors.len(), 5);
        assert_eq!(core.sensors[0], Sensor { index: 1, label: Some("Package id 0".into()), millidegrees: 54_000 });
    }

    #[test]
    fn packages_cores_and_nvme_composites() {
        let temps = summarize(&read_tree(&tree()).unwrap());
        assert_eq!(
            temps,
            [
                Temp { name: "cpu0".into(), kind: TempKind::Cpu, celsius: 54.0, cores_max: Some(61.0) },
                Temp { name: "nvme0".into(), kind: TempKind::Nvme, celsius: 44.9, cores_max: None },
                Temp { name: "nvme1".into(), kind: TempKind::Nvme, celsius: 71.9, cores_max: None },
            ]
        );
        assert_eq!(temps[0].hottest(), 61.0);
    }

    #[test]
    fn amd_prefers_tdie_and_names_sockets_in_order() {
        let s = |index, label: &str, m| Sensor { index, label: Some(label.into()), millidegrees: m };
        let chip = |sensors| Chip { name: "k10temp".into(), device: None, sensors };
        let temps = summarize(&[
            chip(vec![s(1, "Tctl", 68_750), s(2, "Tdie", 48_750), s(3, "Tccd1", 51_000), s(4, "Tccd2", 57_250)]),
            chip(vec![s(1, "Tctl", 45_125)]),
        ]);
        assert_eq!(
            temps,
            [
                Temp { name: "cpu0".into(), kind: TempKind::Cpu, celsius: 48.8, cores_max: Some(57.3) },
                Temp { name: "cpu1".into(), kind: TempKind::Cpu, celsius: 45.1, cores_max: None },
            ]
        );
    }

    #[test]
    fn a_missing_tree_is_an_error_and_an_empty_one_is_not() {
        assert!(read_tree(Path::new("/nonexistent/hwmon")).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(read_tree(empty.path()).unwrap(), []);
    }
}
