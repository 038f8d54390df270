//! The numeric rules' built-in thresholds, and the current value of a numeric rule's
//! subject, which alerting needs to hold a level with hysteresis.

use wire::{Disk, Fast, Medium, Slow, TempKind};

use super::zfs::DAY_MS;
use super::{Level, Rule};

/// A numeric rule's thresholds: it triggers at `warning` / `critical` and, once
/// triggered, clears only `clear_margin` back on the good side of the threshold
/// (hysteresis, used by alerting, which remembers what is active; a card shows the plain
/// thresholds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub warning: f64,
    /// None: the rule never becomes critical (the built-in scrub age, wear and load).
    pub critical: Option<f64>,
    pub clear_margin: f64,
    pub direction: Direction,
}

/// Which side of a threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Higher is worse: the rule fires at or above its threshold, clears below it minus the margin.
    Above,
    /// Lower is worse (NVMe spare): fires below its threshold, as the drive's own warning
    /// does, and clears at or above it plus the margin.
    Below,
}

impl Direction {
    /// Whether `value` is on the bad side of `limit`.
    fn past(self, value: f64, limit: f64) -> bool {
        match self {
            Direction::Above => value >= limit,
            Direction::Below => value < limit,
        }
    }

    /// How far `clear` lies on the good side of `trigger` (negative: on the bad side).
    pub fn margin(self, trigger: f64, clear: f64) -> f64 {
        match self {
            Direction::Above => trigger - clear,
            Direction::Below => clear - trigger,
        }
    }

    /// `limit` moved `by` to the good side: where a level held since `limit` ends.
    fn relax(self, limit: f64, by: f64) -> f64 {
        match self {
            Direction::Above => limit - by,
            Direction::Below => limit + by,
        }
    }

    /// The more severe of two thresholds: a critical level is never milder than the trigger.
    pub fn severer(self, a: f64, b: f64) -> f64 {
        match self {
            Direction::Above => a.max(b),
            Direction::Below => a.min(b),
        }
    }

    /// "above" or "below": the side a clear must lie on, for messages.
    pub fn good_side(self) -> &'static str {
        match self {
            Direction::Above => "below",
            Direction::Below => "above",
        }
    }
}

/// Pool capacity, percent.
pub const POOL_CAPACITY: Thresholds =
    Thresholds { warning: 80.0, critical: Some(90.0), clear_margin: 5.0, direction: Direction::Above };
/// Active storage use, percent.
pub const STORAGE_FULL: Thresholds =
    Thresholds { warning: 85.0, critical: Some(95.0), clear_margin: 5.0, direction: Direction::Above };
/// Whole days since the last finished scrub; a monthly scrub (Debian's default) stays under.
pub const SCRUB_AGE_DAYS: Thresholds =
    Thresholds { warning: 35.0, critical: None, clear_margin: 5.0, direction: Direction::Above };
/// A CPU package's hottest reading, °C: warm at 90 (clears below 85), critical at 100, where
/// Intel and AMD parts throttle.
pub const CPU_TEMPERATURE: Thresholds =
    Thresholds { warning: 90.0, critical: Some(100.0), clear_margin: 5.0, direction: Direction::Above };
/// An NVMe controller's composite temperature, °C: most drives throttle from about 70 to 80.
pub const NVME_TEMPERATURE: Thresholds =
    Thresholds { warning: 70.0, critical: Some(80.0), clear_margin: 5.0, direction: Direction::Above };
/// NVMe endurance used, percent. The value only grows, so the margin matters only when an
/// operator raises the trigger past a disk's value.
pub const DISK_WEAR: Thresholds =
    Thresholds { warning: 90.0, critical: None, clear_margin: 5.0, direction: Direction::Above };
/// The built-in wear trigger as the agent reports wear (whole percent), for pages that mark it.
pub const DISK_WEAR_PCT: u64 = DISK_WEAR.warning as u64;
/// The 15-minute load per core: above 1.0 more work waits than the cores can run.
pub const LOAD_PER_CORE: Thresholds =
    Thresholds { warning: 1.0, critical: None, clear_margin: 0.1, direction: Direction::Above };
