//! Rollups: every series kept per minute (30 days by default) and per hour (2 years),
//! each bucket with its minimum, maximum and mean (and the last value of counters).
//!
//! They are built incrementally, never by rescanning raw samples: fast samples are
//! aggregated when they settle (from `fast_recent`, in the settle's transaction), medium
//! samples when they are stored. A bucket already written is merged with the new
//! aggregate (`ON CONFLICT DO UPDATE`), so samples may arrive late or out of order.
//!
//! Each resolution is partitioned by time (`roll_<group>_<m|h>_p<part>`: a day of minutes,
//! 32 days of hours), listed in `rollup_parts`, so that retention drops stale parts whole,
//! as it does for raw hours, instead of deleting rows while ingest waits.
//!
//! The hour tables are the open end of the hour tier only: once a block of 96 hours has
//! ended, the writer packs each host's rows of it into one row of `rollpack_h_p<part>`
//! ([`pack`]), and the hour tier costs a few bytes per value instead of a row per subject
//! and hour.
//!
//! - `metrics.rs`: the series and their aggregates.
//! - `cell.rs`, `codec.rs`, `block.rs`: a packed block, its cells and their encoding.
//! - `pack.rs`: packing ended blocks, and reading hours from both forms.

pub mod block;
pub mod cell;
pub mod codec;
pub mod metrics;
pub mod pack;

use std::collections::BTreeSet;

use rusqlite::{Connection, Transaction};

pub use metrics::{Agg, Group, Metric};

const MINUTE_MS: i64 = 60_000;
use crate::partitions::{DAY_MS, HOUR_MS};

/// A rollup resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    Minute,
    Hour,
}

impl Resolution {
    pub const ALL: [Resolution; 2] = [Resolution::Minute, Resolution::Hour];

    /// The width of one bucket.
    pub const fn bucket_ms(self) -> i64 {
        match self {
            Resolution::Minute => MINUTE_MS,
            Resolution::Hour => HOUR_MS,
        }
    }

    /// The time one partition covers.
    pub const fn part_ms(self) -> i64 {
        match self {
            Resolution::Minute => DAY_MS,
            Resolution::Hour => 32 * DAY_MS,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Resolution::Minute => "m",
            Resolution::Hour => "h",
        }
    }

    fn parse(code: &str) -> Option<Resolution> {
        Resolution::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The partition a timestamp falls in.
    pub fn part_of(self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.part_ms())
    }

    /// The table of `group` for partition `part`.
    pub fn table(self, group: Group, part: i64) -> String {
        format!("roll_{}_{}_p{part}", group.name(), self.code())
    }
}

/// How long each resolution is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub minute_ms: i64,
    pub hour_ms: i64,
}

impl Keep {
    pub const DEFAULT: Keep = Keep { minute_ms: 30 * DAY_MS, hour_ms: 730 * DAY_MS };

    pub fn of(self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::Minute => self.minute_ms,
            Resolution::Hour => self.hour_ms,
        }
    }

    /// The first partition of `resolution` kept at `now_ms`: every part that ends before
    /// the window starts is stale.
    pub fn first_kept_part(self, resolution: Resolution, now_ms: i64) -> i64 {
        resolution.part_of(now_ms - self.of(resolution))
    }
}

impl Default for Keep {
    fn default() -> Keep {
        Keep::DEFAULT
    }
}

/// The partitions that exist, as the writer knows them (so that it creates each once),
/// and how long they are kept: a sample older than a resolution keeps (an old replay, a
/// back-filled history) is not folded into it, where retention would drop it at once.
#[derive(Debug, Default, Clone)]
pub struct Parts {
    known: BTreeSet<(Resolution, i64)>,
    keep: Keep,
}

impl Parts {
    /// The same partitions, kept for `keep`.
    pub fn keeping(self, keep: Keep) -> Parts {
        Parts { keep, ..self }
    }

