use super::block::{self, Block, BLOCK_HOURS};
use super::cell::{self, Cell};
use super::codec::{put_stream, read_stream, Reader, LIMIT};
use super::*;
use crate::history;

#[test]
fn streams_round_trip_gaps_runs_and_extremes() {
    let cases: Vec<Vec<Option<i64>>> = vec![
        vec![],
        vec![None; 96],
        vec![Some(7); 96],
        (0..96).map(|i| Some(i * i - 40)).collect(),
        (0..96).map(|i| (i % 3 != 0).then_some(1000 + i % 2)).collect(),
        vec![Some(LIMIT), Some(-LIMIT), Some(0), Some(LIMIT), Some(LIMIT), None, Some(-LIMIT)],
    ];
    for values in cases {
        let mut bytes = Vec::new();
        put_stream(&mut bytes, &values);
        let mut r = Reader::new(&bytes);
        assert_eq!(read_stream(&mut r, values.len()).unwrap(), values);
        assert!(r.is_empty(), "the stream ends where it says");
    }
    // Beyond the limit a value saturates rather than wrapping.
    let mut bytes = Vec::new();
    put_stream(&mut bytes, &[Some(i64::MAX), Some(i64::MIN)]);
    assert_eq!(read_stream(&mut Reader::new(&bytes), 2).unwrap(), [Some(LIMIT), Some(-LIMIT)]);
    // A constant series of a block costs a few bytes.
    let mut bytes = Vec::new();
    put_stream(&mut bytes, &[Some(4096); 96]);
    assert!(bytes.len() <= 6, "{} bytes", bytes.len());
    // Truncated input is an error, not a panic.
    let mut bytes = Vec::new();
    put_stream(&mut bytes, &(0..20).map(|i| Some(i * 1000)).collect::<Vec<_>>());
    assert!(read_stream(&mut Reader::new(&bytes[..bytes.len() - 1]), 20).is_err());
}

/// A cell of `group` with every field set from `seed`; gauges with no values when
/// `seed` is a multiple of 5, as an agent's first sample without CPU.
fn sample_cell(group: Group, seed: i64) -> Cell {
    let mut fields = Vec::new();
    for metric in group.metrics() {
        match metric.agg {
            Agg::Gauge if seed % 5 == 0 => fields.extend([Some(0), None, None, None]),
            Agg::Gauge => fields.extend([Some(11), Some(seed - 3), Some(seed), Some(seed * 2 + 9)]),
            Agg::Max => fields.push(Some(1 << 40)),
            Agg::Last => fields.extend([Some(seed % 4), Some(3300)]),
            Agg::Share => fields.push(Some(seed % 13)),
        }
    }
    Cell { n: 12, fields }
}

#[test]
fn blocks_round_trip_every_group_and_skip_the_others() {
    let mut block = Block::new();
    for (i, group) in Group::ALL.into_iter().enumerate() {
        for subject in 0..3 {
            let slots: block::Slots = (0..BLOCK_HOURS)
                .map(|h| (h % 7 != subject).then(|| sample_cell(group, h * 31 + subject + i as i64 - 50)))
                .collect();
            block.insert((group, subject + 10 * i as i64), slots);
        }
    }
    let bytes = block::encode(&block);
    assert_eq!(block::decode(&bytes).unwrap(), block);
    let guests = block::decode_group(&bytes, Group::Guest).unwrap();
    assert_eq!(guests.len(), 3);
    assert_eq!(guests[0].1, block[&(Group::Guest, 30)]);
    assert!(block::decode(&bytes[..bytes.len() / 2]).is_err(), "a truncated block is an error");
    assert!(block::decode(&block::encode(&Block::new())).unwrap().is_empty());
}

#[test]
fn cells_merge_counts_means_extremes_and_counter_resets() {
    let mut a = sample_cell(Group::Pool, 7);
    let mut b = sample_cell(Group::Pool, 9);
    // Pool metrics: cap_pct and frag_pct (gauges), errors (counter).
    a.fields[8] = Some(40);
    a.fields[9] = Some(3000);
    b.fields[8] = Some(0);
    b.fields[9] = Some(3500);
    b.fields[0] = Some(33);
    let (old_a, old_b) = (a.clone(), b.clone());
    a.merge(Group::Pool, &b);
    assert_eq!(a.n, 24);
    assert_eq!(a.fields[cell::COUNT], Some(44));
    assert_eq!(a.fields[cell::MIN], Some(4), "the smaller minimum");
    assert_eq!(a.fields[cell::MAX], Some(27), "the larger maximum");
    assert_eq!(a.fields[cell::MEAN], Some((7 * 11 + 9 * 33) / 44 + 1), "mean weighed by counts, rounded");
    assert_eq!(&a.fields[8..10], &[Some(0), Some(3500)], "the later counter value: a zpool clear shows");
    let mut b = old_b;
    b.merge(Group::Pool, &old_a);
    assert_eq!(&b.fields[8..10], &[Some(0), Some(3500)], "merge order does not matter for counters");
    let mut empty = Cell::empty(Group::Pool);
    empty.merge(Group::Pool, &old_a);
    assert_eq!(empty.fields, old_a.fields);
}

