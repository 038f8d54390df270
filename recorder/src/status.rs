//! The status rules, in one pure module (documented in docs/STATUS.md). Each rule yields
//! typed [`Finding`]s (rule, subject, level, value, message): the dashboard's level and
//! reasons are made from them ([`evaluate`]), and so are alerts (the `alerting` crate), so
//! a red card and an alert never disagree.

use std::net::IpAddr;

use serde::Serialize;
use wire::{Disk, Fast, Guest, GuestStatus, Medium, PoolState, ScanFunction, ScanState, Slow, TempKind};

/// Worst first when sorted descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Online,
    Warning,
    Critical,
    Offline,
}

impl Level {
    /// Best first.
    pub const ALL: [Level; 4] = [Level::Online, Level::Warning, Level::Critical, Level::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Online => "online",
            Level::Warning => "warning",
            Level::Critical => "critical",
            Level::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub level: Level,
    pub reasons: Vec<String>,
}

/// Which rule a finding comes from; its name is stable (alert identities, `--rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    HostOffline,
    HostSilent,
    PoolState,
    PoolCapacity,
    PoolErrors,
    ScrubAge,
    ScrubErrors,
    StorageFull,
    StorageInactive,
    GuestStopped,
    Load,
    DiskHealth,
    DiskSectors,
    DiskWear,
    DiskSpare,
    DiskMediaErrors,
    CpuTemperature,
    NvmeTemperature,
    /// Two agents use this host's token (the gateway's clone detector tripped).
    SharedToken,
    ClockSkew,
}

impl Rule {
    pub const ALL: [Rule; 20] = [
        Rule::HostOffline,
        Rule::HostSilent,
        Rule::PoolState,
        Rule::PoolCapacity,
        Rule::PoolErrors,
        Rule::ScrubAge,
        Rule::ScrubErrors,
        Rule::StorageFull,
        Rule::StorageInactive,
        Rule::GuestStopped,
        Rule::Load,
        Rule::DiskHealth,
        Rule::DiskSectors,
        Rule::DiskWear,
        Rule::DiskSpare,
        Rule::DiskMediaErrors,
        Rule::CpuTemperature,
        Rule::NvmeTemperature,
        Rule::SharedToken,
        Rule::ClockSkew,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::HostOffline => "host_offline",
            Rule::HostSilent => "host_silent",
            Rule::PoolState => "pool_state",
            Rule::PoolCapacity => "pool_capacity",
            Rule::PoolErrors => "pool_errors",
            Rule::ScrubAge => "scrub_age",
            Rule::ScrubErrors => "scrub_errors",
            Rule::StorageFull => "storage_full",
            Rule::StorageInactive => "storage_inactive",
            Rule::GuestStopped => "guest_stopped",
            Rule::Load => "load",
            Rule::DiskHealth => "disk_health",
            Rule::DiskSectors => "disk_sectors",
            Rule::DiskWear => "disk_wear",
            Rule::DiskSpare => "disk_spare",
            Rule::DiskMediaErrors => "disk_media_errors",
            Rule::CpuTemperature => "cpu_temperature",
            Rule::NvmeTemperature => "nvme_temperature",
            Rule::SharedToken => "shared_token",
            Rule::ClockSkew => "clock_skew",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with a host: what the card lists as a reason and what an alert is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    /// The pool, storage, guest (`vm/101`, `ct/105`), disk (`sda`, `nvme0`) or sensor
    /// (`cpu0`, `nvme0`) it is about; None for the host.
    pub subject: Option<String>,
    /// Warning, Critical, or Offline (only [`Rule::HostOffline`]).
    pub level: Level,
    /// The measured number, where the rule has one (percent, error count, days).
    pub value: Option<f64>,
    pub message: String,
}

impl Finding {
    fn new(rule: Rule, subject: Option<&str>, level: Level, value: Option<f64>, message: String) -> Finding {
        Finding { rule, subject: subject.map(str::to_owned), level, value, message }
    }
}

/// What the rules look at.
pub struct Facts<'a> {
    pub online: bool,
    pub now_ms: i64,
    pub fast: Option<&'a Fast>,
    /// When the latest fast sample arrived (or the host reconnected, if later), and the
    /// fast interval seen from the agent.
    pub fast_received_ms: Option<i64>,
    pub fast_interval_ms: Option<i64>,
    pub medium: Option<&'a Medium>,
    /// The medium payload before `medium`, to see error counters grow and guests stop.
    pub previous_medium: Option<&'a Medium>,
    pub slow: Option<&'a Slow>,
    /// The slow payload before `slow`, to see a disk's sector and media error counts grow.
    pub previous_slow: Option<&'a Slow>,
    /// The last time the gateway saw two agents using this host's token.
    pub shared_token: Option<&'a SharedToken>,
    /// The agent's clock minus the server's, ms (see `clock.rs`).
    pub clock_skew_ms: Option<i64>,
}

