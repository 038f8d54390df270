//! Agents' clock skew: how far each host's clock is from the server's, estimated from its
//! live fast samples, and the time a sample is stored at once corrected for it. Pure: the
//! writer owns one [`Clock`] per host and passes the receive time in.
//!
//! A sample's offset (`ts_ms` minus the time it was received) is its agent's skew plus the
//! time it spent in flight. Replays from an agent's outage buffer are old on purpose, so
//! only *paced* samples count: the next `seq` of the same agent run, received about one
//! collection interval after the previous one. A burst of replays arrives all at once and
//! never counts. The skew is the median of the last [`WINDOW`] paced offsets, rounded to
//! the second, and it moves only when the median drifts more than [`TOLERANCE_MS`] from
//! it, so a replay is corrected exactly as its first copy was unless the clock itself
//! changed (dedup never depends on the correction: see `writer/apply.rs`).

use std::collections::VecDeque;

/// Paced offsets kept per host; the skew is their median.
pub const WINDOW: usize = 7;
/// Paced offsets needed before there is an estimate.
pub const MIN_LIVE: usize = 3;
/// How far the median may drift from the applied skew before the skew follows it, and
/// the smallest skew corrected: below it the agent's clock is taken as right.
pub const TOLERANCE_MS: i64 = 2_000;
/// From this skew on, the host gets a `clock_skew` warning: the built-in trigger
/// (`status::CLOCK_SKEW_S`, which an operator may move per host). The correction below
/// does not depend on it.
pub const WARN_SKEW_MS: i64 = 60_000;

/// The clock of one host, as the writer sees it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// The newest fast sample of the current agent run, to tell paced samples.
    last: Option<Seen>,
    /// Offsets of the last paced samples, oldest first.
    offsets: VecDeque<i64>,
    /// The skew applied (agent minus server, ms; positive = ahead); None until measured.
    skew_ms: Option<i64>,
    /// Whether any sample of this host was stored at a corrected time: from then on its
    /// replays are recognised by (boot_id, seq) rather than by time.
    corrected: bool,
}

#[derive(Debug, Clone)]
struct Seen {
    boot_id: String,
    seq: u64,
    ts_ms: i64,
    received_ms: i64,
}

impl Clock {
    /// A clock whose skew was measured before (the agent's and the stored time of its
    /// latest sample, after a restart).
    pub fn restored(skew_ms: i64) -> Clock {
        Clock { skew_ms: Some(skew_ms), corrected: skew_ms != 0, ..Clock::default() }
    }

    /// The applied skew: positive when the agent's clock is ahead; None until measured.
    pub fn skew_ms(&self) -> Option<i64> {
        self.skew_ms
    }

    /// Whether a sample of this host was ever stored at a corrected time.
    pub fn corrected(&self) -> bool {
        self.corrected
    }

    /// Notes a fast sample of agent run `boot_id`; returns whether the skew changed.
    pub fn observe(&mut self, boot_id: &str, seq: u64, ts_ms: i64, received_ms: i64) -> bool {
        let seen = Seen { boot_id: boot_id.to_owned(), seq, ts_ms, received_ms };
        let Some(last) = &self.last else {
            self.last = Some(seen);
            return false;
        };
        let same_run = last.boot_id == boot_id;
        if same_run && seq <= last.seq {
            // A replay of this run: older than what we have.
            return false;
        }
        let paced = same_run && seq == last.seq + 1 && {
            let (dts, drecv) = (ts_ms - last.ts_ms, received_ms - last.received_ms);
            dts > 0 && (drecv - dts).abs() <= (dts / 4).clamp(100, TOLERANCE_MS)
        };
        self.last = Some(seen);
        if !paced {
            return false;
        }
        if self.offsets.len() == WINDOW {
            self.offsets.pop_front();
        }
        self.offsets.push_back(ts_ms - received_ms);
        self.update()
    }

    fn update(&mut self) -> bool {
        if self.offsets.len() < MIN_LIVE {
            return false;
        }
        let mut sorted: Vec<i64> = self.offsets.iter().copied().collect();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        if self.skew_ms.is_some_and(|s| (median - s).abs() <= TOLERANCE_MS) {
            return false;
        }
        let skew = if median.abs() < TOLERANCE_MS { 0 } else { (median as f64 / 1000.0).round() as i64 * 1000 };
        let changed = self.skew_ms != Some(skew);
        self.skew_ms = Some(skew);
        changed
    }

