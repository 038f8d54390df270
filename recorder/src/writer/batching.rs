//! The writer's loop: items gather into a batch for at most a window after the first,
//! retention and packing run a step at a time between batches, and each commit releases
//! the PUBACKs of the publishes it stored.

use std::time::{Duration, Instant};

use broker::Done;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use super::packing::{Packing, PACK_CHECK_EVERY};
use super::retention::{Prune, PRUNE_EVERY};
use super::{Writer, SETTLE_EVERY};
use crate::ingest::Item;

/// Most items in one transaction.
const MAX_BATCH: usize = 5000;
/// How long a batch may gather after its first item.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// One item for the writer, with the completion its publisher's PUBACK waits for (none
/// for presence, clone reports and the subscription path, which acks by itself).
#[derive(Debug)]
pub struct Queued {
    pub item: Item,
    pub done: Option<Done>,
}

impl From<Item> for Queued {
    fn from(item: Item) -> Queued {
        Queued { item, done: None }
    }
}

/// A batch being gathered: its items, and the completions to fire once they are committed.
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    dones: Vec<Done>,
}

impl Batch {
    fn push(&mut self, queued: Queued) {
        self.items.push(queued.item);
        self.dones.extend(queued.done);
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// What the batching loop does after looking at the channel.
enum Next {
    /// Let the batch gather for this long, then write it.
    Gather(Duration),
    /// Nothing arrived: look again.
    Again,
    /// Every sender is gone.
    Closed,
}

impl Writer {
    /// Runs until every sender of `rx` is dropped, then commits and settles what is left.
    /// Retention runs one chunk at a time between ingest batches, so it never stalls
    /// ingest for longer than one chunk.
    pub fn run(mut self, mut rx: mpsc::Receiver<Queued>, runtime: tokio::runtime::Handle) {
        let mut next_prune = Instant::now();
        let mut pruning: Option<Prune> = None;
        let mut next_pack = Instant::now();
        let mut packing: Option<Packing> = None;
        let mut batch = Batch { items: Vec::with_capacity(MAX_BATCH), dones: Vec::with_capacity(MAX_BATCH) };
        // How long the last write took: items queued meanwhile have waited that long.
        let mut last_write = Duration::ZERO;
        loop {
            if pruning.is_none() && Instant::now() >= next_prune {
                pruning = Some(self.start_prune());
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            if pruning.is_none() && packing.is_none() && Instant::now() >= next_pack {
                packing = self.start_packing();
                next_pack = Instant::now() + PACK_CHECK_EVERY;
            }
            // While retention or packing runs, each step alternates with whatever ingest is
            // queued, without waiting for a batch window.
            let next = match (&mut pruning, &mut packing) {
                (Some(prune), _) => {
                    if self.prune_step(prune) {
                        prune.report(&self.stats);
                        pruning = None;
                    }
                    take_queued(&mut rx, &mut batch)
                }
                (None, Some(pack)) => {
                    if self.pack_step(pack) {
                        packing = None;
                    }
                    take_queued(&mut rx, &mut batch)
                }
                (None, None) => self.wait_for_first(&mut rx, &runtime, &mut batch, last_write),
            };
            let window = match next {
                Next::Gather(window) => window,
                Next::Again => continue,
                Next::Closed => break,
            };
            // One commit then covers many samples of the same hosts and touches each page
            // once, not once per sample. Sleeping through the window, rather than waking
            // for every item, keeps the hand-off cheap.
            if !window.is_zero() {
                std::thread::sleep(window);
            }
            if !fill(&mut rx, &mut batch) {
                break;
            }
            if !batch.is_empty() {
                let started = Instant::now();
                let settle = self.last_settle.elapsed() >= SETTLE_EVERY;
                self.commit_batch(&mut batch, settle);
                last_write = started.elapsed();
            }
        }
        self.commit_batch(&mut batch, true);
    }

    /// Commits `batch`, then completes its publishes: their PUBACKs go only now. A batch
    /// that could not be stored drops its completions, which closes their sessions
    /// unacked, so their agents send them again.
    fn commit_batch(&mut self, batch: &mut Batch, settle: bool) {
        let stored = self.commit(&mut batch.items, settle);
        for done in batch.dones.drain(..) {
            if stored {
                done.complete();
            }
        }
    }

    /// Takes the batch's first item: one queued while the last write ran, whose window
    /// began then, or, when idle, the next to arrive. Idle, it wakes to settle what is
    /// pending and each second to see whether retention is due.
    fn wait_for_first(
        &mut self,
        rx: &mut mpsc::Receiver<Queued>,
        runtime: &tokio::runtime::Handle,
        batch: &mut Batch,
        last_write: Duration,
    ) -> Next {
        match rx.try_recv() {
            Ok(item) => {
                batch.push(item);
                return Next::Gather(BATCH_WINDOW.saturating_sub(last_write));
            }
            Err(TryRecvError::Disconnected) => return Next::Closed,
            Err(TryRecvError::Empty) => {}
        }
        let wait = if self.pending.is_empty() { Duration::from_secs(1) } else { SETTLE_EVERY };
        match runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
            Ok(Some(item)) => {
                batch.push(item);
                Next::Gather(BATCH_WINDOW)
            }
            Ok(None) => Next::Closed,
            Err(_) => {
                if !self.pending.is_empty() {
                    self.commit_batch(batch, true);
                }
                Next::Again
            }
        }
    }
}

/// Takes one item already queued, if any, without waiting.
fn take_queued(rx: &mut mpsc::Receiver<Queued>, batch: &mut Batch) -> Next {
    match rx.try_recv() {
        Ok(item) => batch.push(item),
        Err(TryRecvError::Empty) => {}
        Err(TryRecvError::Disconnected) => return Next::Closed,
    }
    Next::Gather(Duration::ZERO)
}

/// Adds what queued meanwhile to a batch that has begun, up to MAX_BATCH; false once
/// every sender is gone.
fn fill(rx: &mut mpsc::Receiver<Queued>, batch: &mut Batch) -> bool {
    while !batch.is_empty() && batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
    true
}
