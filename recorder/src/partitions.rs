//! Time series partitioned by hour. Each hour of samples has its own tables —
//! `fast_h<hour>`, `pool_h<hour>`, `storage_h<hour>`, `guest_h<hour>` and
//! `ingested_h<hour>`, where `<hour>` is `ts_ms / 3,600,000` — listed in `sample_hours`.
//! Retention drops a stale hour's tables whole, which frees their pages without visiting
//! a row: deleting an hour row by row, through a table and two indexes each, took seconds
//! and stalled ingest for hundreds of milliseconds per statement (docs/PERFORMANCE.md).
//!
//! Readers never name an hour table: the views `fast_samples`, `pool_samples`,
//! `storage_samples` and `guest_samples` are the union of every attached hour (and, for
//! fast samples, of `fast_recent`), rebuilt here whenever an hour is added or detached.
//! Every hour table has one key, host first: it finds a host's samples of an hour for
//! charts, and makes a replay a no-op.

use std::collections::BTreeSet;

use rusqlite::{params, Connection, Transaction};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// The longest retention: a view is one compound SELECT, and SQLite allows at most 500
/// terms in one. The views hold the hours kept, the current one, one that waits for the
/// hourly pass, one ahead (clock skew) and `fast_recent`.
pub const MAX_RETENTION_HOURS: u64 = 480;

/// The hour a timestamp falls in.
pub fn hour_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(HOUR_MS)
}

/// The kinds of hour table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Fast,
    Pool,
    Storage,
    Guest,
    /// One row per medium and slow payload stored, so that their replays are no-ops
    /// (fast samples are keyed by their own table).
    Ingested,
}

struct Shape {
    prefix: &'static str,
    /// The view that readers use; `ingested` has none.
    view: Option<&'static str>,
    columns: &'static [(&'static str, &'static str)],
    key: &'static str,
    /// A rowid table with a unique index on `key`, rather than a table without rowid
    /// keyed by it.
    rowid: bool,
}

const NUM: &str = "REAL";
const INT: &str = "INTEGER";

/// The columns of a fast sample: also those of `fast_recent` (migration 003), which
/// the `fast_samples` view includes.
const FAST_COLUMNS: &[(&str, &str)] = &[
    ("host_id", "TEXT NOT NULL"),
    ("ts_ms", "INTEGER NOT NULL"),
    ("seq", "INTEGER NOT NULL"),
    ("load1", NUM),
    ("load5", NUM),
    ("load15", NUM),
    ("cpu_pct", NUM),
    ("iowait_pct", NUM),
    ("mem_total", INT),
    ("mem_used", INT),
    ("arc_bytes", INT),
    ("swap_total", INT),
    ("swap_used", INT),
    ("rootfs_total", INT),
    ("rootfs_used", INT),
];

impl Series {
    pub const ALL: [Series; 5] = [Series::Fast, Series::Pool, Series::Storage, Series::Guest, Series::Ingested];

    fn shape(self) -> Shape {
        match self {
            Series::Fast => {
                // Fast samples arrive by the thousand per second. A rowid table appends
                // them, and its narrow key index takes an entry each; keyed host first
                // without a rowid, a settle split a page of wide rows per host every few
                // dozen samples, and the writer was markedly slower (docs/PERFORMANCE.md).
                Shape {
                    prefix: "fast",
                    view: Some("fast_samples"),
                    columns: FAST_COLUMNS,
                    key: "host_id, ts_ms, seq",
                    rowid: true,
                }
            }
            Series::Pool => Shape {
                prefix: "pool",
                view: Some("pool_samples"),
                columns: &[
                    ("host_id", "TEXT NOT NULL"),
                    ("ts_ms", "INTEGER NOT NULL"),
                    ("pool", "TEXT NOT NULL"),
                    ("state", "TEXT NOT NULL"),
                    ("cap_pct", NUM),
                    ("frag_pct", NUM),
                    ("alloc", INT),
                    ("size", INT),
                    ("read_errors", "INTEGER NOT NULL"),
                    ("write_errors", "INTEGER NOT NULL"),
                    ("checksum_errors", "INTEGER NOT NULL"),
                ],
                key: "host_id, ts_ms, pool",
                rowid: false,
            },
            Series::Storage => Shape {
                prefix: "storage",
                view: Some("storage_samples"),
                columns: &[
                    ("host_id", "TEXT NOT NULL"),
                    ("ts_ms", "INTEGER NOT NULL"),
                    ("storage", "TEXT NOT NULL"),
                    ("used", INT),
                    ("total", INT),
                ],
                key: "host_id, ts_ms, storage",
                rowid: false,
            },
            Series::Guest => Shape {
                prefix: "guest",
                view: Some("guest_samples"),
                columns: &[
                    ("host_id", "TEXT NOT NULL"),
                    ("ts_ms", "INTEGER NOT NULL"),
                    ("vmid", "INTEGER NOT NULL"),
                    ("kind", "TEXT NOT NULL"),
                    ("status", "TEXT NOT NULL"),
                    ("cpu", NUM),
                    ("mem", INT),
                    ("maxmem", INT),
                ],
                key: "host_id, ts_ms, vmid, kind",
                rowid: false,
            },
            Series::Ingested => Shape {
                prefix: "ingested",
                view: None,
                columns: &[
                    ("host_id", "TEXT NOT NULL"),
                    ("tier", "TEXT NOT NULL"),
                    ("boot_id", "TEXT NOT NULL"),
                    ("seq", "INTEGER NOT NULL"),
                ],
                key: "host_id, tier, boot_id, seq",
                rowid: false,
            },
        }
    }

