//! Back-pressure from the recorder to publishers.
//!
//! A QoS 1 publish is acked once it is handed to the router (by the gateway; rumqttd's
//! router would ack it once in its in-memory log), and when a subscriber falls more than
//! that log (6 × 8 MiB, see [`crate::router`]) behind, the router skips it ahead to the
//! newest entry: the oldest messages are lost although their publishers had their PUBACK,
//! and under a sustained burst that was most of them (docs/PERFORMANCE.md).
//!
//! So the gateway counts the bytes it hands to the router and the recorder's subscription
//! ([`crate::subscription::Pacing::OwnsBacklog`]) counts those it has taken; while the
//! difference is over [`LIMIT`], a third of the log, sessions stop reading their sockets before forwarding the next publish. TCP then slows the agents,
//! which keep what they could not send in their outage buffer.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tokio::sync::Notify;

/// Bytes handed to the router and not yet taken by the consumer, past which publishers wait.
pub const LIMIT: i64 = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Backlog {
    bytes: AtomicI64,
    /// Nothing waits until a consumer attaches: without one (tests of the gateway alone)
    /// nobody would ever take.
    attached: AtomicBool,
    drained: Notify,
    /// Publishes that had to wait: how often the recorder could not keep up.
    waits: AtomicU64,
}

impl Backlog {
    /// Called by the consumer when it subscribes; counting starts then. False when a
    /// consumer is attached already: two would each subtract what they take.
    pub(crate) fn attach(&self) -> bool {
        !self.attached.swap(true, Ordering::AcqRel)
    }

    /// Counts `bytes` about to be handed to the router, after waiting while the backlog is
    /// over the limit.
    pub async fn admit(&self, bytes: usize) {
        if !self.attached.load(Ordering::Acquire) {
            return;
        }
        if self.bytes.load(Ordering::Acquire) > LIMIT {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        while self.bytes.load(Ordering::Acquire) > LIMIT {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the second look, so a `taken` in between still wakes us.
            drained.as_mut().enable();
            if self.bytes.load(Ordering::Acquire) <= LIMIT {
                break;
            }
            drained.await;
        }
        self.add(bytes);
    }

    /// Counts `bytes` handed to the router without waiting: the gateway's own small
    /// presence messages, which must not wait behind the agents' data.
    pub fn add(&self, bytes: usize) {
        if self.attached.load(Ordering::Acquire) {
            self.bytes.fetch_add(bytes as i64, Ordering::AcqRel);
        }
    }

    /// Called by the consumer for what it has taken from the router.
    pub(crate) fn taken(&self, bytes: usize) {
        let left = self.bytes.fetch_sub(bytes as i64, Ordering::AcqRel) - bytes as i64;
        if left <= LIMIT {
            self.drained.notify_waiters();
        }
    }

    /// Bytes handed to the router and not yet taken (for /metrics).
    pub fn bytes(&self) -> i64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Publishes that waited for the recorder (for /metrics).
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn publishers_wait_while_the_consumer_is_behind_and_resume_when_it_catches_up() {
        let backlog = Arc::new(Backlog::default());
        // Without a consumer nothing is counted, so nothing ever waits.
        backlog.admit(2 * LIMIT as usize).await;
        assert_eq!(backlog.bytes(), 0);

        assert!(backlog.attach());
        assert!(!backlog.attach(), "one consumer per backlog");
        backlog.admit(LIMIT as usize).await;
        backlog.admit(1).await; // at the limit: still admitted
        assert_eq!(backlog.bytes(), LIMIT + 1);
        let waiting = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.admit(10).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a publisher over the limit must wait");
        backlog.taken(1);
        tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("woken once drained").unwrap();
        assert_eq!(backlog.bytes(), LIMIT + 10);
        assert_eq!(backlog.waits(), 1);
    }
}