    pub fn load(conn: &Connection) -> rusqlite::Result<Parts> {
        let mut parts = BTreeSet::new();
        let mut stmt = conn.prepare("SELECT resolution, part FROM rollup_parts")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (code, part) = row?;
            if let Some(resolution) = Resolution::parse(&code) {
                parts.insert((resolution, part));
            }
        }
        Ok(Parts { known: parts, keep: Keep::DEFAULT })
    }

    /// The attached partitions of `resolution` that overlap `[start_ms, end_ms)`.
    pub fn overlapping(&self, resolution: Resolution, start_ms: i64, end_ms: i64) -> Vec<i64> {
        let (first, last) = (resolution.part_of(start_ms), resolution.part_of(end_ms - 1));
        self.known.range((resolution, first)..=(resolution, last)).map(|(_, p)| *p).collect()
    }

    /// Creates the tables of a partition unless they exist.
    fn ensure(&mut self, tx: &Transaction, resolution: Resolution, part: i64) -> rusqlite::Result<()> {
        if self.known.contains(&(resolution, part)) {
            return Ok(());
        }
        for group in Group::ALL.into_iter().filter(|g| g.resolutions().contains(&resolution)) {
            let mut columns: Vec<String> = vec!["host INTEGER NOT NULL".into()];
            columns.extend(group.subject_columns().iter().map(|(name, ty)| format!("{name} {ty}")));
            columns.extend(["t INTEGER NOT NULL".into(), "n INTEGER NOT NULL".into()]);
            if group.keeps_last() {
                columns.push("t_last INTEGER NOT NULL".into());
            }
            columns.extend(group.columns().into_iter().map(|c| format!("{} INTEGER", c.name)));
            tx.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}, t)) STRICT, WITHOUT ROWID",
                resolution.table(group, part),
                columns.join(", "),
                key_columns(group).join(", ")
            ))?;
        }
        tx.execute("INSERT OR IGNORE INTO rollup_parts (resolution, part) VALUES (?1, ?2)", (resolution.code(), part))?;
        self.known.insert((resolution, part));
        Ok(())
    }

    /// Forgets every partition before `first_kept` of `resolution`, packed hours included
    /// (their tables are dropped one by one after, see [`stale_tables`]).
    pub fn detach_before(&mut self, tx: &Transaction, resolution: Resolution, first_kept: i64) -> rusqlite::Result<()> {
        tx.execute("DELETE FROM rollup_parts WHERE resolution = ?1 AND part < ?2", (resolution.code(), first_kept))?;
        self.known.retain(|(r, p)| *r != resolution || *p >= first_kept);
        if resolution == Resolution::Hour {
            pack::detach_packs_before(tx, first_kept)?;
        }
        Ok(())
    }

    /// Forgets one partition, whose tables the caller drops in the same transaction.
    pub fn forget(&mut self, tx: &Transaction, resolution: Resolution, part: i64) -> rusqlite::Result<()> {
        tx.execute("DELETE FROM rollup_parts WHERE resolution = ?1 AND part = ?2", (resolution.code(), part))?;
        self.known.remove(&(resolution, part));
        Ok(())
    }
}

/// `host` (a host's number in `rollup_hosts`) and the group's subject columns.
fn key_columns(group: Group) -> Vec<&'static str> {
    let mut keys = vec!["host"];
    keys.extend(group.subject_columns().iter().map(|(name, _)| *name));
    keys
}

