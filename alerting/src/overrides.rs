//! Per-rule settings an operator changed: a rule disabled, or its numbers (trigger,
//! critical, clear, pending duration) changed, for everyone, for one host, or for one
//! subject on a host. Pure: the engine asks [`Overrides::resolve`] for each alert identity.
//!
//! Each field is resolved on its own, and the most specific scope that sets it wins:
//! subject > host > global > the built-in default. So a host can keep a global trigger
//! and change only its pending duration.

use recorder::status::{Rule, Thresholds};
use serde::Serialize;

use crate::alert::Identity;

/// Where an override applies. `subject` needs `host` (the database checks it too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Scope {
    pub rule: Rule,
    pub host: Option<String>,
    pub subject: Option<String>,
}

impl Scope {
    fn covers(&self, id: &Identity) -> bool {
        self.rule == id.rule
            && self.host.as_ref().is_none_or(|h| *h == id.host)
            && self.subject.as_ref().is_none_or(|s| *s == id.subject)
    }

    /// 0 global, 1 host, 2 subject.
    fn specificity(&self) -> u8 {
        u8::from(self.host.is_some()) + u8::from(self.subject.is_some())
    }

    /// `pool_capacity`, `pool_capacity on pve1`, `pool_capacity on pve1/tank`.
    pub fn describe(&self) -> String {
        match (&self.host, &self.subject) {
            (None, _) => self.rule.as_str().to_owned(),
            (Some(h), None) => format!("{} on {h}", self.rule.as_str()),
            (Some(h), Some(s)) => format!("{} on {h}/{s}", self.rule.as_str()),
        }
    }
}

/// What one scope sets; None: not set here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Override {
    pub scope: Scope,
    /// Some(false): disabled; Some(true): enabled again under a broader disable.
    pub enabled: Option<bool>,
    /// Where a numeric rule starts to warn.
    pub trigger: Option<f64>,
    /// Where it becomes critical.
    pub critical: Option<f64>,
    /// Where an active alert clears: below the trigger (the hysteresis).
    pub clear: Option<f64>,
    pub pending_ms: Option<i64>,
}

