//! The `proxmox-monitor` server as a library: what `serve` runs, so that tests start the
//! same server inside their own process (on port 0) as the binary does.
//!
//! # Layout
//! - [`config`]: the environment → a validated [`ServerConfig`].
//! - [`server`]: the bind step ([`Listeners::bind`], which reports [`Bound`]) and
//!   [`run`], which wires the router, gateway, recorder and dashboard on those listeners
//!   and runs them until the shutdown future resolves.
//! - [`registry`]: the one watcher of the host registry, whose changes the gateway's
//!   credentials, Home Assistant and alerting reload on.
//!
//! The binary (`src/main.rs`) adds the CLI, tracing, the signal and the `demo`.

pub mod config;
pub mod registry;
pub mod server;

pub use config::ServerConfig;
pub use server::{run, Bound, Listeners};