fn day_start(days: i64) -> i64 {
    let now = crate::now_ms();
    now - now.rem_euclid(crate::partitions::DAY_MS) - days * crate::partitions::DAY_MS
}

/// Folds fast samples (every 5 minutes) and medium ones (a pool, a guest) for `days` days
/// ending at `end`, with values that move, through the writer's fold.
fn seed(conn: &mut Connection, parts: &mut Parts, host: &str, start: i64, end: i64) {
    let tx = conn.transaction().unwrap();
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS sp (host_id TEXT, ts_ms INTEGER, pool TEXT, cap_pct REAL, frag_pct REAL,
             read_errors INTEGER, write_errors INTEGER, checksum_errors INTEGER);
         CREATE TEMP TABLE IF NOT EXISTS sg (host_id TEXT, ts_ms INTEGER, vmid INTEGER, kind TEXT, status TEXT,
             cpu REAL, mem INTEGER, maxmem INTEGER);",
    )
    .unwrap();
    let mut ts = start;
    while ts < end {
        let k = ts / 300_000;
        tx.execute(
            "INSERT INTO fast_recent (host_id, ts_ms, seq, load1, cpu_pct, mem_total, mem_used, arc_bytes, rootfs_used)
             VALUES (?1, ?2, ?2, ?3, ?4, 68719476736, ?5, 8589934592, 1073741824)",
            rusqlite::params![
                host,
                ts,
                (k % 17) as f64 * 0.37,
                (k % 5 != 0).then_some((k % 101) as f64 * 0.93),
                34_000_000_000 + (k % 23) * 77_777_777
            ],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO sp VALUES (?1, ?2, 'rpool', ?3, 12.5, ?4, 0, 0)",
            rusqlite::params![host, ts, 40.0 + (k % 9) as f64 * 0.11, (k / 40) % 3],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO sg VALUES (?1, ?2, 101, 'vm', ?3, ?4, ?5, 4294967296)",
            rusqlite::params![
                host,
                ts,
                if k % 7 == 0 { "stopped" } else { "running" },
                (k % 11) as f64 * 0.031,
                2_000_000_000 + (k % 13) * 50_000_000
            ],
        )
        .unwrap();
        ts += 300_000;
    }
    fold(&tx, parts, Group::Host, "fast_recent", "1", &[]).unwrap();
    fold(&tx, parts, Group::Pool, "sp", "1", &[]).unwrap();
    fold(&tx, parts, Group::Guest, "sg", "1", &[]).unwrap();
    tx.execute_batch("DELETE FROM fast_recent; DELETE FROM sp; DELETE FROM sg").unwrap();
    tx.commit().unwrap();
}

fn tables(conn: &Connection, glob: &str) -> Vec<String> {
    crate::db::tables_matching(conn, glob).unwrap()
}

/// The year's history of every group, as the host page reads it.
fn year(conn: &Connection, end: i64) -> Vec<history::History> {
    Group::ALL.iter().map(|g| history::read(conn, *g, "pve1", end - 365 * DAY_MS, end).unwrap()).collect()
}

