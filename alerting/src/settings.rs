//! Alerting's timings and limits; the defaults need no configuration.

use std::time::Duration;

use recorder::status::{Level, Rule};

/// Every duration alerting waits for. Times are compared in milliseconds of
/// `wire::now_ms()`, which the engine receives as an argument (tests pass their own).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a host must be offline before `host_offline` fires: an agent or server
    /// restart never alerts.
    pub offline_grace: Duration,
    /// How long `load` must hold before it fires: a busy hour is not news.
    pub load_for: Duration,
    /// How long `host_silent` must hold before it fires.
    pub silent_for: Duration,
    /// How long every other rule must hold (pending); 0 fires at once.
    pub pending_for: Duration,
    /// A host's first notification waits this long to gather what else goes wrong.
    pub group_wait: Duration,
    /// Later notifications of a host come at most this often.
    pub group_interval: Duration,
    /// A firing alert nobody acknowledged is sent again after this.
    pub repeat: Duration,
    pub repeat_critical: Duration,
    /// This many firing/resolved changes within `flap_window` make an alert flapping:
    /// one notice, then quiet until it has not changed for `flap_quiet`.
    pub flap_changes: usize,
    pub flap_window: Duration,
    pub flap_quiet: Duration,
    /// Messages per channel, and per channel and host.
    pub channel_rate: Rate,
    pub host_rate: Rate,
}

/// A token bucket: `burst` at once, refilled at `per_hour`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: f64,
    pub per_hour: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        let min = |m: u64| Duration::from_secs(60 * m);
        Settings {
            offline_grace: min(2),
            load_for: min(15),
            silent_for: min(1),
            pending_for: Duration::ZERO,
            group_wait: Duration::from_secs(30),
            group_interval: min(5),
            repeat: min(240),
            repeat_critical: min(60),
            flap_changes: 6,
            flap_window: min(60),
            flap_quiet: min(30),
            channel_rate: Rate { burst: 30.0, per_hour: 120.0 },
            host_rate: Rate { burst: 10.0, per_hour: 12.0 },
        }
    }
}

pub(crate) fn ms(d: Duration) -> i64 {
    d.as_millis().try_into().unwrap_or(i64::MAX)
}

impl Settings {
    /// How long `rule`'s condition must hold before its alert fires.
    pub fn for_duration(&self, rule: Rule) -> i64 {
        ms(match rule {
            Rule::HostOffline => self.offline_grace,
            Rule::Load => self.load_for,
            Rule::HostSilent => self.silent_for,
            _ => self.pending_for,
        })
    }

    pub fn repeat_for(&self, severity: Level) -> i64 {
        ms(if severity >= Level::Critical { self.repeat_critical } else { self.repeat })
    }
}
