//! The wire contract between agents and the server, in one place.
//!
//! # Layout
//! - [`topic`]: the `pmon/v1/<host_id>/<kind>` topic names, host id validation and parsing.
//! - [`payload`]: the JSON payloads of the `fast`, `medium` and `slow` tiers.
//! - [`alerts`]: the JSON payloads of the server's `alerts` and `alerts/events` topics.
//! - [`signals`]: the hardware sections (network, disk I/O, temperatures, SMART) and how a
//!   disk is matched to the ZFS vdevs on it.
//! - [`value`]: the payloads' enumerated strings (pool state, guest status, ...), each
//!   keeping values it does not know.
//!
//! Every type here matches `topics.md` exactly; no other crate spells a topic by hand.
//! This crate does no I/O; it reads only the clock ([`now_ms`]).

pub mod alerts;
pub mod payload;
pub mod signals;
pub mod topic;
pub mod value;

pub use payload::*;
pub use signals::{AtaHealth, Disk, DiskIo, NetIf, NetKind, NvmeHealth, Temp, TempKind};
pub use topic::{DiscoveryPrefix, HostId, HostIdError, Kind, ServerKind, Topic, TopicError, PREFIX};
pub use value::{GuestStatus, PoolState, ScanFunction, ScanState};

/// Milliseconds since the Unix epoch: the clock of every `ts_ms` and `last_seen`. The one
/// copy for the agent, the recorder and the dashboard (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
