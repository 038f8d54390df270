//! Before a batch is stored, each sample's time is corrected for its agent's clock
//! (`crate::clock`): the writer measures every host's skew from its live fast samples and
//! stores each sample at its agent's time less that skew. The agent's own time stays in
//! the stored payload (`agent_ts_ms`) and in the [`Stamp`], on which replays are keyed.

use wire::Payload;

use super::Writer;
use crate::clock::Clock;
use crate::ingest::Item;

/// What `apply` needs to know of a sample besides its (corrected) payload.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stamp {
    /// The agent's own `ts_ms`.
    pub agent_ts_ms: i64,
    /// The host's samples were ever stored at a corrected time: its fast samples are
    /// then recognised by (boot_id, seq) in `ingested`, not by time (see `apply.rs`).
    pub by_seq: bool,
}

impl Writer {
    /// Corrects the time of every sample of `batch`, received by `now`, and returns each
    /// one's [`Stamp`] (a default one for presence).
    pub(super) fn stamp(&mut self, batch: &mut [Item], now: i64) -> Vec<Stamp> {
        batch
            .iter_mut()
            .map(|item| match item {
                Item::Status { .. } | Item::SharedToken(_) => Stamp::default(),
                Item::Fast(p, raw) => {
                    let clock = self.clocks.entry(p.host_id.clone()).or_default();
                    if clock.observe(&p.boot_id, p.seq, p.ts_ms, now) {
                        if let Some(state) = self.states.get_mut(&p.host_id) {
                            state.clock_skew_ms = clock.skew_ms();
                        }
                    }
                    correct(clock, p, raw, now)
                }
                Item::Medium(p, raw) => correct(self.clocks.entry(p.host_id.clone()).or_default(), p, raw, now),
                Item::Slow(p, raw) => correct(self.clocks.entry(p.host_id.clone()).or_default(), p, raw, now),
            })
            .collect()
    }

    /// A clock per host from the skews stored with their latest samples (a restart).
    pub(super) fn restore_clocks(&mut self) {
        self.clocks =
            self.states.values().filter_map(|s| Some((s.host_id.clone(), Clock::restored(s.clock_skew_ms?)))).collect();
    }
}

/// Sets `p.ts_ms` to the time `clock` says it was collected at, and when that differs,
/// rewrites `raw` (what `latest` stores) to the same time with the agent's as
/// `agent_ts_ms`.
fn correct<T>(clock: &mut Clock, p: &mut Payload<T>, raw: &mut String, now: i64) -> Stamp {
    let agent_ts_ms = p.ts_ms;
    let at = clock.correct(agent_ts_ms, now);
    if at != agent_ts_ms {
        p.ts_ms = at;
        if let Ok(mut fields) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw) {
            fields.insert("ts_ms".into(), at.into());
            fields.insert("agent_ts_ms".into(), agent_ts_ms.into());
            *raw = serde_json::Value::Object(fields).to_string();
        }
    }
    Stamp { agent_ts_ms, by_seq: clock.corrected() }
}
