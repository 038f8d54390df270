use recorder::history::{self, Point, Source};
use recorder::rollup::Resolution;

use super::*;
use crate::demo::fleet::FLAKY;

/// Gaps longer than two buckets, as the charts draw them.
fn gaps(points: &[Point], bucket_ms: i64) -> usize {
    points.windows(2).filter(|w| w[1].ts_ms - w[0].ts_ms > 2 * bucket_ms).count()
}

#[test]
fn a_seeded_year_fills_every_range_and_the_flaky_host_has_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("demo.db");
    let now = wire::now_ms();
    let hosts: Vec<HostModel> = [0, 1, FLAKY].into_iter().map(|i| HostModel::new(i, now)).collect();
    {
        let mut conn = recorder::db::open_and_migrate(&database).unwrap();
        for host in &hosts {
            recorder::hosts::add_host(&mut conn, &host.name()).unwrap();
        }
    }
    assert!(seed_raw(&database, &hosts, now).unwrap() > 3 * 2000);
    let mut days = 0;
    seed_rollups(&database, &hosts, now - 365 * DAY, now - RAW_MS, |_| days += 1).unwrap();
    assert!((363..=365).contains(&days), "{days} transactions");

    let conn = recorder::db::open_read(&database).unwrap();
    let read = |group, host, span| history::read(&conn, group, host, now - span, now).unwrap();

    let year = read(Group::Host, "pve-01", 365 * DAY);
    assert_eq!(year.source, Source::Rollup(Resolution::Hour));
    let mem = year.subjects[0].series(Group::Host, "mem_used");
    assert!(mem.len() >= 300 && mem.iter().all(|p| p.mean.is_some()), "{} buckets in a year", mem.len());
    assert!(mem[0].ts_ms < now - 360 * DAY, "the year starts a year ago: {}", mem[0].ts_ms);

    let month = read(Group::Host, "pve-01", 20 * DAY);
    assert_eq!(month.source, Source::Rollup(Resolution::Minute));
    let load = month.subjects[0].series(Group::Host, "load1");
    assert!(load.len() >= 900, "{} buckets in 20 days", load.len());
    assert_eq!(gaps(load, month.bucket_ms), 0, "pve-01 was never out for long");
    let flaky = read(Group::Host, "pve-08", 20 * DAY);
    assert!(gaps(flaky.subjects[0].series(Group::Host, "load1"), flaky.bucket_ms) >= 3, "the flaky host has gaps");

    let day = read(Group::Host, "pve-01", 24 * HOUR);
    assert_eq!(day.source, Source::Raw);
    assert!(day.subjects[0].series(Group::Host, "cpu_pct").len() >= 600);
    let flaky_day = read(Group::Host, "pve-08", 24 * HOUR);
    assert!(gaps(flaky_day.subjects[0].series(Group::Host, "cpu_pct"), flaky_day.bucket_ms) >= 2);
    let guests = read(Group::Guest, "pve-01", 7 * DAY);
    assert_eq!(guests.subjects.len(), 9, "every guest of pve-01 has a series");
    // Guests beyond the raw window come by the hour: 7 days are 168 buckets.
    assert!(guests.subjects.iter().all(|s| s.series(Group::Guest, "cpu").len() >= 160));

    // Hosts differ: pve-01 and pve-02 use different shares of their memory.
    let share = |host| {
        let h = read(Group::Host, host, 7 * DAY);
        let used = h.subjects[0].series(Group::Host, "mem_used");
        let total = h.subjects[0].series(Group::Host, "mem_total");
        used.iter().zip(total).map(|(u, t)| u.mean.unwrap() / t.mean.unwrap()).sum::<f64>() / used.len() as f64
    };
    let (a, b) = (share("pve-01"), share("pve-02"));
    assert!((a - b).abs() > 0.05, "memory shares {a} and {b}");

    // The year's minute partitions were dropped, as retention would.
    let parts = Parts::load(&conn).unwrap();
    assert!(parts.overlapping(Resolution::Minute, now - 365 * DAY, now - 31 * DAY).is_empty());
    assert!(!parts.overlapping(Resolution::Minute, now - 29 * DAY, now).is_empty());
}
