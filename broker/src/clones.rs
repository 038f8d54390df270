//! Two agents sharing one host's token (a cloned VM, a copied agent.toml).
//!
//! A host has one session: each agent's CONNECT takes the session over from the other,
//! whose agent reconnects a second later and takes it back, forever. Reconnecting from
//! the same address is normal (a half-open link replaced), so only takeovers from a
//! *different* address count. When `takeovers` of them fall within `window`, the loop is
//! stopped: the session that is connected stays, and for `cool_down` every takeover of
//! that host from another address is refused. Pure and clock-free: the caller passes
//! `now`, so the rules are unit-tested without waiting.
//!
//! Addresses are what the gateway calls the peer: behind Caddy, the forwarded address
//! (`/mqtt` passes `X-Forwarded-For` from a loopback proxy), so agents behind one proxy
//! are still told apart. Two clones behind one NAT share an address and are not detected.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use wire::HostId;

/// When repeated takeovers mean two agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneRules {
    /// Takeovers from another address within `window` that trip the detector.
    pub takeovers: usize,
    pub window: Duration,
    /// How long takeovers from another address are refused once tripped.
    pub cool_down: Duration,
}

impl Default for CloneRules {
    fn default() -> Self {
        CloneRules { takeovers: 4, window: Duration::from_secs(120), cool_down: Duration::from_secs(600) }
    }
}

/// Published by the gateway when the detector trips (see [`crate::Gateway::clone_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneDetected {
    pub host: HostId,
    /// Every address that took the session over within the window, sorted.
    pub addresses: Vec<IpAddr>,
    /// The address of the session kept.
    pub kept: IpAddr,
    /// How long the others are refused.
    pub cool_down: Duration,
}

/// What to do with a host's CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A takeover from another address during a cool-down.
    Refuse,
    /// This takeover tripped the detector: refuse it, and tell the operator.
    Trip(CloneDetected),
}

/// Tracks hosts whose session changed address recently.
#[derive(Debug, Default)]
pub struct CloneDetector {
    rules: CloneRules,
    hosts: HashMap<HostId, Track>,
}

#[derive(Debug, Default)]
struct Track {
    /// Takeovers within the window: when, and the two addresses.
    takeovers: VecDeque<(Instant, IpAddr, IpAddr)>,
    /// Set while tripped.
    refuse_until: Option<Instant>,
}

/// Tracks kept before old ones are swept (a sweep is a pass over all of them).
const SWEEP_ABOVE: usize = 1024;

impl CloneDetector {
    pub fn new(rules: CloneRules) -> CloneDetector {
        CloneDetector { rules, hosts: HashMap::new() }
    }

    /// Decides on a CONNECT of `host` from `new` while the host's live session (if any)
    /// comes from `live`.
    pub fn connect(&mut self, host: &HostId, live: Option<IpAddr>, new: IpAddr, now: Instant) -> Decision {
        let new = new.to_canonical();
        let Some(live) = live.map(|a| a.to_canonical()).filter(|a| *a != new) else { return Decision::Allow };
        if self.hosts.len() > SWEEP_ABOVE {
            self.sweep(now);
        }
        let rules = self.rules;
        let track = self.hosts.entry(host.clone()).or_default();
        match track.refuse_until {
            Some(until) if now < until => return Decision::Refuse,
            Some(_) => *track = Track::default(),
            None => {}
        }
        track.takeovers.push_back((now, live, new));
        while track.takeovers.front().is_some_and(|(at, ..)| now.duration_since(*at) > rules.window) {
            track.takeovers.pop_front();
        }
        if track.takeovers.len() < rules.takeovers {
            return Decision::Allow;
        }
        let addresses: BTreeSet<IpAddr> = track.takeovers.iter().flat_map(|(_, a, b)| [*a, *b]).collect();
        track.takeovers.clear();
        track.refuse_until = Some(now + rules.cool_down);
        Decision::Trip(CloneDetected {
            host: host.clone(),
            addresses: addresses.into_iter().collect(),
            kept: live,
            cool_down: rules.cool_down,
        })
    }

