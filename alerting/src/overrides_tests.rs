//! The engine with rule overrides, on an injected clock: a host's lowered trigger and
//! pending duration, a subject's disable resolving its alert quietly.

use recorder::state::HostState;
use recorder::status::{Finding, Latest, Level, Rule};
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

/// A payload of `host` collected at `ts_ms`, for the engine tests' host states.
pub(crate) fn payload<T>(host: &str, ts_ms: i64, data: T) -> wire::Payload<T> {
    wire::Payload {
        schema: wire::SCHEMA_VERSION,
        host_id: host.into(),
        ts_ms,
        seq: 0,
        boot_id: String::new(),
        agent_version: String::new(),
        dropped: 0,
        errors: Default::default(),
        data,
    }
}

/// A connected host with `latest` as its latest samples.
fn state(host: &str, latest: Latest) -> HostState {
    HostState {
        host_id: host.into(),
        online: true,
        fast: latest.fast.map(|f| payload(host, 0, f.clone()).into()),
        medium: latest.medium.map(|m| payload(host, 0, m.clone()).into()),
        slow: latest.slow.map(|s| payload(host, 0, s.clone()).into()),
        ..HostState::default()
    }
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
    // 75% is below the built-in 80%: the status rules find it only under pve1's override.
    let at = |host: &str, cap: f64| state(host, Latest { medium: Some(&pools(&[("tank", cap)])), ..Latest::default() });
    for host in ["pve1", "pve2"] {
        e.evaluate(&at(host, 75.0), 0);
    }
    assert_eq!(sent(&mut e, 0), []);
    let tank = id("pve1", Rule::PoolCapacity, "tank");
    assert_eq!(e.get(&tank).map(|a| a.state), Some(State::Pending), "pve1's trigger is 70");
    assert_eq!(e.get(&tank).unwrap().message, "pool tank is 75% full");
    assert!(e.get(&id("pve2", Rule::PoolCapacity, "tank")).is_none(), "pve2 keeps the built-in 80");
    e.evaluate(&at("pve1", 75.0), 5 * MIN - 1);
    assert_eq!(e.get(&tank).unwrap().state, State::Pending, "pending for the host's 5 minutes");
    e.evaluate(&at("pve1", 75.0), 5 * MIN);
    assert_eq!(e.get(&tank).unwrap().state, State::Firing);
    assert_eq!(sent(&mut e, 5 * MIN), [], "group wait");
    assert_eq!(sent(&mut e, 5 * MIN + 30 * S), [("pve1".into(), Rule::PoolCapacity, ItemKind::Firing)]);
    // The host's clear (65) is the hysteresis: 66% still holds, 64% clears.
    e.evaluate(&at("pve1", 66.0), 10 * MIN);
    assert_eq!(e.get(&tank).unwrap().state, State::Firing);
    e.evaluate(&at("pve1", 64.0), 11 * MIN);
    assert_eq!(e.get(&tank).unwrap().state, State::Resolved);
}

#[test]
fn a_subject_override_raises_the_trigger_over_the_status_rules_finding() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let raised =
        Override { trigger: Some(95.0), ..Override::new(scope(Rule::PoolCapacity, Some("pve1"), Some("backup"))) };
    e.set_overrides(Overrides::new(vec![raised]));
    let medium = pools(&[("backup", 88.0), ("rpool", 88.0)]);
    e.evaluate(&state("pve1", Latest { medium: Some(&medium), ..Latest::default() }), 0);
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

/// Drives numeric `rule` on pve1 under `limits`, with `at(value, now)` the host's state
/// when the subject measures `value`: quiet under the trigger, firing at it, held above
/// the clear although the card no longer lists it, resolved under the clear, critical at
/// the critical number. `values`: [under, trigger, held, cleared, critical].
fn walk(rule: Rule, subject: &str, limits: Override, at: impl Fn(f64, i64) -> HostState, values: [f64; 5]) {
    let limits = Overrides::new(vec![limits]);
    let mut e = Engine::new(Settings::default(), vec![]);
    e.set_overrides(limits.clone());
    let alert = id("pve1", rule, subject);
    let [under, trigger, held, cleared, critical] = values;
    let mut step = |value: f64, now: i64| {
        let state = at(value, now);
        e.evaluate(&state, now);
        let card = state.decoded().findings_under(now, &limits).iter().map(|f| f.level).max();
        (e.get(&alert).map(|a| (a.state, a.severity)), card)
    };
    assert_eq!(step(under, 0), (None, None), "{rule}: under the trigger");
    let firing = Some((State::Firing, Level::Warning));
    assert_eq!(step(trigger, MIN), (firing, Some(Level::Warning)), "{rule}: at the trigger");
    assert_eq!(step(held, 2 * MIN), (firing, None), "{rule}: held above the clear; the card shows the plain trigger");
    assert_eq!(step(cleared, 3 * MIN).0, Some((State::Resolved, Level::Warning)), "{rule}: under the clear");
    let critical_now = Some((State::Firing, Level::Critical));
    assert_eq!(step(critical, 4 * MIN), (critical_now, Some(Level::Critical)), "{rule}: the critical set");
}

fn numbers(rule: Rule, trigger: f64, clear: f64, critical: f64) -> Override {
    Override {
        trigger: Some(trigger),
        clear: Some(clear),
        critical: Some(critical),
        pending_ms: Some(0),
        ..Override::new(scope(rule, Some("pve1"), None))
    }
}

