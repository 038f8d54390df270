//! Rules about ZFS pools: their state, how full they are, vdev errors, and scrubs.

use wire::{Medium, Pool, PoolState, ScanFunction, ScanState};

use super::{scrub_age_days, Facts, Finding, Level, Rule};

pub(super) use crate::partitions::DAY_MS;

/// How bad a pool or vdev in `state` is: the one place a ZFS state becomes a level. Only
/// `ONLINE` is healthy; DEGRADED still serves data (warning); anything else, a state we
/// do not know included, is critical.
pub fn pool_level(state: &PoolState) -> Level {
    match state {
        PoolState::Online => Level::Online,
        PoolState::Degraded => Level::Warning,
        _ => Level::Critical,
    }
}

/// Every pool's findings, pool by pool.
pub(super) fn pools(f: &Facts, medium: &Medium, out: &mut Vec<Finding>) {
    for pool in medium.pools.iter().flatten() {
        state_and_capacity(f, pool, out);
        errors(f, pool, out);
        scrub(f, pool, out);
    }
}

fn state_and_capacity(f: &Facts, pool: &Pool, out: &mut Vec<Finding>) {
    let name = Some(pool.name.as_str());
    let level = pool_level(&pool.state);
    if level != Level::Online {
        out.push(Finding::new(Rule::PoolState, name, level, None, format!("pool {} is {}", pool.name, pool.state)));
    }
    if let Some(c) = pool.cap_pct {
        if let Some(level) = f.thresholds(Rule::PoolCapacity, &pool.name).and_then(|t| t.level(c)) {
            let message = format!("pool {} is {c:.0}% full", pool.name);
            out.push(Finding::new(Rule::PoolCapacity, name, level, Some(c), message));
        }
    }
}

/// Vdev errors are a warning while they stand still and critical when they grow.
fn errors(f: &Facts, pool: &Pool, out: &mut Vec<Finding>) {
    let errors = pool.vdev_errors();
    if errors == 0 {
        return;
    }
    let grown = f.previous_medium.and_then(|prev| prev.pool_errors(&pool.name)).is_some_and(|before| errors > before);
    let (level, message) = if grown {
        (Level::Critical, format!("pool {} has new read/write/checksum errors ({errors} in all)", pool.name))
    } else {
        (Level::Warning, format!("pool {} has {errors} read/write/checksum errors", pool.name))
    };
    out.push(Finding::new(Rule::PoolErrors, Some(&pool.name), level, Some(errors as f64), message));
}

/// The last scrub too long ago, or finished with errors.
fn scrub(f: &Facts, pool: &Pool, out: &mut Vec<Finding>) {
    let name = Some(pool.name.as_str());
    let scrub = pool.scan.as_ref().filter(|s| s.function == ScanFunction::Scrub);
    if let Some(end) = scrub.and_then(|s| s.end) {
        let days = scrub_age_days(end, f.now_ms);
        if let Some(level) = f.thresholds(Rule::ScrubAge, &pool.name).and_then(|t| t.level(days)) {
            let message = format!("pool {} last scrubbed {days} days ago", pool.name);
            out.push(Finding::new(Rule::ScrubAge, name, level, Some(days), message));
        }
    }
    if let Some(s) = scrub.filter(|s| s.state == ScanState::Finished && s.errors > 0) {
        let message = format!("the last scrub of pool {} found {} errors", pool.name, s.errors);
        out.push(Finding::new(Rule::ScrubErrors, name, Level::Warning, Some(s.errors as f64), message));
    }
}
