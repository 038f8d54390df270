//! Before a batch is stored, each sample's time is corrected for its agent's clock
//! (`crate::clock`): the writer measures every host's skew from its live fast samples and
//! stores each sample at its agent's time less that skew. The agent's own time stays in
//! the stored payload (`agent_ts_ms`) and in the [`Stamp`], on which replays are keyed.

use std::borrow::Cow;

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
                Item::Fast(p, _) => {
                    let clock = self.clocks.entry(p.host_id.clone()).or_default();
                    if clock.observe(&p.boot_id, p.seq, p.ts_ms, now) {
                        if let Some(state) = self.states.get_mut(&p.host_id) {
                            state.clock_skew_ms = clock.skew_ms();
                        }
                    }
                    correct(clock, p, now)
                }
                Item::Medium(p, _) => correct(self.clocks.entry(p.host_id.clone()).or_default(), p, now),
                Item::Slow(p, _) => correct(self.clocks.entry(p.host_id.clone()).or_default(), p, now),
            })
            .collect()
    }

    /// A clock per host from the skews stored with their latest samples (a restart).
    pub(super) fn restore_clocks(&mut self) {
        self.clocks =
            self.states.values().filter_map(|s| Some((s.host_id.clone(), Clock::restored(s.clock_skew_ms?)))).collect();
    }
}

/// Sets `p.ts_ms` to the time `clock` says it was collected at. The raw JSON is left as
/// sent: only the one that becomes `latest` is rewritten, at the settle ([`stored_json`]).
fn correct<T>(clock: &mut Clock, p: &mut Payload<T>, now: i64) -> Stamp {
    let agent_ts_ms = p.ts_ms;
    p.ts_ms = clock.correct(agent_ts_ms, now);
    Stamp { agent_ts_ms, by_seq: clock.corrected() }
}

/// The JSON `latest` stores for a payload sent as `raw` at `agent_ts_ms` and stored at
/// `ts_ms`: as sent, or when the time was corrected, with `ts_ms` the stored time and the
/// agent's as `agent_ts_ms`.
pub(super) fn stored_json(raw: &str, ts_ms: i64, agent_ts_ms: i64) -> Cow<'_, str> {
    if ts_ms == agent_ts_ms {
        return Cow::Borrowed(raw);
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw) {
        Ok(mut fields) => {
            fields.insert("ts_ms".into(), ts_ms.into());
            fields.insert("agent_ts_ms".into(), agent_ts_ms.into());
            Cow::Owned(serde_json::Value::Object(fields).to_string())
        }
        // It was parsed on the way in; should it not parse now, it is stored as sent.
        Err(_) => Cow::Borrowed(raw),
    }
}
