//! Rules about the host as a whole: its token shared by clones, a connected agent gone
//! silent, load above the core count, and a clock off from the server's.

use std::net::IpAddr;

use wire::Fast;

use super::{load_per_core, skew_s, Facts, Finding, Level, Rule};

/// Two or more agents seen using one host's token (a cloned VM, a copied agent.toml):
/// the gateway's clone detector tripped (`broker::clones`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedToken {
    /// The agents' addresses, sorted.
    pub addresses: Vec<IpAddr>,
    pub detected_ms: i64,
}

/// How long a [`Rule::SharedToken`] finding lasts after the detector last tripped. While
/// the clones run, it trips again each time the gateway's cool-down (10 min) ends, so the
/// finding holds; once one agent is gone, it clears within this.
pub const SHARED_TOKEN_HOLD_MS: i64 = 30 * 60 * 1000;

impl SharedToken {
    /// "two agents use this host's token: 10.0.0.5 and 10.0.0.9".
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
        let count = match names.len() {
            2 => "two".to_owned(),
            n => n.to_string(),
        };
        let listed = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => names.join(""),
        };
        format!("{count} agents use this host's token: {listed}")
    }
}

/// A [`Rule::SharedToken`] finding while the clone detector tripped less than
/// [`SHARED_TOKEN_HOLD_MS`] ago.
pub(super) fn shared_token(f: &Facts, out: &mut Vec<Finding>) {
    if let Some(shared) = f.shared_token.filter(|s| f.now_ms - s.detected_ms < SHARED_TOKEN_HOLD_MS) {
        let value = Some(shared.addresses.len() as f64);
        out.push(Finding::new(Rule::SharedToken, None, Level::Critical, value, shared.describe()));
    }
}

/// A connected host whose fast samples stopped for more than three intervals.
pub(super) fn silence(f: &Facts, out: &mut Vec<Finding>) {
    if let (Some(received), Some(interval)) = (f.fast_received_ms, f.fast_interval_ms) {
        if f.now_ms - received > 3 * interval {
            let secs = (f.now_ms - received) / 1000;
            let message = format!("no fast sample for {secs} s while connected");
            out.push(Finding::new(Rule::HostSilent, None, Level::Critical, Some(secs as f64), message));
        }
    }
}

/// The 15-minute load per core at or above its trigger (built in: the number of cores).
/// The value is per core, so one trigger fits hosts of every size.
pub(super) fn load(f: &Facts, fast: &Fast, out: &mut Vec<Finding>) {
    let (Some(load15), Some(cpus), Some(per_core)) = (fast.load15, fast.cpus, load_per_core(fast)) else { return };
    let Some(thresholds) = f.thresholds(Rule::Load, "") else { return };
    if let Some(level) = thresholds.level(per_core) {
        let crossed = if level == Level::Critical { thresholds.critical } else { Some(thresholds.warning) };
        let message = match crossed {
            Some(1.0) => format!("load15 {load15:.2} is above {cpus} cores"),
            Some(limit) => format!("load15 {load15:.2} is above {limit} × {cpus} cores"),
            None => format!("load15 {load15:.2} on {cpus} cores"),
        };
        out.push(Finding::new(Rule::Load, None, level, Some(per_core), message));
    }
}

/// The agent's clock off the server's, either way, by its trigger or more (built in:
/// [`crate::clock::WARN_SKEW_MS`]). The value is the skew's size in seconds, what the
/// thresholds and alerting's hysteresis compare; the message says which way.
pub(super) fn clock_skew(f: &Facts, out: &mut Vec<Finding>) {
    let Some(skew) = f.clock_skew_ms else { return };
    let Some(thresholds) = f.thresholds(Rule::ClockSkew, "") else { return };
    if let Some(level) = thresholds.level(skew_s(skew)) {
        let message = format!("clock is {}", crate::clock::describe(skew));
        out.push(Finding::new(Rule::ClockSkew, None, level, Some(skew_s(skew)), message));
    }
}