    /// This series' table for `hour`.
    pub fn table(self, hour: i64) -> String {
        format!("{}_h{hour}", self.shape().prefix)
    }

    /// Its column names, comma-separated, in table order.
    pub fn columns(self) -> String {
        self.shape().columns.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
    }
}

/// Every hour table of `hour`.
pub fn tables(hour: i64) -> impl Iterator<Item = String> {
    Series::ALL.into_iter().map(move |s| s.table(hour))
}

/// The attached hours.
pub fn hours(conn: &Connection) -> rusqlite::Result<BTreeSet<i64>> {
    conn.prepare("SELECT hour FROM sample_hours")?.query_map([], |r| r.get(0))?.collect()
}

/// Creates the tables of `hour` (those that do not exist yet) and attaches it.
pub fn create(tx: &Transaction, hour: i64) -> rusqlite::Result<()> {
    create_tables(tx, hour)?;
    rebuild_views(tx)
}

fn create_tables(tx: &Transaction, hour: i64) -> rusqlite::Result<()> {
    for series in Series::ALL {
        let shape = series.shape();
        let columns: Vec<String> = shape.columns.iter().map(|(name, ty)| format!("{name} {ty}")).collect();
        let (table, columns, key) = (series.table(hour), columns.join(", "), shape.key);
        tx.execute_batch(&if shape.rowid {
            format!(
                "CREATE TABLE IF NOT EXISTS {table} ({columns}) STRICT;
                 CREATE UNIQUE INDEX IF NOT EXISTS {table}_key ON {table} ({key})"
            )
        } else {
            format!("CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY ({key})) STRICT, WITHOUT ROWID")
        })?;
    }
    tx.execute("INSERT OR IGNORE INTO sample_hours (hour, rows) VALUES (?1, 0)", [hour])?;
    Ok(())
}

/// Counts `n` more sample rows in `hour`, for retention's log line.
pub fn add_rows(tx: &Transaction, hour: i64, n: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE sample_hours SET rows = rows + ?2 WHERE hour = ?1")?.execute(params![hour, n])?;
    Ok(())
}

/// Detaches every hour before `hour` from the views and the catalog; returns how many
/// sample rows they held. Their tables stay until [`stale_tables`] finds them.
pub fn detach_before(tx: &Transaction, hour: i64) -> rusqlite::Result<i64> {
    let rows: i64 =
        tx.query_row("SELECT coalesce(sum(rows), 0) FROM sample_hours WHERE hour < ?1", [hour], |r| r.get(0))?;
    if tx.execute("DELETE FROM sample_hours WHERE hour < ?1", [hour])? > 0 {
        rebuild_views(tx)?;
    }
    Ok(rows)
}

/// Hour tables of hours before `first_kept` or of no attached hour: those to drop, and
/// any a crash left behind between detaching and dropping.
pub fn stale_tables(conn: &Connection, first_kept: i64) -> rusqlite::Result<Vec<String>> {
    let attached = hours(conn)?;
    Ok(crate::db::tables_matching(conn, "*_h[0-9]*")?
        .into_iter()
        .filter(|name| {
            let Some((prefix, hour)) = name.rsplit_once("_h") else { return false };
            let Ok(hour) = hour.parse::<i64>() else { return false };
            Series::ALL.iter().any(|s| s.shape().prefix == prefix) && (hour < first_kept || !attached.contains(&hour))
        })
        .collect())
}

/// Recreates the readers' views over the attached hours.
fn rebuild_views(tx: &Transaction) -> rusqlite::Result<()> {
    let hours = hours(tx)?;
    for series in Series::ALL {
        let Some(view) = series.shape().view else { continue };
        let columns = series.columns();
        let mut parts: Vec<String> =
            hours.iter().map(|h| format!("SELECT {columns} FROM {}", series.table(*h))).collect();
        if series == Series::Fast {
            parts.push(format!("SELECT {columns} FROM fast_recent"));
        }
        if parts.is_empty() {
            // No hour yet: an empty view with the same columns.
            let nulls: Vec<String> = series.shape().columns.iter().map(|(name, _)| format!("NULL AS {name}")).collect();
            parts.push(format!("SELECT {} WHERE 0", nulls.join(", ")));
        }
        tx.execute_batch(&format!("DROP VIEW IF EXISTS {view}; CREATE VIEW {view} AS {}", parts.join(" UNION ALL ")))?;
    }
    Ok(())
}