impl Override {
    pub fn new(scope: Scope) -> Override {
        Override { scope, enabled: None, trigger: None, critical: None, clear: None, pending_ms: None }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OverrideError {
    #[error("rule {0} has no numeric thresholds; only pool_capacity, storage_full, cpu_temperature and nvme_temperature take --trigger, --critical and --clear")]
    NotNumeric(&'static str),
    #[error("--clear {clear} must be below --trigger {trigger}: an alert clears under where it fires")]
    ClearNotBelow { clear: f64, trigger: f64 },
    #[error("--critical {critical} must not be below --trigger {trigger}")]
    CriticalBelow { critical: f64, trigger: f64 },
    #[error("--subject needs --host: a subject is a pool, storage, guest or disk of one host")]
    SubjectWithoutHost,
    #[error("nothing to set: give --trigger, --critical, --clear or --pending")]
    Nothing,
}

impl Override {
    /// Checks what this scope sets on its own: a rule without thresholds takes no
    /// numbers, and the numbers given together are in order.
    pub fn check(&self) -> Result<(), OverrideError> {
        if self.scope.subject.is_some() && self.scope.host.is_none() {
            return Err(OverrideError::SubjectWithoutHost);
        }
        let numeric = self.trigger.is_some() || self.critical.is_some() || self.clear.is_some();
        if numeric && Thresholds::of(self.scope.rule).is_none() {
            return Err(OverrideError::NotNumeric(self.scope.rule.as_str()));
        }
        if let (Some(clear), Some(trigger)) = (self.clear, self.trigger) {
            if clear >= trigger {
                return Err(OverrideError::ClearNotBelow { clear, trigger });
            }
        }
        if let (Some(critical), Some(trigger)) = (self.critical, self.trigger) {
            if critical < trigger {
                return Err(OverrideError::CriticalBelow { critical, trigger });
            }
        }
        Ok(())
    }
}

/// A pending duration as the CLI and the admin page take it: `0s` (fire at once), `90s`,
/// `5m`, `1h30m`; in milliseconds.
pub fn parse_pending(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.trim_end_matches(['s', 'm', 'h', 'd']).chars().all(|c| c == '0') {
        return Some(0);
    }
    crate::silence::parse_duration(text)
}

/// What applies to one alert identity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effective {
    pub enabled: bool,
    /// The rule's thresholds with the overrides applied; None for a rule without any.
    pub thresholds: Option<Thresholds>,
    /// None: the settings' duration for the rule.
    pub pending_ms: Option<i64>,
    /// Whether `thresholds` differ from the rule's built-in ones (the engine then measures
    /// the value itself instead of trusting the status rules' findings).
    pub thresholds_changed: bool,
}

/// Every override, most specific first within each rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    list: Vec<Override>,
}

impl Overrides {
    pub fn new(mut list: Vec<Override>) -> Overrides {
        list.sort_by_key(|o| std::cmp::Reverse(o.scope.specificity()));
        Overrides { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether some override of `rule` covering `host` changes its thresholds, whatever
    /// the subject: the engine then looks at every subject of the rule on that host.
    pub fn changes_thresholds(&self, rule: Rule, host: &str) -> bool {
        self.list.iter().any(|o| {
            o.scope.rule == rule
                && o.scope.host.as_ref().is_none_or(|h| h == host)
                && (o.trigger.is_some() || o.critical.is_some() || o.clear.is_some())
        })
    }

    /// The settings for `id`: each field from the most specific scope that sets it.
    pub fn resolve(&self, id: &Identity) -> Effective {
        let covering: Vec<&Override> = self.list.iter().filter(|o| o.scope.covers(id)).collect();
        let first = |f: fn(&Override) -> Option<f64>| covering.iter().find_map(|o| f(o));
        let enabled = covering.iter().find_map(|o| o.enabled).unwrap_or(true);
        let pending_ms = covering.iter().find_map(|o| o.pending_ms);
        let (trigger, critical, clear) = (first(|o| o.trigger), first(|o| o.critical), first(|o| o.clear));
        let thresholds = Thresholds::of(id.rule).map(|default| {
            let warning = trigger.unwrap_or(default.warning);
            let critical = critical.unwrap_or(default.critical).max(warning);
            // A clear at or above the trigger (set at another scope) keeps the default margin.
            let clear_margin = clear.map(|c| warning - c).filter(|m| *m > 0.0).unwrap_or(default.clear_margin);
            Thresholds { warning, critical, clear_margin }
        });
        let thresholds_changed = thresholds != Thresholds::of(id.rule);
        Effective { enabled, thresholds, pending_ms, thresholds_changed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(rule: Rule, host: Option<&str>, subject: Option<&str>) -> Scope {
        Scope { rule, host: host.map(Into::into), subject: subject.map(Into::into) }
    }

    fn id(host: &str, rule: Rule, subject: &str) -> Identity {
        Identity { host: host.into(), rule, subject: subject.into() }
    }

    #[test]
    fn the_most_specific_scope_wins_field_by_field() {
        let global = Override {
            trigger: Some(70.0),
            pending_ms: Some(60_000),
            ..Override::new(scope(Rule::PoolCapacity, None, None))
        };
        let host = Override {
            trigger: Some(75.0),
            clear: Some(60.0),
            ..Override::new(scope(Rule::PoolCapacity, Some("pve1"), None))
        };
        let subject = Override {
            trigger: Some(95.0),
            critical: Some(98.0),
            ..Override::new(scope(Rule::PoolCapacity, Some("pve1"), Some("tank")))
        };
        // Given in any order.
        let o = Overrides::new(vec![subject, global, host]);

        let tank = o.resolve(&id("pve1", Rule::PoolCapacity, "tank"));
        let t = tank.thresholds.unwrap();
        assert_eq!((t.warning, t.critical), (95.0, 98.0), "the subject's numbers");
        assert_eq!(t.clear_margin, 35.0, "the host's clear (60) under the subject's trigger");
        assert_eq!(tank.pending_ms, Some(60_000), "pending from the global override");
        assert!(tank.enabled && tank.thresholds_changed);

        let high =
            Override { clear: Some(99.0), ..Override::new(scope(Rule::PoolCapacity, Some("pve1"), Some("tank"))) };
        let o2 = Overrides::new(vec![
            high,
            Override { trigger: Some(95.0), ..Override::new(scope(Rule::PoolCapacity, None, None)) },
        ]);
        let t2 = o2.resolve(&id("pve1", Rule::PoolCapacity, "tank")).thresholds.unwrap();
        assert_eq!(t2.clear_margin, 5.0, "a clear not below the trigger keeps the default margin");
        let rpool = o.resolve(&id("pve1", Rule::PoolCapacity, "rpool")).thresholds.unwrap();
        assert_eq!((rpool.warning, rpool.critical, rpool.clear_margin), (75.0, 90.0, 15.0), "the host's");
        let other = o.resolve(&id("pve2", Rule::PoolCapacity, "tank")).thresholds.unwrap();
        assert_eq!((other.warning, other.critical), (70.0, 90.0), "the global one");
        let untouched = o.resolve(&id("pve2", Rule::StorageFull, "local"));
        assert_eq!(untouched.thresholds, Thresholds::of(Rule::StorageFull));
        assert!(!untouched.thresholds_changed && untouched.pending_ms.is_none());
        assert!(o.changes_thresholds(Rule::PoolCapacity, "pve9") && !o.changes_thresholds(Rule::StorageFull, "pve1"));
    }

    #[test]
    fn disables_and_enables_follow_the_same_precedence() {
        let off = |s| Override { enabled: Some(false), ..Override::new(s) };
        let on = |s| Override { enabled: Some(true), ..Override::new(s) };
        let o = Overrides::new(vec![
            off(scope(Rule::GuestStopped, None, None)),
            on(scope(Rule::GuestStopped, Some("pve1"), None)),
            off(scope(Rule::GuestStopped, Some("pve1"), Some("vm/101"))),
        ]);
        assert!(!o.resolve(&id("pve2", Rule::GuestStopped, "vm/101")).enabled, "global disable");
        assert!(o.resolve(&id("pve1", Rule::GuestStopped, "vm/102")).enabled, "the host enables it again");
        assert!(!o.resolve(&id("pve1", Rule::GuestStopped, "vm/101")).enabled, "but not for this guest");
        assert!(o.resolve(&id("pve1", Rule::PoolState, "tank")).enabled, "other rules untouched");
        assert!(Overrides::default().resolve(&id("pve1", Rule::PoolState, "tank")).enabled);
    }

    #[test]
    fn pending_durations_take_zero() {
        assert_eq!(parse_pending("0s"), Some(0));
        assert_eq!(parse_pending("0"), Some(0));
        assert_eq!(parse_pending("5m"), Some(300_000));
        assert_eq!(parse_pending(""), None);
        assert_eq!(parse_pending("soon"), None);
    }

    #[test]
    fn what_one_scope_sets_is_checked() {
        let with = |f: fn(&mut Override)| {
            let mut o = Override::new(scope(Rule::PoolCapacity, Some("pve1"), None));
            f(&mut o);
            o.check()
        };
        assert_eq!(with(|o| o.trigger = Some(80.0)), Ok(()));
        assert!(matches!(
            with(|o| (o.trigger, o.clear) = (Some(80.0), Some(80.0))),
            Err(OverrideError::ClearNotBelow { .. })
        ));
        assert!(matches!(
            with(|o| (o.trigger, o.critical) = (Some(80.0), Some(70.0))),
            Err(OverrideError::CriticalBelow { .. })
        ));
        let mut o = Override::new(scope(Rule::PoolState, None, None));
        o.trigger = Some(1.0);
        assert_eq!(o.check(), Err(OverrideError::NotNumeric("pool_state")));
        o.trigger = None;
        o.pending_ms = Some(1000);
        assert_eq!(o.check(), Ok(()), "every rule takes a pending duration");
        let o = Override::new(scope(Rule::PoolState, None, Some("tank")));
        assert_eq!(o.check(), Err(OverrideError::SubjectWithoutHost));
    }
}
