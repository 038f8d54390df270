//! The walking skeleton, end to end: CLI → server → agent → SQLite → dashboard.

use std::time::Duration;

use integration::*;

#[test]
fn agent_sample_reaches_sqlite_and_the_dashboard_and_stop_flips_offline() {
    let server = Server::start();
    let token = server.add_host("pve-e2e");
    assert_eq!(server.status_of("pve-e2e").as_deref(), Some("offline"), "registered but never connected");

    let fake = FakeProxmox::new();
    let url = format!("ws://{}/mqtt", server.http);
    let config = agent_config(server.dir.path(), &url, "pve-e2e", &token);
    let mut agent = spawn_agent(&config, &fake);

    // The fast tier reads this machine's /proc (issue 14: no pvesh), so values are checked for
    // sense, not against a fixture.
    let load1: f64 = wait_for("a fast sample in SQLite", Duration::from_secs(20), || {
        let n: i64 = server.sql("SELECT count(*) FROM fast_samples WHERE host_id = 'pve-e2e'");
        (n > 0).then(|| server.sql("SELECT load1 FROM fast_samples WHERE host_id = 'pve-e2e' LIMIT 1"))
    });
    assert!((0.0..10_000.0).contains(&load1), "{load1}");
    let (mem_used, mem_total): (i64, i64) = (
        server.sql("SELECT mem_used FROM fast_samples WHERE host_id = 'pve-e2e' LIMIT 1"),
        server.sql("SELECT mem_total FROM fast_samples WHERE host_id = 'pve-e2e' LIMIT 1"),
    );
    assert!(0 < mem_used && mem_used < mem_total, "{mem_used} of {mem_total}");

    // Health comes from this machine's real load, memory and root filesystem now, so a full
    // disk here says "critical": any level but "offline" means the agent is seen.
    const SEEN: [&str; 3] = ["online", "warning", "critical"];
    wait_for("host list to say online", Duration::from_secs(10), || server.is_seen("pve-e2e").then_some(()));
    let cookie = server.login();
    let (code, _, page) = http_get_with(&format!("http://{}/", server.http), Some(&cookie)).unwrap();
    assert_eq!(code, 200);
    let seen = SEEN.iter().any(|s| page.contains(&format!(r#"id="card-pve-e2e" data-status="{s}""#)));
    assert!(seen, "overview shows the host online:\n{page}");
    // The card shows the latest sample's load1 / load15, one of those stored by now.
    let loads: String = server.sql(
        "SELECT group_concat(printf('%.2f / %.2f', load1, load15), '|') FROM fast_samples WHERE host_id = 'pve-e2e'",
    );
    assert!(loads.split('|').any(|l| page.contains(l)), "overview shows load1 / load15 (one of {loads})");

    terminate(&mut agent);
    assert!(agent.wait().unwrap().success(), "the agent exits 0 on SIGTERM");
    let started = std::time::Instant::now();
    wait_for("host list to say offline", Duration::from_secs(3), || {
        (server.status_of("pve-e2e").as_deref() == Some("offline")).then_some(())
    });
    assert!(started.elapsed() < Duration::from_secs(2), "offline within about a second of a graceful stop");
    let (_, _, page) = http_get_with(&format!("http://{}/", server.http), Some(&cookie)).unwrap();
    assert!(page.contains(r#"id="card-pve-e2e" data-status="offline""#));
    let events: i64 = server.sql("SELECT count(*) FROM events WHERE host_id = 'pve-e2e' AND kind = 'offline'");
    assert_eq!(events, 1, "the timeline records the offline flip once");
}
