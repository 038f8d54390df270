use super::*;
use crate::history::{self, Source};

/// The start of the day `days` ago: samples must be recent enough for the minute tier.
fn day_start(days: i64) -> i64 {
    let now = crate::now_ms();
    now - now.rem_euclid(DAY_MS) - days * DAY_MS
}

fn setup() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::db::open_and_migrate(&dir.path().join("r.db")).unwrap();
    (dir, conn)
}

fn recent(conn: &Connection, host: &str, ts_ms: i64, load1: f64, cpu_pct: Option<f64>) {
    conn.execute(
        "INSERT INTO fast_recent (host_id, ts_ms, seq, load1, cpu_pct, mem_total, mem_used, arc_bytes, rootfs_used)
         VALUES (?1, ?2, ?2, ?3, ?4, 68719476736, 34359738368, 8589934592, 1073741824)",
        rusqlite::params![host, ts_ms, load1, cpu_pct],
    )
    .unwrap();
}

fn settle(conn: &mut Connection, parts: &mut Parts) {
    let tx = conn.transaction().unwrap();
    fold_recent(&tx, parts).unwrap();
    tx.execute("DELETE FROM fast_recent", []).unwrap();
    tx.commit().unwrap();
}

fn host_history(conn: &Connection, start: i64, end: i64) -> history::History {
    history::read(conn, Group::Host, "pve1", start, end).unwrap()
}

