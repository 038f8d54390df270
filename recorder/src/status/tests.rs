use super::zfs::DAY_MS;
use super::*;
use wire::{Disk, Fast, Medium, Pool, Scan, ScanFunction, ScanState, Slow, Storage, TempKind, Vdev};

const NOW: i64 = 1_764_000_000_000;
static NO_LIMITS: Overrides = Overrides::NONE;

pub(super) fn facts<'a>(fast: Option<&'a Fast>, medium: Option<&'a Medium>) -> Facts<'a> {
    Facts {
        host_id: "pve1",
        limits: &NO_LIMITS,
        online: true,
        now_ms: NOW,
        fast,
        fast_received_ms: Some(NOW),
        fast_interval_ms: Some(30_000),
        medium,
        previous_medium: None,
        medium_ts_ms: Some(NOW),
        previous_medium_ts_ms: Some(NOW - 300_000),
        daily_backup_max_age_s: DEFAULT_DAILY_BACKUP_MAX_AGE_S,
        slow: None,
        previous_slow: None,
        shared_token: None,
        clock_skew_ms: None,
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
    assert_eq!(h.level, Level::Warning);
    assert_eq!(h.reasons, vec!["pool rpool is DEGRADED"]);
    for state in ["FAULTED", "UNAVAIL", "SUSPENDED", "SOMETHING_NEW"] {
        assert_eq!(evaluate(&facts(None, Some(&medium(vec![pool(state, 10.0)])))).level, Level::Critical, "{state}");
    }
    let f = findings(&facts(None, Some(&medium(vec![pool("DEGRADED", 85.0)]))));
    assert_eq!(
        f.iter().map(|f| (f.rule, f.subject.as_deref(), f.level, f.value)).collect::<Vec<_>>(),
        [
            (Rule::PoolState, Some("rpool"), Level::Warning, None),
            (Rule::PoolCapacity, Some("rpool"), Level::Warning, Some(85.0))
        ]
    );
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
    let (was_before, was_after) = (PreviousMedium::of(&before), PreviousMedium::of(&after));
    let mut f = facts(None, Some(&after));
    f.previous_medium = Some(&was_before);
    assert_eq!(evaluate(&f).level, Level::Critical);
    f.previous_medium = Some(&was_after);
    let h = evaluate(&f);
    assert_eq!(h.level, Level::Warning, "errors that did not grow are a warning, not news");
    assert_eq!(h.reasons, ["pool rpool has 3 read/write/checksum errors"]);

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
fn hysteresis_holds_a_level_until_the_value_falls_past_the_margin() {
    let t = POOL_CAPACITY;
    assert_eq!(t.level_with_hysteresis(79.0, None), None);
    assert_eq!(t.level_with_hysteresis(80.0, None), Some(Level::Warning));
    assert_eq!(t.level_with_hysteresis(76.0, Some(Level::Warning)), Some(Level::Warning));
    assert_eq!(t.level_with_hysteresis(74.9, Some(Level::Warning)), None);
    assert_eq!(t.level_with_hysteresis(86.0, Some(Level::Critical)), Some(Level::Critical));
    assert_eq!(t.level_with_hysteresis(84.0, Some(Level::Critical)), Some(Level::Warning));
    assert_eq!(t.level_with_hysteresis(91.0, Some(Level::Warning)), Some(Level::Critical));
}

#[test]
fn scrub_errors_inactive_storage_and_unexpected_stops() {
    let mut p = pool("ONLINE", 10.0);
    p.scan = Some(Scan {
        function: ScanFunction::Scrub,
        state: ScanState::Finished,
        end: Some(NOW / 1000),
        errors: 2,
        ..Scan::default()
    });
    let m = medium(vec![p]);
    assert_eq!(findings(&facts(None, Some(&m)))[0].rule, Rule::ScrubErrors);

    let inactive = Medium {
        storages: Some(vec![Storage { name: "nfs".into(), enabled: true, active: false, ..Storage::default() }]),
        ..Medium::default()
    };
    assert_eq!(findings(&facts(None, Some(&inactive)))[0].rule, Rule::StorageInactive);

    let guests = |status: &str, lock: Option<&str>| Medium {
        vms: Some(vec![wire::Guest {
            vmid: 101,
            name: "web".into(),
            status: status.into(),
            lock: lock.map(Into::into),
            ..wire::Guest::default()
        }]),
        ..Medium::default()
    };
    let (running, stopped) = (guests("running", None), guests("stopped", None));
    let was_running = PreviousMedium::of(&running);
    let mut f = facts(None, Some(&stopped));
    f.previous_medium = Some(&was_running);
    let found = findings(&f);
    assert_eq!((found[0].rule, found[0].subject.as_deref()), (Rule::GuestStopped, Some("vm/101")));
    let backup = PreviousMedium::of(&guests("running", Some("backup")));
    f.previous_medium = Some(&backup);
    assert!(findings(&f).is_empty(), "a backup's lock explains the stop");
    f.previous_medium = None;
    assert!(findings(&f).is_empty(), "a guest first seen stopped was not seen stopping");
    assert!(guest_still_stopped(&stopped, "vm/101"));
    assert!(!guest_still_stopped(&running, "vm/101"));
}

fn slow(disks: Vec<Disk>) -> Slow {
    Slow { disks: Some(disks), ..Slow::default() }
}

fn ata(name: &str, reallocated: u64, pending: u64) -> Disk {
    Disk {
        name: name.into(),
        serial: Some(format!("S-{name}")),
        smart_passed: Some(true),
        ata: Some(wire::AtaHealth { reallocated: Some(reallocated), pending: Some(pending), ..Default::default() }),
        ..Disk::default()
    }
}

fn nvme(used: u64, spare: u64, media_errors: u64) -> Disk {
    Disk {
        name: "nvme0".into(),
        serial: Some("N1".into()),
        smart_passed: Some(true),
        nvme: Some(wire::NvmeHealth {
            critical_warning: Some(0),
            percentage_used: Some(used),
            media_errors: Some(media_errors),
            available_spare: Some(spare),
            available_spare_threshold: Some(10),
        }),
        ..Disk::default()
    }
}

fn rules(found: &[Finding]) -> Vec<(Rule, Option<&str>, Level)> {
    found.iter().map(|f| (f.rule, f.subject.as_deref(), f.level)).collect()
}

#[test]
fn disk_rules() {
    let failing = Disk { smart_passed: Some(false), model: Some("WDC X".into()), ..ata("sdb", 0, 0) };
    let now = slow(vec![failing, ata("sda", 3, 0), nvme(91, 5, 2), Disk { standby: true, ..Disk::default() }]);
    let mut f = facts(None, None);
    f.slow = Some(&now);
    let found = findings(&f);
    assert_eq!(
        rules(&found),
        [
            (Rule::DiskHealth, Some("sdb"), Level::Critical),
            (Rule::DiskWear, Some("nvme0"), Level::Warning),
            (Rule::DiskSpare, Some("nvme0"), Level::Warning),
        ],
        "without a previous sample nothing has grown"
    );
    assert_eq!(found[0].message, "disk sdb (WDC X) fails its SMART health check");

    let before = PreviousSlow::of(&slow(vec![ata("sda", 1, 0), nvme(91, 5, 1)]));
    f.previous_slow = Some(&before);
    let found = findings(&f);
    assert_eq!(
        rules(&found),
        [
            (Rule::DiskHealth, Some("sdb"), Level::Critical),
            (Rule::DiskSectors, Some("sda"), Level::Warning),
            (Rule::DiskWear, Some("nvme0"), Level::Warning),
            (Rule::DiskSpare, Some("nvme0"), Level::Warning),
            (Rule::DiskMediaErrors, Some("nvme0"), Level::Warning),
        ]
    );
    assert_eq!(found[1].message, "disk sda: reallocated/pending sectors grew from 1 to 3");
    let was_now = PreviousSlow::of(&now);
    f.previous_slow = Some(&was_now);
    assert_eq!(findings(&f).len(), 3, "counts that did not grow are not news");

    let renamed = PreviousSlow::of(&slow(vec![Disk { name: "sdz".into(), ..ata("sda", 0, 0) }]));
    f.previous_slow = Some(&renamed);
    assert!(
        findings(&f).iter().any(|x| x.rule == Rule::DiskSectors),
        "a disk is followed by its serial when its name changes"
    );
}

#[test]
fn hot_sensors_with_hysteresis() {
    let temps = |cpu: f64, nvme: f64| Fast {
        temps: Some(vec![
            wire::Temp { name: "cpu0".into(), kind: TempKind::Cpu, celsius: 60.0, cores_max: Some(cpu) },
            wire::Temp { name: "nvme0".into(), kind: TempKind::Nvme, celsius: nvme, cores_max: None },
        ]),
        ..Fast::default()
    };
    let hot = temps(92.0, 71.0);
    assert_eq!(
        rules(&findings(&facts(Some(&hot), None))),
        [(Rule::CpuTemperature, Some("cpu0"), Level::Warning), (Rule::NvmeTemperature, Some("nvme0"), Level::Warning)]
    );
    assert_eq!(findings(&facts(Some(&temps(100.0, 80.0)), None))[0].level, Level::Critical);
    let cooler = temps(87.0, 66.0);
    assert!(findings(&facts(Some(&cooler), None)).is_empty(), "a card shows the plain thresholds");
    // Alerting holds the warning until the reading is 5 °C under the threshold.
    let held = measure_fast(&cooler, Rule::CpuTemperature, "cpu0").unwrap();
    assert_eq!(CPU_TEMPERATURE.level_with_hysteresis(held, Some(Level::Warning)), Some(Level::Warning));
    assert_eq!(CPU_TEMPERATURE.level_with_hysteresis(84.9, Some(Level::Warning)), None);
    assert_eq!(measure_fast(&cooler, Rule::NvmeTemperature, "nvme0"), Some(66.0));
    assert_eq!(Thresholds::of(Rule::NvmeTemperature), Some(NVME_TEMPERATURE));
    assert_eq!(measure_fast(&cooler, Rule::NvmeTemperature, "cpu0"), None);
}

#[test]
fn a_shared_token_is_critical_names_every_address_and_fades() {
    let two = SharedToken { addresses: vec![[10, 0, 0, 5].into(), [10, 0, 0, 9].into()], detected_ms: NOW };
    let mut f = facts(None, None);
    f.shared_token = Some(&two);
    let h = evaluate(&f);
    assert_eq!(h.level, Level::Critical);
    assert_eq!(h.reasons, ["two agents use this host's token: 10.0.0.5 and 10.0.0.9"]);
    assert_eq!(findings(&f)[0].rule, Rule::SharedToken);
    f.now_ms = NOW + SHARED_TOKEN_HOLD_MS;
    f.fast_received_ms = Some(f.now_ms);
    assert_eq!(evaluate(&f).level, Level::Online, "cleared once the detector stays quiet");
    let three = SharedToken { addresses: ["10.0.0.1", "10.0.0.2", "::1"].map(|a| a.parse().unwrap()).into(), ..two };
    assert_eq!(three.describe(), "3 agents use this host's token: 10.0.0.1, 10.0.0.2 and ::1");
}

#[test]
fn a_clock_a_minute_off_either_way_is_a_warning() {
    let mut f = facts(None, None);
    f.clock_skew_ms = Some(59_000);
    assert!(findings(&f).is_empty());
    f.clock_skew_ms = Some(-252_000);
    let found = findings(&f);
    assert_eq!((found[0].rule, found[0].level, found[0].value), (Rule::ClockSkew, Level::Warning, Some(252.0)));
    assert_eq!(found[0].message, "clock is 4 min 12 s behind the server");
}

#[test]
fn silence_while_connected_is_critical() {
    let mut f = facts(None, None);
    f.fast_received_ms = Some(NOW - 91_000);
    assert_eq!(evaluate(&f).level, Level::Critical);
    f.fast_received_ms = Some(NOW - 89_000);
    assert_eq!(evaluate(&f).level, Level::Online);
}

fn vm(vmid: u32, status: &str) -> wire::Guest {
    wire::Guest { vmid, name: format!("vm{vmid}"), status: status.into(), ..wire::Guest::default() }
}

#[test]
fn an_operators_stop_explains_a_stopped_guest() {
    let was_running = PreviousMedium::of(&Medium { vms: Some(vec![vm(101, "running")]), ..Medium::default() });
    let stopped_with = |stops: Vec<wire::OperatorStop>| Medium {
        vms: Some(vec![vm(101, "stopped")]),
        operator_stops: Some(stops),
        ..Medium::default()
    };
    let stop = |vmid: u32, end_ms: i64| wire::OperatorStop {
        vmid,
        task: "qmshutdown".into(),
        user: "root@pam".into(),
        end: end_ms / 1000,
    };
    // The samples are at NOW - 5 min and NOW.
    for (case, stops, expect_finding) in [
        ("a shutdown between the samples", vec![stop(101, NOW - 60_000)], false),
        ("a shutdown ending just after the sample", vec![stop(101, NOW + 30_000)], false),
        ("another guest's shutdown", vec![stop(102, NOW - 60_000)], true),
        ("a shutdown before the guest was last seen running", vec![stop(101, NOW - 20 * 60_000)], true),
        ("no task: it stopped unexpectedly", vec![], true),
    ] {
        let stopped = stopped_with(stops);
        let mut f = facts(None, Some(&stopped));
        f.previous_medium = Some(&was_running);
        let found: Vec<Rule> = findings(&f).iter().map(|f| f.rule).collect();
        let expected = if expect_finding { vec![Rule::GuestStopped] } else { vec![] };
        assert_eq!(found, expected, "{case}");
    }
}

#[test]
fn backup_rules_warn_of_failed_and_missed_backups_of_covered_guests() {
    let now_s = NOW / 1000;
    let hours = |h: i64| now_s - h * 3_600;
    let ok = |vmid: u32, end: i64| wire::GuestBackup { vmid, end, ok: true, error: None, last_ok: None };
    let daily = wire::BackupJob {
        id: "backup-daily".into(),
        schedule: "21:00".into(),
        vmids: vec![100, 101, 102, 104],
        ..wire::BackupJob::default()
    };
    let weekly = wire::BackupJob {
        id: "backup-weekly".into(),
        schedule: "sat 02:00".into(),
        vmids: vec![105],
        ..Default::default()
    };
    let backups = wire::Backups {
        jobs: vec![daily, weekly],
        guests: vec![
            ok(100, hours(20)),
            wire::GuestBackup {
                vmid: 101,
                end: hours(2),
                ok: false,
                error: Some("VM 101 qmp command 'backup' failed - got timeout".into()),
                last_ok: Some(hours(26)),
            },
            ok(102, hours(72)),
            ok(103, hours(400)),
            ok(105, hours(5 * 24)),
        ],
        since: hours(240),
    };
    let vms = [100, 101, 102, 103, 104, 105].map(|id| vm(id, "running")).to_vec();
    let m = Medium { vms: Some(vms.clone()), backups: Some(backups), ..Medium::default() };
    let found = findings(&facts(None, Some(&m)));
    let got: Vec<(Rule, Option<&str>, Option<f64>)> =
        found.iter().map(|f| (f.rule, f.subject.as_deref(), f.value)).collect();
    assert_eq!(
        got,
        [
            (Rule::BackupFailed, Some("vm/101"), None),
            (Rule::BackupAge, Some("vm/102"), Some(72.0)),
            (Rule::BackupAge, Some("vm/104"), Some(240.0)),
        ],
        "100 is fresh, 103 is in no job, 105's weekly job allows 8 days"
    );
    assert_eq!(found[0].level, Level::Warning);
    assert_eq!(
        found[0].message,
        "guest vm/101 (vm101): last backup failed: VM 101 qmp command 'backup' failed - got timeout"
    );
    assert_eq!(
        found[1].message,
        "guest vm/102 (vm102): last successful backup 3 days ago; job backup-daily (21:00) allows 36 h"
    );
    assert_eq!(
        found[2].message,
        "guest vm/104 (vm104): no successful backup in the last 10 days; job backup-daily (21:00) allows 36 h"
    );

    let mut f = facts(None, Some(&m));
    f.daily_backup_max_age_s = 96 * 3_600;
    let rules: Vec<Rule> = findings(&f).iter().map(|f| f.rule).collect();
    assert_eq!(rules, [Rule::BackupFailed, Rule::BackupAge], "the operator's 96 h spare 102's 72 h");

    let no_jobs = Medium {
        vms: Some(vms),
        backups: Some(wire::Backups { since: hours(240), ..wire::Backups::default() }),
        ..Medium::default()
    };
    assert!(findings(&facts(None, Some(&no_jobs))).is_empty(), "a node without jobs has nothing to miss");
}
