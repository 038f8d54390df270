//! The recorder's writer alone (no MQTT), on a real SQLite file:
//! 1. how many fast samples per second it commits in batches;
//! 2. database bytes per host-day at the default intervals, with a realistic medium tier;
//! 3. one retention pass over 49 h of 1,000 hosts (the oldest hour goes), its total time
//!    and its longest single chunk (the longest ingest pause).
//!
//! `cargo build --release -p integration --bins && target/release/bench_writer`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::samples::{fast, medium};
use recorder::ingest::Item;
use recorder::partitions::{self, hour_of, Series, HOUR_MS};
use recorder::writer::Writer;
use recorder::{Retention, Stats};
use wire::now_ms;

fn db_bytes(conn: &rusqlite::Connection) -> i64 {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    pages * size
}

struct Bench {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    writer: Writer,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    checkpointer: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Bench {
    /// A migrated database with `hosts` hosts, the writer, and the checkpoint thread, as
    /// in `serve`.
    fn new(hosts: usize) -> (Bench, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let mut conn = recorder::db::open_and_migrate(&path).unwrap();
        let names: Vec<String> = (0..hosts).map(|i| format!("host-{i:05}")).collect();
        for n in &names {
            recorder::hosts::add_host(&mut conn, n).unwrap();
        }
        drop(conn);
        let conn = recorder::db::open_writer(&path).unwrap();
        let stats = Arc::new(Stats::default());
        let (live, _) = tokio::sync::broadcast::channel(1024);
        let writer = Writer::new(conn, live, stats.clone(), Retention::raw(Duration::from_secs(48 * 3600))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let checkpointer = {
            let (path, stop, stats) = (path.clone(), stop.clone(), stats.clone());
            Some(std::thread::spawn(move || recorder::db::checkpoint(&path, &stop, &stats.wal_pages)))
        };
        (Bench { _dir: dir, path, writer, stats, stop, checkpointer }, names)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.checkpointer.take() {
            let _ = t.join();
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--prune-only") {
        ingest_and_size();
    }
    if !std::env::args().any(|a| a == "--no-prune") {
        retention();
    }
}

fn ingest_and_size() {
    // 1. Throughput: 400,000 fast samples of 500 hosts in batches of 500, one sample per
    //    host: the shape of a 25 ms batch window at 20,000 samples/s.
    let (mut b, names) = Bench::new(500);
    let total = 400_000u64;
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    for seq in 1..=total / names.len() as u64 {
        let items: Vec<Item> = names.iter().map(|h| fast(h, seq, now_ms())).collect();
        for chunk in items.chunks(500) {
            let t = Instant::now();
            b.writer.write(&mut chunk.to_vec());
            worst = worst.max(t.elapsed());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "1. writer: {total} fast samples in {secs:.2} s = {:.0} samples/s (JSON parse included); slowest batch of 500 (settles included): {} ms",
        total as f64 / secs,
        worst.as_millis()
    );
    drop(b);

    // 2. One host-day at the default intervals (2,880 fast, 288 medium), 20 hosts.
    let (mut b, names) = Bench::new(20);
    let conn = rusqlite::Connection::open(&b.path).unwrap();
    let before = db_bytes(&conn);
    let day_start = now_ms() - 86_400_000;
    for i in 0..2880u64 {
        let ts = day_start + i as i64 * 30_000;
        let mut batch: Vec<Item> = names.iter().map(|h| fast(h, i + 1, ts)).collect();
        if i % 10 == 0 {
            batch.extend(names.iter().map(|h| medium(h, i / 10 + 1, ts)));
        }
        b.writer.write(&mut batch);
    }
    b.writer.write_and_settle(&mut Vec::new());
    let per_host_day = (db_bytes(&conn) - before) / names.len() as i64;
    println!(
        "2. database growth per host-day (2,880 fast + 288 medium: 2 pools, 4 storages, 15 guests): {:.2} MiB",
        per_host_day as f64 / 1048576.0
    );
    drop(conn);
    drop(b);
}

fn retention() {
    // 3. Retention: 49 h of 1,000 hosts at the default intervals, filled in SQL: fast
    //    samples every 30 s, and every 5 min 2 pools, 4 storages and 15 guests.
    let (mut b, names) = Bench::new(1000);
    let mut conn = rusqlite::Connection::open(&b.path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let t = Instant::now();
    let current = hour_of(now_ms());
    let tx = conn.transaction().unwrap();
    // The 49 whole hours before the current one: the oldest is stale.
    for hour in current - 49..current {
        partitions::create(&tx, hour).unwrap();
        let mut rows = tx
            .execute(
                &format!(
                    "WITH RECURSIVE t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < 119)
                     INSERT INTO {} (host_id, ts_ms, seq, load1, load5, load15, cpu_pct, mem_total, mem_used)
                     SELECT h.host_id, ?1 + t.i * 30000, ?2 + t.i, 0.4, 0.3, 0.3, 7.5, 67350102016, 26536796160
                     FROM hosts h, t",
                    Series::Fast.table(hour)
                ),
                [hour * HOUR_MS, hour * 120 + 1],
            )
            .unwrap();
        for (series, columns, values, per) in [
            (
                Series::Pool,
                "pool, state, cap_pct, frag_pct, read_errors, write_errors, checksum_errors",
                "'pool' || k.j, 'ONLINE', 50.0, 12.0, 0, 0, 0",
                2,
            ),
            (Series::Storage, "storage, used, total", "'local' || k.j, 1000, 2000", 4),
            (Series::Guest, "vmid, kind, status, cpu, mem, maxmem", "100 + k.j, 'vm', 'running', 0.05, 1, 2", 15),
        ] {
            rows += tx
                .execute(
                    &format!(
                        "WITH RECURSIVE t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < 11),
                                       k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < {})
                         INSERT INTO {} (host_id, ts_ms, {columns})
                         SELECT h.host_id, ?1 + t.i * 300000, {values} FROM hosts h, t, k",
                        per - 1,
                        series.table(hour)
                    ),
                    [hour * HOUR_MS],
                )
                .unwrap();
        }
        partitions::add_rows(&tx, hour, rows as i64).unwrap();
    }
    tx.commit().unwrap();
    // The fill is one 18-million-row transaction, a WAL of gigabytes that ingest never
    // makes: copy it into the database first, as the checkpoint thread long since would
    // have in a server that collected these 49 hours, and let the kernel write the
    // gigabytes back to disk, which it otherwise does during the pass.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let _ = std::process::Command::new("sync").status();
    // As in a running server, the writer has been ingesting: its own connection knows the
    // schema and holds the current hour's pages.
    b.writer.write_and_settle(&mut names.iter().map(|h| fast(h, 1, now_ms())).collect());
    let count =
        |table: &str| conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0)).unwrap();
    let rows: i64 = ["fast_samples", "pool_samples", "storage_samples", "guest_samples"].iter().map(|t| count(t)).sum();
    // The worst case for the stale hour: none of the database file in the OS page cache
    // (GNU dd asks the kernel to drop a file's cached pages). The WAL stays cached, as in
    // a running server, which appends to it every few milliseconds.
    let cold = std::process::Command::new("dd")
        .args([format!("if={}", b.path.display()), "iflag=nocache".into(), "count=0".into(), "status=none".into()])
        .status()
        .is_ok_and(|s| s.success());
    println!(
        "3. filled {rows} rows (49 h × 1,000 hosts) in {:.0} s; {}",
        t.elapsed().as_secs_f64(),
        if cold { "database file dropped from the page cache" } else { "page cache kept (dd failed)" }
    );
    b.writer.prune_now();
    let after: i64 =
        ["fast_samples", "pool_samples", "storage_samples", "guest_samples"].iter().map(|t| count(t)).sum();
    println!(
        "   retention pass: pruned {} rows in {} ms in all; longest single chunk (ingest pause) {:.1} ms",
        rows - after,
        b.stats.last_prune_ms.load(Ordering::Relaxed),
        b.stats.last_prune_longest_chunk_us.load(Ordering::Relaxed) as f64 / 1000.0
    );
}
