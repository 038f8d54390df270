//! The recorder under faults: crashes during ingest, online backup and restore.

use std::process::Command;
use std::time::Duration;

use integration::*;

/// Counts of fast payloads the host sent (highest seq of the newest agent run) and stored.
fn fast_counts(server: &Server, host: &str) -> (i64, i64, i64) {
    let rows: i64 = server.sql(&format!("SELECT count(*) FROM fast_samples WHERE host_id = '{host}'"));
    // One agent run (one boot_id) per test, so seq identifies a payload.
    let distinct: i64 = server.sql(&format!("SELECT count(DISTINCT seq) FROM fast_samples WHERE host_id = '{host}'"));
    let max_seq: i64 = server.sql(&format!("SELECT coalesce(max(seq), 0) FROM fast_samples WHERE host_id = '{host}'"));
    (rows, distinct, max_seq)
}

#[test]
fn kill_9_during_ingest_never_corrupts_and_buffered_data_is_stored_once() {
    let mut server = Server::start();
    let token = server.add_host("pve-crash");
    let fake = FakeProxmox::new();
    let config = agent_config(server.dir.path(), &format!("mqtt://{}", server.mqtt), "pve-crash", &token);
    let mut agent = spawn_agent(&config, &fake);
    wait_for("first samples", Duration::from_secs(20), || (fast_counts(&server, "pve-crash").0 >= 2).then_some(()));

    for round in 0..4 {
        server.crash_and_restart();
        assert_eq!(server.integrity(), "ok", "integrity after crash {round}");
        let before = fast_counts(&server, "pve-crash").1;
        wait_for("ingest to resume", Duration::from_secs(40), || {
            (fast_counts(&server, "pve-crash").1 > before + 1).then_some(())
        });
    }
    terminate(&mut agent);
    let (rows, distinct, max_seq) = fast_counts(&server, "pve-crash");
    assert_eq!(rows, distinct, "every (boot, seq) stored exactly once");
    // Payloads collected while the server was down were buffered and replayed; only
    // those in flight at the instant of each kill may be missing.
    assert!(distinct as f64 >= max_seq as f64 * 0.8, "stored {distinct} of {max_seq} sent");
}

