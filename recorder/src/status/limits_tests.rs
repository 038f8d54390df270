//! The operator's overrides as the status rules apply them: a changed trigger moves a
//! card's level, a disabled rule is no reason on the card, and alerting measures the
//! subjects of the newly numeric rules (scrub age, disk wear, load, clock skew, disk spare).

use wire::{Fast, Medium, NvmeHealth, Pool, Scan, ScanFunction, ScanState, Slow};

use super::zfs::DAY_MS;
use super::*;

const NOW: i64 = 1_764_000_000_000;

fn facts<'a>(host_id: &'a str, limits: &'a Overrides) -> Facts<'a> {
    Facts { host_id, limits, ..super::tests::facts(None, None) }
}

fn set(rule: Rule, host: Option<&str>, subject: Option<&str>, f: fn(&mut Override)) -> Override {
    let mut o = Override::new(Scope { rule, host: host.map(Into::into), subject: subject.map(Into::into) });
    f(&mut o);
    o
}

fn pools(list: &[(&str, &str, f64)]) -> Medium {
    let pools = list
        .iter()
        .map(|(name, state, cap)| Pool {
            name: (*name).into(),
            state: (*state).into(),
            cap_pct: Some(*cap),
            ..Pool::default()
        })
        .collect();
    Medium { pools: Some(pools), ..Medium::default() }
}

fn scrubbed(days_ago: i64) -> Medium {
    let mut m = pools(&[("rpool", "ONLINE", 10.0)]);
    m.pools.as_mut().unwrap()[0].scan = Some(Scan {
        function: ScanFunction::Scrub,
        state: ScanState::Finished,
        end: Some((NOW - days_ago * DAY_MS) / 1000),
        ..Scan::default()
    });
    m
}

fn worn(used: u64) -> Slow {
    let nvme = NvmeHealth { percentage_used: Some(used), ..NvmeHealth::default() };
    Slow {
        disks: Some(vec![wire::Disk { name: "nvme0".into(), nvme: Some(nvme), ..wire::Disk::default() }]),
        ..Slow::default()
    }
}

#[test]
fn a_lowered_pool_trigger_turns_the_card_amber_on_that_host_only() {
    let m = pools(&[("rpool", "ONLINE", 72.0)]);
    let none = Overrides::default();
    let mut f = facts("pve1", &none);
    f.medium = Some(&m);
    assert_eq!(evaluate(&f).level, Level::Online, "72 % is under the built-in 80 %");

    let limits = Overrides::new(vec![set(Rule::PoolCapacity, Some("pve1"), None, |o| o.trigger = Some(70.0))]);
    f.limits = &limits;
    let h = evaluate(&f);
    assert_eq!(h, Health { level: Level::Warning, reasons: vec!["pool rpool is 72% full".into()] });
    f.host_id = "pve2";
    assert_eq!(evaluate(&f).level, Level::Online, "another host keeps the built-in trigger");

    let critical = Overrides::new(vec![
        set(Rule::PoolCapacity, None, None, |o| o.critical = Some(72.0)),
        set(Rule::PoolCapacity, Some("pve2"), None, |o| o.trigger = Some(70.0)),
    ]);
    f.limits = &critical;
    assert_eq!(evaluate(&f).level, Level::Critical, "pve2's trigger with every host's critical");
    f.host_id = "pve1";
    assert_eq!(evaluate(&f).level, Level::Online, "a critical under the trigger is raised to it (80)");
}

#[test]
fn a_disabled_rule_is_no_reason_on_the_card() {
    let m = pools(&[("rpool", "DEGRADED", 85.0), ("tank", "DEGRADED", 10.0)]);
    let limits = Overrides::new(vec![
        set(Rule::PoolState, Some("pve1"), Some("rpool"), |o| o.enabled = Some(false)),
        set(Rule::PoolCapacity, None, None, |o| o.enabled = Some(false)),
    ]);
    let mut f = facts("pve1", &limits);
    f.medium = Some(&m);
    let h = evaluate(&f);
    assert_eq!(h.reasons, ["pool tank is DEGRADED"], "rpool's state and every capacity are off");
    assert_eq!(h.level, Level::Warning);

    let everything =
        Overrides::new(Rule::ALL.iter().map(|&r| set(r, None, None, |o| o.enabled = Some(false))).collect());
    f.limits = &everything;
    assert_eq!(evaluate(&f), Health { level: Level::Online, reasons: vec![] });
    f.online = false;
    assert_eq!(evaluate(&f).level, Level::Offline, "the connection is not a rule to switch off");
}

