//! The engine with rule overrides, on an injected clock: a host's lowered trigger and
//! pending duration, a subject's disable resolving its alert quietly.

use recorder::status::{Finding, Level, Rule};
use wire::{Medium, Pool};

use crate::alert::{Identity, State};
use crate::engine::Engine;
use crate::notify::ItemKind;
use crate::overrides::{Override, Overrides, Scope};
use crate::settings::Settings;

const S: i64 = 1_000;
const MIN: i64 = 60 * S;
const HOUR: i64 = 60 * MIN;

fn scope(rule: Rule, host: Option<&str>, subject: Option<&str>) -> Scope {
    Scope { rule, host: host.map(Into::into), subject: subject.map(Into::into) }
}

fn id(host: &str, rule: Rule, subject: &str) -> Identity {
    Identity { host: host.into(), rule, subject: subject.into() }
}

fn pools(caps: &[(&str, f64)]) -> Medium {
    let pools = caps
        .iter()
        .map(|(name, cap)| Pool {
            name: (*name).into(),
            state: "ONLINE".into(),
            cap_pct: Some(*cap),
            ..Pool::default()
        })
        .collect();
    Medium { pools: Some(pools), ..Medium::default() }
}

fn sent(e: &mut Engine, now: i64) -> Vec<(String, Rule, ItemKind)> {
    e.flush(now)
        .iter()
        .flat_map(|o| o.items.iter().map(|i| (i.identity.host.clone(), i.identity.rule, i.kind)))
        .collect()
}

#[test]
fn a_host_override_lowers_the_trigger_and_sets_the_pending_duration_for_that_host_only() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let host = Override {
        trigger: Some(70.0),
        clear: Some(65.0),
        pending_ms: Some(5 * MIN),
        ..Override::new(scope(Rule::PoolCapacity, Some("pve1"), None))
    };
    e.set_overrides(Overrides::new(vec![host]));
    // 75% is below the built-in 80%: no finding comes from the status rules.
    let medium = pools(&[("tank", 75.0)]);
    for host in ["pve1", "pve2"] {
        e.apply(host, &[], Some(&medium), 0);
    }
    assert_eq!(sent(&mut e, 0), []);
    let tank = id("pve1", Rule::PoolCapacity, "tank");
    assert_eq!(e.get(&tank).map(|a| a.state), Some(State::Pending), "pve1's trigger is 70");
    assert_eq!(e.get(&tank).unwrap().message, "pool tank is 75% full");
    assert!(e.get(&id("pve2", Rule::PoolCapacity, "tank")).is_none(), "pve2 keeps the built-in 80");
    e.apply("pve1", &[], Some(&medium), 5 * MIN - 1);
    assert_eq!(e.get(&tank).unwrap().state, State::Pending, "pending for the host's 5 minutes");
    e.apply("pve1", &[], Some(&medium), 5 * MIN);
    assert_eq!(e.get(&tank).unwrap().state, State::Firing);
    assert_eq!(sent(&mut e, 5 * MIN), [], "group wait");
    assert_eq!(sent(&mut e, 5 * MIN + 30 * S), [("pve1".into(), Rule::PoolCapacity, ItemKind::Firing)]);
    // The host's clear (65) is the hysteresis: 66% still holds, 64% clears.
    e.apply("pve1", &[], Some(&pools(&[("tank", 66.0)])), 10 * MIN);
    assert_eq!(e.get(&tank).unwrap().state, State::Firing);
    e.apply("pve1", &[], Some(&pools(&[("tank", 64.0)])), 11 * MIN);
    assert_eq!(e.get(&tank).unwrap().state, State::Resolved);
}

#[test]
fn a_subject_override_raises_the_trigger_over_the_status_rules_finding() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let raised =
        Override { trigger: Some(95.0), ..Override::new(scope(Rule::PoolCapacity, Some("pve1"), Some("backup"))) };
    e.set_overrides(Overrides::new(vec![raised]));
    let medium = pools(&[("backup", 88.0), ("rpool", 88.0)]);
    let finding = |subject: &str| Finding {
        rule: Rule::PoolCapacity,
        subject: Some(subject.into()),
        level: Level::Warning,
        value: Some(88.0),
        message: format!("pool {subject} is 88% full"),
    };
    e.apply("pve1", &[finding("backup"), finding("rpool")], Some(&medium), 0);
    assert!(e.get(&id("pve1", Rule::PoolCapacity, "backup")).is_none(), "the subject's 95 wins over 80");
    assert_eq!(e.get(&id("pve1", Rule::PoolCapacity, "rpool")).unwrap().state, State::Firing, "its sibling fires");
}

#[test]
fn a_subject_disable_resolves_its_alert_once_quietly_and_leaves_the_others() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let stopped = |subject: &str| Finding {
        rule: Rule::GuestStopped,
        subject: Some(subject.into()),
        level: Level::Warning,
        value: None,
        message: format!("guest {subject} stopped"),
    };
    let both = [stopped("vm/101"), stopped("vm/102")];
    e.apply("pve1", &both, None, 0);
    assert_eq!(sent(&mut e, 0), []);
    assert_eq!(sent(&mut e, 30 * S).len(), 2, "both notified");
    e.take_dirty();

    let off =
        Override { enabled: Some(false), ..Override::new(scope(Rule::GuestStopped, Some("pve1"), Some("vm/101"))) };
    e.set_overrides(Overrides::new(vec![off]));
    e.apply("pve1", &both, None, MIN);
    let vm101 = e.get(&id("pve1", Rule::GuestStopped, "vm/101")).unwrap();
    assert_eq!((vm101.state, vm101.resolved_notified), (State::Resolved, true), "resolved, nothing to send");
    assert_eq!(e.get(&id("pve1", Rule::GuestStopped, "vm/102")).unwrap().state, State::Firing);
    let dirty = e.take_dirty();
    assert_eq!(dirty.len(), 1, "only the disabled one changed: {dirty:?}");
    assert_eq!(dirty[0].identity.subject, "vm/101");
    for t in 1..10 {
        e.apply("pve1", &both, None, MIN + t * HOUR / 2);
        let items = sent(&mut e, MIN + t * HOUR / 2);
        assert!(
            items.iter().all(|(_, rule, kind)| *rule == Rule::GuestStopped && *kind == ItemKind::Firing),
            "{items:?}"
        );
        assert_eq!(e.get(&id("pve1", Rule::GuestStopped, "vm/101")).unwrap().state, State::Resolved, "stays quiet");
    }

    // Enabled again: the stop is news again.
    e.set_overrides(Overrides::default());
    e.apply("pve1", &both, None, 6 * HOUR);
    assert_eq!(e.get(&id("pve1", Rule::GuestStopped, "vm/101")).unwrap().state, State::Firing);
}