#[test]
fn packing_keeps_every_value_of_the_open_hour_tables() {
    // Hour tables as a database from before the packed tier holds them: open rows only.
    let dir = tempfile::tempdir().unwrap();
    let mut conn = crate::db::open_and_migrate(&dir.path().join("r.db")).unwrap();
    let mut parts = Parts::default();
    let end = day_start(0);
    seed(&mut conn, &mut parts, "pve1", end - 60 * DAY_MS, end);
    seed(&mut conn, &mut parts, "pve2", end - 20 * DAY_MS, end);
    let before = year(&conn, end);
    // Seeded: the host, a pool and a guest (Group::ALL order: host, pool, storage, guest).
    assert_eq!(before.iter().map(|h| h.subjects.len()).collect::<Vec<_>>(), [1, 1, 0, 1]);
    let old = reference_means(&conn, end);

    pack::pack_all(&mut conn, &mut parts, end + 5 * DAY_MS).unwrap();
    assert!(!tables(&conn, "rollpack_h_p*").is_empty());
    let open_rows: i64 = tables(&conn, "roll_*_h_p*")
        .iter()
        .map(|t| conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get::<_, i64>(0)).unwrap())
        .sum();
    assert_eq!(open_rows, 0, "every ended hour left the open tables");
    let after = year(&conn, end);
    assert_eq!(after, before, "the same points before and after packing");

    // The same means as the row-per-subject tier gave, within the packed precision.
    let host = &after[0].subjects[0];
    for (metric, hourly) in &old {
        let series = host.series(Group::Host, metric);
        let bucket = after[0].bucket_ms;
        for p in series {
            let hours = hourly.iter().filter(|(t, _, _)| t * 3_600_000 / bucket * bucket == p.ts_ms);
            let (sum, n) = hours.fold((0.0, 0.0), |(s, n), (_, hs, hn)| (s + hs, n + hn));
            let mean = sum / n;
            let quantum = 1.0 / Group::Host.metrics().iter().find(|m| m.name == *metric).unwrap().packed_scale();
            assert!((p.mean.unwrap() - mean).abs() <= quantum, "{metric} at {}: {:?} vs {mean}", p.ts_ms, p.mean);
        }
    }

    // A late sample of a packed hour lands in the open table, is read with the block, and
    // the next pass merges it.
    let late = end - 10 * DAY_MS;
    let tx = conn.transaction().unwrap();
    tx.execute(
        "INSERT INTO fast_recent (host_id, ts_ms, seq, load1, mem_total) VALUES ('pve1', ?1, ?1, 100, 68719476736)",
        [late + 1],
    )
    .unwrap();
    fold_recent(&tx, &mut parts).unwrap();
    tx.execute("DELETE FROM fast_recent", []).unwrap();
    tx.commit().unwrap();
    let read_max = |conn: &Connection| {
        let h = history::read(conn, Group::Host, "pve1", late - 15 * DAY_MS, late + 15 * DAY_MS).unwrap();
        h.subjects[0].series(Group::Host, "load1").iter().filter_map(|p| p.max).fold(0.0, f64::max)
    };
    assert_eq!(read_max(&conn), 100.0, "read from the open table before the next pass");
    pack::pack_all(&mut conn, &mut parts, end + 5 * DAY_MS).unwrap();
    assert_eq!(read_max(&conn), 100.0, "merged into its block");
    for table in tables(&conn, "roll_*_h_p*") {
        let part: i64 = table.rsplit_once("_p").unwrap().1.parse().unwrap();
        assert!(
            (part + 1) * Resolution::Hour.part_ms() > end + 5 * DAY_MS,
            "ended partitions' open tables go: {table}"
        );
    }
}

/// A metric's hours: (hour, sum, count).
type Hourly = Vec<(i64, f64, f64)>;

/// Per host metric, each hour's sum and count as the row-per-subject tables give them.
fn reference_means(conn: &Connection, end: i64) -> Vec<(&'static str, Hourly)> {
    let parts = Parts::load(conn).unwrap().overlapping(Resolution::Hour, end - 365 * DAY_MS, end);
    ["load1", "cpu_pct", "mem_used"]
        .into_iter()
        .map(|name| {
            let metric = Group::Host.metrics().iter().find(|m| m.name == name).unwrap();
            let mut hourly = Vec::new();
            for part in &parts {
                let sql = format!(
                    "SELECT t, {name}_sum, {name}_n FROM {} WHERE host = 1 AND {name}_n > 0 ORDER BY t",
                    Resolution::Hour.table(Group::Host, *part)
                );
                let mut stmt = conn.prepare(&sql).unwrap();
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, metric.decode(r.get(1)?), r.get(2)?))).unwrap();
                hourly.extend(rows.map(Result::unwrap));
            }
            (name, hourly)
        })
        .collect()
}

#[test]
fn retention_drops_packed_partitions_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = crate::db::open_and_migrate(&dir.path().join("r.db")).unwrap();
    let mut parts = Parts::default();
    let end = day_start(0);
    seed(&mut conn, &mut parts, "pve1", end - 100 * DAY_MS, end);
    pack::pack_all(&mut conn, &mut parts, end).unwrap();
    let packed = tables(&conn, "rollpack_h_p*");
    assert!(packed.len() >= 4, "{packed:?}");
    // Hours kept 40 days: the packed parts ending before then go.
    let keep = Keep { minute_ms: 2 * DAY_MS, hour_ms: 40 * DAY_MS };
    let first_kept = keep.first_kept_part(Resolution::Hour, end);
    let stale = stale_tables(&conn, keep, end).unwrap();
    let stale_packs: Vec<&String> = stale.iter().filter(|t| t.starts_with("rollpack_")).collect();
    assert_eq!(stale_packs.len(), packed.iter().filter(|t| t[12..].parse::<i64>().unwrap() < first_kept).count());
    assert!(!stale_packs.is_empty());
    let tx = conn.transaction().unwrap();
    parts.detach_before(&tx, Resolution::Hour, first_kept).unwrap();
    for table in &stale {
        tx.execute_batch(&format!("DROP TABLE {table}")).unwrap();
    }
    tx.commit().unwrap();
    assert!(stale_tables(&conn, keep, end).unwrap().is_empty());
    let h = history::read(&conn, Group::Host, "pve1", end - 365 * DAY_MS, end).unwrap();
    let first = h.subjects[0].series(Group::Host, "load1")[0].ts_ms;
    assert!(first >= first_kept * Resolution::Hour.part_ms(), "nothing before the kept window is read");
}
