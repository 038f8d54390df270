//! The SQLite file: opening, pragmas and the migrations embedded in the binary.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, Transaction};

/// One migration: its SQL, then, where SQL alone cannot do it, a step in Rust, in the
/// same transaction.
struct Migration {
    sql: &'static str,
    then: Option<fn(&Transaction) -> rusqlite::Result<()>>,
}

/// Migrations in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[Migration] = &[
    Migration { sql: include_str!("migrations/001_initial.sql"), then: None },
    Migration { sql: include_str!("migrations/002_medium_series.sql"), then: None },
    Migration { sql: include_str!("migrations/003_fast_recent.sql"), then: None },
    Migration { sql: include_str!("migrations/004_hour_partitions.sql"), then: Some(crate::partitions::adopt_legacy) },
    Migration { sql: include_str!("migrations/005_rollups.sql"), then: Some(crate::partitions::upgrade_fast_columns) },
    Migration { sql: include_str!("migrations/006_alerts.sql"), then: None },
    Migration { sql: include_str!("migrations/007_sessions.sql"), then: None },
    Migration { sql: include_str!("migrations/008_events_index.sql"), then: None },
    Migration { sql: include_str!("migrations/009_api_tokens.sql"), then: None },
    Migration { sql: include_str!("migrations/010_ha_credentials.sql"), then: None },
    Migration { sql: include_str!("migrations/011_rule_overrides.sql"), then: None },
    Migration { sql: include_str!("migrations/012_packed_hours.sql"), then: None },
    Migration { sql: include_str!("migrations/013_registry_id.sql"), then: None },
];

/// The schema version this binary expects.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Opens (creating if needed) a read-write connection: WAL, synchronous=NORMAL.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create the database directory {}", dir.display()))?;
    }
    let conn = Connection::open(path).with_context(|| format!("failed to open the database {}", path.display()))?;
    configure(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .with_context(|| format!("failed to enable WAL on {}", path.display()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The writer touches one leaf page per host per index in every batch: keep the hot
    // pages in memory (64 MiB) instead of re-reading them for each commit.
    conn.pragma_update(None, "cache_size", -65_536)?;
    Ok(conn)
}

/// The WAL size (in pages, 64 MiB) past which the writer checkpoints itself; see
/// [`open_writer`].
pub const WRITER_CHECKPOINT_PAGES: i64 = 16_384;
/// How often the checkpoint thread copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The writer's connection: like [`open`], but it does not checkpoint after its commits;
/// the [`checkpoint`] thread copies WAL pages back into the database, so that this (and
/// its fsync) rarely stalls ingest.
///
/// Rarely, not never: under continuous writes a checkpoint on another thread never finds
/// the WAL fully copied when the next write begins, so SQLite never starts the WAL over
/// and it grows without bound (gigabytes under sustained load). So when the thread reports
/// more than WRITER_CHECKPOINT_PAGES, the writer runs [`checkpoint_now`] between two
/// transactions: it finishes before the next write, which then starts the WAL over, and
/// it is short because the thread has copied all but the last quarter second.
/// (SQLite's own `wal_autocheckpoint` does the same after every commit while the WAL is
/// large, retention's chunks included: that made retention passes several times slower,
/// with long ingest pauses; docs/PERFORMANCE.md.)
pub fn open_writer(path: &Path) -> anyhow::Result<Connection> {
    let conn = open(path)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// A PASSIVE checkpoint on `conn`: copies what it can, never waits.
pub fn checkpoint_now(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

/// Checkpoints the WAL every CHECKPOINT_EVERY until `stop` is set, and stores the WAL's
/// size in pages in `wal_pages` after each.
pub fn checkpoint(
    path: &Path,
    stop: &std::sync::atomic::AtomicBool,
    wal_pages: &std::sync::atomic::AtomicI64,
) -> anyhow::Result<()> {
    let conn = open(path)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    // Logged when checkpoints start failing (a full disk fails four a second) and again
    // when they work.
    let mut failing = false;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(CHECKPOINT_EVERY);
        // (busy, pages in the WAL, pages copied); -1s when the WAL is not open.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
            Ok(pages) => {
                wal_pages.store(pages, std::sync::atomic::Ordering::Relaxed);
                if std::mem::take(&mut failing) {
                    tracing::info!("WAL checkpoints work again");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "WAL checkpoint failed (logged once until one works)");
            }
            Err(_) => {}
        }
    }
    // A last, complete checkpoint at shutdown leaves a small WAL behind.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(())
}

/// Opens a read-only connection, for pages and the API.
/// The names of the tables matching the GLOB `pattern`.
pub fn tables_matching(conn: &Connection, pattern: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB ?1")?
        .query_map([pattern], |r| r.get(0))?
        .collect()
}

pub fn open_read(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("failed to open the database {} for reading", path.display()))?;
    configure(&conn)?;
    Ok(conn)
}

/// Applies pending migrations; returns how many ran. Refuses a database from a newer
/// version, which this binary would misread.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<usize> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > MIGRATIONS.len() {
        anyhow::bail!(
            "the database schema is version {current}, newer than this binary's {}; \
             run the newer proxmox-monitor or restore a backup",
            MIGRATIONS.len()
        );
    }
    migrate_to(conn, current, MIGRATIONS.len())?;
    Ok(MIGRATIONS.len() - current)
}