#[test]
fn scrub_age_overrides_fire_hold_and_resolve_with_hysteresis() {
    const DAY: i64 = 24 * HOUR;
    let at = |days: f64, now: i64| {
        let mut m = pools(&[("tank", 10.0)]);
        m.pools.as_mut().unwrap()[0].scan = Some(wire::Scan {
            function: wire::ScanFunction::Scrub,
            state: wire::ScanState::Finished,
            end: Some((now - days as i64 * DAY) / 1000),
            ..wire::Scan::default()
        });
        state("pve1", Latest { medium: Some(&m), ..Latest::default() })
    };
    walk(Rule::ScrubAge, "tank", numbers(Rule::ScrubAge, 7.0, 3.0, 30.0), at, [6.0, 7.0, 5.0, 2.0, 31.0]);
}

#[test]
fn disk_wear_overrides_fire_hold_and_resolve_with_hysteresis() {
    let at = |used: f64, _| {
        let nvme = wire::NvmeHealth { percentage_used: Some(used as u64), ..wire::NvmeHealth::default() };
        let disk = wire::Disk { name: "nvme0".into(), nvme: Some(nvme), ..wire::Disk::default() };
        let slow = wire::Slow { disks: Some(vec![disk]), ..wire::Slow::default() };
        state("pve1", Latest { slow: Some(&slow), ..Latest::default() })
    };
    walk(Rule::DiskWear, "nvme0", numbers(Rule::DiskWear, 50.0, 45.0, 80.0), at, [49.0, 50.0, 47.0, 44.0, 85.0]);
}

#[test]
fn load_overrides_fire_hold_and_resolve_with_hysteresis_per_core() {
    let at = |load15: f64, _| {
        let fast = wire::Fast { load15: Some(load15), cpus: Some(4), ..wire::Fast::default() };
        state("pve1", Latest { fast: Some(&fast), ..Latest::default() })
    };
    // Per core on 4 cores: 0.725, 0.75, 0.6, 0.475, 1.6.
    walk(Rule::Load, "", numbers(Rule::Load, 0.75, 0.5, 1.5), at, [2.9, 3.0, 2.4, 1.9, 6.4]);
}

/// pve1 with its clock `skew_s` seconds behind the server's.
fn skewed(skew_s: f64, _now: i64) -> HostState {
    HostState { clock_skew_ms: Some(-(skew_s * 1000.0) as i64), ..state("pve1", Latest::default()) }
}

/// pve1 with an NVMe drive at `spare` % whose own threshold is 10 %.
fn spare_left(spare: f64, _now: i64) -> HostState {
    let nvme = wire::NvmeHealth {
        available_spare: Some(spare as u64),
        available_spare_threshold: Some(10),
        ..wire::NvmeHealth::default()
    };
    let disk = wire::Disk { name: "nvme0".into(), nvme: Some(nvme), ..wire::Disk::default() };
    let slow = wire::Slow { disks: Some(vec![disk]), ..wire::Slow::default() };
    state("pve1", Latest { slow: Some(&slow), ..Latest::default() })
}

/// The built-in numbers of `rule` with the default pending duration: `values` are
/// [quiet, trigger, held, cleared]; the alert fires once the condition held the default
/// pending duration, holds while the card no longer lists it, and resolves past the clear.
fn walk_builtin(rule: Rule, subject: &str, at: impl Fn(f64, i64) -> HostState, values: [f64; 4]) {
    let mut e = Engine::new(Settings::default(), vec![]);
    let pending = Settings::default().for_duration(rule);
    let alert = id("pve1", rule, subject);
    let [quiet, trigger, held, cleared] = values;
    let mut step = |value: f64, now: i64| {
        let state = at(value, now);
        e.evaluate(&state, now);
        let card = state.decoded().findings_under(now, &Overrides::default()).iter().map(|f| f.level).max();
        (e.get(&alert).map(|a| (a.state, a.severity)), card)
    };
    assert_eq!(step(quiet, 0), (None, None), "{rule}: quiet");
    let warning = Some(Level::Warning);
    // Pending first unless the default pending duration is 0 (it is for these rules).
    let first = if pending > 0 { State::Pending } else { State::Firing };
    assert_eq!(step(trigger, MIN), (Some((first, Level::Warning)), warning), "{rule}: at the trigger");
    let firing = Some((State::Firing, Level::Warning));
    assert_eq!(step(trigger, MIN + pending), (firing, warning), "{rule}: after the pending duration");
    assert_eq!(step(held, 2 * MIN + pending), (firing, None), "{rule}: held short of the clear");
    assert_eq!(step(cleared, 3 * MIN + pending).0, Some((State::Resolved, Level::Warning)), "{rule}: past the clear");
    assert_eq!(step(held, 4 * MIN + pending), (Some((State::Resolved, Level::Warning)), None), "{rule}: no re-fire");
}

#[test]
fn a_clock_skew_hovering_at_a_minute_fires_once_and_resolves_under_45_s() {
    walk_builtin(Rule::ClockSkew, "", skewed, [59.0, 60.0, 46.0, 44.0]);
    walk(
        Rule::ClockSkew,
        "",
        numbers(Rule::ClockSkew, 300.0, 200.0, 900.0),
        skewed,
        [299.0, 300.0, 201.0, 199.0, 901.0],
    );
}

#[test]
fn disk_spare_fires_below_the_drives_threshold_and_resolves_5_points_above_it() {
    walk_builtin(Rule::DiskSpare, "nvme0", spare_left, [10.0, 9.0, 14.0, 15.0]);
    // An operator's absolute numbers replace the drive's 10 %: warn below 20, clear at 25, critical below 5.
    walk(
        Rule::DiskSpare,
        "nvme0",
        numbers(Rule::DiskSpare, 20.0, 25.0, 5.0),
        spare_left,
        [20.0, 19.0, 24.0, 25.0, 4.0],
    );
}
