//! A backup restored under a running server: its credentials must follow, or the server
//! must stop, never go on with the old ones (revoked tokens accepted, the backup's refused).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration::*;

/// A server with a host whose token the backup holds, then rotated, and a host added
/// after the backup: (server, backup, agent config with the backup's token, agent config
/// of the later host).
fn backed_up_then_changed() -> (Server, PathBuf, PathBuf, PathBuf) {
    let server = Server::start();
    let kept = server.add_host("pve-kept");
    let copy = server.dir.path().join("backup.db");
    let out = server.cli(&["backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(server.cli(&["host", "rotate", "pve-kept"]).status.success());
    let later = server.add_host("pve-later");
    let url = format!("mqtt://{}", server.mqtt);
    let kept = agent_config(server.dir.path(), &url, "pve-kept", &kept);
    let later = agent_config(server.dir.path(), &url, "pve-later", &later);
    wait_for("the rotation and the later host to be installed", Duration::from_secs(5), || {
        (!agent_check(&kept).0 && agent_check(&later).0).then_some(())
    });
    (server, copy, kept, later)
}

/// The backup's token is accepted and the later host's refused.
fn backups_credentials_hold(kept: &Path, later: &Path) -> bool {
    agent_check(kept).0 && agent_check(later).1.starts_with("invalid_token")
}

#[test]
fn a_backup_restored_in_place_under_the_running_server_brings_its_credentials_within_a_second() {
    let (server, copy, kept, later) = backed_up_then_changed();
    // SQLite's online restore (the sqlite3 shell's `.restore`) into the live file.
    let mut conn = rusqlite::Connection::open(server.database()).unwrap();
    conn.restore(rusqlite::MAIN_DB, &copy, None::<fn(rusqlite::backup::Progress)>).unwrap();
    let restored = Instant::now();
    // The later host first: its CONNECTs succeed until the watcher's own poll installs the
    // backup's table (a refused CONNECT would install it at once).
    wait_for("the later host to be refused", Duration::from_secs(3), || {
        agent_check(&later).1.starts_with("invalid_token").then_some(())
    });
    let took = restored.elapsed();
    eprintln!("credentials followed the restore in {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(backups_credentials_hold(&kept, &later));
}

#[test]
fn the_runbooks_restore_with_the_server_running_stops_it_and_a_start_brings_the_backup() {
    let (mut server, copy, kept, later) = backed_up_then_changed();
    // The runbook's restore with its `systemctl stop` forgotten: the files removed under
    // the running server, which would otherwise go on with the removed one.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", server.database().display()));
    }
    let status = wait_for("the server to stop", Duration::from_secs(5), || server.child.try_wait().unwrap());
    assert_eq!(status.code(), Some(3), "the exit status systemd does not restart");
    let unit = include_str!("../../deploy/proxmox-monitor.service");
    assert!(unit.contains("\nRestartPreventExitStatus=3\n"), "the unit must not restart it");
    assert!(!server.database().exists(), "the stopping server recreated no database");

    // The rest of the runbook's restore: the copy, the start.
    std::fs::copy(&copy, server.database()).unwrap();
    server.start_again();
    assert!(backups_credentials_hold(&kept, &later));
}
