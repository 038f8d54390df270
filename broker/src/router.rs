//! rumqttd's router, embedded: it runs on its own thread and is reached only through
//! in-process links. No rumqttd listener is ever started.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;

use crate::backlog::Backlog;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::Publish;
use rumqttd::{Config, Notification, RouterConfig};

/// rumqttd keeps one in-memory log per subscription filter (not per topic): the
/// recorder's `pmon/v1/#` log is the backlog it reads from, so it must hold a burst:
/// rumqttd's small default segments lost most of one ("read cursor jumped"), and 6 × 8 MiB
/// holds a few seconds of the fleet's peak rate (docs/PERFORMANCE.md). Memory grows to
/// this size per active filter and stays there.
const SEGMENT_SIZE: usize = 8 * 1024 * 1024;
const SEGMENT_COUNT: usize = 6;

/// The router, shared by the gateway (one link per client) and the recorder.
#[derive(Clone)]
pub struct Router {
    /// `Broker::new` spawns the router thread; we never call `Broker::start`, which would
    /// open rumqttd's own listeners without our gateway in front.
    broker: Arc<rumqttd::Broker>,
    next_link: Arc<AtomicU64>,
    backlog: Arc<Backlog>,
}

impl Router {
    /// Starts the router thread, sized for `max_connections` links.
    pub fn start(max_connections: usize) -> Router {
        let config = Config {
            router: RouterConfig {
                max_connections,
                // Above this many queued notifications the router unschedules a link until
                // it asks again (`LinkRx::wake`).
                max_outgoing_packet_count: 200,
                max_segment_size: SEGMENT_SIZE,
                max_segment_count: SEGMENT_COUNT,
                ..RouterConfig::default()
            },
            ..Config::default()
        };
        Router {
            broker: Arc::new(rumqttd::Broker::new(config)),
            next_link: Arc::new(AtomicU64::new(1)),
            backlog: Arc::default(),
        }
    }

    /// What the recorder has yet to take of what was handed to the router.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// The backlog, for the subscription that owns it.
    pub(crate) fn shared_backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    /// A new link. `name` is for logs; the router gets a unique client id
    /// (`name~n`), so rumqttd's own duplicate-id handling (and its will misfire) never runs.
    /// Only the gateway and [`crate::subscription`] speak rumqttd's link protocol.
    pub(crate) async fn link(&self, name: &str) -> anyhow::Result<(LinkTx, LinkRx)> {
        let n = self.next_link.fetch_add(1, Ordering::Relaxed);
        let client_id = format!("{name}~{n}");
        let broker = self.broker.clone();
        // `LinkBuilder::build` waits on a blocking channel for the router's ack.
        tokio::task::spawn_blocking(move || {
            broker.link(&client_id).map_err(|e| anyhow::anyhow!("router refused a link: {e}"))
        })
        .await
        .context("link task panicked")?
    }
}

/// The QoS level (0, 1 or 2) and packet id of a publish, which rumqttd keeps
/// crate-private; its public serialization carries them in byte 0 (bits 1-2) and bytes 1
/// and 2. Serialized without the payload, which `serialize` would copy.
pub(crate) fn qos_and_pkid(publish: &Publish) -> (u8, u16) {
    let mut header = publish.clone();
    header.payload = bytes::Bytes::new();
    let raw = header.serialize();
    ((raw[0] >> 1) & 0b11, u16::from_be_bytes([raw[1], raw[2]]))
}

/// Drains a link we only publish on, so the router never stalls on it.
pub(crate) fn drain(mut rx: LinkRx) {
    tokio::spawn(async move {
        while let Ok(n) = rx.next().await {
            if let Some(Notification::Unschedule) = n {
                if rx.wake().await.is_err() {
                    break;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use rumqttd::protocol::Publish;

    #[test]
    fn the_qos_and_packet_id_of_a_publish_are_read_back() {
        // A QoS 1 publish with packet id 0x1234, as rumqttd serializes it.
        let raw = [&[0b0011_0010, 0x12, 0x34, 0, 3][..], b"a/b", b"payload"].concat();
        let publish = Publish::deserialize(raw.into());
        assert_eq!(super::qos_and_pkid(&publish), (1, 0x1234));
        assert_eq!(&publish.payload[..], b"payload");
        assert_eq!(super::qos_and_pkid(&Publish::new("a/b", "x", true)), (0, 0));
    }
}