#[test]
fn scrub_age_disk_wear_and_load_take_triggers_and_an_optional_critical() {
    let none = Overrides::default();
    let (old, slow) = (scrubbed(10), worn(60));
    let busy = Fast { load15: Some(6.0), cpus: Some(8), ..Fast::default() };
    let mut f = facts("pve1", &none);
    (f.medium, f.slow, f.fast) = (Some(&old), Some(&slow), Some(&busy));
    assert_eq!(evaluate(&f).level, Level::Online, "10 days, 60 % worn and 0.75 per core are fine built in");

    let limits = Overrides::new(vec![
        set(Rule::ScrubAge, None, None, |o| o.trigger = Some(7.0)),
        set(Rule::DiskWear, Some("pve1"), Some("nvme0"), |o| o.trigger = Some(50.0)),
        set(Rule::Load, None, None, |o| o.trigger = Some(0.7)),
    ]);
    f.limits = &limits;
    let found = findings(&f);
    let got: Vec<(Rule, Level, Option<f64>)> = found.iter().map(|x| (x.rule, x.level, x.value)).collect();
    assert_eq!(
        got,
        [
            (Rule::ScrubAge, Level::Warning, Some(10.0)),
            (Rule::Load, Level::Warning, Some(0.75)),
            (Rule::DiskWear, Level::Warning, Some(60.0))
        ]
    );
    let messages: Vec<&str> = found.iter().map(|x| x.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "pool rpool last scrubbed 10 days ago",
            "load15 6.00 is above 0.7 × 8 cores",
            "disk nvme0 has used 60% of its rated endurance"
        ]
    );

    let critical = Overrides::new(vec![
        set(Rule::ScrubAge, None, None, |o| (o.trigger, o.critical) = (Some(5.0), Some(9.0))),
        set(Rule::DiskWear, None, None, |o| o.critical = Some(60.0)),
        set(Rule::Load, None, None, |o| (o.trigger, o.critical) = (Some(0.5), Some(0.75))),
    ]);
    f.limits = &critical;
    assert!(findings(&f).iter().all(|x| x.level == Level::Critical), "{:?}", findings(&f));
}

#[test]
fn the_built_in_load_scrub_and_wear_rules_are_unchanged() {
    let none = Overrides::default();
    let mut f = facts("pve1", &none);
    let at_cores = Fast { load15: Some(8.5), cpus: Some(8), ..Fast::default() };
    f.fast = Some(&at_cores);
    let load = findings(&f);
    assert_eq!(load[0].message, "load15 8.50 is above 8 cores");
    assert_eq!(load[0].level, Level::Warning);
    let (day34, day36) = (scrubbed(34), scrubbed(36));
    f.fast = None;
    f.medium = Some(&day34);
    assert!(findings(&f).is_empty());
    f.medium = Some(&day36);
    assert_eq!(findings(&f)[0].level, Level::Warning, "no critical built in, however old");
    let (w89, w100) = (worn(89), worn(100));
    f.medium = None;
    f.slow = Some(&w89);
    assert!(findings(&f).is_empty());
    f.slow = Some(&w100);
    assert_eq!(rules_and_levels(&findings(&f)), [(Rule::DiskWear, Level::Warning)]);
}

fn rules_and_levels(found: &[Finding]) -> Vec<(Rule, Level)> {
    found.iter().map(|x| (x.rule, x.level)).collect()
}

