//! Alerting: the status rules' findings become alerts, and alerts become a few
//! notifications on the channels operators already use.
//!
//! # Layout
//! - [`alert`]: an alert's identity (host, rule, subject), state and what was sent.
//! - [`engine`]: the state machine (pending → firing → resolved), hysteresis, latches,
//!   inhibition by `host_offline`, acknowledgements, flap detection. Pure.
//! - [`notify`]: per-host groups, repeats, resolutions, flap notices. Pure.
//! - [`limit`]: the rate limiter per channel and per channel and host. Pure.
//! - [`silence`]: silences and `--for` durations; [`settings`]: timings and limits.
//! - [`overrides`]: rules disabled or re-tuned globally, per host, per subject (resolved
//!   by `recorder::status::limits`, which the status rules judge with too).
//! - [`store`]: the rows in SQLite (alerts, silences, channels, notification log).
//! - [`channel`]: one request builder per kind (webhook, ntfy, gotify, discord, slack,
//!   telegram), and email over SMTP; [`http`]: the client.
//! - [`mqtt`]: each host's firing set (retained) and transitions on MQTT. Pure.
//! - [`task`]: the service `serve` runs, and `channel test`.
//!
//! The clock is always an argument: the pure parts are tested millisecond by millisecond.

pub mod alert;
pub mod channel;
pub mod engine;
pub mod http;
pub mod limit;
pub mod mqtt;
pub mod notify;
pub mod overrides;
pub mod settings;
pub mod silence;
pub mod store;
pub mod task;

pub use alert::{Alert, Identity, State};
pub use engine::Engine;
pub use settings::Settings;
pub use task::{run, AlertingConfig};

#[cfg(test)]
mod overrides_tests;
#[cfg(test)]
mod rule_tests;
#[cfg(test)]
mod tests;
