//! Backups end to end (issue 14): a real agent whose fake `pvesh` prints the captured task
//! list, job list and job logs; the server shows each guest's backup on the host page,
//! warns of the failed one, and search lists the guests not backed up.

use std::time::Duration;

use integration::*;

/// Replaces the fake `pvesh` with one that answers the guest, task, job and log reads from
/// the agent's fixtures (VMs 105 to 111 are the fixture's backed-up guests).
fn backups_pvesh(fake: &FakeProxmox) {
    let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures");
    let vms: Vec<String> =
        (105..=111).map(|id| format!(r#"{{"vmid":{id},"name":"vm{id}","status":"running"}}"#)).collect();
    let script = format!(
        r#"#!/bin/sh
F='{f}'
case "$2" in
  /nodes/*/qemu) echo '[{vms}]' ;;
  /nodes/*/lxc) echo '[]' ;;
  /cluster/backup) cat "$F/pvesh_cluster_backup.json" ;;
  /pools/prod) cat "$F/pvesh_pool_prod.json" ;;
  /nodes/*/tasks) cat "$F/pvesh_tasks.json" ;;
  /nodes/*/tasks/UPID:pve:00154000:0C6DE000:6AAFDE04:vzdump::root@pam:/log) cat "$F/pvesh_task_log_job.json" ;;
  /nodes/*/tasks/UPID:pve:00150000:0C6DA000:6AAFB6E0:vzdump::root@pam:/log) cat "$F/pvesh_task_log_failed.json" ;;
  *) echo "no such path: $2" >&2; exit 2 ;;
esac
"#,
        f = f.display(),
        vms = vms.join(",")
    );
    std::fs::write(fake.dir.path().join("pvesh"), script).unwrap();
}

#[test]
fn an_agents_backups_reach_the_host_page_the_card_and_search() {
    let server = Server::start();
    let token = server.add_host("pve-bk");
    let fake = FakeProxmox::new();
    backups_pvesh(&fake);
    let url = format!("ws://{}/mqtt", server.http);
    let config = agent_config(server.dir.path(), &url, "pve-bk", &token);
    let mut agent = spawn_agent(&config, &fake);

    let medium: String = wait_for("a medium sample with backups", Duration::from_secs(30), || {
        let found: Option<String> = server.sql(
            "SELECT max(payload) FROM latest WHERE host_id = 'pve-bk' AND tier = 'medium' AND payload LIKE '%\"backups\"%'",
        );
        found
    });
    assert!(medium.contains(r#""error":"VM 111 qmp command 'backup' failed - got timeout""#), "{medium}");

    let cookie = server.login();
    let (code, _, page) = http_get_with(&format!("http://{}/hosts/pve-bk", server.http), Some(&cookie)).unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("<th>Backup</th>"), "{page}");
    assert!(page.contains("<td>FAILED "), "VM 111's failed backup on the host page");
    assert!(page.contains("guest vm/111 (vm111): last backup failed"), "the card's reason");

    let search = format!("http://{}/search?q=111&backup=missing", server.http);
    let (code, _, page) = http_get_with(&search, Some(&cookie)).unwrap();
    assert_eq!(code, 200);
    assert_eq!(page.matches(r#"<tr class="guest-hit">"#).count(), 1, "{page}");
    assert!(page.contains("<td>111</td><td>vm111</td>"));

    terminate(&mut agent);
    assert!(agent.wait().unwrap().success());
}