/// Two or more agents seen using one host's token (a cloned VM, a copied agent.toml):
/// the gateway's clone detector tripped (`broker::clones`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedToken {
    /// The agents' addresses, sorted.
    pub addresses: Vec<IpAddr>,
    pub detected_ms: i64,
}

/// How long a [`Rule::SharedToken`] finding lasts after the detector last tripped. While
/// the clones run, it trips again each time the gateway's cool-down (10 min) ends, so the
/// finding holds; once one agent is gone, it clears within this.
pub const SHARED_TOKEN_HOLD_MS: i64 = 30 * 60 * 1000;

impl SharedToken {
    /// "two agents use this host's token: 10.0.0.5 and 10.0.0.9".
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
        let count = match names.len() {
            2 => "two".to_owned(),
            n => n.to_string(),
        };
        let listed = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => names.join(""),
        };
        format!("{count} agents use this host's token: {listed}")
    }
}

const DAY_MS: i64 = 86_400_000;

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

/// How bad a pool or vdev in `state` is: the one place a ZFS state becomes a level. Only
/// `ONLINE` is healthy; DEGRADED still serves data (warning); anything else, a state we
/// do not know included, is critical.
pub fn pool_level(state: &PoolState) -> Level {
    match state {
        PoolState::Online => Level::Online,
        PoolState::Degraded => Level::Warning,
        _ => Level::Critical,
    }
}

/// The vdev errors of the pool named `pool` in `medium`, if it is there.
fn pool_errors(medium: &Medium, pool: &str) -> Option<u64> {
    Some(medium.pools.as_ref()?.iter().find(|p| p.name == pool)?.vdev_errors())
}

/// Every guest of `medium` with its subject (`vm/<vmid>` or `ct/<vmid>`).
pub fn guests(medium: &Medium) -> impl Iterator<Item = (String, &Guest)> {
    let vms = medium.vms.iter().flatten().map(|g| (format!("vm/{}", g.vmid), g));
    let cts = medium.cts.iter().flatten().map(|g| (format!("ct/{}", g.vmid), g));
    vms.chain(cts)
}

/// Whether the guest `subject` is in `medium` and not running: what keeps a
/// [`Rule::GuestStopped`] alert active after the stop itself is no longer news.
pub fn guest_still_stopped(medium: &Medium, subject: &str) -> bool {
    guests(medium).any(|(s, g)| s == subject && g.status != GuestStatus::Running)
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

/// The same disk in an earlier slow payload: by serial when both have one, else by name.
fn same_disk<'a>(previous: &'a Slow, disk: &Disk) -> Option<&'a Disk> {
    let disks = previous.disks.as_ref()?;
    match &disk.serial {
        Some(serial) => disks.iter().find(|d| d.serial.as_ref() == Some(serial)),
        None => disks.iter().find(|d| d.name == disk.name),
    }
}

/// A counter that is higher now than in the previous reading of the same disk.
fn grew(now: Option<u64>, before: Option<u64>) -> bool {
    matches!((now, before), (Some(n), Some(b)) if n > b)
}

