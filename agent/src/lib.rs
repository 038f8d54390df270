//! The Proxmox Monitor agent, as a library so that tests and the server's demo reuse it.
//!
//! # Layout
//! - [`config`]: `agent.toml` → validated [`config::Settings`].
//! - [`collect`]: the real collectors (pvesh, /proc, zpool, zfs), one file per source.
//! - [`source`]: the [`source::Source`] trait the scheduler pulls tier data from; the
//!   real host is one source, the demo's simulated hosts are others.
//! - [`schedule`]: runs each tier at its interval and builds the payload envelopes.
//! - [`outbox`]: the on-disk outage buffer, replayed in order after reconnecting.
//! - [`publisher`]: the MQTT connection (mqtt, mqtts, ws, wss), presence, reconnect
//!   with backoff, and the verdict for `--check`.
//! - [`daemon`]: tracing to stderr and the SIGINT/SIGTERM future, shared with the server.

pub mod collect;
pub mod config;
pub mod daemon;
pub mod outbox;
pub mod publisher;
pub mod schedule;
pub mod source;

/// The agent's version, sent in every payload.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
