//! Packing passes: once a block of hours has ended, each host's open hour rows are
//! packed (see `rollup/pack.rs`), one host of one partition per step, between ingest
//! batches as retention is. The first pass after start also converts the hour tables of
//! databases from before the packed tier.

use std::time::Duration;

use rusqlite::TransactionBehavior;
use tracing::{info, warn};

use super::Writer;
use crate::now_ms;
use crate::rollup::pack;

/// How often the writer looks whether a block has ended.
pub(super) const PACK_CHECK_EVERY: Duration = Duration::from_secs(60);

/// One packing pass in progress.
pub(super) struct Packing {
    /// Blocks before this one are packed.
    cut: i64,
    /// Open partitions still to visit, the next last.
    parts: Vec<i64>,
    /// The last host packed in the partition being visited.
    host: i64,
    cells: usize,
}

impl Writer {
    /// A pass, if a block has ended since the last one (or this is the first).
    pub(super) fn start_packing(&self) -> Option<Packing> {
        let cut = pack::first_open_block(now_ms());
        if cut <= self.packed_cut {
            return None;
        }
        let mut parts = pack::open_parts(&self.parts, cut);
        parts.reverse();
        Some(Packing { cut, parts, host: 0, cells: 0 })
    }

    /// Runs a whole pass at once (tests).
    pub fn pack_now(&mut self) {
        if let Some(mut packing) = self.start_packing() {
            while !self.pack_step(&mut packing) {}
        }
    }

    /// Packs one host of one partition; returns true when the pass is done. A failure
    /// ends the pass: the rows stay readable where they are, and the next block's pass
    /// tries again.
    pub(super) fn pack_step(&mut self, packing: &mut Packing) -> bool {
        let Some(&part) = packing.parts.last() else {
            self.packed_cut = packing.cut;
            if packing.cells > 0 {
                info!(cells = packing.cells, "packed the hour rollups of ended blocks");
            }
            // A pass reads pages of every host's hour rows, which ingest does not read: at
            // 10,000 hosts they filled ~11 MiB of the writer's page cache (heaptrack).
            if let Err(e) = self.conn.execute_batch("PRAGMA shrink_memory") {
                warn!(error = %e, "could not free the page cache after packing");
            }
            return true;
        };
        match self.pack_one(part, packing) {
            Ok(true) => {}
            Ok(false) => {
                packing.parts.pop();
                packing.host = 0;
            }
            Err(e) => {
                warn!(error = %e, part, "packing the hour rollups failed; they stay in their open tables until the next pass");
                self.packed_cut = packing.cut;
                return true;
            }
        }
        false
    }

    /// Packs the next host of `part`; false when none is left (the partition is then
    /// closed if it has ended).
    fn pack_one(&mut self, part: i64, packing: &mut Packing) -> rusqlite::Result<bool> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let next = pack::next_host(&tx, part, packing.host)?;
        match next {
            Some(host) => {
                packing.cells += pack::pack_host(&tx, part, host, packing.cut)?;
                packing.host = host;
            }
            None => pack::close_part(&tx, &mut self.parts, part, packing.cut)?,
        }
        tx.commit()?;
        if next.is_none() {
            // Statements of the dropped tables would never run again.
            self.conn.flush_prepared_statement_cache();
        }
        Ok(next.is_some())
    }
}
