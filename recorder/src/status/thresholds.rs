//! The numeric rules' thresholds, and the current value of a numeric rule's subject, which
//! alerting needs to hold a level with hysteresis.

use wire::{Fast, Medium, TempKind};

use super::{Level, Rule};

/// A numeric rule's thresholds: it triggers at `warning` / `critical` and, once
/// triggered, clears only below the threshold minus `clear_margin` (hysteresis, used by
/// alerting, which remembers what is active; a card shows the plain thresholds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub warning: f64,
    pub critical: f64,
    pub clear_margin: f64,
}

/// Pool capacity, percent.
pub const POOL_CAPACITY: Thresholds = Thresholds { warning: 80.0, critical: 90.0, clear_margin: 5.0 };
/// Active storage use, percent.
pub const STORAGE_FULL: Thresholds = Thresholds { warning: 85.0, critical: 95.0, clear_margin: 5.0 };
/// Days since the last finished scrub.
pub const SCRUB_AGE_DAYS: f64 = 35.0;
/// A CPU package's hottest reading, °C: warm at 90 (clears below 85), critical at 100, where
/// Intel and AMD parts throttle.
pub const CPU_TEMPERATURE: Thresholds = Thresholds { warning: 90.0, critical: 100.0, clear_margin: 5.0 };
/// An NVMe controller's composite temperature, °C: most drives throttle from about 70 to 80.
pub const NVME_TEMPERATURE: Thresholds = Thresholds { warning: 70.0, critical: 80.0, clear_margin: 5.0 };
/// NVMe endurance used, percent.
pub const DISK_WEAR_PCT: u64 = 90;

impl Thresholds {
    /// The level `value` is at with no memory: what a card shows.
    pub fn level(&self, value: f64) -> Option<Level> {
        if value >= self.critical {
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
        let held = match active {
            Some(Level::Critical) if value >= self.critical - self.clear_margin => Some(Level::Critical),
            Some(Level::Critical | Level::Warning) if value >= self.warning - self.clear_margin => Some(Level::Warning),
            _ => None,
        };
        fresh.max(held)
    }

    /// The rule these thresholds belong to, if it has any.
    pub fn of(rule: Rule) -> Option<Thresholds> {
        match rule {
            Rule::PoolCapacity => Some(POOL_CAPACITY),
            Rule::StorageFull => Some(STORAGE_FULL),
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

/// The current value of a numeric rule's subject in `medium` (pool capacity, active
/// storage use): alerting's hysteresis needs it once the plain threshold no longer finds it.
pub fn measure(medium: &Medium, rule: Rule, subject: &str) -> Option<f64> {
    match rule {
        Rule::PoolCapacity => medium.pools.as_ref()?.iter().find(|p| p.name == subject)?.cap_pct,
        Rule::StorageFull => {
            let s = medium.storages.as_ref()?.iter().find(|s| s.name == subject && s.active)?;
            pct(s.used, s.total)
        }
        _ => None,
    }
}

/// The current temperature of a sensor rule's subject in `fast`: alerting's hysteresis
/// needs it once the plain threshold no longer finds it.
pub fn measure_fast(fast: &Fast, rule: Rule, subject: &str) -> Option<f64> {
    let kind = match rule {
        Rule::CpuTemperature => TempKind::Cpu,
        Rule::NvmeTemperature => TempKind::Nvme,
        _ => return None,
    };
    fast.temps.as_ref()?.iter().find(|t| t.kind == kind && t.name == subject).map(wire::Temp::hottest)
}
