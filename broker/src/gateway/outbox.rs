//! The presence outbox: `online`/`offline` decided under the presence lock, published
//! after it by one task.
//!
//! Publishing awaits the ingest sink (the recorder's writer) and the router. While the
//! writer cannot commit (a full disk) the sink stays full, and when that wait was under
//! the presence lock every CONNECT, disconnect and rotation queued behind it: nobody, not
//! even an observer, could connect to watch the outage. So the lock only queues a state
//! here, and [`run_publisher`] does the waiting.
//!
//! Order: states are queued under the presence lock, so in the order sessions started
//! and ended, and the one publisher takes a host's states oldest first, one at a time:
//! the recorder and the retained topic apply a host's `online`/`offline` in that order
//! and end on its last state. A host's session reads nothing before its `online` is
//! handed over ([`Outbox::wait_handed`]), so the host's data still follows its `online`
//! (and any `offline` of the session before), as when the lock did the publishing. A
//! host's queue is bounded ([`PER_HOST`]): a host flapping
//! faster than the sink drains loses its oldest `online`/`offline` pairs (counted in
//! `Stats::presence_dropped`), never its last state.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use rumqttd::local::LinkTx;
use rumqttd::protocol::{Packet, Publish};
use tokio::sync::Notify;
use tracing::warn;
use wire::{HostId, Kind};

use crate::ingest::{Delivery, Ingest};
use crate::router::Router;

/// Most states one host may have waiting. Even, so that dropping the oldest pair keeps
/// the queue alternating between `online` and `offline`.
pub(super) const PER_HOST: usize = 16;

/// What [`Outbox::queue`] did with a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queued {
    /// Waiting for the publisher.
    Added,
    /// The host's newest waiting state is the same already.
    Merged,
    /// Waiting, and the host's two oldest waiting states were dropped to make room.
    DroppedOldestPair,
}

/// The number of a queued state (numbers grow across hosts): [`Outbox::wait_handed`]
/// waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket(u64);

/// One host's states while it has some waiting or being published; removed once the
/// last is handed over, so the outbox holds nothing for quiet hosts (at start it queues
/// an `offline` for every registered host).
struct HostQueue {
    /// States not yet taken by the publisher, oldest first, numbered (true = online).
    waiting: VecDeque<(u64, bool)>,
    /// The number given to the host's newest state.
    last: u64,
    /// Every state of the host numbered up to this one is handed over (a new queue
    /// starts at the outbox's last number: all the host's earlier states were).
    handed: u64,
    /// Notified (all waiters) each time the publisher hands one of the host's states
    /// over; per host, so a hand-over wakes only the sessions of that host.
    on_handed: Arc<Notify>,
}

#[derive(Default)]
struct Queues {
    hosts: HashMap<HostId, HostQueue>,
    /// The number given to the newest state of any host.
    last: u64,
    /// Hosts with waiting states, each once: the publisher takes one state of the front
    /// host and puts the host back at the end if it has more, so one flapping host does
    /// not hold up the others.
    turns: VecDeque<HostId>,
}

/// Presence states waiting to be published. Owned by the gateway; the publisher task
/// holds only a `Weak` and ends once the gateway is gone.
pub(super) struct Outbox {
    /// A short lock, never held across an await.
    queues: Mutex<Queues>,
    /// Shared with the publisher task: notified on every queued state and on drop.
    wake: Arc<Notify>,
}

impl Outbox {
    pub(super) fn new() -> Outbox {
        Outbox { queues: Mutex::default(), wake: Arc::new(Notify::new()) }
    }

