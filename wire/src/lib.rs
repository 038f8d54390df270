//! The wire contract between agents and the server, in one place.
//!
//! # Layout
//! - [`topic`]: the `pmon/v1/<host_id>/<kind>` topic names, host id validation and parsing.
//! - [`payload`]: the JSON payloads of the `fast`, `medium` and `slow` tiers.
//!
//! Every type here matches `topics.md` exactly; no other crate spells a topic by hand.
//! This crate does no I/O.

pub mod payload;
pub mod topic;

pub use payload::*;
pub use topic::{HostId, HostIdError, Kind, Topic, TopicError, PREFIX};