/// Migration 005, and any later one that adds fast columns: adds to `fast_recent` and to
/// every attached hour's fast table the columns of [`FAST_COLUMNS`] they lack (as NULLs
/// for the samples already stored), then rebuilds the views with them.
pub fn upgrade_fast_columns(tx: &Transaction) -> rusqlite::Result<()> {
    let mut tables = vec!["fast_recent".to_owned()];
    tables.extend(hours(tx)?.into_iter().map(|h| Series::Fast.table(h)));
    for table in tables {
        let have = table_columns(tx, &table)?;
        for (name, ty) in FAST_COLUMNS.iter().filter(|(name, _)| !have.iter().any(|h| h == name)) {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {ty}"))?;
        }
    }
    rebuild_views(tx)
}

fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare("SELECT name FROM pragma_table_info(?1)")?.query_map([table], |r| r.get(0))?.collect()
}

/// Migration 004: moves the rows of the unpartitioned tables (renamed `legacy_*` by its
/// SQL) into hour tables, drops them, and creates the views.
pub fn adopt_legacy(tx: &Transaction) -> rusqlite::Result<()> {
    let legacy = [
        (Series::Fast, "legacy_fast"),
        (Series::Pool, "legacy_pool"),
        (Series::Storage, "legacy_storage"),
        (Series::Guest, "legacy_guest"),
        (Series::Ingested, "legacy_ingested"),
    ];
    // `fast_recent` keeps its rows; the writer moves them at its first settle.
    let hours: BTreeSet<i64> = tx
        .prepare(
            "SELECT DISTINCT ts_ms / ?1 FROM (
                 SELECT ts_ms FROM legacy_fast UNION SELECT ts_ms FROM legacy_pool
                 UNION SELECT ts_ms FROM legacy_storage UNION SELECT ts_ms FROM legacy_guest
                 UNION SELECT ts_ms FROM legacy_ingested UNION SELECT ts_ms FROM fast_recent)
             WHERE ts_ms >= 0",
        )?
        .query_map([HOUR_MS], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for hour in hours {
        create_tables(tx, hour)?;
        let mut rows = 0;
        for (series, from) in legacy {
            // The legacy tables predate columns added since (the root filesystem's).
            let have = table_columns(tx, from)?;
            let columns: Vec<&str> =
                series.shape().columns.iter().map(|(name, _)| *name).filter(|c| have.iter().any(|h| h == c)).collect();
            let columns = columns.join(", ");
            let n = tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO {} ({columns}) SELECT {columns} FROM {from}
                     WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY {}",
                    series.table(hour),
                    series.shape().key
                ),
                [hour * HOUR_MS, (hour + 1) * HOUR_MS],
            )?;
            if series != Series::Ingested {
                rows += n as i64;
            }
        }
        add_rows(tx, hour, rows)?;
    }
    for (_, from) in legacy {
        tx.execute_batch(&format!("DROP TABLE {from}"))?;
    }
    upgrade_fast_columns(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_floor_divisions() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_MS - 1), 0);
        assert_eq!(hour_of(HOUR_MS), 1);
        assert_eq!(hour_of(-1), -1);
        assert_eq!(Series::Guest.table(493_000), "guest_h493000");
    }

    #[test]
    fn the_longest_retention_fits_in_a_view() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open_and_migrate(&dir.path().join("p.db")).unwrap();
        let tx = conn.transaction().unwrap();
        for hour in 0..MAX_RETENTION_HOURS as i64 + 3 {
            create_tables(&tx, hour).unwrap();
        }
        rebuild_views(&tx).unwrap();
        tx.commit().unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM fast_samples", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn views_follow_attached_hours_and_stale_tables_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open_and_migrate(&dir.path().join("p.db")).unwrap();
        let count = |conn: &Connection| conn.query_row("SELECT count(*) FROM pool_samples", [], |r| r.get::<_, i64>(0));
        assert_eq!(count(&conn).unwrap(), 0, "the views exist before the first hour");
        let tx = conn.transaction().unwrap();
        for hour in [10, 11, 12] {
            create(&tx, hour).unwrap();
            tx.execute(
                &format!(
                    "INSERT INTO {} (host_id, ts_ms, pool, state, read_errors, write_errors, checksum_errors)
                     VALUES ('pve1', ?1, 'rpool', 'ONLINE', 0, 0, 0)",
                    Series::Pool.table(hour)
                ),
                [hour * HOUR_MS],
            )
            .unwrap();
            add_rows(&tx, hour, 1).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(count(&conn).unwrap(), 3);
        assert!(stale_tables(&conn, 10).unwrap().is_empty());
        assert_eq!(stale_tables(&conn, 11).unwrap().len(), Series::ALL.len());

        let tx = conn.transaction().unwrap();
        assert_eq!(detach_before(&tx, 12).unwrap(), 2);
        tx.commit().unwrap();
        assert_eq!(count(&conn).unwrap(), 1);
        assert_eq!(hours(&conn).unwrap(), BTreeSet::from([12]));
        let mut stale = stale_tables(&conn, 0).unwrap();
        stale.sort();
        let mut expected: Vec<String> = tables(10).chain(tables(11)).collect();
        expected.sort();
        assert_eq!(stale, expected);
    }
}