fn disk_findings(f: &Facts, out: &mut Vec<Finding>) {
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
        let before = f.previous_slow.and_then(|p| same_disk(p, disk));
        if let (Some(ata), Some(old)) = (&disk.ata, before.and_then(|b| b.ata.as_ref())) {
            let sectors = |a: &wire::AtaHealth| a.reallocated.unwrap_or(0) + a.pending.unwrap_or(0);
            if grew(ata.reallocated, old.reallocated) || grew(ata.pending, old.pending) {
                let message =
                    format!("{what}: reallocated/pending sectors grew from {} to {}", sectors(old), sectors(ata));
                out.push(Finding::new(Rule::DiskSectors, name, Warning, Some(sectors(ata) as f64), message));
            }
        }
        let Some(nvme) = &disk.nvme else { continue };
        if let Some(used) = nvme.percentage_used.filter(|u| *u >= DISK_WEAR_PCT) {
            let message = format!("{what} has used {used}% of its rated endurance");
            out.push(Finding::new(Rule::DiskWear, name, Warning, Some(used as f64), message));
        }
        if let (Some(spare), Some(threshold)) = (nvme.available_spare, nvme.available_spare_threshold) {
            if spare < threshold {
                let message = format!("{what} has {spare}% spare blocks left, below its threshold of {threshold}%");
                out.push(Finding::new(Rule::DiskSpare, name, Warning, Some(spare as f64), message));
            }
        }
        let old = before.and_then(|b| b.nvme.as_ref()).and_then(|n| n.media_errors);
        if grew(nvme.media_errors, old) {
            let now = nvme.media_errors.unwrap_or(0);
            let message = format!("{what}: media errors grew from {} to {now}", old.unwrap_or(0));
            out.push(Finding::new(Rule::DiskMediaErrors, name, Warning, Some(now as f64), message));
        }
    }
}

/// Every finding, worst rules first within each group; only [`Rule::HostOffline`] when
/// the host is not connected (nothing else is known then).
pub fn findings(f: &Facts) -> Vec<Finding> {
    use Level::{Critical, Warning};
    if !f.online {
        return vec![Finding::new(Rule::HostOffline, None, Level::Offline, None, "not connected".into())];
    }
    let mut out = Vec::new();
    if let Some(shared) = f.shared_token.filter(|s| f.now_ms - s.detected_ms < SHARED_TOKEN_HOLD_MS) {
        let value = Some(shared.addresses.len() as f64);
        out.push(Finding::new(Rule::SharedToken, None, Critical, value, shared.describe()));
    }
    if let (Some(received), Some(interval)) = (f.fast_received_ms, f.fast_interval_ms) {
        if f.now_ms - received > 3 * interval {
            let secs = (f.now_ms - received) / 1000;
            let message = format!("no fast sample for {secs} s while connected");
            out.push(Finding::new(Rule::HostSilent, None, Critical, Some(secs as f64), message));
        }
    }
    if let Some(medium) = f.medium {
        for pool in medium.pools.iter().flatten() {
            let name = Some(pool.name.as_str());
            let level = pool_level(&pool.state);
            if level != Level::Online {
                out.push(Finding::new(
                    Rule::PoolState,
                    name,
                    level,
                    None,
                    format!("pool {} is {}", pool.name, pool.state),
                ));
            }
            if let Some(c) = pool.cap_pct {
                if let Some(level) = POOL_CAPACITY.level(c) {
                    let message = format!("pool {} is {c:.0}% full", pool.name);
                    out.push(Finding::new(Rule::PoolCapacity, name, level, Some(c), message));
                }
            }
            let errors = pool.vdev_errors();
            if errors > 0 {
                let grown = f
                    .previous_medium
                    .and_then(|prev| pool_errors(prev, &pool.name))
                    .is_some_and(|before| errors > before);
                let (level, message) = if grown {
                    (Critical, format!("pool {} has new read/write/checksum errors ({errors} in all)", pool.name))
                } else {
                    (Warning, format!("pool {} has {errors} read/write/checksum errors", pool.name))
                };
                out.push(Finding::new(Rule::PoolErrors, name, level, Some(errors as f64), message));
            }
            let scrub = pool.scan.as_ref().filter(|s| s.function == ScanFunction::Scrub);
            if let Some(end) = scrub.and_then(|s| s.end) {
                let days = (f.now_ms - end * 1000) / DAY_MS;
                if f.now_ms - end * 1000 > SCRUB_AGE_DAYS as i64 * DAY_MS {
                    let message = format!("pool {} last scrubbed {days} days ago", pool.name);
                    out.push(Finding::new(Rule::ScrubAge, name, Warning, Some(days as f64), message));
                }
            }
            if let Some(s) = scrub.filter(|s| s.state == ScanState::Finished && s.errors > 0) {
                let message = format!("the last scrub of pool {} found {} errors", pool.name, s.errors);
                out.push(Finding::new(Rule::ScrubErrors, name, Warning, Some(s.errors as f64), message));
            }
        }
        for s in medium.storages.iter().flatten() {
            let name = Some(s.name.as_str());
            if s.enabled && !s.active {
                let message = format!("storage {} is enabled but not active", s.name);
                out.push(Finding::new(Rule::StorageInactive, name, Warning, None, message));
            }
            if let Some(p) = pct(s.used, s.total).filter(|_| s.active) {
                if let Some(level) = STORAGE_FULL.level(p) {
                    out.push(Finding::new(
                        Rule::StorageFull,
                        name,
                        level,
                        Some(p),
                        format!("storage {} is {p:.0}% full", s.name),
                    ));
                }
            }
        }
        if let Some(previous) = f.previous_medium {
            for (subject, guest) in guests(medium) {
                let before = guests(previous).find(|(s, _)| *s == subject).map(|(_, g)| g);
                // A lock (backup, migrate, snapshot) on either side explains the stop.
                let unexpected = guest.status == GuestStatus::Stopped
                    && guest.lock.is_none()
                    && before.is_some_and(|b| b.status == GuestStatus::Running && b.lock.is_none());
                if unexpected {
                    let message = format!("guest {subject} ({}) stopped", guest.name);
                    out.push(Finding::new(Rule::GuestStopped, Some(&subject), Warning, None, message));
                }
            }
        }
    }
    if let Some(fast) = f.fast {
        if let (Some(load15), Some(cpus)) = (fast.load15, fast.cpus) {
            if load15 > f64::from(cpus) {
                let message = format!("load15 {load15:.2} is above {cpus} cores");
                out.push(Finding::new(Rule::Load, None, Warning, Some(load15), message));
            }
        }
        for t in fast.temps.iter().flatten() {
            let (rule, thresholds) = match t.kind {
                TempKind::Cpu => (Rule::CpuTemperature, CPU_TEMPERATURE),
                TempKind::Nvme => (Rule::NvmeTemperature, NVME_TEMPERATURE),
                TempKind::Other => continue,
            };
            let c = t.hottest();
            if let Some(level) = thresholds.level(c) {
                let message = format!("{} is at {c:.0} °C", t.name);
                out.push(Finding::new(rule, Some(&t.name), level, Some(c), message));
            }
        }
    }
    disk_findings(f, &mut out);
    if let Some(skew) = f.clock_skew_ms.filter(|s| s.abs() >= crate::clock::WARN_SKEW_MS) {
        let message = format!("clock is {}", crate::clock::describe(skew));
        out.push(Finding::new(Rule::ClockSkew, None, Warning, Some(skew as f64 / 1000.0), message));
    }
    out
}

