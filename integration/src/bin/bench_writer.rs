//! The recorder's writer alone (no MQTT): how many fast samples per second SQLite takes
//! in batches, and what one retention pass over 48 h of 1,000 hosts costs.
//!
//! `cargo build --release -p integration --bin bench_writer && target/release/bench_writer`

use std::sync::Arc;
use std::time::{Duration, Instant};

use recorder::ingest::{parse, Item};
use recorder::writer::Writer;
use recorder::{now_ms, Stats};

fn fast(host: &str, seq: u64, ts_ms: i64) -> Item {
    let json = format!(
        r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts_ms},"boot_id":"bench","seq":{seq},"agent_version":"bench","data":{{"cpus":16,"load1":0.42,"load5":0.37,"load15":0.31,"cpu_pct":7.5,"iowait_pct":0.4,"mem_total":67350102016,"mem_used":26536796160,"arc_bytes":8589934592,"swap_total":8589930496,"swap_used":0,"rootfs_total":100861726720,"rootfs_used":12315713536,"uptime_s":1218237}}}}"#
    );
    parse(format!("pmon/v1/{host}/fast").as_bytes(), json.as_bytes(), now_ms()).unwrap()
}

fn main() {
    let hosts = 1000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let mut conn = recorder::db::open_and_migrate(&path).unwrap();
    let names: Vec<String> = (0..hosts).map(|i| format!("host-{i:05}")).collect();
    for n in &names {
        recorder::hosts::add_host(&mut conn, n).unwrap();
    }
    let stats = Arc::new(Stats::default());
    let (live, _rx) = tokio::sync::broadcast::channel(1024);
    let mut writer = Writer::new(conn, live, stats.clone(), Duration::from_secs(48 * 3600)).unwrap();

    // 1. Throughput: 200,000 samples in batches of 2,000 (what queues during a commit).
    let total = 200_000u64;
    let start = Instant::now();
    let mut seq = 0;
    let mut worst = Duration::ZERO;
    while seq < total / hosts as u64 {
        seq += 1;
        let mut batch: Vec<Item> = names.iter().map(|h| fast(h, seq, now_ms())).collect();
        for chunk in batch.chunks_mut(2000) {
            let mut v = chunk.to_vec();
            let t = Instant::now();
            writer.write(&mut v);
            worst = worst.max(t.elapsed());
        }
        batch.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("writer: {total} fast samples in {secs:.2} s = {:.0} samples/s (incl. JSON parse); slowest batch of 2,000: {} ms", total as f64 / secs, worst.as_millis());

    // 2. Retention: fill 49 h of 1,000 hosts at the default 30 s interval directly in SQL
    //    (5.9 M rows), then one pass prunes the oldest hour.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let now = now_ms();
    let t = Instant::now();
    conn.execute_batch("BEGIN").unwrap();
    conn.execute(
        "WITH RECURSIVE t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < 5879)
         INSERT INTO fast_samples (host_id, ts_ms, load1, load5, load15, cpu_pct, mem_total, mem_used)
         SELECT h.host_id, ?1 - t.i * 30000, 0.4, 0.3, 0.3, 7.5, 67350102016, 26536796160 FROM hosts h, t",
        [now],
    )
    .unwrap();
    conn.execute(
        "WITH RECURSIVE t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < 5879)
         INSERT OR IGNORE INTO ingested (host_id, tier, boot_id, seq, ts_ms)
         SELECT h.host_id, 'fast', 'old', t.i + 1, ?1 - t.i * 30000 FROM hosts h, t",
        [now],
    )
    .unwrap();
    conn.execute_batch("COMMIT").unwrap();
    let rows: i64 = conn.query_row("SELECT count(*) FROM fast_samples", [], |r| r.get(0)).unwrap();
    println!("filled {rows} fast samples (49 h × 1,000 hosts) in {:.1} s", t.elapsed().as_secs_f64());
    drop(conn);
    writer.prune_now();
    println!(
        "retention pass: {} ms in all, longest single chunk (ingest pause) {:.1} ms",
        stats.last_prune_ms.load(std::sync::atomic::Ordering::Relaxed),
        stats.last_prune_longest_chunk_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0
    );
    let bytes = std::fs::metadata(&path).unwrap().len()
        + std::fs::metadata(dir.path().join("bench.db-wal")).map(|m| m.len()).unwrap_or(0);
    println!("database after: {:.1} MiB", bytes as f64 / 1048576.0);
}
