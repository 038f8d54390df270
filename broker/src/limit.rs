//! The per-address limit on connect attempts: a token bucket per source address.
//!
//! It is generous on purpose. Each address has its own bucket, so a whole fleet coming
//! back after a server restart (thousands of agents, each from its own address) gets in at
//! once; only one address hammering is slowed. Loopback is exempt: behind Caddy every
//! agent's socket comes from 127.0.0.1, and the WebSocket route passes the forwarded
//! address instead (see `dashboard::client::client_addr`), which is limited.
//! Pure: the caller passes the time, so tests need no clock.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How many attempts an address may make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Attempts allowed at once from a quiet address.
    pub burst: u32,
    /// Attempts regained per second.
    pub per_second: f64,
}

impl Default for Rate {
    /// 20 at once, then 5 a second: far above an agent's reconnects (backoff from 1 s),
    /// far below a password-guessing or connection-flooding loop.
    fn default() -> Self {
        Rate { burst: 20, per_second: 5.0 }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by address. Memory stays bounded: buckets that have refilled are
/// forgotten (a fresh one is the same), and past `max_tracked` busy addresses new ones
/// are let through rather than tracked, leaving the connection cap as the guard.
#[derive(Debug)]
pub struct AttemptLimiter {
    rate: Rate,
    buckets: HashMap<IpAddr, Bucket>,
    max_tracked: usize,
    /// The table size that triggers the next sweep; doubles with the live size, so
    /// sweeping costs O(1) per attempt on average.
    sweep_at: usize,
}

/// The smallest sweep threshold.
const SWEEP_MIN: usize = 1024;

impl AttemptLimiter {
    pub fn new(rate: Rate, max_tracked: usize) -> AttemptLimiter {
        AttemptLimiter { rate, buckets: HashMap::new(), max_tracked, sweep_at: SWEEP_MIN }
    }

    /// Takes one attempt for `ip` at `now`; false when its bucket is empty.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let Some(key) = key(ip) else { return true };
        if !self.buckets.contains_key(&key) {
            if self.buckets.len() >= self.sweep_at {
                self.sweep(now);
            }
            if self.buckets.len() >= self.max_tracked {
                return true;
            }
        }
        let burst = f64::from(self.rate.burst);
        let bucket = self.buckets.entry(key).or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Addresses being tracked (those that made an attempt and have not refilled).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Forgets every bucket that is full again by `now`.
    fn sweep(&mut self, now: Instant) {
        let Rate { burst, per_second } = self.rate;
        let refill = |b: &Bucket| {
            let missing = f64::from(burst) - b.tokens;
            Duration::from_secs_f64((missing / per_second).max(0.0))
        };
        self.buckets.retain(|_, b| now.saturating_duration_since(b.at) < refill(b));
        self.sweep_at = (self.buckets.len() * 2).max(SWEEP_MIN);
    }
}

/// The bucket an address counts against: `None` for loopback (the trusted proxy itself,
/// or a local tool), an IPv6 address by its /64 (one subscriber's whole network).
fn key(ip: IpAddr) -> Option<IpAddr> {
    let ip = ip.to_canonical();
    if ip.is_loopback() {
        return None;
    }
    match ip {
        IpAddr::V4(_) => Some(ip),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_gets_its_burst_then_the_refill_rate() {
        let mut l = AttemptLimiter::new(Rate { burst: 20, per_second: 5.0 }, 100_000);
        let t0 = Instant::now();
        let a = ip("203.0.113.7");
        assert_eq!((0..25).filter(|_| l.allow(a, t0)).count(), 20);
        // 5 per second: one more every 200 ms.
        assert!(!l.allow(a, t0 + Duration::from_millis(150)));
        assert!(l.allow(a, t0 + Duration::from_millis(250)));
        assert!(!l.allow(a, t0 + Duration::from_millis(250)));
        // Another address is not affected.
        assert!(l.allow(ip("203.0.113.8"), t0));
        // A quiet address is whole again, and no more than whole.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..25).filter(|_| l.allow(a, later)).count(), 20);
    }

    #[test]
    fn a_fleet_of_ten_thousand_reconnecting_at_once_all_get_in() {
        let mut l = AttemptLimiter::new(Rate::default(), 100_000);
        let t0 = Instant::now();
        for n in 0..10_000u32 {
            let addr = IpAddr::from((0x0a00_0000 + n).to_be_bytes());
            // Each agent tries twice within the same second (a retry after a reset).
            assert!(l.allow(addr, t0 + Duration::from_micros(u64::from(n) * 300)), "agent {n}");
            assert!(l.allow(addr, t0 + Duration::from_micros(u64::from(n) * 300 + 100)), "agent {n} again");
        }
    }

    #[test]
    fn loopback_is_the_trusted_proxy_and_never_limited() {
        let mut l = AttemptLimiter::new(Rate { burst: 1, per_second: 0.1 }, 10);
        let t0 = Instant::now();
        for addr in ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"] {
            assert!((0..100).all(|_| l.allow(ip(addr), t0)), "{addr}");
        }
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let mut l = AttemptLimiter::new(Rate { burst: 2, per_second: 0.1 }, 100);
        let t0 = Instant::now();
        assert!(l.allow(ip("2001:db8:1:2::1"), t0));
        assert!(l.allow(ip("2001:db8:1:2::ffff"), t0));
        assert!(!l.allow(ip("2001:db8:1:2:abcd::9"), t0), "same /64");
        assert!(l.allow(ip("2001:db8:1:3::1"), t0), "another /64");
        assert!(l.allow(ip("198.51.100.1"), t0));
        assert!(l.allow(ip("::ffff:198.51.100.1"), t0));
        assert!(!l.allow(ip("198.51.100.1"), t0), "the mapped form shares the bucket");
    }

    #[test]
    fn refilled_buckets_are_forgotten_and_the_table_is_bounded() {
        let mut l = AttemptLimiter::new(Rate { burst: 2, per_second: 1.0 }, 3000);
        let t0 = Instant::now();
        for n in 0..2000u32 {
            l.allow(IpAddr::from((0x0a00_0000 + n).to_be_bytes()), t0);
        }
        assert_eq!(l.tracked(), 2000);
        // Two seconds on, every one of them is full again: the next sweep drops them all.
        let later = t0 + Duration::from_secs(2);
        for n in 0..2000u32 {
            l.allow(IpAddr::from((0x0b00_0000 + n).to_be_bytes()), later);
        }
        assert!(l.tracked() <= 2000, "{}", l.tracked());
        // At the cap, new busy addresses pass untracked instead of growing the table.
        for n in 0..5000u32 {
            assert!(l.allow(IpAddr::from((0x0c00_0000 + n).to_be_bytes()), later));
        }
        assert!(l.tracked() <= 3000, "{}", l.tracked());
    }
}
