//! The numeric rules' built-in thresholds, and the current value of a numeric rule's
//! subject, which alerting needs to hold a level with hysteresis.

use wire::{Fast, Medium, Slow, TempKind};

use super::zfs::DAY_MS;
use super::{Level, Rule};

/// A numeric rule's thresholds: it triggers at `warning` / `critical` and, once
/// triggered, clears only below the threshold minus `clear_margin` (hysteresis, used by
/// alerting, which remembers what is active; a card shows the plain thresholds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub warning: f64,
    /// None: the rule never becomes critical (the built-in scrub age, wear and load).
    pub critical: Option<f64>,
    pub clear_margin: f64,
}

/// Pool capacity, percent.
pub const POOL_CAPACITY: Thresholds = Thresholds { warning: 80.0, critical: Some(90.0), clear_margin: 5.0 };
/// Active storage use, percent.
pub const STORAGE_FULL: Thresholds = Thresholds { warning: 85.0, critical: Some(95.0), clear_margin: 5.0 };
/// Whole days since the last finished scrub; a monthly scrub (Debian's default) stays under.
pub const SCRUB_AGE_DAYS: Thresholds = Thresholds { warning: 35.0, critical: None, clear_margin: 5.0 };
/// A CPU package's hottest reading, °C: warm at 90 (clears below 85), critical at 100, where
/// Intel and AMD parts throttle.
pub const CPU_TEMPERATURE: Thresholds = Thresholds { warning: 90.0, critical: Some(100.0), clear_margin: 5.0 };
/// An NVMe controller's composite temperature, °C: most drives throttle from about 70 to 80.
pub const NVME_TEMPERATURE: Thresholds = Thresholds { warning: 70.0, critical: Some(80.0), clear_margin: 5.0 };
/// NVMe endurance used, percent. The value only grows, so the margin matters only when an
/// operator raises the trigger past a disk's value.
pub const DISK_WEAR: Thresholds = Thresholds { warning: 90.0, critical: None, clear_margin: 5.0 };
/// The built-in wear trigger as the agent reports wear (whole percent), for pages that mark it.
pub const DISK_WEAR_PCT: u64 = DISK_WEAR.warning as u64;
/// The 15-minute load per core: above 1.0 more work waits than the cores can run.
pub const LOAD_PER_CORE: Thresholds = Thresholds { warning: 1.0, critical: None, clear_margin: 0.1 };

impl Thresholds {
    /// The level `value` is at with no memory: what a card shows.
    pub fn level(&self, value: f64) -> Option<Level> {
        if self.critical.is_some_and(|c| value >= c) {
            Some(Level::Critical)
        } else if value >= self.warning {
            Some(Level::Warning)
        } else {
            None
        }
    }

    /// The level `value` is at when the condition was already at `active`: each level
    /// holds until the value falls `clear_margin` below its threshold.
    pub fn level_with_hysteresis(&self, value: f64, active: Option<Level>) -> Option<Level> {
        let fresh = self.level(value);
        let critical_held = self.critical.is_some_and(|c| value >= c - self.clear_margin);
        let held = match active {
            Some(Level::Critical) if critical_held => Some(Level::Critical),
            Some(Level::Critical | Level::Warning) if value >= self.warning - self.clear_margin => Some(Level::Warning),
            _ => None,
        };
        fresh.max(held)
    }

    /// The built-in thresholds of `rule`, if it is a numeric rule.
    pub fn of(rule: Rule) -> Option<Thresholds> {
        match rule {
            Rule::PoolCapacity => Some(POOL_CAPACITY),
            Rule::StorageFull => Some(STORAGE_FULL),
            Rule::ScrubAge => Some(SCRUB_AGE_DAYS),
            Rule::DiskWear => Some(DISK_WEAR),
            Rule::Load => Some(LOAD_PER_CORE),
            Rule::CpuTemperature => Some(CPU_TEMPERATURE),
            Rule::NvmeTemperature => Some(NVME_TEMPERATURE),
            _ => None,
        }
    }
}

/// `used` as a percentage of `total`, when both are known and `total` isn't 0.
pub fn pct(used: Option<u64>, total: Option<u64>) -> Option<f64> {
    match (used, total) {
        (Some(u), Some(t)) if t > 0 => Some(u as f64 * 100.0 / t as f64),
        _ => None,
    }
}

/// The 15-minute load per core, when both are known.
pub fn load_per_core(fast: &Fast) -> Option<f64> {
    match (fast.load15, fast.cpus) {
        (Some(load), Some(cpus)) if cpus > 0 => Some(load / f64::from(cpus)),
        _ => None,
    }
}

/// Whole days from a scrub that ended at `end_s` (agent seconds) to `now_ms`.
pub fn scrub_age_days(end_s: i64, now_ms: i64) -> f64 {
    ((now_ms - end_s * 1000) / DAY_MS) as f64
}

/// A host's latest tier data, where alerting looks up a numeric subject's current value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latest<'a> {
    pub fast: Option<&'a Fast>,
    pub medium: Option<&'a Medium>,
    pub slow: Option<&'a Slow>,
}

impl Latest<'_> {
    /// The current value of `subject` of numeric `rule` at `now_ms`: alerting's hysteresis
    /// needs it once the plain threshold no longer finds it.
    pub fn measure(&self, rule: Rule, subject: &str, now_ms: i64) -> Option<f64> {
        match rule {
            Rule::PoolCapacity | Rule::StorageFull | Rule::ScrubAge => measure(self.medium?, rule, subject, now_ms),
            Rule::Load | Rule::CpuTemperature | Rule::NvmeTemperature => measure_fast(self.fast?, rule, subject),
            Rule::DiskWear => measure_slow(self.slow?, rule, subject),
            _ => None,
        }
    }
}

/// The current value of a numeric rule's subject in `medium`: pool capacity, active
/// storage use, days since a pool's last finished scrub.
pub fn measure(medium: &Medium, rule: Rule, subject: &str, now_ms: i64) -> Option<f64> {
    match rule {
        Rule::PoolCapacity => medium.pools.as_ref()?.iter().find(|p| p.name == subject)?.cap_pct,
        Rule::StorageFull => {
            let s = medium.storages.as_ref()?.iter().find(|s| s.name == subject && s.active)?;
            pct(s.used, s.total)
        }
        Rule::ScrubAge => {
            let pool = medium.pools.as_ref()?.iter().find(|p| p.name == subject)?;
            let end = pool.scan.as_ref().filter(|s| s.function == wire::ScanFunction::Scrub)?.end?;
            Some(scrub_age_days(end, now_ms))
        }
        _ => None,
    }
}

/// The current value of a fast rule's subject: a sensor's temperature, or the host's
/// load per core (subject '').
pub fn measure_fast(fast: &Fast, rule: Rule, subject: &str) -> Option<f64> {
    let kind = match rule {
        Rule::Load => return load_per_core(fast),
        Rule::CpuTemperature => TempKind::Cpu,
        Rule::NvmeTemperature => TempKind::Nvme,
        _ => return None,
    };
    fast.temps.as_ref()?.iter().find(|t| t.kind == kind && t.name == subject).map(wire::Temp::hottest)
}

/// The current value of a disk rule's subject in `slow`: an NVMe disk's percentage used.
pub fn measure_slow(slow: &Slow, rule: Rule, subject: &str) -> Option<f64> {
    match rule {
        Rule::DiskWear => {
            let disk = slow.disks.as_ref()?.iter().find(|d| d.name == subject)?;
            disk.nvme.as_ref()?.percentage_used.map(|u| u as f64)
        }
        _ => None,
    }
}
