//! The status rules, in one pure module (documented in docs/STATUS.md). Each status
//! carries its reasons, so the dashboard can say why a host is red.

use serde::Serialize;
use wire::{Fast, Medium, PoolState, ScanFunction};

/// Worst first when sorted descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Online,
    Warning,
    Critical,
    Offline,
}

impl Level {
    /// Best first.
    pub const ALL: [Level; 4] = [Level::Online, Level::Warning, Level::Critical, Level::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Online => "online",
            Level::Warning => "warning",
            Level::Critical => "critical",
            Level::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub level: Level,
    pub reasons: Vec<String>,
}

/// What the rules look at.
pub struct Facts<'a> {
    pub online: bool,
    pub now_ms: i64,
    pub fast: Option<&'a Fast>,
    /// When the latest fast sample arrived (or the host reconnected, if later), and the
    /// fast interval seen from the agent.
    pub fast_received_ms: Option<i64>,
    pub fast_interval_ms: Option<i64>,
    pub medium: Option<&'a Medium>,
    /// The medium payload before `medium`, to see error counters grow.
    pub previous_medium: Option<&'a Medium>,
}

const DAY_MS: i64 = 86_400_000;

/// `used` as a percentage of `total`, when both are known and `total` isn't 0.
pub fn pct(used: Option<u64>, total: Option<u64>) -> Option<f64> {
    match (used, total) {
        (Some(u), Some(t)) if t > 0 => Some(u as f64 * 100.0 / t as f64),
        _ => None,
    }
}

/// How bad a pool or vdev in `state` is: the one place a ZFS state becomes a level. Only
/// `ONLINE` is healthy; anything else, a state we do not know included, needs a look.
pub fn pool_level(state: &PoolState) -> Level {
    match state {
        PoolState::Online => Level::Online,
        _ => Level::Critical,
    }
}

/// The vdev errors of the pool named `pool` in `medium`, if it is there.
fn pool_errors(medium: &Medium, pool: &str) -> Option<u64> {
    Some(medium.pools.as_ref()?.iter().find(|p| p.name == pool)?.vdev_errors())
}