#[test]
fn backup_while_serving_restores_with_tokens_still_valid() {
    let mut server = Server::start();
    let token = server.add_host("pve-backup");
    let fake = FakeProxmox::new();
    let config = agent_config(server.dir.path(), &format!("mqtt://{}", server.mqtt), "pve-backup", &token);
    let mut agent = spawn_agent(&config, &fake);
    wait_for("samples", Duration::from_secs(20), || (fast_counts(&server, "pve-backup").0 >= 2).then_some(()));

    let copy = server.dir.path().join("backup.db");
    let out = server.cli(&["backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(integrity(&copy), "ok");
    let again = server.cli(&["backup", copy.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing file is never overwritten");

    // The runbook's restore: stop, copy the backup over the database, start.
    terminate(&mut agent);
    server.stop();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", server.database().display()));
    }
    std::fs::copy(&copy, server.database()).unwrap();
    server.start_again();
    let check =
        Command::new(bin("proxmox-monitor-agent")).arg("--config").arg(&config).arg("--check").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok", "the host's token survives a restore");
    assert!(fast_counts(&server, "pve-backup").0 >= 2, "the restored data is there");
}

#[test]
fn retention_drops_stale_hours_and_keeps_the_rest() {
    use recorder::partitions::{self, hour_of, Series, HOUR_MS};
    let mut server = Server::start_with(vec![("RETENTION_HOURS".into(), "1".into())]);
    server.stop();
    // Two hours of samples written as the writer would: three hours old, and now.
    let now = wire::now_ms();
    let (stale, kept) = (hour_of(now - 3 * HOUR_MS), hour_of(now));
    {
        let mut conn = recorder::db::open(&server.database()).unwrap();
        let tx = conn.transaction().unwrap();
        for (hour, ts) in [(stale, now - 3 * HOUR_MS), (kept, now)] {
            partitions::create(&tx, hour).unwrap();
            for seq in 1..=3 {
                tx.execute(
                    &format!("INSERT INTO {} (host_id, ts_ms, seq) VALUES ('pve1', ?1, ?2)", Series::Fast.table(hour)),
                    [ts, seq],
                )
                .unwrap();
            }
            partitions::add_rows(&tx, hour, 3).unwrap();
        }
        tx.commit().unwrap();
    }
    assert_eq!(server.sql::<i64>("SELECT count(*) FROM fast_samples"), 6);

    // Retention runs when the server starts, then hourly.
    server.start_again();
    let stale_table = format!("SELECT count(*) FROM sqlite_schema WHERE name GLOB '*_h{stale}'");
    wait_for("the stale hour's tables to be dropped", Duration::from_secs(20), || {
        (server.sql::<i64>(&stale_table) == 0).then_some(())
    });
    assert_eq!(server.sql::<i64>("SELECT count(*) FROM fast_samples"), 3);
    assert_eq!(server.sql::<i64>(&format!("SELECT count(*) FROM sqlite_schema WHERE name GLOB '*_h{kept}'")), 5);
    assert_eq!(server.integrity(), "ok");
}

/// #15: agents whose clocks are ten minutes ahead and behind. Their samples are stored
/// (none refused), at the server's time once the skew is measured; the host page and the
/// API show the skew and the card warns; a replay is still stored once.
#[test]
fn skewed_clocks_are_measured_and_their_samples_stored_at_corrected_times() {
    const MIN: i64 = 60_000;
    let server = Server::start();
    let hosts = [("pve-ahead", 10 * MIN, "ahead of"), ("pve-behind", -10 * MIN, "behind")];
    let mut agents: Vec<_> = hosts
        .iter()
        .map(|(host, ..)| integration::load::Publisher::connect(server.mqtt, host, &server.add_host(host)).unwrap())
        .collect();
    // Live samples, one a second, each stamped by its agent's clock; note when each left.
    let mut sent_at = Vec::new();
    for seq in 1..=6u64 {
        let now = wire::now_ms();
        for ((host, skew, _), agent) in hosts.iter().zip(&mut agents) {
            agent.publish(&format!("pmon/v1/{host}/fast"), fast_json(host, "run", seq, now + skew).as_bytes()).unwrap();
        }
        sent_at.push(now);
        std::thread::sleep(Duration::from_secs(1));
        agents.iter_mut().for_each(|a| a.flush().unwrap());
    }
    let cookie = server.login();
    for (host, skew, side) in hosts {
        let stored = |seq: usize| -> i64 {
            server.sql(&format!("SELECT ts_ms FROM fast_samples WHERE host_id = '{host}' AND seq = {seq}"))
        };
        wait_for("all six samples", Duration::from_secs(20), || {
            (server.sql::<i64>(&format!("SELECT count(*) FROM fast_samples WHERE host_id = '{host}'")) == 6)
                .then_some(())
        });
        // From the fourth (three paced offsets) on, at the time they were sent.
        for seq in 4..=6 {
            let off = stored(seq) - sent_at[seq - 1];
            assert!(off.abs() < 2_000, "{host} seq {seq} stored {off} ms from when it was sent");
        }
        let skew_text = format!("10 min 0 s {side} the server");
        let (code, _, api) =
            http_get_with(&format!("http://{}/api/v1/hosts/{host}", server.http), Some(&cookie)).unwrap();
        assert_eq!(code, 200, "{api}");
        assert!(api.contains(&format!("clock is {skew_text}")), "the card's reason: {api}");
        let latest: String =
            server.sql(&format!("SELECT payload FROM latest WHERE host_id = '{host}' AND tier = 'fast'"));
        assert!(
            latest.contains(&format!("\"agent_ts_ms\":{}", sent_at[5] + skew)),
            "the agent's time is kept: {latest}"
        );
        let (_, _, page) = http_get_with(&format!("http://{}/hosts/{host}", server.http), Some(&cookie)).unwrap();
        assert!(page.contains(&format!("<th>Clock</th><td>{skew_text}</td>")), "{host}'s Clock row");
    }
    // A replay of a stored sample (the agent's time, as first sent) is a duplicate.
    let before = server.metric("pmon_recorder_duplicates_total");
    let (host, skew, _) = hosts[1];
    agents[1]
        .publish(&format!("pmon/v1/{host}/fast"), fast_json(host, "run", 5, sent_at[4] + skew).as_bytes())
        .unwrap();
    server.wait_metric("pmon_recorder_duplicates_total", before + 1);
    assert_eq!(server.sql::<i64>(&format!("SELECT count(*) FROM fast_samples WHERE host_id = '{host}'")), 6);
}
