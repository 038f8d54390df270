//! A subscriber inside the server: rumqttd's link protocol behind one type.
//!
//! A [`Subscription`] is a router link subscribed to one filter at QoS 1. The consumer
//! asks for a round of messages, handles it, and asks again; asking again acks the round
//! before, so an ack never precedes the consumer's handling. At QoS 1 the router keeps up
//! to 100 unacked messages in flight per link and holds the rest in its log until acks
//! come (rumqttd: `router/iobufs.rs`, `MAX_INFLIGHT`; `routing.rs`, `InflightFull`), so a
//! consumer that is busy slows its own delivery instead of losing messages, as long as it
//! stays within the log (see [`crate::backlog`]).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rumqttd::local::{LinkError, LinkRx, LinkTx};
use rumqttd::protocol::{Filter, Packet, PubAck, PubAckReason, QoS, RetainForwardRule, Subscribe};
use rumqttd::Notification;

use crate::backlog::Backlog;
use crate::router::{qos_and_pkid, Router};

/// Most notifications taken per round, between acks.
const ROUND: usize = 512;

/// Whether publishers wait for a subscriber, chosen when it subscribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// What this subscriber takes is counted in the router's [`Backlog`], so publishers
    /// wait while it is more than [`crate::backlog::LIMIT`] behind. One per router: the
    /// recorder, which must not lose what agents had acked.
    OwnsBacklog,
    /// Publishers never wait for this subscriber (alerting, discovery). If it falls more
    /// than the router's log behind, rumqttd skips it past the oldest messages.
    Unpaced,
}

/// One message of a round, with no rumqttd type in sight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Bytes,
    pub payload: Bytes,
}

/// The router closed the subscription's link (the router thread is gone); nothing more
/// will arrive.
#[derive(Debug, thiserror::Error)]
#[error("the router closed the link of subscription {name}")]
pub struct Closed {
    name: String,
    #[source]
    source: LinkError,
}

/// Refused at subscribe time.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("the router refused a link for subscription {name}: {reason}")]
    LinkRefused { name: String, reason: String },
    #[error("the router's backlog already has a subscriber ({name} asked for it too)")]
    BacklogTaken { name: String },
    #[error("the router closed the link of subscription {name} before it subscribed")]
    Closed { name: String },
}

/// A subscription to one filter; see the module documentation.
pub struct Subscription {
    name: String,
    link_tx: LinkTx,
    link_rx: LinkRx,
    /// Set for [`Pacing::OwnsBacklog`] only.
    backlog: Option<Arc<Backlog>>,
    /// The current round, handed to the consumer by reference until its next call.
    round: Vec<Message>,
    /// Packet ids of the current round, acked when the consumer asks for the next one.
    unacked: Vec<u16>,
}

impl Router {
    /// Subscribes to `filter` at QoS 1 through a new link. `name` is for logs and errors.
    pub async fn subscribe(&self, name: &str, filter: &str, pacing: Pacing) -> Result<Subscription, SubscribeError> {
        Subscription::open(self, name, filter, QoS::AtLeastOnce, pacing).await
    }
}

impl Subscription {
    /// `qos` is QoS 1 but in a test, which subscribes at QoS 0 to make the router fill the
    /// link's queue and unschedule it.
    async fn open(
        router: &Router,
        name: &str,
        filter: &str,
        qos: QoS,
        pacing: Pacing,
    ) -> Result<Subscription, SubscribeError> {
        let name = name.to_owned();
        let (mut link_tx, link_rx) = router
            .link(&name)
            .await
            .map_err(|e| SubscribeError::LinkRefused { name: name.clone(), reason: format!("{e:#}") })?;
        let backlog = match pacing {
            Pacing::OwnsBacklog if !router.shared_backlog().attach() => {
                return Err(SubscribeError::BacklogTaken { name });
            }
            Pacing::OwnsBacklog => Some(router.shared_backlog()),
            Pacing::Unpaced => None,
        };
        // rumqttd's `LinkTx::subscribe` subscribes at QoS 0 only, at which the router drops
        // what a slow subscriber has not read; at QoS 1 it reads the backlog from its log.
        let subscribe = Packet::Subscribe(
            Subscribe {
                pkid: 1,
                filters: vec![Filter {
                    path: filter.to_owned(),
                    qos,
                    nolocal: false,
                    preserve_retain: false,
                    retain_forward_rule: RetainForwardRule::OnEverySubscribe,
                }],
            },
            None,
        );
        // The router takes events from all links on one channel, in order: a publish sent
        // after this returns is routed after the filter exists.
        if link_tx.send(subscribe).await.is_err() {
            return Err(SubscribeError::Closed { name });
        }
        Ok(Subscription { name, link_tx, link_rx, backlog, round: Vec::new(), unacked: Vec::new() })
    }

    /// Acks the previous round, then waits for the next one: every message already queued,
    /// up to 512 notifications' worth. Never empty.
    pub async fn next_round(&mut self) -> Result<&[Message], Closed> {
        self.ack().await?;
        self.round.clear();
        self.fill().await?;
        Ok(&self.round)
    }

    /// Adds at least one message to the round, without acking.
    async fn fill(&mut self) -> Result<(), Closed> {
        let before = self.round.len();
        while self.round.len() == before {
            let first = self.link_rx.next().await.map_err(|e| self.closed(e))?;
            let mut taken = 0;
            if let Some(note) = first {
                self.take(note).await?;
                taken += 1;
            }
            // `recv_deadline(now)` returns at once: what is already queued, or nothing.
            while taken < ROUND {
                match self.link_rx.recv_deadline(Instant::now()) {
                    Ok(Some(note)) => self.take(note).await?,
                    _ => break,
                }
                taken += 1;
            }
        }
        Ok(())
    }

    async fn take(&mut self, note: Notification) -> Result<(), Closed> {
        match note {
            Notification::Forward(forward) => {
                let publish = forward.publish;
                if let Some(backlog) = &self.backlog {
                    backlog.taken(publish.topic.len() + publish.payload.len());
                }
                let (_, pkid) = qos_and_pkid(&publish);
                if pkid != 0 {
                    self.unacked.push(pkid);
                }
                self.round.push(Message { topic: publish.topic, payload: publish.payload });
            }
            // Above 200 queued notifications the router unschedules the link and sends it
            // nothing more until it asks (rumqttd: `routing.rs`, `forward_device_data`).
            // The queue was already moved to this side, so asking now is safe.
            Notification::Unschedule => self.link_rx.wake().await.map_err(|e| self.closed(e))?,
            // Subscribe acks and the like.
            _ => {}
        }
        Ok(())
    }

    /// Acks the round handed out last. rumqttd takes acks in order only, and one send
    /// wakes the router once for all of them.
    async fn ack(&mut self) -> Result<(), Closed> {
        let ack = |pkid| Packet::PubAck(PubAck { pkid, reason: PubAckReason::Success }, None);
        if let Some(last) = self.unacked.pop() {
            self.link_tx.buffer().extend(self.unacked.drain(..).map(ack));
            self.link_tx.send(ack(last)).await.map_err(|e| self.closed(e))?;
        }
        Ok(())
    }

    fn closed(&self, source: LinkError) -> Closed {
        Closed { name: self.name.clone(), source }
    }
}

#[cfg(test)]
mod tests;