/// Folds the raw rows of `source` (a table with the raw columns of `group`'s view) that
/// match `filter` (an SQL condition whose parameters are `params`) into both resolutions
/// of `group`. A [`Agg::Last`] value is exact when the rows hold one sample per subject,
/// as [`fold_medium`] passes them; over several it is their largest.
pub fn fold(
    tx: &Transaction,
    parts: &mut Parts,
    group: Group,
    source: &str,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    // Rows name their host by number: a host's name in every row of every bucket would
    // be most of a row's bytes.
    tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO rollup_hosts (host_id) SELECT DISTINCT host_id FROM {source} WHERE {filter}"
    ))?
    .execute(params)?;
    let keys = key_columns(group).join(", ");
    let subjects: String = group.subject_columns().iter().map(|(name, _)| format!(", {name}")).collect();
    // Each metric's stored value computed once per row, then aggregated by name: a gauge
    // takes four aggregates of it.
    let values: String = group.metrics().iter().map(|m| format!(", {} AS {}", m.stored(), m.value())).collect();
    let columns = group.columns();
    let mut names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut aggregates: Vec<&str> = columns.iter().map(|c| c.aggregate.as_str()).collect();
    let mut merges: Vec<String> = columns.iter().map(|c| format!("{} = {}", c.name, c.merge)).collect();
    if group.keeps_last() {
        names.push("t_last");
        aggregates.push("max(ts_ms)");
        merges.push("t_last = max(t_last, excluded.t_last)".into());
    }
    for &resolution in group.resolutions() {
        let touched: Vec<i64> = tx
            .prepare_cached(&format!("SELECT DISTINCT ts_ms / {} FROM {source} WHERE {filter}", resolution.part_ms()))?
            .query_map(params, |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let first_kept = parts.keep.first_kept_part(resolution, crate::now_ms());
        for part in touched.into_iter().filter(|p| *p >= first_kept) {
            parts.ensure(tx, resolution, part)?;
            // SQLite evaluates every SET expression against the row as it was, so a Last
            // value's merge compares with the old `t_last`.
            let sql = format!(
                "INSERT INTO {table} ({keys}, t, n, {names})
                 SELECT rollup_hosts.id{subjects}, ts_ms / {bucket}, count(*), {aggregates}
                 FROM (SELECT host_id{subjects}, ts_ms{values} FROM {source}
                       WHERE ({filter}) AND ts_ms >= {lo} AND ts_ms < {hi})
                 JOIN rollup_hosts USING (host_id)
                 GROUP BY rollup_hosts.id{subjects}, ts_ms / {bucket}
                 ON CONFLICT ({keys}, t) DO UPDATE SET n = n + excluded.n, {merges}",
                table = resolution.table(group, part),
                names = names.join(", "),
                bucket = resolution.bucket_ms(),
                aggregates = aggregates.join(", "),
                lo = part * resolution.part_ms(),
                hi = (part + 1) * resolution.part_ms(),
                merges = merges.join(", "),
            );
            tx.prepare_cached(&sql)?.execute(params)?;
        }
    }
    Ok(())
}