    /// Queues `online` for `host` and wakes the publisher. Never waits.
    pub(super) fn queue(&self, host: &HostId, online: bool) -> (Queued, Ticket) {
        let queued = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let Queues { hosts, last, turns } = &mut *queues;
            let queue = hosts.entry(host.clone()).or_insert_with(|| HostQueue {
                waiting: VecDeque::new(),
                last: *last,
                handed: *last,
                on_handed: Arc::default(),
            });
            if queue.waiting.is_empty() {
                turns.push_back(host.clone());
            }
            if queue.waiting.back().is_some_and(|(_, newest)| *newest == online) {
                (Queued::Merged, Ticket(queue.last))
            } else {
                let dropped = queue.waiting.len() >= PER_HOST;
                if dropped {
                    queue.waiting.drain(..2);
                }
                *last += 1;
                queue.last = *last;
                queue.waiting.push_back((queue.last, online));
                (if dropped { Queued::DroppedOldestPair } else { Queued::Added }, Ticket(queue.last))
            }
        };
        self.wake.notify_one();
        queued
    }

    /// Waits until the publisher has handed `host`'s state `ticket` over (to the ingest
    /// sink and the router), or a newer one of the host.
    pub(super) async fn wait_handed(&self, host: &HostId, ticket: Ticket) {
        while let Some(on_handed) = self.not_handed(host, ticket) {
            let handed = on_handed.notified();
            tokio::pin!(handed);
            // Registered before the check again, so a hand-over in between is not missed.
            handed.as_mut().enable();
            if self.not_handed(host, ticket).is_none() {
                return;
            }
            handed.await;
        }
    }

    /// The host's hand-over notifier while its state `ticket` is not handed over yet.
    fn not_handed(&self, host: &HostId, ticket: Ticket) -> Option<Arc<Notify>> {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let queue = queues.hosts.get(host)?;
        (queue.handed < ticket.0).then(|| queue.on_handed.clone())
    }

    /// The next state to publish: the oldest of the host whose turn it is.
    fn take(&self) -> Option<(HostId, Ticket, bool)> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let host = queues.turns.pop_front()?;
        let queue = queues.hosts.get_mut(&host)?;
        let (number, online) = queue.waiting.pop_front()?;
        if !queue.waiting.is_empty() {
            queues.turns.push_back(host.clone());
        }
        Some((host, Ticket(number), online))
    }

    /// Notes that the publisher has handed `host`'s state `ticket` over.
    fn note_handed(&self, host: &HostId, ticket: Ticket) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = queues.hosts.get_mut(host) else { return };
        queue.handed = queue.handed.max(ticket.0);
        queue.on_handed.notify_waiters();
        if queue.waiting.is_empty() && queue.handed == queue.last {
            // A waiter woken above finds no queue: its state is handed over.
            queues.hosts.remove(host);
            if queues.hosts.is_empty() {
                // The 10,000 `offline`s at start grew these; give the memory back.
                queues.hosts.shrink_to_fit();
                queues.turns.shrink_to_fit();
            }
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // The publisher finds the outbox gone and ends, dropping its link and sink sender.
        self.wake.notify_one();
    }
}

/// The one publisher of presence: takes each queued state and hands it to the ingest
/// sink (in order with the host's data, which the sink stores) and then to the router,
/// retained, on the gateway's presence link. Ends when the outbox is dropped.
pub(super) async fn run_publisher(outbox: Weak<Outbox>, mut link: LinkTx, mut ingest: Option<Ingest>, router: Router) {
    let Some(wake) = outbox.upgrade().map(|o| o.wake.clone()) else { return };
    loop {
        let next = match outbox.upgrade() {
            Some(outbox) => outbox.take(),
            None => return,
        };
        match next {
            Some((host, ticket, online)) => {
                if !publish(&mut link, ingest.as_ref(), &router, &host, online).await {
                    // The recorder stops before the sessions end at shutdown: logged once,
                    // not once for each of 10,000 hosts' `offline`.
                    warn!(host = %host, "ingest consumer gone (the server is stopping?); presence no longer stored");
                    ingest = None;
                }
                match outbox.upgrade() {
                    Some(outbox) => outbox.note_handed(&host, ticket),
                    None => return,
                }
            }
            None => wake.notified().await,
        }
    }
}

