//! The ingest sink: hosts' publishes handed straight to a consumer that stores them, so
//! that a PUBACK can wait until the publish is stored.
//!
//! A session gives every publish on its host's own topics to the [`Ingest`] sender as a
//! [`Delivery`] carrying a [`Done`]. The consumer (the recorder's writer) calls
//! [`Done::complete`] once the publish is committed or refused as invalid; only then does
//! the session send its PUBACK. PUBACKs leave in the order the publishes arrived
//! ([`Acks`]), whatever order the completions come in (a refusal at parse completes before
//! the commit of an earlier publish). A `Done` dropped without completing (a batch the
//! writer could not store, a shutdown) closes the session with those publishes unacked:
//! the client sends them again after reconnecting.
//!
//! The channel is bounded: when the consumer is behind, a session waits to hand over its
//! next publish and stops reading its socket, so TCP slows the agent (which buffers).

use std::collections::VecDeque;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Publishes (and presence) waiting for the consumer. When full, sessions stop reading.
pub const CAPACITY: usize = 4096;

/// One message for the consumer: a host's publish, or the gateway's `online`/`offline`.
#[derive(Debug)]
pub struct Delivery {
    pub topic: Bytes,
    pub payload: Bytes,
    /// Set for a client's QoS 1 publish: its PUBACK waits for it.
    pub done: Option<Done>,
}

/// The gateway's side of the sink. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingest(mpsc::Sender<Delivery>);

/// The consumer's side of the sink.
pub type Deliveries = mpsc::Receiver<Delivery>;

/// A sink holding up to `capacity` deliveries.
pub fn channel(capacity: usize) -> (Ingest, Deliveries) {
    let (tx, rx) = mpsc::channel(capacity);
    (Ingest(tx), rx)
}

impl Ingest {
    /// Hands `delivery` to the consumer, waiting while it is full. False when the consumer
    /// is gone.
    pub async fn send(&self, delivery: Delivery) -> bool {
        self.0.send(delivery).await.is_ok()
    }
}

/// What the consumer says about one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed, or refused as invalid: ack it.
    Done(u64),
    /// Dropped without being stored: do not ack it.
    Lost(u64),
}

/// The promise to say what became of one publish; see the module documentation.
#[derive(Debug)]
pub struct Done {
    outcomes: mpsc::UnboundedSender<Outcome>,
    seq: u64,
    completed: bool,
}

impl Done {
    /// The publish is committed (or refused as invalid): its PUBACK may go.
    pub fn complete(mut self) {
        self.completed = true;
        let _ = self.outcomes.send(Outcome::Done(self.seq));
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if !self.completed {
            // The session may be gone already; then nobody waits for the ack.
            let _ = self.outcomes.send(Outcome::Lost(self.seq));
        }
    }
}

/// A session's publishes awaiting their PUBACK, in arrival order. The gateway's; public so
/// that a consumer's tests can play a session.
#[derive(Debug)]
pub struct Acks {
    /// Where the `Done`s report, only while a publish awaits its ack: a channel is about
    /// a KiB, and most held sessions are idle agents (docs/PERFORMANCE.md).
    outcomes: Option<(mpsc::UnboundedSender<Outcome>, mpsc::UnboundedReceiver<Outcome>)>,
    /// Sequence number of the front of `waiting`.
    first: u64,
    /// Packet id of each publish handed over and not yet acked, and whether it is done.
    waiting: VecDeque<(u16, bool)>,
}

/// A publish was dropped without being stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost;

impl Default for Acks {
    fn default() -> Acks {
        Acks::new()
    }
}

impl Acks {
    pub fn new() -> Acks {
        Acks { outcomes: None, first: 0, waiting: VecDeque::new() }
    }

    /// Notes the publish `pkid` as handed over; its completion comes through the `Done`.
    pub fn track(&mut self, pkid: u16) -> Done {
        let seq = self.first + self.waiting.len() as u64;
        self.waiting.push_back((pkid, false));
        let (outcomes, _) = self.outcomes.get_or_insert_with(mpsc::unbounded_channel);
        Done { outcomes: outcomes.clone(), seq, completed: false }
    }

    /// Waits for the next outcome. Pending for ever while nothing is waiting.
    pub async fn next(&mut self) -> Outcome {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// [`Acks::next`] as a poll, for a session that waits on it without holding a
    /// receive future (docs/PERFORMANCE.md, "Memory per held connection"). Pending while
    /// nothing is waiting, without a wake-up: the caller polls again after `track`.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let Some((_, outcomes)) = &mut self.outcomes else { return Poll::Pending };
        match outcomes.poll_recv(cx) {
            Poll::Ready(Some(outcome)) => Poll::Ready(outcome),
            // Never `Ready(None)`: `self` holds a sender.
            _ => Poll::Pending,
        }
    }

    /// Applies `outcome` and every other outcome already arrived, and pushes onto `ready`
    /// the packet ids that may be acked now, in order. `Err` if a publish was lost.
    pub fn settle(&mut self, outcome: Outcome, ready: &mut Vec<u16>) -> Result<(), Lost> {
        let mut next = Some(outcome);
        while let Some(outcome) = next {
            match outcome {
                Outcome::Lost(_) => return Err(Lost),
                Outcome::Done(seq) => {
                    if let Some(slot) = seq.checked_sub(self.first).and_then(|i| self.waiting.get_mut(i as usize)) {
                        slot.1 = true;
                    }
                }
            }
            next = self.outcomes.as_mut().and_then(|(_, rx)| rx.try_recv().ok());
        }
        while let Some(&(pkid, true)) = self.waiting.front() {
            self.waiting.pop_front();
            self.first += 1;
            ready.push(pkid);
        }
        if self.waiting.is_empty() {
            // Every `Done` has reported and is gone: nothing can send on the channel.
            self.outcomes = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acks_leave_in_arrival_order_whatever_order_completions_come_in() {
        let mut acks = Acks::new();
        let first = acks.track(10);
        let second = acks.track(11);
        let third = acks.track(12);
        let mut ready = Vec::new();
        // A refusal at parse completes before the commit of an earlier publish.
        second.complete();
        let outcome = acks.next().await;
        acks.settle(outcome, &mut ready).unwrap();
        assert!(ready.is_empty(), "11 waits for 10");
        first.complete();
        third.complete();
        let outcome = acks.next().await;
        acks.settle(outcome, &mut ready).unwrap();
        assert_eq!(ready, [10, 11, 12]);
        let fourth = acks.track(13);
        fourth.complete();
        ready.clear();
        let outcome = acks.next().await;
        acks.settle(outcome, &mut ready).unwrap();
        assert_eq!(ready, [13]);
        // An idle session holds no channel (docs/PERFORMANCE.md).
        assert!(acks.outcomes.is_none(), "nothing awaits its ack: no channel held");
    }

    #[tokio::test]
    async fn a_publish_dropped_unstored_is_never_acked() {
        let mut acks = Acks::new();
        let first = acks.track(1);
        let second = acks.track(2);
        first.complete();
        drop(second);
        let mut ready = Vec::new();
        let outcome = acks.next().await;
        assert_eq!(acks.settle(outcome, &mut ready), Err(Lost));
        assert!(ready.is_empty(), "nothing acked once a publish is lost: {ready:?}");
    }
}
