//! The tiered schedule: each tier at its own interval, wrapped in a payload envelope.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use wire::{now_ms, HostId, Kind, Payload, SCHEMA_VERSION};

use crate::collect::Errors;
use crate::source::{Source, TierData};

/// One encoded payload, ready for the publisher.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Builds the envelopes: one random `boot_id` per agent run, one sequence per tier.
pub struct Envelopes {
    host_id: HostId,
    boot_id: String,
    seq: [u64; 3],
    /// The outage buffer's count of dropped payloads; reported once, then reset.
    dropped: Arc<AtomicU64>,
}

impl Envelopes {
    pub fn new(host_id: HostId, dropped: Arc<AtomicU64>) -> Envelopes {
        let boot_id = format!("{:016x}", rand::thread_rng().gen::<u64>());
        Envelopes { host_id, boot_id, seq: [0; 3], dropped }
    }

    /// Wraps one tier's data and encodes it.
    pub fn wrap(&mut self, data: TierData, errors: Errors) -> Message {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        let (kind, slot) = match &data {
            TierData::Fast(_) => (Kind::Fast, 0),
            TierData::Medium(_) => (Kind::Medium, 1),
            TierData::Slow(_) => (Kind::Slow, 2),
        };
        self.seq[slot] += 1;
        let header = Payload {
            schema: SCHEMA_VERSION,
            host_id: self.host_id.to_string(),
            ts_ms: now_ms(),
            boot_id: self.boot_id.clone(),
            seq: self.seq[slot],
            agent_version: crate::VERSION.to_owned(),
            dropped,
            errors,
            data: (),
        };
        let payload = match data {
            TierData::Fast(d) => encode(header, d),
            TierData::Medium(d) => encode(header, d),
            TierData::Slow(d) => encode(header, d),
        };
        Message { topic: self.host_id.topic(kind), payload }
    }
}

fn encode<T: serde::Serialize>(header: Payload<()>, data: T) -> Vec<u8> {
    let payload = header.with_data(data);
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_vec(&payload).expect("payload serializes")
}

/// Tier intervals.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub fast: Duration,
    pub medium: Duration,
    pub slow: Duration,
}

/// A collector may take most of its interval, but never long enough to overlap the next run.
pub fn collect_timeout(interval: Duration) -> Duration {
    (interval.mul_f32(0.8)).clamp(Duration::from_millis(500), Duration::from_secs(60))
}

/// A random start offset, so that a fleet restarted at once does not collect in lockstep.
fn start_offset(interval: Duration) -> Duration {
    let cap = interval.min(Duration::from_secs(15));
    cap.mul_f64(rand::thread_rng().gen::<f64>())
}

/// Runs every tier at its interval until `out` is closed, sending each payload to `out`.
pub async fn run<S: Source>(mut source: S, mut envelopes: Envelopes, intervals: Intervals, out: mpsc::Sender<Message>) {
    let now = Instant::now();
    let tick = |every: Duration| {
        let mut i = interval_at(now + start_offset(every), every);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    };
    let (mut fast, mut medium, mut slow) = (tick(intervals.fast), tick(intervals.medium), tick(intervals.slow));
    loop {
        let (tier, every) = tokio::select! {
            _ = fast.tick() => (Kind::Fast, intervals.fast),
            _ = medium.tick() => (Kind::Medium, intervals.medium),
            _ = slow.tick() => (Kind::Slow, intervals.slow),
            _ = out.closed() => return,
        };
        let (data, errors) = source.collect(tier, collect_timeout(every)).await;
        if out.send(envelopes.wrap(data, errors)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{Fast, FastPayload};

    #[test]
    fn envelopes_count_per_tier_and_keep_the_boot_id() {
        let dropped = Arc::new(AtomicU64::new(0));
        let mut e = Envelopes::new(HostId::parse("pve1").unwrap(), dropped.clone());
        let a = e.wrap(TierData::Fast(Fast::default()), Errors::new());
        dropped.store(3, Ordering::Relaxed);
        let b = e.wrap(TierData::Fast(Fast::default()), Errors::new());
        let c = e.wrap(TierData::Fast(Fast::default()), Errors::new());
        assert_eq!(a.topic, "pmon/v1/pve1/fast");
        let a: FastPayload = serde_json::from_slice(&a.payload).unwrap();
        let b: FastPayload = serde_json::from_slice(&b.payload).unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.boot_id, b.boot_id);
        assert_eq!(b.dropped, 3);
        let c: FastPayload = serde_json::from_slice(&c.payload).unwrap();
        assert_eq!(c.dropped, 0, "a drop count is reported once");
        assert_eq!(a.host_id, "pve1");
    }

    #[test]
    fn collect_timeout_stays_below_the_interval() {
        assert_eq!(collect_timeout(Duration::from_secs(30)), Duration::from_secs(24));
        assert!(collect_timeout(Duration::from_secs(1)) < Duration::from_secs(1));
        assert_eq!(collect_timeout(Duration::from_secs(1800)), Duration::from_secs(60));
    }
}
