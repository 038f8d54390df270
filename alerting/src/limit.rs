//! One rate limiter for every message to a channel: a token bucket per channel and one
//! per channel and host. What it refuses is counted, and the next message that passes
//! (or a summary of its own) says how many were suppressed. Pure and clock-free.

use std::collections::HashMap;

use crate::settings::Rate;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now_ms: i64) {
        let elapsed_h = (now_ms - self.last_ms).max(0) as f64 / 3_600_000.0;
        self.tokens = (self.tokens + elapsed_h * rate.per_hour).min(rate.burst);
        self.last_ms = now_ms;
    }
}

/// The limits of every channel and (channel, host).
pub struct Limiter {
    channel_rate: Rate,
    host_rate: Rate,
    channels: HashMap<String, Bucket>,
    hosts: HashMap<(String, String), Bucket>,
    /// Messages refused per (channel, host) since its last message that passed.
    suppressed: HashMap<(String, String), u64>,
}

/// The limiter's verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it, saying that this many messages before it were suppressed.
    Send { suppressed: u64 },
    /// Refused and counted.
    Suppressed,
}

impl Limiter {
    pub fn new(channel_rate: Rate, host_rate: Rate) -> Limiter {
        Limiter { channel_rate, host_rate, channels: HashMap::new(), hosts: HashMap::new(), suppressed: HashMap::new() }
    }

    /// Takes a token from both of `channel`'s buckets, or counts a suppressed message.
    pub fn admit(&mut self, channel: &str, host: &str, now_ms: i64) -> Admit {
        let key = (channel.to_owned(), host.to_owned());
        if self.take(&key, now_ms) {
            Admit::Send { suppressed: self.suppressed.remove(&key).unwrap_or(0) }
        } else {
            *self.suppressed.entry(key).or_default() += 1;
            Admit::Suppressed
        }
    }

    /// The (channel, host) pairs with suppressed messages whose buckets have a token
    /// again, each with its count: a summary is due for each (its token is taken).
    pub fn summaries(&mut self, now_ms: i64) -> Vec<(String, String, u64)> {
        let mut keys: Vec<(String, String)> = self.suppressed.keys().cloned().collect();
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            if self.take(&key, now_ms) {
                let n = self.suppressed.remove(&key).unwrap_or(0);
                out.push((key.0, key.1, n));
            }
        }
        out
    }

    /// Forgets channels that no longer exist.
    pub fn retain_channels(&mut self, exists: impl Fn(&str) -> bool) {
        self.channels.retain(|c, _| exists(c));
        self.hosts.retain(|(c, _), _| exists(c));
        self.suppressed.retain(|(c, _), _| exists(c));
    }

    fn take(&mut self, key: &(String, String), now_ms: i64) -> bool {
        let (cr, hr) = (self.channel_rate, self.host_rate);
        let channel = self.channels.entry(key.0.clone()).or_insert(Bucket { tokens: cr.burst, last_ms: now_ms });
        channel.refill(cr, now_ms);
        let host = self.hosts.entry(key.clone()).or_insert(Bucket { tokens: hr.burst, last_ms: now_ms });
        host.refill(hr, now_ms);
        if channel.tokens >= 1.0 && host.tokens >= 1.0 {
            channel.tokens -= 1.0;
            host.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn per_host_bucket_refuses_then_reports_what_it_suppressed() {
        let mut l = Limiter::new(Rate { burst: 100.0, per_hour: 100.0 }, Rate { burst: 2.0, per_hour: 6.0 });
        assert_eq!(l.admit("ops", "pve1", 0), Admit::Send { suppressed: 0 });
        assert_eq!(l.admit("ops", "pve1", 0), Admit::Send { suppressed: 0 });
        assert_eq!(l.admit("ops", "pve1", 0), Admit::Suppressed);
        assert_eq!(l.admit("ops", "pve1", 1), Admit::Suppressed);
        // Another host and another channel have buckets of their own.
        assert_eq!(l.admit("ops", "pve2", 1), Admit::Send { suppressed: 0 });
        assert_eq!(l.admit("pager", "pve1", 1), Admit::Send { suppressed: 0 });
        assert!(l.summaries(HOUR / 6 - 1).is_empty(), "no token yet");
        // 6 per hour: one token after 10 minutes, taken by the summary.
        assert_eq!(l.summaries(HOUR / 6), vec![("ops".into(), "pve1".into(), 2)]);
        assert!(l.summaries(HOUR / 6).is_empty());
        assert_eq!(l.admit("ops", "pve1", HOUR / 6), Admit::Suppressed);
        assert_eq!(l.admit("ops", "pve1", 2 * HOUR / 6), Admit::Send { suppressed: 1 });
    }

    #[test]
    fn the_channel_bucket_covers_every_host() {
        let mut l = Limiter::new(Rate { burst: 3.0, per_hour: 1.0 }, Rate { burst: 10.0, per_hour: 10.0 });
        for host in ["a", "b", "c"] {
            assert_eq!(l.admit("ops", host, 0), Admit::Send { suppressed: 0 });
        }
        assert_eq!(l.admit("ops", "d", 0), Admit::Suppressed);
        assert_eq!(l.admit("other", "d", 0), Admit::Send { suppressed: 0 });
    }
}