fn migrate_to(conn: &mut Connection, from: usize, to: usize) -> anyhow::Result<()> {
    for (i, migration) in MIGRATIONS.iter().enumerate().take(to).skip(from) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql).with_context(|| format!("migration {} failed", i + 1))?;
        if let Some(step) = migration.then {
            step(&tx).with_context(|| format!("migration {} failed", i + 1))?;
        }
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Opens the database and brings its schema up to date.
pub fn open_and_migrate(path: &Path) -> anyhow::Result<Connection> {
    let mut conn = open(path)?;
    migrate(&mut conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = open(&path).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer than this binary"), "{err}");
    }

    #[test]
    fn migration_4_moves_samples_into_hour_tables() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("m.db")).unwrap();
        migrate_to(&mut conn, 0, 3).unwrap();
        let hour = crate::partitions::HOUR_MS;
        conn.execute_batch(&format!(
            "INSERT INTO fast_history (host_id, ts_ms, seq, load1) VALUES ('a', {h5}, 1, 1.5), ('a', {h5} + 1, 2, 2.5), ('b', {h7}, 1, 0.5);
             INSERT INTO fast_recent (host_id, ts_ms, seq) VALUES ('a', {h8}, 3);
             INSERT INTO guest_samples (host_id, ts_ms, vmid, kind, status) VALUES ('a', {h5}, 100, 'vm', 'running');
             INSERT INTO ingested (host_id, tier, boot_id, seq, ts_ms) VALUES ('a', 'medium', 'b', 1, {h5});",
            h5 = 5 * hour,
            h7 = 7 * hour,
            h8 = 8 * hour,
        ))
        .unwrap();
        migrate(&mut conn).unwrap();
        let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, f64>(0)).unwrap();
        assert_eq!(q("SELECT count(*) FROM fast_samples"), 4.0);
        assert_eq!(q("SELECT sum(load1) FROM fast_samples"), 4.5);
        assert_eq!(q("SELECT count(*) FROM fast_h5"), 2.0);
        assert_eq!(q("SELECT count(*) FROM guest_samples"), 1.0);
        assert_eq!(q("SELECT count(*) FROM ingested_h5"), 1.0);
        assert_eq!(q("SELECT count(*) FROM sample_hours"), 3.0, "hours 5, 7 and 8");
        assert_eq!(q("SELECT rows FROM sample_hours WHERE hour = 5"), 3.0);
        assert_eq!(q("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'legacy_%'"), 0.0);
    }

    #[test]
    fn migration_5_gives_every_fast_table_the_root_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("m.db")).unwrap();
        migrate_to(&mut conn, 0, 4).unwrap();
        // An hour table as schema 4 made it, without the root filesystem's columns.
        conn.execute_batch(
            "CREATE TABLE fast_h9 (host_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, seq INTEGER NOT NULL,
                 load1 REAL, load5 REAL, load15 REAL, cpu_pct REAL, iowait_pct REAL, mem_total INTEGER,
                 mem_used INTEGER, arc_bytes INTEGER, swap_total INTEGER, swap_used INTEGER) STRICT;
             INSERT INTO sample_hours (hour, rows) VALUES (9, 1);
             INSERT INTO fast_h9 (host_id, ts_ms, seq, load1) VALUES ('a', 32400000, 1, 1.5);
             INSERT INTO fast_recent (host_id, ts_ms, seq, load1) VALUES ('a', 32400001, 2, 2.5);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        conn.execute("INSERT INTO fast_h9 (host_id, ts_ms, seq, rootfs_used) VALUES ('a', 32400002, 3, 7)", [])
            .unwrap();
        let rows: Vec<(f64, Option<i64>)> = conn
            .prepare("SELECT load1, rootfs_used FROM fast_samples ORDER BY ts_ms")
            .unwrap()
            .query_map([], |r| Ok((r.get::<_, Option<f64>>(0)?.unwrap_or(0.0), r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, [(1.5, None), (2.5, None), (0.0, Some(7))]);
    }
}