/// Retained `online`/`offline` on the host's status topic, to the ingest sink and the
/// router. rumqttd's public API builds only QoS 0 publishes for local links; subscribers
/// still receive them, retained. False when the ingest sink's consumer is gone.
async fn publish(link: &mut LinkTx, ingest: Option<&Ingest>, router: &Router, host: &HostId, online: bool) -> bool {
    let payload = if online { wire::topic::ONLINE } else { wire::topic::OFFLINE };
    let publish = Publish::new(host.topic(Kind::Status), payload.to_owned(), true);
    let mut stored = true;
    if let Some(ingest) = ingest {
        let delivery = Delivery { topic: publish.topic.clone(), payload: publish.payload.clone(), done: None };
        stored = ingest.send(delivery).await;
    }
    router.backlog().add(publish.topic.len() + publish.payload.len());
    if link.send(Packet::Publish(publish, None)).await.is_err() {
        warn!(host = %host, "router gone; presence not published");
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> HostId {
        HostId::parse(name).unwrap()
    }

    fn drain(outbox: &Outbox) -> Vec<(String, bool)> {
        std::iter::from_fn(|| outbox.take())
            .map(|(h, ticket, online)| {
                outbox.note_handed(&h, ticket);
                (h.as_str().to_owned(), online)
            })
            .collect()
    }

    #[test]
    fn a_hosts_states_come_out_in_order_and_hosts_take_turns() {
        let outbox = Outbox::new();
        let (a, b) = (host("pve-a"), host("pve-b"));
        assert_eq!(outbox.queue(&a, true).0, Queued::Added);
        assert_eq!(outbox.queue(&a, false).0, Queued::Added);
        assert_eq!(outbox.queue(&b, true).0, Queued::Added);
        assert_eq!(outbox.queue(&a, true).0, Queued::Added);
        let taken = drain(&outbox);
        let expected = [("pve-a", true), ("pve-b", true), ("pve-a", false), ("pve-a", true)];
        assert_eq!(taken, expected.map(|(h, o)| (h.to_owned(), o)));
        let queues = outbox.queues.lock().unwrap();
        assert!(queues.hosts.is_empty() && queues.turns.is_empty(), "nothing kept once handed over");
    }

    #[test]
    fn a_repeated_state_is_merged_with_the_newest_waiting() {
        let outbox = Outbox::new();
        let a = host("pve-a");
        // A takeover: the new session's `online` while the old one's is still waiting.
        outbox.queue(&a, true);
        assert_eq!(outbox.queue(&a, true).0, Queued::Merged);
        assert_eq!(drain(&outbox), [("pve-a".to_owned(), true)]);
        // Taken already, so not merged: the publisher sends it again.
        assert_eq!(outbox.queue(&a, true).0, Queued::Added);
    }

    #[test]
    fn a_flapping_host_loses_its_oldest_pairs_never_its_last_state() {
        let outbox = Outbox::new();
        let a = host("pve-a");
        let flaps = PER_HOST + 5;
        let results: Vec<Queued> = (0..flaps).map(|i| outbox.queue(&a, i.is_multiple_of(2)).0).collect();
        assert!(results[..PER_HOST].iter().all(|q| *q == Queued::Added), "{results:?}");
        // Full at 16: the 17th, 19th and 21st each make room by dropping a pair.
        let dropped = results.iter().filter(|q| **q == Queued::DroppedOldestPair).count();
        assert_eq!(dropped, 3, "{results:?}");
        let taken: Vec<bool> = drain(&outbox).into_iter().map(|(_, online)| online).collect();
        assert!(taken.len() <= PER_HOST, "bounded: {}", taken.len());
        assert_eq!(taken.last(), Some(&(flaps - 1).is_multiple_of(2)), "the last state queued");
        assert!(taken.windows(2).all(|w| w[0] != w[1]), "still alternating: {taken:?}");
    }

    #[test]
    fn a_state_handed_over_stays_handed_over_when_its_host_queues_again() {
        let outbox = Outbox::new();
        let a = host("pve-a");
        let (_, old) = outbox.queue(&a, true);
        drain(&outbox);
        // The host's queue was removed; this makes a new one.
        outbox.queue(&a, false);
        let (_, new) = outbox.queue(&a, true);
        assert!(outbox.not_handed(&a, old).is_none(), "handed over before");
        assert!(outbox.not_handed(&a, new).is_some(), "waiting");
    }

    #[tokio::test]
    async fn a_session_waits_until_its_online_is_handed_over() {
        let outbox = Arc::new(Outbox::new());
        let a = host("pve-a");
        outbox.queue(&a, false);
        let (_, ticket) = outbox.queue(&a, true);
        let waiting = tokio::spawn({
            let (outbox, a) = (outbox.clone(), a.clone());
            async move { outbox.wait_handed(&a, ticket).await }
        });
        let (h, first, online) = outbox.take().unwrap();
        assert!(!online);
        outbox.note_handed(&h, first);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the `offline` before it is handed over, not its `online`");
        let (h, second, online) = outbox.take().unwrap();
        assert!(online);
        outbox.note_handed(&h, second);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(2), waiting).await;
        waited.expect("the wait ends once its `online` is handed over").unwrap();
    }
}
