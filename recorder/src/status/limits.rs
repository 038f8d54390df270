//! The operator's limits: a rule disabled, or its numbers (trigger, critical, clear,
//! pending duration) changed, for every host, for one host, or for one subject on a host.
//! The status rules judge with them, so a card and an alert never disagree; alerting
//! adds the pending duration and the hysteresis. Pure, apart from the process-wide
//! current set ([`set_current`]) that cards read.
//!
//! Each field is resolved on its own, and the most specific scope that sets it wins:
//! subject > host > global > the built-in default. So a host can keep a global trigger
//! and change only its pending duration.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::{Rule, Thresholds};

/// Where an override applies. `subject` needs `host` (the database checks it too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Scope {
    pub rule: Rule,
    pub host: Option<String>,
    pub subject: Option<String>,
}

impl Scope {
    fn covers(&self, host: &str, rule: Rule, subject: &str) -> bool {
        self.rule == rule
            && self.host.as_ref().is_none_or(|h| h == host)
            && self.subject.as_ref().is_none_or(|s| s == subject)
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
    #[error("rule {0} has no numeric thresholds; only pool_capacity, storage_full, scrub_age, disk_wear, disk_spare, load, cpu_temperature, nvme_temperature and clock_skew take --trigger, --critical and --clear")]
    NotNumeric(&'static str),
    #[error("--clear {clear} must be {side} --trigger {trigger}: an alert clears on the good side of where it fires")]
    ClearNotPast { clear: f64, trigger: f64, side: &'static str },
    #[error("--critical {critical} must not be {side} --trigger {trigger}: critical is the worse level")]
    CriticalMilder { critical: f64, trigger: f64, side: &'static str },
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
        let Some(builtin) = Thresholds::of(self.scope.rule) else {
            return if numeric { Err(OverrideError::NotNumeric(self.scope.rule.as_str())) } else { Ok(()) };
        };
        let direction = builtin.direction;
        if let (Some(clear), Some(trigger)) = (self.clear, self.trigger) {
            if direction.margin(trigger, clear) <= 0.0 {
                return Err(OverrideError::ClearNotPast { clear, trigger, side: direction.good_side() });
            }
        }
        if let (Some(critical), Some(trigger)) = (self.critical, self.trigger) {
            if direction.severer(critical, trigger) != critical {
                return Err(OverrideError::CriticalMilder { critical, trigger, side: direction.good_side() });
            }
        }
        Ok(())
    }
}

/// What applies to one (host, rule, subject).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effective {
    pub enabled: bool,
    /// The rule's thresholds with the overrides applied; None for a rule without any.
    pub thresholds: Option<Thresholds>,
    /// None: alerting's default duration for the rule.
    pub pending_ms: Option<i64>,
}

/// Every override, most specific first within each rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    list: Vec<Override>,
}

impl Overrides {
    /// No override: every rule with its built-in numbers.
    pub const NONE: Overrides = Overrides { list: Vec::new() };

