//! Rules about the hardware: disks' SMART health, reallocated sectors, NVMe wear, spare
//! and media errors, and CPU and NVMe temperatures.

use wire::{Disk, Fast, TempKind};

use super::{Facts, Finding, Level, Rule, Thresholds};

/// A counter that is higher now than in the previous reading of the same disk.
fn grew(now: Option<u64>, before: Option<u64>) -> bool {
    matches!((now, before), (Some(n), Some(b)) if n > b)
}

/// Every disk's findings; a counter is news only when it grew since the previous sample.
pub(super) fn disks(f: &Facts, out: &mut Vec<Finding>) {
    use Level::{Critical, Warning};
    for disk in f.slow.and_then(|s| s.disks.as_ref()).into_iter().flatten() {
        let name = Some(disk.name.as_str());
        let what = match &disk.model {
            Some(model) => format!("disk {} ({model})", disk.name),
            None => format!("disk {}", disk.name),
        };
        if disk.smart_passed == Some(false) {
            let message = format!("{what} fails its SMART health check");
            out.push(Finding::new(Rule::DiskHealth, name, Critical, None, message));
        }
        let before = f.previous_slow.and_then(|p| p.same_disk(disk));
        if let (Some(ata), Some(old)) = (&disk.ata, before.and_then(|b| b.ata.as_ref())) {
            let sectors = |a: &wire::AtaHealth| a.reallocated.unwrap_or(0) + a.pending.unwrap_or(0);
            if grew(ata.reallocated, old.reallocated) || grew(ata.pending, old.pending) {
                let message =
                    format!("{what}: reallocated/pending sectors grew from {} to {}", sectors(old), sectors(ata));
                out.push(Finding::new(Rule::DiskSectors, name, Warning, Some(sectors(ata) as f64), message));
            }
        }
        let Some(nvme) = &disk.nvme else { continue };
        let wear = f.thresholds(Rule::DiskWear, &disk.name);
        let used_level = nvme.percentage_used.zip(wear).and_then(|(u, t)| t.level(u as f64).map(|l| (u, l)));
        if let Some((used, level)) = used_level {
            let message = format!("{what} has used {used}% of its rated endurance");
            out.push(Finding::new(Rule::DiskWear, name, level, Some(used as f64), message));
        }
        spare(f, disk, nvme, &what, out);
        let old = before.and_then(|b| b.media_errors);
        if grew(nvme.media_errors, old) {
            let now = nvme.media_errors.unwrap_or(0);
            let message = format!("{what}: media errors grew from {} to {now}", old.unwrap_or(0));
            out.push(Finding::new(Rule::DiskMediaErrors, name, Warning, Some(now as f64), message));
        }
    }
}

/// An NVMe disk's available spare below its trigger: the drive's own threshold unless an
/// operator set one (`rule set disk_spare --trigger`).
fn spare(f: &Facts, disk: &Disk, nvme: &wire::NvmeHealth, what: &str, out: &mut Vec<Finding>) {
    let Some(spare) = nvme.available_spare else { return };
    let builtin = Thresholds::for_drive(nvme.available_spare_threshold);
    let Some(thresholds) = f.limits.resolve_from(f.host_id, Rule::DiskSpare, &disk.name, Some(builtin)).thresholds
    else {
        return;
    };
    if let Some(level) = thresholds.level(spare as f64) {
        let below = thresholds.critical.filter(|_| level == Level::Critical).unwrap_or(thresholds.warning);
        let whose = if below == builtin.warning { "its" } else { "the" };
        let message = format!("{what} has {spare}% spare blocks left, below {whose} threshold of {below}%");
        out.push(Finding::new(Rule::DiskSpare, Some(&disk.name), level, Some(spare as f64), message));
    }
}

/// A CPU package or NVMe controller at or above its thresholds (a card's plain level).
pub(super) fn temperatures(f: &Facts, fast: &Fast, out: &mut Vec<Finding>) {
    for t in fast.temps.iter().flatten() {
        let rule = match t.kind {
            TempKind::Cpu => Rule::CpuTemperature,
            TempKind::Nvme => Rule::NvmeTemperature,
            TempKind::Other => continue,
        };
        let c = t.hottest();
        if let Some(level) = f.thresholds(rule, &t.name).and_then(|th| th.level(c)) {
            let message = format!("{} is at {c:.0} °C", t.name);
            out.push(Finding::new(rule, Some(&t.name), level, Some(c), message));
        }
    }
}
