//! Sign-in attempts per source address: a growing delay after each failure, then refusals
//! (429) for a growing window. Pure and clock-free: callers pass the time.
//!
//! An attempt counts as a failure from the moment it starts, and a success takes it back
//! (and forgets the source): so a guesser who sends many attempts at once gets no more in
//! than one who waits for each answer. A refused attempt does not count. Unlike the
//! broker's connection limit, loopback is not exempt: behind the proxy every browser
//! arrives from loopback, and the caller passes the proxy's forwarded address instead; a
//! loopback request without one is one more source of its own.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// How hard the limit is; [`Default`] is what the server uses.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Failures before the source is refused for a while.
    pub free_failures: u32,
    /// The delay before a failure is answered; it doubles with each further failure.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// How long a source is refused after its `free_failures`th failure; it doubles with
    /// each failure after that.
    pub first_lockout: Duration,
    pub max_lockout: Duration,
    /// A source with no attempt for this long starts over.
    pub forget_after: Duration,
    /// Sources tracked at most; past it the one idle longest is forgotten.
    pub max_tracked: usize,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            free_failures: 5,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            first_lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
            forget_after: Duration::from_secs(24 * 3600),
            max_tracked: 10_000,
        }
    }
}

/// What to do with one sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password; if it is wrong, wait `delay_on_failure` before answering.
    Proceed { delay_on_failure: Duration },
    /// Answer 429 at once, with `Retry-After`.
    Refuse { retry_after: Duration },
}

#[derive(Debug, Clone, Copy)]
struct Source {
    failures: u32,
    last_ms: i64,
    locked_until_ms: i64,
}

#[derive(Debug)]
pub struct LoginLimiter {
    policy: LoginPolicy,
    sources: HashMap<IpAddr, Source>,
}

impl LoginLimiter {
    pub fn new(policy: LoginPolicy) -> LoginLimiter {
        LoginLimiter { policy, sources: HashMap::new() }
    }

    /// An attempt from `ip` at `now_ms`: refused while the source is locked out,
    /// otherwise counted as a failure until [`succeeded`](Self::succeeded) says otherwise.
    pub fn attempt(&mut self, ip: IpAddr, now_ms: i64) -> Verdict {
        let key = key(ip);
        let forget_ms = millis(self.policy.forget_after);
        if let Some(s) = self.sources.get(&key) {
            if s.locked_until_ms > now_ms {
                return Verdict::Refuse { retry_after: Duration::from_millis((s.locked_until_ms - now_ms) as u64) };
            }
            if now_ms - s.last_ms >= forget_ms {
                self.sources.remove(&key);
            }
        }
        if !self.sources.contains_key(&key) && self.sources.len() >= self.policy.max_tracked {
            self.make_room(now_ms);
        }
        let source = self.sources.entry(key).or_insert(Source { failures: 0, last_ms: now_ms, locked_until_ms: 0 });
        source.failures += 1;
        source.last_ms = now_ms;
        let p = &self.policy;
        if source.failures >= p.free_failures {
            let lockout = doubled(p.first_lockout, source.failures - p.free_failures, p.max_lockout);
            source.locked_until_ms = now_ms + millis(lockout);
        }
        Verdict::Proceed { delay_on_failure: doubled(p.first_delay, source.failures - 1, p.max_delay) }
    }

    /// The password was right: the source starts over.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.sources.remove(&key(ip));
    }

    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Forgets idle sources, or else the one idle longest.
    fn make_room(&mut self, now_ms: i64) {
        let forget_ms = millis(self.policy.forget_after);
        self.sources.retain(|_, s| now_ms - s.last_ms < forget_ms || s.locked_until_ms > now_ms);
        if self.sources.len() >= self.policy.max_tracked {
            if let Some(oldest) = self.sources.iter().min_by_key(|(_, s)| s.last_ms).map(|(k, _)| *k) {
                self.sources.remove(&oldest);
            }
        }
    }
}