    /// The time to store a sample stamped `ts_ms` at, received at `received_ms`: `ts_ms`
    /// less the skew, and never later than its receipt (nothing is collected in the
    /// future: before the skew is measured, a sample from a clock ahead lands when it
    /// arrived).
    pub fn correct(&mut self, ts_ms: i64, received_ms: i64) -> i64 {
        let mut at = ts_ms - self.skew_ms.unwrap_or(0);
        if at > received_ms + TOLERANCE_MS {
            at = received_ms;
        }
        if at != ts_ms {
            self.corrected = true;
        }
        at
    }
}

/// "4 min 12 s ahead of the server", "2 h 5 min behind the server", "in sync with the
/// server" (within [`TOLERANCE_MS`]).
pub fn describe(skew_ms: i64) -> String {
    if skew_ms.abs() < TOLERANCE_MS {
        return "in sync with the server".into();
    }
    let s = (skew_ms.unsigned_abs() + 500) / 1000;
    let amount = match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    };
    let side = if skew_ms > 0 { "ahead of" } else { "behind" };
    format!("{amount} {side} the server")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_764_000_000_000;
    const MIN: i64 = 60_000;

    /// Feeds `n` live samples 30 s apart from a clock `skew` off, received after 40 ms.
    fn live(clock: &mut Clock, from_seq: u64, n: u64, skew: i64) {
        for i in 0..n {
            let received = T0 + (from_seq + i) as i64 * 30_000;
            clock.observe("b", from_seq + i, received - 40 + skew, received);
        }
    }

    #[test]
    fn paced_samples_give_the_skew_in_both_directions() {
        for skew in [10 * MIN, -10 * MIN, 4 * MIN + 12_300] {
            let mut clock = Clock::default();
            live(&mut clock, 1, 3, skew);
            assert_eq!(clock.skew_ms(), None, "three samples are two paced offsets");
            live(&mut clock, 4, 1, skew);
            let rounded = (skew as f64 / 1000.0).round() as i64 * 1000;
            assert_eq!(clock.skew_ms(), Some(rounded));
            let received = T0 + 5 * 30_000;
            assert_eq!(clock.correct(received + skew, received), received + skew - rounded);
        }
    }

    #[test]
    fn replays_do_not_count_and_are_corrected_like_live_samples() {
        let mut clock = Clock::default();
        live(&mut clock, 1, 10, -3 * MIN);
        assert_eq!(clock.skew_ms(), Some(-3 * MIN));
        // An outage: 100 samples collected 30 s apart arrive in one burst, then live ones.
        let back = T0 + 200 * 30_000;
        for seq in 11..111u64 {
            let collected = T0 + seq as i64 * 30_000;
            assert!(!clock.observe("b", seq, collected - 3 * MIN, back));
        }
        assert_eq!(clock.skew_ms(), Some(-3 * MIN), "a burst of old samples is not a new skew");
        assert_eq!(clock.correct(T0 - 3 * MIN, back), T0);
        // A replay of an older seq of the same run is ignored too.
        assert!(!clock.observe("b", 5, T0, back + 1));
    }

    #[test]
    fn the_skew_follows_a_fixed_clock_and_ignores_jitter() {
        let mut clock = Clock::default();
        live(&mut clock, 1, 8, 5 * MIN);
        live(&mut clock, 9, 7, 5 * MIN + 1_500);
        assert_eq!(clock.skew_ms(), Some(5 * MIN), "within the tolerance: unchanged");
        assert_eq!(clock.correct(T0 + 5 * MIN, T0), T0);
        // NTP fixed the clock (a new run: the agent restarted or not, it does not matter).
        live(&mut clock, 16, 4, 0);
        assert_eq!(clock.skew_ms(), Some(5 * MIN), "three of seven paced offsets: not yet");
        live(&mut clock, 20, 1, 0);
        assert_eq!(clock.skew_ms(), Some(0));
        assert!(clock.corrected(), "it was corrected once: replays are still keyed by seq");
    }

    #[test]
    fn before_a_measure_nothing_lands_in_the_future() {
        let mut clock = Clock::default();
        assert_eq!(clock.correct(T0 + 10 * MIN, T0), T0);
        assert!(clock.corrected());
        let mut behind = Clock::default();
        assert_eq!(behind.correct(T0 - 10 * MIN, T0), T0 - 10 * MIN, "old or behind: unknown yet");
        assert!(!behind.corrected());
    }

    #[test]
    fn skews_read_as_a_person_would_say_them() {
        assert_eq!(describe(252_000), "4 min 12 s ahead of the server");
        assert_eq!(describe(-600_000), "10 min 0 s behind the server");
        assert_eq!(describe(45_000), "45 s ahead of the server");
        assert_eq!(describe(-7_500_000), "2 h 5 min behind the server");
        assert_eq!(describe(1_500), "in sync with the server");
    }
}
