//! Home Assistant MQTT discovery (issue #17): every registered host appears in Home
//! Assistant as a device with live sensors, with no YAML.
//!
//! # Layout
//! - [`derived`]: the flat state payloads on `pmon/v1/<host>/ha/fast`, `.../ha/medium` and
//!   `.../ha/slow` (one per tier), a pure function of a host's
//!   [`recorder::state::HostState`]; every template in the discovery config is a key
//!   lookup in one of them, so Home Assistant never depends on the agents' payload schema.
//! - [`discovery`]: the device-discovery config of a host (Home Assistant 2024.11+), pure,
//!   and the keys of the components it declares.
//! - [`service`]: the task `serve` runs with `HA_DISCOVERY=1`: publishes configs at start,
//!   on Home Assistant's birth and when a host's shape changes; the derived states after
//!   each settle for changed hosts; an empty retained config for a removed host.
//!
//! This crate only publishes, through the server's own [`broker::Publisher`]: it never
//! writes the database, never parses agent payloads itself, and never lets a client
//! publish under the discovery prefix (the gateway's ACL reserves it).

pub mod derived;
pub mod discovery;
pub mod service;

pub use service::{run, HaConfig};

#[cfg(test)]
mod tests;
