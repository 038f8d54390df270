//! History benchmark: the size of the minute and hour rollups per host, and the time of a
//! host page's history reads, on a database seeded through the rollup code itself (the
//! same `rollup::fold` the writer runs as samples settle).
//!
//! A typical host: fast samples every 30 s (minute tier) with varying values, and every
//! medium sample (2 pools, 4 storages, 15 guests) every 300 s, the agent's defaults. The
//! hour tier is seeded for a year with fast samples every 300 s: its rows are one per
//! hour whatever the sample rate. Ended blocks of hours are then packed
//! (`rollup::pack::pack_all`, as the writer's packing passes do).
//!
//! `cargo build --release -p integration --bins && target/release/bench_history --hosts 20`

use std::time::Instant;

use recorder::history;
use recorder::rollup::{self, Group, Parts, Resolution};
use rusqlite::{params, Connection};

const DAY_MS: i64 = 86_400_000;

fn arg(name: &str, default: i64) -> i64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().expect(name))
}

/// A cheap deterministic wobble in [0, 1): values vary like a real host's, so that the
/// stored integers have realistic sizes.
fn wobble(seed: i64) -> f64 {
    let x = (seed.wrapping_mul(2_654_435_761) ^ (seed >> 7)).rem_euclid(10_000);
    x as f64 / 10_000.0
}

fn stage(conn: &Connection) {
    conn.execute_batch(
        "CREATE TEMP TABLE stage_pool (host_id TEXT, ts_ms INTEGER, pool TEXT, state TEXT, cap_pct REAL,
             frag_pct REAL, alloc INTEGER, size INTEGER, read_errors INTEGER, write_errors INTEGER,
             checksum_errors INTEGER);
         CREATE TEMP TABLE stage_storage (host_id TEXT, ts_ms INTEGER, storage TEXT, used INTEGER, total INTEGER);
         CREATE TEMP TABLE stage_guest (host_id TEXT, ts_ms INTEGER, vmid INTEGER, kind TEXT, status TEXT,
             cpu REAL, mem INTEGER, maxmem INTEGER);",
    )
    .unwrap();
}

/// Seeds `days` days ending at `end_ms` for `hosts` hosts, a day per transaction.
fn seed(conn: &mut Connection, parts: &mut Parts, hosts: i64, days: i64, end_ms: i64, fast_every_ms: i64) {
    let start = end_ms - days * DAY_MS;
    for day in 0..days {
        let tx = conn.transaction().unwrap();
        let day_start = start + day * DAY_MS;
        {
            let mut fast = tx
                .prepare(
                    "INSERT INTO fast_recent (host_id, ts_ms, seq, load1, load5, load15, cpu_pct, iowait_pct,
                         mem_total, mem_used, arc_bytes, swap_total, swap_used, rootfs_total, rootfs_used)
                     VALUES (?1, ?2, ?2, ?3, ?3 * 0.9, ?3 * 0.8, ?4, ?4 / 20, 137438953472, ?5, 34359738368,
                         8589930496, 104857600, 107374182400, ?6)",
                )
                .unwrap();
            let mut pool =
                tx.prepare("INSERT INTO stage_pool VALUES (?1, ?2, ?3, 'ONLINE', ?4, ?5, 0, 0, 0, 0, 0)").unwrap();
            let mut storage = tx.prepare("INSERT INTO stage_storage VALUES (?1, ?2, ?3, ?4, 1099511627776)").unwrap();
            let mut guest =
                tx.prepare("INSERT INTO stage_guest VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, 4294967296)").unwrap();
            for h in 0..hosts {
                let host = format!("host-{h:05}");
                let mut ts = day_start;
                while ts < day_start + DAY_MS {
                    let w = wobble(ts / 1000 + h);
                    let mem = 68_719_476_736.0 + w * 34_359_738_368.0;
                    fast.execute(params![host, ts, 0.5 + 12.0 * w, 100.0 * w, mem as i64, 21_474_836_480 + ts / 1000])
                        .unwrap();
                    if ts % 300_000 == 0 {
                        for (i, name) in ["rpool", "tank"].iter().enumerate() {
                            pool.execute(params![host, ts, name, 50.0 + w + i as f64, 12.0 + w]).unwrap();
                        }
                        for (i, name) in ["local", "local-zfs", "nfs-backup", "pbs"].iter().enumerate() {
                            storage.execute(params![host, ts, name, (1i64 << 38) + ts / 1000 + i as i64]).unwrap();
                        }
                        for vmid in (100..110).chain(200..205) {
                            let kind = if vmid < 200 { "vm" } else { "ct" };
                            let g = wobble(ts / 1000 + vmid);
                            guest.execute(params![host, ts, vmid, kind, g * 0.3, (2.0e9 + g * 1.0e9) as i64]).unwrap();
                        }
                    }
                    ts += fast_every_ms;
                }
            }
        }
        rollup::fold_recent(&tx, parts).unwrap();
        for (group, table) in
            [(Group::Pool, "stage_pool"), (Group::Storage, "stage_storage"), (Group::Guest, "stage_guest")]
        {
            rollup::fold(&tx, parts, group, table, "1", &[]).unwrap();
        }
        tx.execute_batch(
            "DELETE FROM fast_recent; DELETE FROM stage_pool; DELETE FROM stage_storage; DELETE FROM stage_guest",
        )
        .unwrap();
        tx.commit().unwrap();
    }
}