#[test]
fn alerting_measures_scrub_age_wear_and_load_per_core() {
    let (m, slow) = (scrubbed(40), worn(93));
    let fast = Fast { load15: Some(3.0), cpus: Some(4), ..Fast::default() };
    let latest = Latest { fast: Some(&fast), medium: Some(&m), slow: Some(&slow), clock_skew_ms: None };
    assert_eq!(latest.measure(Rule::ScrubAge, "rpool", NOW), Some(40.0));
    assert_eq!(latest.measure(Rule::ScrubAge, "tank", NOW), None);
    assert_eq!(latest.measure(Rule::DiskWear, "nvme0", NOW), Some(93.0));
    assert_eq!(latest.measure(Rule::Load, "", NOW), Some(0.75));
    assert_eq!(latest.measure(Rule::PoolCapacity, "rpool", NOW), Some(10.0));
    assert_eq!(latest.measure(Rule::PoolState, "rpool", NOW), None, "not numeric");
    assert_eq!(Latest::default().measure(Rule::Load, "", NOW), None);
    // A held wear alert clears 5 points under its trigger, a held load 0.1 per core under.
    assert_eq!(DISK_WEAR.level_with_hysteresis(86.0, Some(Level::Warning)), Some(Level::Warning));
    assert_eq!(DISK_WEAR.level_with_hysteresis(84.9, Some(Level::Warning)), None);
    assert_eq!(LOAD_PER_CORE.level_with_hysteresis(0.95, Some(Level::Warning)), Some(Level::Warning));
    assert_eq!(LOAD_PER_CORE.level_with_hysteresis(0.85, Some(Level::Warning)), None);
}

#[test]
fn cards_read_the_overrides_the_server_runs_with() {
    // A host id of this test's own: the process-wide set is shared with other tests.
    let host = "limits-test-host";
    let state = crate::state::HostState {
        host_id: host.into(),
        online: true,
        medium: Some(
            wire::MediumPayload {
                schema: wire::SCHEMA_VERSION,
                host_id: host.into(),
                ts_ms: NOW,
                seq: 0,
                boot_id: String::new(),
                agent_version: String::new(),
                dropped: 0,
                errors: Default::default(),
                data: pools(&[("rpool", "ONLINE", 72.0)]),
            }
            .into(),
        ),
        ..Default::default()
    };
    assert_eq!(state.health(NOW).level, Level::Online);
    limits::set_current(Overrides::new(vec![set(Rule::PoolCapacity, Some(host), None, |o| o.trigger = Some(70.0))]));
    let health = state.health(NOW);
    limits::set_current(Overrides::default());
    assert_eq!(health.reasons, ["pool rpool is 72% full"]);
    assert_eq!(state.health(NOW).level, Level::Online, "back to the built-in numbers");
}

fn spare(spare: u64, threshold: Option<u64>) -> Slow {
    let nvme =
        NvmeHealth { available_spare: Some(spare), available_spare_threshold: threshold, ..NvmeHealth::default() };
    Slow {
        disks: Some(vec![wire::Disk { name: "nvme0".into(), nvme: Some(nvme), ..wire::Disk::default() }]),
        ..Slow::default()
    }
}

#[test]
fn clock_skew_warns_at_a_minute_unless_an_operator_moved_it() {
    let odd = Overrides::new(vec![
        set(Rule::ClockSkew, Some("pve1"), None, |o| o.trigger = Some(300.0)),
        set(Rule::ClockSkew, Some("pve2"), None, |o| o.critical = Some(200.0)),
    ]);
    let found = |host, skew_ms| {
        let mut f = facts(host, &odd);
        f.clock_skew_ms = Some(skew_ms);
        rules_and_levels(&findings(&f))
    };
    let warning = [(Rule::ClockSkew, Level::Warning)];
    assert_eq!(found("pve3", 59_999), [], "built in: under a minute is fine");
    assert_eq!(found("pve3", 60_000), warning, "built in: a minute either way warns");
    assert_eq!(found("pve3", -60_000), warning);
    assert_eq!(found("pve1", -252_000), [], "pve1's clock may be 5 min off");
    assert_eq!(found("pve1", 300_000), warning);
    assert_eq!(found("pve2", -252_000), [(Rule::ClockSkew, Level::Critical)], "pve2's critical at 200 s");
}

#[test]
fn disk_spare_warns_below_the_drives_threshold_unless_an_operator_set_one() {
    let limits = Overrides::new(vec![
        set(Rule::DiskSpare, Some("pve1"), None, |o| o.trigger = Some(20.0)),
        set(Rule::DiskSpare, Some("pve2"), None, |o| o.critical = Some(3.0)),
    ]);
    let found = |host, slow: &Slow| {
        let mut f = facts(host, &limits);
        f.slow = Some(slow);
        findings(&f)
    };
    let warning = [(Rule::DiskSpare, Level::Warning)];
    assert_eq!(rules_and_levels(&found("pve3", &spare(10, Some(10)))), [], "at the drive's threshold: fine");
    let low = found("pve3", &spare(9, Some(10)));
    assert_eq!(rules_and_levels(&low), warning);
    assert_eq!(low[0].message, "disk nvme0 has 9% spare blocks left, below its threshold of 10%");
    assert_eq!(rules_and_levels(&found("pve3", &spare(15, Some(20)))), warning, "each drive its own");
    assert_eq!(rules_and_levels(&found("pve3", &spare(0, None))), [], "no threshold reported: not judged");
    let raised = found("pve1", &spare(15, Some(10)));
    assert_eq!(rules_and_levels(&raised), warning, "pve1 warns below 20 %");
    assert_eq!(raised[0].message, "disk nvme0 has 15% spare blocks left, below the threshold of 20%");
    assert_eq!(rules_and_levels(&found("pve1", &spare(3, None))), warning, "the operator's trigger needs none");
    assert_eq!(rules_and_levels(&found("pve2", &spare(2, Some(10)))), [(Rule::DiskSpare, Level::Critical)]);
}