/// `first` doubled `times` times, at most `max`.
fn doubled(first: Duration, times: u32, max: Duration) -> Duration {
    first.saturating_mul(1u32.checked_shl(times).unwrap_or(u32::MAX)).min(max)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The source an address counts as: an IPv6 address by its /64 (one subscriber's whole
/// network), a mapped IPv4 address as IPv4. Loopback is a source like any other.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn delay(v: Verdict) -> Duration {
        match v {
            Verdict::Proceed { delay_on_failure } => delay_on_failure,
            Verdict::Refuse { retry_after } => panic!("refused for {retry_after:?}"),
        }
    }

    fn refused(v: Verdict) -> Duration {
        match v {
            Verdict::Refuse { retry_after } => retry_after,
            Verdict::Proceed { .. } => panic!("not refused"),
        }
    }

    const S: i64 = 1000;

    #[test]
    fn failures_grow_the_delay_then_refuse_for_a_growing_window() {
        let mut l = LoginLimiter::new(LoginPolicy::default());
        let a = ip("203.0.113.7");
        let delays: Vec<u64> = (0..5).map(|i| delay(l.attempt(a, i * S)).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000]);
        // The fifth failure (at 4 s) locks the source for a minute.
        assert_eq!(refused(l.attempt(a, 5 * S)), Duration::from_secs(59));
        assert_eq!(refused(l.attempt(a, 63 * S)), Duration::from_secs(1), "a refusal does not count");
        assert_eq!(delay(l.attempt(a, 64 * S)), Duration::from_secs(8), "the delay is capped");
        assert_eq!(refused(l.attempt(a, 65 * S)), Duration::from_secs(119), "the sixth failure: two minutes");
        // The window doubles up to an hour.
        let mut now = 184 * S;
        for _ in 0..10 {
            delay(l.attempt(a, now));
            now += millis(refused(l.attempt(a, now)));
        }
        assert_eq!(refused(l.attempt(a, now - 1)), Duration::from_millis(1));
        delay(l.attempt(a, now));
        assert_eq!(refused(l.attempt(a, now)), Duration::from_secs(3600));
    }

    #[test]
    fn another_address_is_unaffected_and_a_success_starts_over() {
        let mut l = LoginLimiter::new(LoginPolicy::default());
        let (a, b) = (ip("203.0.113.7"), ip("198.51.100.1"));
        for _ in 0..5 {
            delay(l.attempt(a, 0));
        }
        refused(l.attempt(a, 0));
        assert_eq!(delay(l.attempt(b, 0)), Duration::from_millis(500));
        l.succeeded(b);
        assert_eq!(l.tracked(), 1);
        // After the lockout, a success forgets every failure.
        delay(l.attempt(a, 60 * S));
        l.succeeded(a);
        assert_eq!(delay(l.attempt(a, 60 * S)), Duration::from_millis(500));
    }

    #[test]
    fn attempts_in_flight_count_as_failures() {
        let mut l = LoginLimiter::new(LoginPolicy::default());
        let a = ip("203.0.113.7");
        // Ten at once, none answered yet: five get checked, the rest wait a minute.
        let verdicts: Vec<Verdict> = (0..10).map(|_| l.attempt(a, 0)).collect();
        assert_eq!(verdicts.iter().filter(|v| matches!(v, Verdict::Proceed { .. })).count(), 5);
    }

    #[test]
    fn loopback_is_not_exempt_and_ipv6_counts_by_slash_64() {
        let mut l = LoginLimiter::new(LoginPolicy { free_failures: 1, ..LoginPolicy::default() });
        delay(l.attempt(ip("127.0.0.1"), 0));
        refused(l.attempt(ip("127.0.0.1"), 0));
        delay(l.attempt(ip("2001:db8:1:2::1"), 0));
        refused(l.attempt(ip("2001:db8:1:2:abcd::9"), 0));
        delay(l.attempt(ip("2001:db8:1:3::1"), 0));
        delay(l.attempt(ip("192.0.2.1"), 0));
        refused(l.attempt(ip("::ffff:192.0.2.1"), 0));
    }

    #[test]
    fn idle_sources_are_forgotten_and_the_table_is_bounded() {
        let policy = LoginPolicy { max_tracked: 3, ..LoginPolicy::default() };
        let day = millis(policy.forget_after);
        let mut l = LoginLimiter::new(policy);
        let a = ip("203.0.113.7");
        for _ in 0..4 {
            delay(l.attempt(a, 0));
        }
        assert_eq!(delay(l.attempt(a, day)), Duration::from_millis(500), "a day later it starts over");
        for (i, other) in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"].into_iter().enumerate() {
            delay(l.attempt(ip(other), day + 1 + i as i64));
        }
        assert_eq!(l.tracked(), 3);
        assert_eq!(delay(l.attempt(a, day + 10)), Duration::from_millis(500), "the idlest was forgotten");
    }
}