    pub fn new(mut list: Vec<Override>) -> Overrides {
        list.sort_by_key(|o| std::cmp::Reverse(o.scope.specificity()));
        Overrides { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The settings for `subject` ('' for the host itself) of `rule` on `host`: each
    /// field from the most specific scope that sets it.
    pub fn resolve(&self, host: &str, rule: Rule, subject: &str) -> Effective {
        self.resolve_from(host, rule, subject, Thresholds::of(rule))
    }

    /// As [`Overrides::resolve`], over `builtin` thresholds that depend on the subject (a
    /// drive's own spare threshold: `Latest::builtin`, `Thresholds::for_drive`).
    pub fn resolve_from(&self, host: &str, rule: Rule, subject: &str, builtin: Option<Thresholds>) -> Effective {
        if self.list.is_empty() {
            return Effective { enabled: true, thresholds: builtin, pending_ms: None };
        }
        // No allocation: every card of the fleet resolves each of its subjects.
        let covering = || self.list.iter().filter(|o| o.scope.covers(host, rule, subject));
        let first = |f: fn(&Override) -> Option<f64>| covering().find_map(f);
        let enabled = covering().find_map(|o| o.enabled).unwrap_or(true);
        let pending_ms = covering().find_map(|o| o.pending_ms);
        let (trigger, critical, clear) = (first(|o| o.trigger), first(|o| o.critical), first(|o| o.clear));
        let thresholds = builtin.map(|default| {
            let direction = default.direction;
            let warning = trigger.unwrap_or(default.warning);
            // A critical milder than the trigger (set at another scope) moves to the trigger.
            let critical = critical.or(default.critical).map(|c| direction.severer(c, warning));
            // A clear not on the good side of the trigger (set at another scope) keeps the default margin.
            let clear_margin =
                clear.map(|c| direction.margin(warning, c)).filter(|m| *m > 0.0).unwrap_or(default.clear_margin);
            Thresholds { warning, critical, clear_margin, direction }
        });
        Effective { enabled, thresholds, pending_ms }
    }
}

impl Overrides {
    /// Whether `value` of `subject` makes numeric `rule` a finding on `host`: the rule
    /// enabled and the value at or above its trigger. Pages mark a row with it where the
    /// card has a reason.
    pub fn flags(&self, host: &str, rule: Rule, subject: &str, value: f64) -> bool {
        self.flags_from(host, rule, subject, value, Thresholds::of(rule))
    }

    /// As [`Overrides::flags`], over `builtin` thresholds that depend on the subject
    /// (disk_spare: [`Thresholds::for_drive`]).
    pub fn flags_from(&self, host: &str, rule: Rule, subject: &str, value: f64, builtin: Option<Thresholds>) -> bool {
        let effective = self.resolve_from(host, rule, subject, builtin);
        effective.enabled && effective.thresholds.is_some_and(|t| t.level(value).is_some())
    }
}

/// The overrides the server runs with, shared by every reader of a host's status (cards,
/// pages, the API, Home Assistant). Alerting replaces it each round with what it read from
/// the database, so a change the CLI made shows on the cards within one round. One per
/// process, as a process runs one server: tests that start several servers in one process
/// cannot give them different overrides (the engine takes its own, `findings_under`).
static CURRENT: RwLock<Option<Arc<Overrides>>> = RwLock::new(None);

/// Replaces the process-wide overrides (alerting, each round; `host list` at its start).
pub fn set_current(overrides: Overrides) {
    let overrides = (!overrides.is_empty()).then(|| Arc::new(overrides));
    // A poisoned lock only means a writer panicked between two plain stores: the value is whole.
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = overrides;
}

/// The process-wide overrides as last set; none before the first [`set_current`].
pub fn current() -> Arc<Overrides> {
    let held = CURRENT.read().unwrap_or_else(|e| e.into_inner()).clone();
    held.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(rule: Rule, host: Option<&str>, subject: Option<&str>) -> Scope {
        Scope { rule, host: host.map(Into::into), subject: subject.map(Into::into) }
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

        let tank = o.resolve("pve1", Rule::PoolCapacity, "tank");
        let t = tank.thresholds.unwrap();
        assert_eq!((t.warning, t.critical), (95.0, Some(98.0)), "the subject's numbers");
        assert_eq!(t.clear_margin, 35.0, "the host's clear (60) under the subject's trigger");
        assert_eq!(tank.pending_ms, Some(60_000), "pending from the global override");
        assert!(tank.enabled);

        let high =
            Override { clear: Some(99.0), ..Override::new(scope(Rule::PoolCapacity, Some("pve1"), Some("tank"))) };
        let o2 = Overrides::new(vec![
            high,
            Override { trigger: Some(95.0), ..Override::new(scope(Rule::PoolCapacity, None, None)) },
        ]);
        let t2 = o2.resolve("pve1", Rule::PoolCapacity, "tank").thresholds.unwrap();
        assert_eq!(t2.clear_margin, 5.0, "a clear not below the trigger keeps the default margin");
        let rpool = o.resolve("pve1", Rule::PoolCapacity, "rpool").thresholds.unwrap();
        assert_eq!((rpool.warning, rpool.critical, rpool.clear_margin), (75.0, Some(90.0), 15.0), "the host's");
        let other = o.resolve("pve2", Rule::PoolCapacity, "tank").thresholds.unwrap();
        assert_eq!((other.warning, other.critical), (70.0, Some(90.0)), "the global one");
        let untouched = o.resolve("pve2", Rule::StorageFull, "local");
        assert_eq!(untouched.thresholds, Thresholds::of(Rule::StorageFull));
        assert!(untouched.pending_ms.is_none());
    }

    #[test]
    fn a_rule_without_a_critical_level_gets_one_only_when_set() {
        let load = |o: &Overrides| o.resolve("pve1", Rule::Load, "").thresholds.unwrap();
        assert_eq!(load(&Overrides::default()).critical, None, "built in: warning only");
        let trigger = Override { trigger: Some(0.8), ..Override::new(scope(Rule::Load, None, None)) };
        assert_eq!(
            (load(&Overrides::new(vec![trigger.clone()])).warning, load(&Overrides::new(vec![trigger])).critical),
            (0.8, None)
        );
        let critical = Override { critical: Some(2.0), ..Override::new(scope(Rule::Load, Some("pve1"), None)) };
        assert_eq!(load(&Overrides::new(vec![critical])).critical, Some(2.0));
        for rule in [Rule::ScrubAge, Rule::DiskWear] {
            assert_eq!(Overrides::default().resolve("pve1", rule, "x").thresholds.map(|t| t.critical), Some(None));
        }
    }

    #[test]
    fn pages_flag_what_the_card_lists() {
        let o = Overrides::new(vec![
            Override { trigger: Some(70.0), ..Override::new(scope(Rule::StorageFull, Some("pve1"), None)) },
            Override { enabled: Some(false), ..Override::new(scope(Rule::DiskWear, None, None)) },
        ]);
        assert!(o.flags("pve1", Rule::StorageFull, "local", 72.0));
        assert!(!o.flags("pve2", Rule::StorageFull, "local", 72.0), "the built-in 85 elsewhere");
        assert!(!o.flags("pve1", Rule::DiskWear, "nvme0", 99.0), "disabled");
        assert!(!o.flags("pve1", Rule::PoolState, "tank", 99.0), "not numeric");
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
        assert!(!o.resolve("pve2", Rule::GuestStopped, "vm/101").enabled, "global disable");
        assert!(o.resolve("pve1", Rule::GuestStopped, "vm/102").enabled, "the host enables it again");
        assert!(!o.resolve("pve1", Rule::GuestStopped, "vm/101").enabled, "but not for this guest");
        assert!(o.resolve("pve1", Rule::PoolState, "tank").enabled, "other rules untouched");
        assert!(Overrides::default().resolve("pve1", Rule::PoolState, "tank").enabled);
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
            Err(OverrideError::ClearNotPast { .. })
        ));
        assert!(matches!(
            with(|o| (o.trigger, o.critical) = (Some(80.0), Some(70.0))),
            Err(OverrideError::CriticalMilder { .. })
        ));
        let mut o = Override::new(scope(Rule::PoolState, None, None));
        o.trigger = Some(1.0);
        assert_eq!(o.check(), Err(OverrideError::NotNumeric("pool_state")));
        o.trigger = None;
        o.pending_ms = Some(1000);
        assert_eq!(o.check(), Ok(()), "every rule takes a pending duration");
        let o = Override::new(scope(Rule::PoolState, None, Some("tank")));
        assert_eq!(o.check(), Err(OverrideError::SubjectWithoutHost));
        for rule in [Rule::ScrubAge, Rule::DiskWear, Rule::Load] {
            let o = Override { critical: Some(99.0), ..Override::new(scope(rule, None, None)) };
            assert_eq!(o.check(), Ok(()), "{rule} is numeric");
        }
    }
}