/// The agent's clock off the server's, either way, seconds: warns at a minute
/// (`crate::clock::WARN_SKEW_MS`), clears below 45 s, so a skew hovering at 60 s doesn't flap.
pub const CLOCK_SKEW_S: Thresholds = Thresholds {
    warning: (crate::clock::WARN_SKEW_MS / 1000) as f64,
    critical: None,
    clear_margin: 15.0,
    direction: Direction::Above,
};
/// NVMe available spare, percent; lower is worse. Each drive sets its own trigger, its
/// `available_spare_threshold` ([`Thresholds::for_drive`]); this 0 is only for a drive
/// that reports none, and never fires (a spare can't fall below 0 %) unless an operator
/// sets a trigger. Clears 5 points above the trigger.
pub const DISK_SPARE: Thresholds =
    Thresholds { warning: 0.0, critical: None, clear_margin: 5.0, direction: Direction::Below };

impl Thresholds {
    /// The level `value` is at with no memory: what a card shows.
    pub fn level(&self, value: f64) -> Option<Level> {
        let past = |limit| self.direction.past(value, limit);
        if self.critical.is_some_and(past) {
            Some(Level::Critical)
        } else if past(self.warning) {
            Some(Level::Warning)
        } else {
            None
        }
    }

    /// The level `value` is at when the condition was already at `active`: each level
    /// holds until the value is `clear_margin` back on the good side of its threshold.
    pub fn level_with_hysteresis(&self, value: f64, active: Option<Level>) -> Option<Level> {
        let fresh = self.level(value);
        let held_past = |limit| self.direction.past(value, self.direction.relax(limit, self.clear_margin));
        let held = match active {
            Some(Level::Critical) if self.critical.is_some_and(held_past) => Some(Level::Critical),
            Some(Level::Critical | Level::Warning) if held_past(self.warning) => Some(Level::Warning),
            _ => None,
        };
        fresh.max(held)
    }

    /// Where an active warning clears: the trigger moved `clear_margin` to the good side.
    pub fn clear(&self) -> f64 {
        self.direction.relax(self.warning, self.clear_margin)
    }

    /// The built-in disk_spare thresholds of a drive that warns below `spare_threshold` %.
    pub fn for_drive(spare_threshold: Option<u64>) -> Thresholds {
        let warning = spare_threshold.map_or(DISK_SPARE.warning, |t| t as f64);
        Thresholds { warning, ..DISK_SPARE }
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
            Rule::ClockSkew => Some(CLOCK_SKEW_S),
            Rule::DiskSpare => Some(DISK_SPARE),
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
    /// The agent's clock minus the server's, ms.
    pub clock_skew_ms: Option<i64>,
}

impl Latest<'_> {
    /// The current value of `subject` of numeric `rule` at `now_ms`: alerting's hysteresis
    /// needs it once the plain threshold no longer finds it.
    pub fn measure(&self, rule: Rule, subject: &str, now_ms: i64) -> Option<f64> {
        match rule {
            Rule::PoolCapacity | Rule::StorageFull | Rule::ScrubAge => measure(self.medium?, rule, subject, now_ms),
            Rule::Load | Rule::CpuTemperature | Rule::NvmeTemperature => measure_fast(self.fast?, rule, subject),
            Rule::DiskWear | Rule::DiskSpare => measure_slow(self.slow?, rule, subject),
            Rule::ClockSkew => self.clock_skew_ms.map(skew_s),
            _ => None,
        }
    }

    /// The built-in thresholds of `subject` of `rule`: a drive's own spare threshold for
    /// disk_spare, else the rule's fixed ones.
    pub fn builtin(&self, rule: Rule, subject: &str) -> Option<Thresholds> {
        match rule {
            Rule::DiskSpare => {
                let nvme = self.slow.and_then(|s| nvme_of(s, subject));
                Some(Thresholds::for_drive(nvme.and_then(|n| n.available_spare_threshold)))
            }
            _ => Thresholds::of(rule),
        }
    }
}

/// The clock_skew rule's value: how far off, either way, in seconds.
pub fn skew_s(skew_ms: i64) -> f64 {
    skew_ms.abs() as f64 / 1000.0
}

fn nvme_of<'a>(slow: &'a Slow, disk: &str) -> Option<&'a wire::NvmeHealth> {
    slow.disks.as_ref()?.iter().find(|d: &&Disk| d.name == disk)?.nvme.as_ref()
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

/// The current value of a disk rule's subject in `slow`: an NVMe disk's percentage used
/// or available spare.
pub fn measure_slow(slow: &Slow, rule: Rule, subject: &str) -> Option<f64> {
    let nvme = nvme_of(slow, subject)?;
    match rule {
        Rule::DiskWear => nvme.percentage_used.map(|u| u as f64),
        Rule::DiskSpare => nvme.available_spare.map(|s| s as f64),
        _ => None,
    }
}