/// Applies the rules: offline; critical; warning; otherwise online.
pub fn evaluate(f: &Facts) -> Health {
    if !f.online {
        return Health { level: Level::Offline, reasons: vec!["not connected".into()] };
    }
    let mut critical = Vec::new();
    let mut warning = Vec::new();
    if let (Some(received), Some(interval)) = (f.fast_received_ms, f.fast_interval_ms) {
        if f.now_ms - received > 3 * interval {
            critical.push(format!("no fast sample for {} s while connected", (f.now_ms - received) / 1000));
        }
    }
    if let Some(medium) = f.medium {
        for pool in medium.pools.iter().flatten() {
            match pool_level(&pool.state) {
                Level::Online => {}
                Level::Warning => warning.push(format!("pool {} is {}", pool.name, pool.state)),
                Level::Critical | Level::Offline => critical.push(format!("pool {} is {}", pool.name, pool.state)),
            }
            match pool.cap_pct {
                Some(c) if c >= 90.0 => critical.push(format!("pool {} is {c:.0}% full", pool.name)),
                Some(c) if c >= 80.0 => warning.push(format!("pool {} is {c:.0}% full", pool.name)),
                _ => {}
            }
            let grown = f
                .previous_medium
                .and_then(|prev| pool_errors(prev, &pool.name))
                .is_some_and(|before| pool.vdev_errors() > before);
            if grown {
                critical.push(format!("pool {} has new read/write/checksum errors", pool.name));
            }
            match pool.scan.as_ref().filter(|s| s.function == ScanFunction::Scrub).and_then(|s| s.end) {
                Some(end) if f.now_ms - end * 1000 > 35 * DAY_MS => {
                    warning.push(format!(
                        "pool {} last scrubbed {} days ago",
                        pool.name,
                        (f.now_ms - end * 1000) / DAY_MS
                    ));
                }
                _ => {}
            }
        }
        for s in medium.storages.iter().flatten().filter(|s| s.active) {
            match pct(s.used, s.total) {
                Some(p) if p >= 95.0 => critical.push(format!("storage {} is {p:.0}% full", s.name)),
                Some(p) if p >= 85.0 => warning.push(format!("storage {} is {p:.0}% full", s.name)),
                _ => {}
            }
        }
    }
    if let Some(fast) = f.fast {
        if let (Some(load15), Some(cpus)) = (fast.load15, fast.cpus) {
            if load15 > f64::from(cpus) {
                warning.push(format!("load15 {load15:.2} is above {cpus} cores"));
            }
        }
    }
    if !critical.is_empty() {
        critical.extend(warning);
        Health { level: Level::Critical, reasons: critical }
    } else if !warning.is_empty() {
        Health { level: Level::Warning, reasons: warning }
    } else {
        Health { level: Level::Online, reasons: vec![] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{Pool, Scan, ScanState, Storage, Vdev};

    const NOW: i64 = 1_764_000_000_000;

    fn facts<'a>(fast: Option<&'a Fast>, medium: Option<&'a Medium>) -> Facts<'a> {
        Facts {
            online: true,
            now_ms: NOW,
            fast,
            fast_received_ms: Some(NOW),
            fast_interval_ms: Some(30_000),
            medium,
            previous_medium: None,
        }
    }

    fn pool(state: &str, cap: f64) -> Pool {
        Pool { name: "rpool".into(), state: state.into(), cap_pct: Some(cap), ..Pool::default() }
    }

    fn medium(pools: Vec<Pool>) -> Medium {
        Medium { pools: Some(pools), ..Medium::default() }
    }

    #[test]
    fn offline_wins() {
        let mut f = facts(None, None);
        f.online = false;
        assert_eq!(evaluate(&f).level, Level::Offline);
    }

    #[test]
    fn healthy_host_is_online() {
        let m = medium(vec![pool("ONLINE", 40.0)]);
        assert_eq!(evaluate(&facts(None, Some(&m))), Health { level: Level::Online, reasons: vec![] });
    }

    #[test]
    fn pool_rules() {
        let m = medium(vec![pool("DEGRADED", 10.0)]);
        let h = evaluate(&facts(None, Some(&m)));
        assert_eq!(h.level, Level::Critical);
        assert_eq!(h.reasons, vec!["pool rpool is DEGRADED"]);
        assert_eq!(evaluate(&facts(None, Some(&medium(vec![pool("ONLINE", 90.0)])))).level, Level::Critical);
        assert_eq!(evaluate(&facts(None, Some(&medium(vec![pool("ONLINE", 80.0)])))).level, Level::Warning);
        assert_eq!(evaluate(&facts(None, Some(&medium(vec![pool("ONLINE", 79.9)])))).level, Level::Online);
    }

    #[test]
    fn growing_errors_are_critical_and_old_scrubs_warn() {
        let with_errors = |n| {
            let mut p = pool("ONLINE", 10.0);
            p.vdevs = vec![Vdev { name: "sda".into(), checksum_errors: n, ..Vdev::default() }];
            medium(vec![p])
        };
        let (before, after) = (with_errors(1), with_errors(3));
        let mut f = facts(None, Some(&after));
        f.previous_medium = Some(&before);
        assert_eq!(evaluate(&f).level, Level::Critical);
        f.previous_medium = Some(&after);
        assert_eq!(evaluate(&f).level, Level::Online, "errors that did not grow are not news");

        let mut p = pool("ONLINE", 10.0);
        p.scan = Some(Scan {
            function: ScanFunction::Scrub,
            state: ScanState::Finished,
            end: Some((NOW - 36 * DAY_MS) / 1000),
            ..Scan::default()
        });
        let m = medium(vec![p]);
        let h = evaluate(&facts(None, Some(&m)));
        assert_eq!(h.level, Level::Warning);
        assert!(h.reasons[0].contains("36 days"), "{:?}", h.reasons);
    }

    #[test]
    fn storage_and_load_rules() {
        let storage = |used| Medium {
            storages: Some(vec![Storage {
                name: "local".into(),
                active: true,
                total: Some(100),
                used: Some(used),
                ..Storage::default()
            }]),
            ..Medium::default()
        };
        assert_eq!(evaluate(&facts(None, Some(&storage(95)))).level, Level::Critical);
        assert_eq!(evaluate(&facts(None, Some(&storage(85)))).level, Level::Warning);
        assert_eq!(evaluate(&facts(None, Some(&storage(84)))).level, Level::Online);
        let busy = Fast { load15: Some(9.0), cpus: Some(8), ..Fast::default() };
        assert_eq!(evaluate(&facts(Some(&busy), None)).level, Level::Warning);
    }

    #[test]
    fn silence_while_connected_is_critical() {
        let mut f = facts(None, None);
        f.fast_received_ms = Some(NOW - 91_000);
        assert_eq!(evaluate(&f).level, Level::Critical);
        f.fast_received_ms = Some(NOW - 89_000);
        assert_eq!(evaluate(&f).level, Level::Online);
    }
}