#[test]
fn lower_is_worse_holds_until_the_value_is_back_above_the_margin() {
    let drive = Thresholds::for_drive(Some(10));
    assert_eq!((drive.warning, drive.clear(), drive.direction), (10.0, 15.0, Direction::Below));
    assert_eq!(drive.level(9.0), Some(Level::Warning));
    assert_eq!(drive.level_with_hysteresis(14.0, Some(Level::Warning)), Some(Level::Warning), "held");
    assert_eq!(drive.level_with_hysteresis(15.0, Some(Level::Warning)), None, "back 5 points above");
    let critical = Thresholds { critical: Some(3.0), ..drive };
    assert_eq!(critical.level_with_hysteresis(7.0, Some(Level::Critical)), Some(Level::Critical));
    assert_eq!(critical.level_with_hysteresis(8.0, Some(Level::Critical)), Some(Level::Warning));
    assert_eq!(CLOCK_SKEW_S.clear(), 45.0);
    assert_eq!(CLOCK_SKEW_S.level_with_hysteresis(45.0, Some(Level::Warning)), Some(Level::Warning));
    assert_eq!(CLOCK_SKEW_S.level_with_hysteresis(44.9, Some(Level::Warning)), None);

    let (slow, medium) = (spare(12, Some(10)), Medium::default());
    let latest = Latest { slow: Some(&slow), medium: Some(&medium), clock_skew_ms: Some(-50_500), ..Latest::default() };
    assert_eq!(latest.measure(Rule::ClockSkew, "", NOW), Some(50.5), "either way");
    assert_eq!(latest.measure(Rule::DiskSpare, "nvme0", NOW), Some(12.0));
    assert_eq!(latest.builtin(Rule::DiskSpare, "nvme0"), Some(drive));
    assert_eq!(latest.builtin(Rule::ClockSkew, ""), Some(CLOCK_SKEW_S));
}

#[test]
fn a_lower_is_worse_override_is_checked_and_resolved_the_other_way() {
    let spare_set = |f: fn(&mut Override)| set(Rule::DiskSpare, Some("pve1"), None, f);
    let clear_under = spare_set(|o| (o.trigger, o.clear) = (Some(10.0), Some(8.0))).check().unwrap_err();
    assert_eq!(
        clear_under.to_string(),
        "--clear 8 must be above --trigger 10: an alert clears on the good side of where it fires"
    );
    assert!(matches!(
        spare_set(|o| (o.trigger, o.critical) = (Some(10.0), Some(15.0))).check(),
        Err(OverrideError::CriticalMilder { .. })
    ));
    assert_eq!(spare_set(|o| (o.trigger, o.critical, o.clear) = (Some(10.0), Some(5.0), Some(12.0))).check(), Ok(()));
    let clock = set(Rule::ClockSkew, None, None, |o| (o.trigger, o.clear) = (Some(60.0), Some(70.0)));
    assert!(matches!(clock.check(), Err(OverrideError::ClearNotPast { side: "below", .. })));

    let limits = Overrides::new(vec![spare_set(|o| (o.clear, o.critical) = (Some(18.0), Some(40.0)))]);
    let t = limits
        .resolve_from("pve1", Rule::DiskSpare, "nvme0", Some(Thresholds::for_drive(Some(10))))
        .thresholds
        .unwrap();
    assert_eq!((t.warning, t.clear_margin), (10.0, 8.0), "the drive's trigger, the operator's clear");
    assert_eq!(t.critical, Some(10.0), "a critical over the trigger moves down to it");
}