/// The host's level and reasons from its findings: offline; critical; warning; otherwise
/// online. A critical host lists its warning reasons after its critical ones.
pub fn evaluate(f: &Facts) -> Health {
    health(&findings(f))
}

/// The level and reasons of `findings`.
pub fn health(findings: &[Finding]) -> Health {
    let level = findings.iter().map(|f| f.level).max().unwrap_or(Level::Online);
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    // Stable: within a level, the rules' order.
    sorted.sort_by_key(|f| std::cmp::Reverse(f.level));
    Health { level, reasons: sorted.into_iter().map(|f| f.message.clone()).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{Pool, Scan, ScanState, Storage, Vdev};

    const NOW: i64 = 1_764_000_000_000;

    fn facts<'a>(fast: Option<&'a Fast>, medium: Option<&'a Medium>) -> Facts<'a> {
        Facts {
            online: true,
            now_ms: NOW,
            fast,
            fast_received_ms: Some(NOW),
            fast_interval_ms: Some(30_000),
            medium,
            previous_medium: None,
            slow: None,
            previous_slow: None,
            shared_token: None,
            clock_skew_ms: None,
        }
    }

    fn pool(state: &str, cap: f64) -> Pool {
        Pool { name: "rpool".into(), state: state.into(), cap_pct: Some(cap), ..Pool::default() }
    }

    fn medium(pools: Vec<Pool>) -> Medium {
        Medium { pools: Some(pools), ..Medium::default() }
    }

    #[test]
    fn offline_wins() {
        let mut f = facts(None, None);
        f.online = false;
        assert_eq!(evaluate(&f).level, Level::Offline);
    }

    #[test]
    fn healthy_host_is_online() {
        let m = medium(vec![pool("ONLINE", 40.0)]);
        assert_eq!(evaluate(&facts(None, Some(&m))), Health { level: Level::Online, reasons: vec![] });
    }

    #[test]
    fn pool_rules() {
        let m = medium(vec![pool("DEGRADED", 10.0)]);
        let h = evaluate(&facts(None, Some(&m)));
        assert_eq!(h.level, Level::Warning);
        assert_eq!(h.reasons, vec!["pool rpool is DEGRADED"]);
        for state in ["FAULTED", "UNAVAIL", "SUSPENDED", "SOMETHING_NEW"] {
            assert_eq!(
                evaluate(&facts(None, Some(&medium(vec![pool(state, 10.0)])))).level,
                Level::Critical,
                "{state}"
            );
        }
        let f = findings(&facts(None, Some(&medium(vec![pool("DEGRADED", 85.0)]))));
        assert_eq!(
            f.iter().map(|f| (f.rule, f.subject.as_deref(), f.level, f.value)).collect::<Vec<_>>(),
            [
                (Rule::PoolState, Some("rpool"), Level::Warning, None),
                (Rule::PoolCapacity, Some("rpool"), Level::Warning, Some(85.0))
            ]
        );
        assert_eq!(evaluate(&facts(None, Some(&medium(vec![pool("ONLINE", 90.0)])))).level, Level::Critical);
        assert_eq!(evaluate(&facts(None, Some(&medium(vec![pool("ONLINE", 80.0)])))).level, Level::Warning);
        assert_eq!(evaluate(&facts(None, Some(&medium(vec![pool("ONLINE", 79.9)])))).level, Level::Online);
    }

    #[test]
    fn growing_errors_are_critical_and_old_scrubs_warn() {
        let with_errors = |n| {
            let mut p = pool("ONLINE", 10.0);
            p.vdevs = vec![Vdev { name: "sda".into(), checksum_errors: n, ..Vdev::default() }];
            medium(vec![p])
        };
        let (before, after) = (with_errors(1), with_errors(3));
        let mut f = facts(None, Some(&after));
        f.previous_medium = Some(&before);
        assert_eq!(evaluate(&f).level, Level::Critical);
        f.previous_medium = Some(&after);
        let h = evaluate(&f);
        assert_eq!(h.level, Level::Warning, "errors that did not grow are a warning, not news");
        assert_eq!(h.reasons, ["pool rpool has 3 read/write/checksum errors"]);

        let mut p = pool("ONLINE", 10.0);
        p.scan = Some(Scan {
            function: ScanFunction::Scrub,
            state: ScanState::Finished,
            end: Some((NOW - 36 * DAY_MS) / 1000),
            ..Scan::default()
        });
        let m = medium(vec![p]);
        let h = evaluate(&facts(None, Some(&m)));
        assert_eq!(h.level, Level::Warning);
        assert!(h.reasons[0].contains("36 days"), "{:?}", h.reasons);
    }

    #[test]
    fn storage_and_load_rules() {
        let storage = |used| Medium {
            storages: Some(vec![Storage {
                name: "local".into(),
                active: true,
                total: Some(100),
                used: Some(used),
                ..Storage::default()
            }]),
            ..Medium::default()
        };
        assert_eq!(evaluate(&facts(None, Some(&storage(95)))).level, Level::Critical);
        assert_eq!(evaluate(&facts(None, Some(&storage(85)))).level, Level::Warning);
        assert_eq!(evaluate(&facts(None, Some(&storage(84)))).level, Level::Online);
        let busy = Fast { load15: Some(9.0), cpus: Some(8), ..Fast::default() };
        assert_eq!(evaluate(&facts(Some(&busy), None)).level, Level::Warning);
    }

    #[test]
    fn hysteresis_holds_a_level_until_the_value_falls_past_the_margin() {
        let t = POOL_CAPACITY;
        assert_eq!(t.level_with_hysteresis(79.0, None), None);
        assert_eq!(t.level_with_hysteresis(80.0, None), Some(Level::Warning));
        assert_eq!(t.level_with_hysteresis(76.0, Some(Level::Warning)), Some(Level::Warning));
        assert_eq!(t.level_with_hysteresis(74.9, Some(Level::Warning)), None);
        assert_eq!(t.level_with_hysteresis(86.0, Some(Level::Critical)), Some(Level::Critical));
        assert_eq!(t.level_with_hysteresis(84.0, Some(Level::Critical)), Some(Level::Warning));
        assert_eq!(t.level_with_hysteresis(91.0, Some(Level::Warning)), Some(Level::Critical));
    }

    #[test]
    fn scrub_errors_inactive_storage_and_unexpected_stops() {
        let mut p = pool("ONLINE", 10.0);
        p.scan = Some(Scan {
            function: ScanFunction::Scrub,
            state: ScanState::Finished,
            end: Some(NOW / 1000),
            errors: 2,
            ..Scan::default()
        });
        let m = medium(vec![p]);
        assert_eq!(findings(&facts(None, Some(&m)))[0].rule, Rule::ScrubErrors);

        let inactive = Medium {
            storages: Some(vec![Storage { name: "nfs".into(), enabled: true, active: false, ..Storage::default() }]),
            ..Medium::default()
        };
        assert_eq!(findings(&facts(None, Some(&inactive)))[0].rule, Rule::StorageInactive);

        let guests = |status: &str, lock: Option<&str>| Medium {
            vms: Some(vec![wire::Guest {
                vmid: 101,
                name: "web".into(),
                status: status.into(),
                lock: lock.map(Into::into),
                ..wire::Guest::default()
            }]),
            ..Medium::default()
        };
        let (running, stopped) = (guests("running", None), guests("stopped", None));
        let mut f = facts(None, Some(&stopped));
        f.previous_medium = Some(&running);
        let found = findings(&f);
        assert_eq!((found[0].rule, found[0].subject.as_deref()), (Rule::GuestStopped, Some("vm/101")));
        let backup = guests("running", Some("backup"));
        f.previous_medium = Some(&backup);
        assert!(findings(&f).is_empty(), "a backup's lock explains the stop");
        f.previous_medium = None;
        assert!(findings(&f).is_empty(), "a guest first seen stopped was not seen stopping");
        assert!(guest_still_stopped(&stopped, "vm/101"));
        assert!(!guest_still_stopped(&running, "vm/101"));
    }

    fn slow(disks: Vec<Disk>) -> Slow {
        Slow { disks: Some(disks), ..Slow::default() }
    }

    fn ata(name: &str, reallocated: u64, pending: u64) -> Disk {
        Disk {
            name: name.into(),
            serial: Some(format!("S-{name}")),
            smart_passed: Some(true),
            ata: Some(wire::AtaHealth { reallocated: Some(reallocated), pending: Some(pending), ..Default::default() }),
            ..Disk::default()
        }
    }

    fn nvme(used: u64, spare: u64, media_errors: u64) -> Disk {
        Disk {
            name: "nvme0".into(),
            serial: Some("N1".into()),
            smart_passed: Some(true),
            nvme: Some(wire::NvmeHealth {
                critical_warning: Some(0),
                percentage_used: Some(used),
                media_errors: Some(media_errors),
                available_spare: Some(spare),
                available_spare_threshold: Some(10),
            }),
            ..Disk::default()
        }
    }

    fn rules(found: &[Finding]) -> Vec<(Rule, Option<&str>, Level)> {
        found.iter().map(|f| (f.rule, f.subject.as_deref(), f.level)).collect()
    }

    #[test]
    fn disk_rules() {
        let failing = Disk { smart_passed: Some(false), model: Some("WDC X".into()), ..ata("sdb", 0, 0) };
        let now = slow(vec![failing, ata("sda", 3, 0), nvme(91, 5, 2), Disk { standby: true, ..Disk::default() }]);
        let mut f = facts(None, None);
        f.slow = Some(&now);
        let found = findings(&f);
        assert_eq!(
            rules(&found),
            [
                (Rule::DiskHealth, Some("sdb"), Level::Critical),
                (Rule::DiskWear, Some("nvme0"), Level::Warning),
                (Rule::DiskSpare, Some("nvme0"), Level::Warning),
            ],
            "without a previous sample nothing has grown"
        );
        assert_eq!(found[0].message, "disk sdb (WDC X) fails its SMART health check");

        let before = slow(vec![ata("sda", 1, 0), nvme(91, 5, 1)]);
        f.previous_slow = Some(&before);
        let found = findings(&f);
        assert_eq!(
            rules(&found),
            [
                (Rule::DiskHealth, Some("sdb"), Level::Critical),
                (Rule::DiskSectors, Some("sda"), Level::Warning),
                (Rule::DiskWear, Some("nvme0"), Level::Warning),
                (Rule::DiskSpare, Some("nvme0"), Level::Warning),
                (Rule::DiskMediaErrors, Some("nvme0"), Level::Warning),
            ]
        );
        assert_eq!(found[1].message, "disk sda: reallocated/pending sectors grew from 1 to 3");
        f.previous_slow = Some(&now);
        assert_eq!(findings(&f).len(), 3, "counts that did not grow are not news");

        let renamed = slow(vec![Disk { name: "sdz".into(), ..ata("sda", 0, 0) }]);
        f.previous_slow = Some(&renamed);
        assert!(
            findings(&f).iter().any(|x| x.rule == Rule::DiskSectors),
            "a disk is followed by its serial when its name changes"
        );
    }

    #[test]
    fn hot_sensors_with_hysteresis() {
        let temps = |cpu: f64, nvme: f64| Fast {
            temps: Some(vec![
                wire::Temp { name: "cpu0".into(), kind: TempKind::Cpu, celsius: 60.0, cores_max: Some(cpu) },
                wire::Temp { name: "nvme0".into(), kind: TempKind::Nvme, celsius: nvme, cores_max: None },
            ]),
            ..Fast::default()
        };
        let hot = temps(92.0, 71.0);
        assert_eq!(
            rules(&findings(&facts(Some(&hot), None))),
            [
                (Rule::CpuTemperature, Some("cpu0"), Level::Warning),
                (Rule::NvmeTemperature, Some("nvme0"), Level::Warning)
            ]
        );
        assert_eq!(findings(&facts(Some(&temps(100.0, 80.0)), None))[0].level, Level::Critical);
        let cooler = temps(87.0, 66.0);
        assert!(findings(&facts(Some(&cooler), None)).is_empty(), "a card shows the plain thresholds");
        // Alerting holds the warning until the reading is 5 °C under the threshold.
        let held = measure_fast(&cooler, Rule::CpuTemperature, "cpu0").unwrap();
        assert_eq!(CPU_TEMPERATURE.level_with_hysteresis(held, Some(Level::Warning)), Some(Level::Warning));
        assert_eq!(CPU_TEMPERATURE.level_with_hysteresis(84.9, Some(Level::Warning)), None);
        assert_eq!(measure_fast(&cooler, Rule::NvmeTemperature, "nvme0"), Some(66.0));
        assert_eq!(Thresholds::of(Rule::NvmeTemperature), Some(NVME_TEMPERATURE));
        assert_eq!(measure_fast(&cooler, Rule::NvmeTemperature, "cpu0"), None);
    }

    #[test]
    fn a_shared_token_is_critical_names_every_address_and_fades() {
        let two = SharedToken { addresses: vec![[10, 0, 0, 5].into(), [10, 0, 0, 9].into()], detected_ms: NOW };
        let mut f = facts(None, None);
        f.shared_token = Some(&two);
        let h = evaluate(&f);
        assert_eq!(h.level, Level::Critical);
        assert_eq!(h.reasons, ["two agents use this host's token: 10.0.0.5 and 10.0.0.9"]);
        assert_eq!(findings(&f)[0].rule, Rule::SharedToken);
        f.now_ms = NOW + SHARED_TOKEN_HOLD_MS;
        f.fast_received_ms = Some(f.now_ms);
        assert_eq!(evaluate(&f).level, Level::Online, "cleared once the detector stays quiet");
        let three =
            SharedToken { addresses: ["10.0.0.1", "10.0.0.2", "::1"].map(|a| a.parse().unwrap()).into(), ..two };
        assert_eq!(three.describe(), "3 agents use this host's token: 10.0.0.1, 10.0.0.2 and ::1");
    }

    #[test]
    fn a_clock_a_minute_off_either_way_is_a_warning() {
        let mut f = facts(None, None);
        f.clock_skew_ms = Some(59_000);
        assert!(findings(&f).is_empty());
        f.clock_skew_ms = Some(-252_000);
        let found = findings(&f);
        assert_eq!((found[0].rule, found[0].level, found[0].value), (Rule::ClockSkew, Level::Warning, Some(-252.0)));
        assert_eq!(found[0].message, "clock is 4 min 12 s behind the server");
    }

    #[test]
    fn silence_while_connected_is_critical() {
        let mut f = facts(None, None);
        f.fast_received_ms = Some(NOW - 91_000);
        assert_eq!(evaluate(&f).level, Level::Critical);
        f.fast_received_ms = Some(NOW - 89_000);
        assert_eq!(evaluate(&f).level, Level::Online);
    }
}
