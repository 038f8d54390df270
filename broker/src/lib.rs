//! The embedded MQTT broker: rumqttd's router behind our own gateway.
//!
//! # Layout
//! - [`router`]: rumqttd's router on its own thread, and in-process links to it.
//! - [`subscription`]: a subscriber inside the server (the recorder): rounds of messages,
//!   acked after the consumer handled them, with rumqttd's link protocol kept inside.
//! - [`publisher`]: the server's own publishes (alerting's retained firing sets).
//! - [`ingest`]: the sink that hands hosts' publishes to the recorder and holds each
//!   PUBACK until the publish is committed.
//! - [`backlog`]: back-pressure from the recorder to publishers, so that rumqttd never
//!   drops acked messages when the recorder falls behind.
//! - [`auth`]: tokens (256 random bits, stored as SHA-256) and the credential table.
//! - [`acl`]: what each identity may publish and subscribe to (pure functions).
//! - [`sessions`]: the live sessions by credential and client id, with the observer cap.
//! - [`clones`]: two agents sharing one host's token, told by repeated takeovers (pure).
//! - [`codec`]: MQTT 3.1.1 / 5 detection and framing, on rumqttd's own codecs.
//! - [`gateway`]: one client connection from CONNECT to close: auth, ACL, keepalive,
//!   presence and kick. Serves any byte stream (TCP, TLS, WebSocket).
//! - [`listener`]: the TCP and TLS listeners, with handshake deadlines and limits.
//! - [`limit`]: the per-address connect-attempt limit (token buckets, loopback exempt).
//! - [`stats`]: counters for `/metrics`.
//! - [`ws`]: MQTT over WebSocket: RFC 6455 frames as the byte stream the gateway serves.
//!
//! rumqttd opens no socket of its own: every client reaches it through [`gateway`].

pub mod acl;
pub mod auth;
pub mod backlog;
pub mod clones;
pub mod codec;
pub mod gateway;
pub mod ingest;
pub mod limit;
pub mod listener;
pub mod publisher;
pub mod router;
mod sessions;
pub mod stats;
pub mod subscription;
pub mod ws;

pub use auth::{hash_token, new_token, Credential, CredentialTable, Identity, Role};
pub use clones::{CloneDetected, CloneRules};
pub use gateway::{Admission, Gateway, GatewayConfig};
pub use ingest::{Deliveries, Delivery, Done, Ingest};
pub use publisher::Publisher;
pub use router::Router;
pub use subscription::{Message, Pacing, Subscription};
