//! Alerts from the rules of issue 14 as a host's state gives them: an operator's stop
//! (no alert) against a guest that stopped on its own, and a failed backup.

use recorder::state::HostState;
use recorder::status::{PreviousMedium, Rule};
use wire::{Guest, Medium, MediumPayload, OperatorStop};

use crate::alert::{Identity, State};
use crate::engine::Engine;
use crate::settings::Settings;

const MIN: i64 = 60_000;
/// When the second medium sample was taken; the first was 5 minutes before.
const T: i64 = 1_789_911_300_000;

fn payload(ts_ms: i64, data: Medium) -> MediumPayload {
    crate::overrides_tests::payload("pve1", ts_ms, data)
}

fn vm(status: &str) -> Vec<Guest> {
    vec![Guest { vmid: 101, name: "web".into(), status: status.into(), ..Guest::default() }]
}

/// VM 101 running at `T - 5 min`, stopped at `T`, with these operator stops in the second
/// sample.
fn stopped_with(stops: Vec<OperatorStop>) -> HostState {
    HostState {
        host_id: "pve1".into(),
        online: true,
        previous_medium: Some(PreviousMedium::of(&Medium { vms: Some(vm("running")), ..Medium::default() }).into()),
        previous_medium_ts_ms: Some(T - 5 * MIN),
        medium: Some(
            payload(T, Medium { vms: Some(vm("stopped")), operator_stops: Some(stops), ..Medium::default() }).into(),
        ),
        ..HostState::default()
    }
}

fn id(rule: Rule) -> Identity {
    Identity { host: "pve1".into(), rule, subject: "vm/101".into() }
}

#[test]
fn an_operators_shutdown_raises_no_alert_and_a_stop_without_one_does() {
    let shutdown =
        OperatorStop { vmid: 101, task: "qmshutdown".into(), user: "root@pam".into(), end: (T - 2 * MIN) / 1000 };
    let mut e = Engine::new(Settings::default(), vec![]);
    for at in [T, T + 5 * MIN] {
        e.evaluate(&stopped_with(vec![shutdown.clone()]), at);
    }
    assert!(e.get(&id(Rule::GuestStopped)).is_none(), "the operator's shutdown explains the stop");

    let mut e = Engine::new(Settings::default(), vec![]);
    for at in [T, T + 5 * MIN] {
        e.evaluate(&stopped_with(vec![]), at);
    }
    assert_eq!(e.get(&id(Rule::GuestStopped)).map(|a| a.state), Some(State::Firing));
}

#[test]
fn a_failed_backup_fires_and_resolves_with_the_next_good_one() {
    let state = |ok: bool| {
        let backups = wire::Backups {
            jobs: vec![wire::BackupJob {
                id: "backup-daily".into(),
                schedule: "21:00".into(),
                all: true,
                ..Default::default()
            }],
            guests: vec![wire::GuestBackup {
                vmid: 101,
                end: T / 1000 - 3_600,
                ok,
                error: (!ok).then(|| "VM 101 qmp command 'backup' failed - got timeout".into()),
                last_ok: (!ok).then_some(T / 1000 - 20 * 3_600),
            }],
            since: T / 1000 - 864_000,
        };
        HostState {
            host_id: "pve1".into(),
            online: true,
            medium: Some(
                payload(T, Medium { vms: Some(vm("running")), backups: Some(backups), ..Medium::default() }).into(),
            ),
            ..HostState::default()
        }
    };
    let mut e = Engine::new(Settings::default(), vec![]);
    for at in [T, T + 5 * MIN] {
        e.evaluate(&state(false), at);
    }
    let alert = e.get(&id(Rule::BackupFailed)).unwrap();
    assert_eq!(alert.state, State::Firing);
    assert!(e.get(&id(Rule::BackupAge)).is_none(), "its last success, 20 h ago, is recent enough");
    e.evaluate(&state(true), T + 10 * MIN);
    assert_eq!(e.get(&id(Rule::BackupFailed)).map(|a| a.state), Some(State::Resolved));
}