/// Bytes of the tables named by `glob` (pages, as on disk).
fn bytes_of(conn: &Connection, glob: &str) -> i64 {
    conn.query_row("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name GLOB ?1", [glob], |r| r.get(0)).unwrap()
}

/// Bytes of the open rollup tables of `resolution`.
fn rollup_bytes(conn: &Connection, resolution: Resolution) -> i64 {
    bytes_of(conn, &format!("roll_*_{}_p*", resolution.code()))
}

/// Packs the ended blocks of hours, as the writer does, and says how long it took.
fn pack(conn: &mut Connection, parts: &mut Parts, now: i64) {
    let started = Instant::now();
    rollup::pack::pack_all(conn, parts, now).unwrap();
    println!("packed the ended blocks of hours in {:.1} s", started.elapsed().as_secs_f64());
}

/// Milliseconds of each of `runs` reads of `groups` for one host (all four: the host
/// page's reads).
fn time_reads(conn: &Connection, groups: &[Group], host: &str, start_ms: i64, end_ms: i64, runs: usize) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            let mut points = 0;
            for group in groups {
                let h = history::read(conn, *group, host, start_ms, end_ms).unwrap();
                points += h.subjects.iter().map(|s| s.series.iter().map(Vec::len).sum::<usize>()).sum::<usize>();
            }
            assert!(points > 0, "the reads found no points");
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let (min, median, max) = (ms[0], ms[ms.len() / 2], ms[ms.len() - 1]);
    format!("min {min:.1} ms, median {median:.1} ms, max {max:.1} ms ({} runs)", ms.len())
}

/// Prints the read times of every group together and of each alone, over `days`.
fn print_reads(conn: &Connection, end: i64, days: i64) {
    let start = end - days * DAY_MS;
    let first = time_reads(conn, &Group::ALL, "host-00000", start, end, 1);
    let all = time_reads(conn, &Group::ALL, "host-00000", start, end, 20);
    println!("{days}-day host page reads (4 groups): first {:.1} ms; {}", first[0], summary(all));
    for group in Group::ALL {
        let source = history::Source::for_span(group, days * DAY_MS);
        let ms = time_reads(conn, &[group], "host-00000", start, end, 20);
        println!("  {:<8} ({source:?}): {}", group.name(), summary(ms));
    }
}

fn main() {
    let hosts = arg("--hosts", 20);
    let dir = tempfile::tempdir().unwrap();
    let now = wire::now_ms();
    let end = now - now.rem_euclid(DAY_MS);
    const MIB: f64 = 1024.0 * 1024.0;

    let mut month = recorder::db::open_and_migrate(&dir.path().join("month.db")).unwrap();
    stage(&month);
    let mut parts = Parts::default();
    let started = Instant::now();
    seed(&mut month, &mut parts, hosts, 30, end, 30_000);
    println!(
        "seeded 30 days x {hosts} hosts (fast every 30 s, medium every 300 s) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    pack(&mut month, &mut parts, now);
    let minute = rollup_bytes(&month, Resolution::Minute) as f64;
    println!("minute tier: {:.2} MiB per host-month (target <= 10 MiB)", minute / hosts as f64 / MIB);
    print_reads(&month, end, 7);
    print_reads(&month, end, 30);

    let mut year = recorder::db::open_and_migrate(&dir.path().join("year.db")).unwrap();
    stage(&year);
    let mut parts = Parts::default();
    let started = Instant::now();
    seed(&mut year, &mut parts, hosts, 365, end, 300_000);
    println!(
        "seeded 365 days x {hosts} hosts (fast and medium every 300 s) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    pack(&mut year, &mut parts, now);
    let (open, packed) = (rollup_bytes(&year, Resolution::Hour) as f64, bytes_of(&year, "rollpack_h_p*") as f64);
    let per_host = |bytes: f64| bytes / hosts as f64 / MIB;
    println!(
        "hour tier: {:.2} MiB per host-year (target <= 2 MiB): packed {:.2} MiB, open (the block not ended yet) {:.2} MiB",
        per_host(open + packed),
        per_host(packed),
        per_host(open)
    );
    print_reads(&year, end, 30);
    print_reads(&year, end, 365);
}
