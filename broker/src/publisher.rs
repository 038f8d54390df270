//! The server's own publishes (alerting's `alerts` topics, Home Assistant's discovery and
//! `ha` topics): a router link that only publishes, behind one type, like the gateway's
//! presence link.

use std::sync::Arc;

use rumqttd::local::LinkTx;
use rumqttd::protocol::{Packet, Publish};
use tokio::sync::Mutex;
use tracing::warn;

use crate::backlog::Backlog;
use crate::router::{self, Router};

/// Publishes messages of the server itself. Cheap to clone; every clone shares one link.
#[derive(Clone)]
pub struct Publisher {
    /// Locked per publish, so messages keep their order.
    link: Arc<Mutex<LinkTx>>,
    backlog: Arc<Backlog>,
}

impl Publisher {
    /// A new link to `router`, for publishing only. `name` is for logs.
    pub async fn new(router: &Router, name: &str) -> anyhow::Result<Publisher> {
        let (link, rx) = router.link(name).await?;
        router::drain(rx);
        Ok(Publisher { link: Arc::new(Mutex::new(link)), backlog: router.shared_backlog() })
    }

    /// Publishes `payload` on `topic`. rumqttd builds only QoS 0 publishes for local links;
    /// subscribers get it at their subscription's QoS. A topic under `pmon/v1/` is counted
    /// in the backlog like every publish, since the recorder's subscription (`pmon/v1/#`)
    /// takes it too; one elsewhere (Home Assistant's discovery prefix) is not, since nothing
    /// would ever take it back. Returns false when the router is gone.
    pub async fn publish(&self, topic: String, payload: Vec<u8>, retain: bool) -> bool {
        let counted = topic.strip_prefix(wire::PREFIX).is_some_and(|rest| rest.starts_with('/'));
        let publish = Publish::new(bytes::Bytes::from(topic), bytes::Bytes::from(payload), retain);
        if counted {
            self.backlog.add(publish.topic.len() + publish.payload.len());
        }
        if self.link.lock().await.send(Packet::Publish(publish, None)).await.is_err() {
            warn!("router gone; server message not published");
            return false;
        }
        true
    }
}