    /// Forgets hosts with no takeover in the window and no cool-down running.
    fn sweep(&mut self, now: Instant) {
        let window = self.rules.window;
        self.hosts.retain(|_, t| {
            t.refuse_until.is_some_and(|u| now < u)
                || t.takeovers.back().is_some_and(|(at, ..)| now.duration_since(*at) <= window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host() -> HostId {
        HostId::parse("pve1").unwrap()
    }

    /// Two agents taking the session from each other every `every`: the decisions.
    fn flap(d: &mut CloneDetector, t0: Instant, every: Duration, n: u32) -> Vec<Decision> {
        let (a, b) = (ip("10.0.0.5"), ip("10.0.0.9"));
        (0..n)
            .map(|i| {
                let (live, new) = if i % 2 == 0 { (a, b) } else { (b, a) };
                d.connect(&host(), Some(live), new, t0 + every * i)
            })
            .collect()
    }

    #[test]
    fn four_takeovers_from_other_addresses_within_two_minutes_trip_it() {
        let mut d = CloneDetector::new(CloneRules::default());
        let t0 = Instant::now();
        let got = flap(&mut d, t0, Duration::from_secs(1), 4);
        assert_eq!(got[..3], [Decision::Allow, Decision::Allow, Decision::Allow]);
        let Decision::Trip(detected) = &got[3] else { panic!("{got:?}") };
        assert_eq!(detected.addresses, [ip("10.0.0.5"), ip("10.0.0.9")]);
        // The fourth was 10.0.0.5 taking over from 10.0.0.9: the live one, .9, is kept.
        assert_eq!(detected.kept, ip("10.0.0.9"));
        assert_eq!(detected.host, host());
    }

    #[test]
    fn while_cooling_down_only_takeovers_from_another_address_are_refused() {
        let mut d = CloneDetector::new(CloneRules::default());
        let t0 = Instant::now();
        flap(&mut d, t0, Duration::from_secs(1), 4);
        let (a, b, c) = (ip("10.0.0.5"), ip("10.0.0.9"), ip("10.0.0.7"));
        let t = t0 + Duration::from_secs(10);
        assert_eq!(d.connect(&host(), Some(b), a, t), Decision::Refuse);
        assert_eq!(d.connect(&host(), Some(b), c, t), Decision::Refuse, "a third address too");
        assert_eq!(d.connect(&host(), Some(b), b, t), Decision::Allow, "the kept agent reconnecting");
        assert_eq!(d.connect(&host(), None, a, t), Decision::Allow, "no session to take over");
        let other = HostId::parse("pve2").unwrap();
        assert_eq!(d.connect(&other, Some(b), a, t), Decision::Allow, "other hosts are not affected");
        // After the cool-down the count starts again from nothing.
        let later = t0 + Duration::from_secs(3 + 600);
        assert_eq!(d.connect(&host(), Some(b), a, later), Decision::Allow);
        let again = flap(&mut d, later + Duration::from_secs(1), Duration::from_secs(1), 3);
        assert!(matches!(again[2], Decision::Trip(_)), "{again:?}");
    }

    #[test]
    fn slow_or_same_address_takeovers_do_not_trip_it() {
        let mut d = CloneDetector::new(CloneRules::default());
        let t0 = Instant::now();
        // One every 41 s: never four within two minutes.
        assert!(flap(&mut d, t0, Duration::from_secs(41), 20).iter().all(|x| *x == Decision::Allow));
        let mut d = CloneDetector::new(CloneRules::default());
        let a = ip("10.0.0.5");
        for i in 0..20 {
            let decision = d.connect(&host(), Some(a), a, t0 + Duration::from_secs(i));
            assert_eq!(decision, Decision::Allow, "a reconnect from the same address");
        }
        // An IPv4-mapped IPv6 address is the same address.
        assert_eq!(d.connect(&host(), Some(a), ip("::ffff:10.0.0.5"), t0), Decision::Allow);
        assert!(d.hosts.is_empty());
    }

    #[test]
    fn three_addresses_are_all_named() {
        let mut d = CloneDetector::new(CloneRules::default());
        let t0 = Instant::now();
        let addrs = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.2"].map(ip);
        let mut last = Decision::Allow;
        for (i, pair) in addrs.windows(2).enumerate() {
            last = d.connect(&host(), Some(pair[0]), pair[1], t0 + Duration::from_secs(i as u64));
        }
        let Decision::Trip(detected) = last else { panic!("{last:?}") };
        assert_eq!(detected.addresses, ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(ip));
    }

    #[test]
    fn old_tracks_are_swept() {
        let mut d = CloneDetector::new(CloneRules::default());
        let t0 = Instant::now();
        for n in 0..=SWEEP_ABOVE {
            let h = HostId::parse(&format!("h{n}")).unwrap();
            d.connect(&h, Some(ip("10.0.0.1")), ip("10.0.0.2"), t0);
        }
        d.connect(&host(), Some(ip("10.0.0.1")), ip("10.0.0.2"), t0 + Duration::from_secs(121));
        assert_eq!(d.hosts.len(), 1);
    }
}
