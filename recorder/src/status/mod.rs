//! The status rules, pure (documented in docs/STATUS.md). Each rule yields typed
//! [`Finding`]s (rule, subject, level, value, message): the dashboard's level and reasons
//! are made from them ([`evaluate`]), and so are alerts (the `alerting` crate), so a red
//! card and an alert never disagree.
//!
//! One file per area of rules: `host` (connection, silence, load, clock, shared token),
//! `zfs` (pools and scrubs), `storage`, `guests`, `backups`, `hardware` (disks and temperatures);
//! `thresholds` holds the built-in numbers they compare against, `limits` the operator's
//! overrides of them (and of which rules apply at all).

mod backups;
mod guests;
mod hardware;
mod host;
pub mod limits;
mod previous;
mod storage;
mod thresholds;
mod zfs;

use serde::Serialize;
use wire::{Fast, Medium, Slow};

pub use backups::{allowed_age_s, daily_backup_max_age_s, set_daily_backup_max_age_s, DEFAULT_DAILY_BACKUP_MAX_AGE_S};
pub use guests::{guest_still_stopped, guests, OPERATOR_STOP_SLACK_S};
pub use host::{SharedToken, SHARED_TOKEN_HOLD_MS};
pub use limits::{Effective, Override, OverrideError, Overrides, Scope};
pub use previous::{DiskCounters, PreviousMedium, PreviousSlow};
pub use thresholds::{
    load_per_core, measure, measure_fast, measure_slow, pct, scrub_age_days, skew_s, Direction, Latest, Thresholds,
    CLOCK_SKEW_S, CPU_TEMPERATURE, DISK_SPARE, DISK_WEAR, DISK_WEAR_PCT, LOAD_PER_CORE, NVME_TEMPERATURE,
    POOL_CAPACITY, SCRUB_AGE_DAYS, STORAGE_FULL,
};
pub use zfs::pool_level;

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
    /// A guest in a backup job whose last backup failed.
    BackupFailed,
    /// A guest in a backup job whose last successful backup is older than the job allows.
    BackupAge,
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
    pub const ALL: [Rule; 22] = [
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
        Rule::BackupFailed,
        Rule::BackupAge,
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
            Rule::BackupFailed => "backup_failed",
            Rule::BackupAge => "backup_age",
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
    pub host_id: &'a str,
    /// The operator's overrides: the numeric rules' thresholds and the disabled rules.
    pub limits: &'a Overrides,
    pub online: bool,
    pub now_ms: i64,
    pub fast: Option<&'a Fast>,
    /// When the latest fast sample arrived (or the host reconnected, if later), and the
    /// fast interval seen from the agent.
    pub fast_received_ms: Option<i64>,
    pub fast_interval_ms: Option<i64>,
    pub medium: Option<&'a Medium>,
    /// Of the medium payload before `medium`, to see error counters grow and guests stop.
    pub previous_medium: Option<&'a PreviousMedium>,
    /// When `medium` and `previous_medium` were collected (server time), to tell whether an
    /// operator's stop task falls between them.
    pub medium_ts_ms: Option<i64>,
    pub previous_medium_ts_ms: Option<i64>,
    /// How old a daily backup job's last backup may get ([`daily_backup_max_age_s`]).
    pub daily_backup_max_age_s: i64,
    pub slow: Option<&'a Slow>,
    /// Of the slow payload before `slow`, to see a disk's sector and media error counts grow.
    pub previous_slow: Option<&'a PreviousSlow>,
    /// The last time the gateway saw two agents using this host's token.
    pub shared_token: Option<&'a SharedToken>,
    /// The agent's clock minus the server's, ms (see `clock.rs`).
    pub clock_skew_ms: Option<i64>,
}

impl Facts<'_> {
    /// The thresholds of numeric `rule` for `subject` ('' for the host) on this host,
    /// the operator's overrides applied; None for a rule without numbers.
    fn thresholds(&self, rule: Rule, subject: &str) -> Option<Thresholds> {
        self.limits.resolve(self.host_id, rule, subject).thresholds
    }
}

/// Every finding, worst rules first within each group; only [`Rule::HostOffline`] when
/// the host is not connected (nothing else is known then). A rule the operator disabled
/// for a subject gives no finding for it, except `host_offline`: that is the connection,
/// not a judgement, and nothing else is known of an offline host.
pub fn findings(f: &Facts) -> Vec<Finding> {
    if !f.online {
        return vec![Finding::new(Rule::HostOffline, None, Level::Offline, None, "not connected".into())];
    }
    // The order here is the order of a card's reasons within a level.
    let mut out = Vec::new();
    host::shared_token(f, &mut out);
    host::silence(f, &mut out);
    if let Some(medium) = f.medium {
        zfs::pools(f, medium, &mut out);
        storage::storages(f, medium, &mut out);
        guests::stopped(f, medium, &mut out);
        backups::backups(f, medium, &mut out);
    }
    if let Some(fast) = f.fast {
        host::load(f, fast, &mut out);
        hardware::temperatures(f, fast, &mut out);
    }
    hardware::disks(f, &mut out);
    host::clock_skew(f, &mut out);
    if !f.limits.is_empty() {
        out.retain(|x| f.limits.resolve(f.host_id, x.rule, x.subject.as_deref().unwrap_or("")).enabled);
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
mod limits_tests;
#[cfg(test)]
mod tests;
