//! The payloads of the server's alert topics (`topics.md`, "alerts"): a host's firing set,
//! retained on `pmon/v1/<host_id>/alerts`, and each transition on `.../alerts/events`.

use serde::{Deserialize, Serialize};

/// One firing alert as MQTT subscribers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringAlert {
    /// The alert's id (`alert ack ID`); stable for its identity (host, rule, subject).
    pub id: i64,
    /// The status rule, e.g. `pool_state`, `host_offline`.
    pub rule: String,
    /// The pool, storage or guest (`vm/101`); null for the host itself.
    pub subject: Option<String>,
    /// `warning`, `critical` or `offline`.
    pub severity: String,
    /// When the condition was first seen in this episode, Unix seconds.
    pub since: i64,
    pub acked: bool,
    pub message: String,
}

/// Retained on `pmon/v1/<host_id>/alerts`: every firing alert of the host (an empty list
/// when none), worst first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSet {
    /// [`crate::SCHEMA_VERSION`].
    pub schema: u32,
    pub host_id: String,
    /// When the server published it, Unix milliseconds.
    pub ts_ms: i64,
    pub alerts: Vec<FiringAlert>,
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// It started firing (after its pending time).
    Firing,
    /// It stopped firing.
    Resolved,
    /// An operator acknowledged it.
    Acknowledged,
    /// Still firing, with another severity (or an acknowledgement taken back).
    Changed,
}

/// Published (not retained) on `pmon/v1/<host_id>/alerts/events` for each transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// [`crate::SCHEMA_VERSION`].
    pub schema: u32,
    pub host_id: String,
    /// When the server saw the transition, Unix milliseconds.
    pub ts_ms: i64,
    pub event: Transition,
    /// The alert as of the transition.
    pub alert: FiringAlert,
}