/// Folds every fast sample waiting in `fast_recent` into the host rollups: the settle
/// calls it just before it moves them into their hour tables.
///
/// One pass over the raw rows aggregates them per host and minute into a temporary
/// table; both resolutions are folded from those few rows (a host's minute, not its
/// samples), so the raw rows are grouped once rather than once per resolution.
pub fn fold_recent(tx: &Transaction, parts: &mut Parts) -> rusqlite::Result<()> {
    let group = Group::Host;
    // Re-aggregating minutes into hours is exact for every aggregate but a counter's last.
    debug_assert!(!group.keeps_last());
    let columns = group.columns();
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let names = names.join(", ");
    let values: String = group.metrics().iter().map(|m| format!(", {} AS {}", m.stored(), m.value())).collect();
    let aggregates: Vec<&str> = columns.iter().map(|c| c.aggregate.as_str()).collect();
    tx.prepare_cached(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS fold_minutes (host_id TEXT NOT NULL, t INTEGER NOT NULL, n INTEGER NOT NULL, {})",
        columns.iter().map(|c| format!("{} INTEGER", c.name)).collect::<Vec<_>>().join(", ")
    ))?
    .execute([])?;
    tx.prepare_cached(&format!(
        "INSERT INTO temp.fold_minutes (host_id, t, n, {names})
         SELECT host_id, ts_ms / {MINUTE_MS}, count(*), {}
         FROM (SELECT host_id, ts_ms{values} FROM fast_recent) GROUP BY host_id, ts_ms / {MINUTE_MS}",
        aggregates.join(", ")
    ))?
    .execute([])?;
    tx.prepare_cached("INSERT OR IGNORE INTO rollup_hosts (host_id) SELECT DISTINCT host_id FROM temp.fold_minutes")?
        .execute([])?;
    let merges: Vec<String> = columns.iter().map(|c| format!("{} = {}", c.name, c.merge)).collect();
    let again: Vec<String> = columns.iter().map(|c| format!("{}({})", c.reaggregate, c.name)).collect();
    for &resolution in group.resolutions() {
        let minutes = resolution.bucket_ms() / MINUTE_MS;
        let per_part = resolution.part_ms() / MINUTE_MS;
        let touched: Vec<i64> = tx
            .prepare_cached(&format!("SELECT DISTINCT t / {per_part} FROM temp.fold_minutes"))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let first_kept = parts.keep.first_kept_part(resolution, crate::now_ms());
        for part in touched.into_iter().filter(|p| *p >= first_kept) {
            parts.ensure(tx, resolution, part)?;
            let sql = format!(
                "INSERT INTO {table} (host, t, n, {names})
                 SELECT rollup_hosts.id, t / {minutes}, sum(n), {again}
                 FROM temp.fold_minutes JOIN rollup_hosts USING (host_id)
                 WHERE t >= {lo} AND t < {hi}
                 GROUP BY rollup_hosts.id, t / {minutes}
                 ON CONFLICT (host, t) DO UPDATE SET n = n + excluded.n, {merges}",
                table = resolution.table(group, part),
                again = again.join(", "),
                lo = part * per_part,
                hi = (part + 1) * per_part,
                merges = merges.join(", "),
            );
            tx.prepare_cached(&sql)?.execute([])?;
        }
    }
    tx.prepare_cached("DELETE FROM temp.fold_minutes")?.execute([])?;
    Ok(())
}

/// Folds the pool, storage and guest rows of one medium sample (`host`, `ts_ms`), just
/// stored in the hour tables named by `tables`, into their rollups.
pub fn fold_medium(
    tx: &Transaction,
    parts: &mut Parts,
    tables: &[(Group, String)],
    host: &str,
    ts_ms: i64,
) -> rusqlite::Result<()> {
    for (group, table) in tables {
        fold(tx, parts, *group, table, "host_id = ?1 AND ts_ms = ?2", &[&host, &ts_ms])?;
    }
    Ok(())
}

/// Rollup tables of partitions before the kept window or not attached: those to drop,
/// and any a crash left behind between detaching and dropping; packed hours included.
pub fn stale_tables(conn: &Connection, keep: Keep, now_ms: i64) -> rusqlite::Result<Vec<String>> {
    let mut stale = stale_open_tables(conn, keep, now_ms)?;
    stale.extend(pack::stale_packs(conn, keep.first_kept_part(Resolution::Hour, now_ms))?);
    Ok(stale)
}

fn stale_open_tables(conn: &Connection, keep: Keep, now_ms: i64) -> rusqlite::Result<Vec<String>> {
    let attached = Parts::load(conn)?;
    Ok(crate::db::tables_matching(conn, "roll_*_p[0-9]*")?
        .into_iter()
        .filter(|name| {
            let Some((rest, part)) = name.rsplit_once("_p") else { return false };
            let Some((_, code)) = rest.rsplit_once('_') else { return false };
            let (Ok(part), Some(resolution)) = (part.parse::<i64>(), Resolution::parse(code)) else { return false };
            part < keep.first_kept_part(resolution, now_ms) || !attached.known.contains(&(resolution, part))
        })
        .collect())
}

#[cfg(test)]
mod pack_tests;
#[cfg(test)]
mod tests;
