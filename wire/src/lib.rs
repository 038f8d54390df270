//! The wire contract between agents and the server, in one place.
//!
//! # Layout
//! - [`topic`]: the `pmon/v1/<host_id>/<kind>` topic names, host id validation and parsing.
//! - [`payload`]: the JSON payloads of the `fast`, `medium` and `slow` tiers.
//! - [`alerts`]: the JSON payloads of the server's `alerts` and `alerts/events` topics.
//! - [`backups`]: the medium tier's backup jobs, last backups and operators' stops.
//! - [`signals`]: the hardware sections (network, disk I/O, temperatures, SMART) and how a
//!   disk is matched to the ZFS vdevs on it.
//! - [`value`]: the payloads' enumerated strings (pool state, guest status, ...), each
//!   keeping values it does not know.
//! - [`held`]: a payload held in memory encoded (postcard), decoded when read.
//!
//! Every type here matches `topics.md` exactly; no other crate spells a topic by hand.
//! This crate does no I/O; it reads only the clock ([`now_ms`]).

pub mod alerts;
pub mod backups;
pub mod held;
pub mod payload;
#[cfg(test)]
mod proptests;
pub mod signals;
pub mod topic;
pub mod value;

pub use backups::{BackupJob, Backups, Coverage, GuestBackup, OperatorStop};
pub use held::Held;
pub use payload::*;
pub use signals::{AtaHealth, Disk, DiskIo, NetIf, NetKind, NvmeHealth, Temp, TempKind};
pub use topic::{DiscoveryPrefix, HostId, HostIdError, Kind, ServerKind, Topic, TopicError, PREFIX};
pub use value::{GuestStatus, PoolState, ScanFunction, ScanState};

/// Milliseconds since the Unix epoch: the clock of every `ts_ms` and `last_seen`. The one
/// copy for the agent, the recorder and the dashboard (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`): the one copy for the dashboard's charts and alerting's timestamps.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