#[test]
fn samples_fold_into_minutes_and_hours_across_settles() {
    let t0 = day_start(1);
    let (_dir, mut conn) = setup();
    let mut parts = Parts::default();
    // Minute 0: loads 1, 2 (first settle) and 6 (second settle); minute 1: load 4.
    // The first sample has no CPU yet (the agent's first cycle): it must not pull the mean.
    recent(&conn, "pve1", t0, 1.0, None);
    recent(&conn, "pve1", t0 + 20_000, 2.0, Some(10.0));
    recent(&conn, "other", t0 + 20_000, 9.0, Some(90.0));
    settle(&mut conn, &mut parts);
    recent(&conn, "pve1", t0 + 40_000, 6.0, Some(30.0));
    recent(&conn, "pve1", t0 + 60_000, 4.0, Some(50.0));
    settle(&mut conn, &mut parts);

    let minute = Resolution::Minute.table(Group::Host, Resolution::Minute.part_of(t0));
    let row: (i64, i64, i64, i64, i64, i64) = conn
        .query_row(
            &format!(
                "SELECT n, load1_min, load1_max, load1_sum, cpu_pct_n, cpu_pct_sum FROM {minute}
                 WHERE host = (SELECT id FROM rollup_hosts WHERE host_id = 'pve1') AND t = ?1"
            ),
            [t0 / MINUTE_MS],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(row, (3, 100, 600, 900, 2, 4000));

    // Read back through the hour rollup over a long range: one bucket holds all four.
    let year = host_history(&conn, t0 - 364 * DAY_MS, t0 + DAY_MS);
    assert_eq!(year.source, Source::Rollup(Resolution::Hour));
    assert_eq!(year.subjects.len(), 1);
    let load = year.subjects[0].series(Group::Host, "load1");
    assert_eq!(load.len(), 1);
    assert_eq!((load[0].min, load[0].max), (Some(1.0), Some(6.0)));
    assert_eq!(load[0].mean, Some(13.0 / 4.0));
    let cpu = year.subjects[0].series(Group::Host, "cpu_pct");
    assert_eq!(cpu[0].mean, Some(30.0), "the missing first CPU value is not a zero");
    let free = year.subjects[0].series(Group::Host, "mem_used_without_arc");
    assert_eq!(free[0].mean, Some(24.0 * 1024.0 * 1024.0 * 1024.0));
    assert_eq!(year.subjects[0].series(Group::Host, "mem_total")[0].mean, Some(64.0 * 1024.0 * 1024.0 * 1024.0));

    // Through the minute rollup: two buckets of a minute.
    let week = host_history(&conn, t0 - 6 * DAY_MS, t0 + DAY_MS);
    assert_eq!(week.source, Source::Rollup(Resolution::Minute));
    let load = week.subjects[0].series(Group::Host, "load1");
    assert_eq!(week.bucket_ms, 11 * MINUTE_MS);
    assert_eq!(load.len(), 1, "both minutes fall in one 11-minute bucket");
    let day = history::read(&conn, Group::Host, "pve1", t0, t0 + 2 * DAY_MS).unwrap();
    assert_eq!(day.source, Source::Raw, "48 h come from raw samples");
}

#[test]
fn medium_rows_fold_per_subject_and_counters_keep_their_last_value() {
    let t0 = day_start(1);
    let (_dir, mut conn) = setup();
    let mut parts = Parts::default();
    let hour = crate::partitions::hour_of(t0);
    let tx = conn.transaction().unwrap();
    crate::partitions::create(&tx, hour).unwrap();
    let guests = crate::partitions::Series::Guest.table(hour);
    let pools = crate::partitions::Series::Pool.table(hour);
    let storages = crate::partitions::Series::Storage.table(hour);
    for (ts, status, errors) in [(t0, "running", 5), (t0 + 300_000, "stopped", 2)] {
        tx.execute(
            &format!("INSERT INTO {guests} (host_id, ts_ms, vmid, kind, status, cpu, mem, maxmem) VALUES ('pve1', ?1, 101, 'vm', ?2, 0.25, 1024, 4096)"),
            rusqlite::params![ts, status],
        )
        .unwrap();
        tx.execute(
            &format!("INSERT INTO {pools} (host_id, ts_ms, pool, state, cap_pct, read_errors, write_errors, checksum_errors) VALUES ('pve1', ?1, 'rpool', 'ONLINE', 41.5, ?2, 0, 0)"),
            rusqlite::params![ts, errors],
        )
        .unwrap();
        let tables = [(Group::Pool, pools.clone()), (Group::Storage, storages.clone()), (Group::Guest, guests.clone())];
        fold_medium(&tx, &mut parts, &tables, "pve1", ts).unwrap();
    }
    tx.commit().unwrap();

    let year = history::read(&conn, Group::Guest, "pve1", t0 - 300 * DAY_MS, t0 + DAY_MS).unwrap();
    assert_eq!(year.subjects.len(), 1);
    assert_eq!(year.subjects[0].name, "vm/101");
    assert_eq!(year.subjects[0].series(Group::Guest, "running")[0].mean, Some(50.0));
    assert_eq!(year.subjects[0].series(Group::Guest, "cpu")[0].mean, Some(0.25));
    let pools = history::read(&conn, Group::Pool, "pve1", t0 - 300 * DAY_MS, t0 + DAY_MS).unwrap();
    assert_eq!(pools.subjects[0].name, "rpool");
    assert_eq!(pools.subjects[0].series(Group::Pool, "cap_pct")[0].mean, Some(41.5));
    let hour_table = Resolution::Hour.table(Group::Pool, Resolution::Hour.part_of(t0));
    let last: i64 = conn.query_row(&format!("SELECT errors_last FROM {hour_table}"), [], |r| r.get(0)).unwrap();
    assert_eq!(last, 2, "a counter keeps its latest value (after a zpool clear), not its largest");
}

#[test]
fn stale_partitions_are_detached_and_found_for_dropping() {
    let t0 = day_start(45);
    let (_dir, mut conn) = setup();
    let mut parts = Parts::default().keeping(Keep { minute_ms: 100 * DAY_MS, hour_ms: 730 * DAY_MS });
    for day in [0, 1, 40] {
        recent(&conn, "pve1", t0 + day * DAY_MS, 1.0, Some(1.0));
    }
    settle(&mut conn, &mut parts);
    // Hours are kept 5 days: the 32-day parts of days 0 and 1 end before day 36.
    let keep = Keep { minute_ms: 2 * DAY_MS, hour_ms: 5 * DAY_MS };
    let now = t0 + 41 * DAY_MS;
    let hour_parts =
        |days: &[i64]| days.iter().map(|d| Resolution::Hour.part_of(t0 + d * DAY_MS)).collect::<BTreeSet<_>>();
    assert_eq!(Parts::load(&conn).unwrap().known.len(), 3 + hour_parts(&[0, 1, 40]).len());
    let stale = stale_tables(&conn, keep, now).unwrap();
    // Minute days 0 and 1 (everything but day 40) and the hour parts of days 0 and 1.
    let groups_in = |r: Resolution| Group::ALL.iter().filter(|g| g.resolutions().contains(&r)).count();
    let expected = 2 * groups_in(Resolution::Minute) + hour_parts(&[0, 1]).len() * groups_in(Resolution::Hour);
    assert_eq!(stale.len(), expected, "{stale:?}");
    let tx = conn.transaction().unwrap();
    for resolution in Resolution::ALL {
        parts.detach_before(&tx, resolution, keep.first_kept_part(resolution, now)).unwrap();
    }
    for table in &stale {
        tx.execute_batch(&format!("DROP TABLE {table}")).unwrap();
    }
    tx.commit().unwrap();
    assert!(stale_tables(&conn, keep, now).unwrap().is_empty());
    let left = Parts::load(&conn).unwrap();
    assert_eq!(left.overlapping(Resolution::Minute, t0, t0 + 50 * DAY_MS), vec![Resolution::Minute.part_of(t0) + 40]);
    let year = host_history(&conn, now - 364 * DAY_MS, now);
    assert_eq!(year.subjects[0].series(Group::Host, "load1").len(), 1, "only day 40 is left");
}

#[test]
fn read_hosts_reads_the_asked_hosts_in_one_query_by_key() {
    let t0 = day_start(1);
    let (_dir, conn) = setup();
    for (host, load) in [("pve1", 1.0), ("pve2", 2.0), ("other", 9.0)] {
        recent(&conn, host, t0, load, Some(10.0 * load));
        recent(&conn, host, t0 + 30_000, load, Some(20.0 * load));
        recent(&conn, host, t0 + 90_000, load, None);
    }
    let metrics = ["cpu_pct", "mem_used_without_arc", "mem_total"];
    let read = |hosts: &[&str]| history::read_hosts(&conn, &metrics, hosts, t0, t0 + HOUR_MS, MINUTE_MS).unwrap();
    let got = read(&["pve2", "pve1", "nobody"]);
    let hosts: Vec<&str> = got.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(hosts, ["pve1", "pve2"], "only the hosts asked for that have samples, by id");
    let (_, series) = &got[1];
    assert_eq!(series.len(), 3, "one series per metric asked for");
    let cpu: Vec<(i64, Option<f64>)> = series[0].iter().map(|p| (p.ts_ms, p.mean)).collect();
    assert_eq!(cpu, [(t0, Some(30.0)), (t0 + MINUTE_MS, None)], "minute buckets; a missing value stays missing");
    assert_eq!(series[1][0].mean, Some(24.0 * 1024.0 * 1024.0 * 1024.0));
    assert!(read(&[]).is_empty());
    assert!(history::read_hosts(&conn, &["no_such_metric"], &["pve1"], t0, t0 + HOUR_MS, MINUTE_MS).is_err());

    // In the hour tables (host-first keys) the hosts are found by key, not by a scan.
    let tx = conn.unchecked_transaction().unwrap();
    crate::partitions::create(&tx, crate::partitions::hour_of(t0)).unwrap();
    tx.commit().unwrap();
    let cpu_metric = Group::Host.metrics().iter().find(|m| m.name == "cpu_pct").unwrap();
    let sql = history::hosts_sql(&[cpu_metric], 2, MINUTE_MS);
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(rusqlite::params!["pve1", "pve2", t0, t0 + HOUR_MS], |r| r.get(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let hour_table = crate::partitions::Series::Fast.table(crate::partitions::hour_of(t0));
    assert!(plan.iter().any(|p| p.starts_with(&format!("SEARCH {hour_table}"))), "{plan:?}");
    assert!(!plan.iter().any(|p| p.starts_with(&format!("SCAN {hour_table}"))), "{plan:?}");
}

#[test]
fn samples_older_than_a_resolution_keeps_are_not_folded_into_it() {
    let (_dir, mut conn) = setup();
    let mut parts = Parts::default();
    recent(&conn, "pve1", day_start(40), 1.0, Some(1.0));
    settle(&mut conn, &mut parts);
    let loaded = Parts::load(&conn).unwrap();
    assert_eq!(loaded.known.len(), 1, "an hour part, no minute part beyond 30 days");
    assert!(loaded.known.iter().all(|(r, _)| *r == Resolution::Hour));
}
