//! The packed hour tier. Samples are folded into the open hour tables
//! (`roll_<group>_h_p<part>`, a row per subject and hour, merged in SQL as they settle);
//! once a block of [`BLOCK_HOURS`] has ended, the packer moves each host's rows of that
//! block into one packed row (`rollpack_h_p<part>`, see `block.rs`), a few bytes per
//! value instead of a row per subject and hour, and deletes them from the open table.
//! A late sample lands in the open table again and is merged into its block by the
//! next pass. Reads merge both ([`read_cells`]).
//!
//! Databases from before the packed tier hold their hours in the same open tables: they
//! stay readable as they are, and the packer's first pass converts them, a host and a
//! partition per step, between ingest batches.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::block::{self, Block, BLOCK_HOURS};
use super::cell::{self, Cell};
use super::{Group, Parts, Resolution};
use crate::partitions::HOUR_MS;

/// How long after a block ends its hours are packed: samples settle within seconds, and
/// a late one is merged by the next pass anyway.
const GRACE_MS: i64 = 10 * 60_000;
/// Hosts are numbered below this in `rollup_hosts` (16 million): a packed row's key is
/// its block and host in one integer.
const HOSTS: i64 = 1 << 24;

pub fn block_of_hour(hour: i64) -> i64 {
    hour.div_euclid(BLOCK_HOURS)
}

/// The first block not yet packed at `now_ms`.
pub fn first_open_block(now_ms: i64) -> i64 {
    block_of_hour((now_ms - GRACE_MS).div_euclid(HOUR_MS))
}

fn part_of_block(block: i64) -> i64 {
    Resolution::Hour.part_of(block * BLOCK_HOURS * HOUR_MS)
}

pub fn pack_table(part: i64) -> String {
    format!("rollpack_h_p{part}")
}

fn row_id(block: i64, host: i64) -> i64 {
    block * HOSTS + host
}

/// The part of the hour range `[lo, hi)` that partition `part` covers.
fn part_hours(part: i64) -> (i64, i64) {
    let hours = Resolution::Hour.part_ms() / HOUR_MS;
    (part * hours, (part + 1) * hours)
}

/// A subject's name from its key columns (`group.subject_columns()`) at the start of
/// `row`: empty for the host, the pool or storage name, `vm/101` for a guest.
pub fn subject_name(group: Group, row: &rusqlite::Row) -> rusqlite::Result<String> {
    use rusqlite::types::Value;
    let parts: Vec<String> = (0..group.subject_columns().len())
        .map(|i| {
            Ok(match row.get::<_, Value>(i)? {
                Value::Text(s) => s,
                Value::Integer(n) => n.to_string(),
                _ => String::new(),
            })
        })
        .collect::<rusqlite::Result<_>>()?;
    Ok(if group == Group::Guest { parts.join("/") } else { parts.join("") })
}

/// The cells of `host` in the open table of `group` for partition `part`, hours
/// `[lo, hi)`: (subject, hour, cell).
fn open_cells(
    conn: &Connection,
    group: Group,
    part: i64,
    host: i64,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Vec<(String, i64, Cell)>> {
    let columns = group.columns();
    let subjects: String = group.subject_columns().iter().map(|(name, _)| format!("{name}, ")).collect();
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let last = if group.keeps_last() { "t_last" } else { "NULL" };
    let sql = format!(
        "SELECT {subjects}t, n, {last}, {} FROM {} WHERE host = ?1 AND t >= ?2 AND t < ?3",
        names.join(", "),
        Resolution::Hour.table(group, part)
    );
    let at = group.subject_columns().len();
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query((host, lo, hi))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let hour: i64 = row.get(at)?;
        let last_at = row.get::<_, Option<i64>>(at + 2)?.map(|ms| (ms - hour * HOUR_MS).div_euclid(1000));
        let values: Vec<Option<f64>> =
            (0..names.len()).map(|i| row.get(at + 3 + i)).collect::<rusqlite::Result<_>>()?;
        out.push((subject_name(group, row)?, hour, cell::from_open_row(group, row.get(at + 1)?, last_at, &values)));
    }
    Ok(out)
}

/// The number of a subject in `rollup_subjects`, added when new.
fn subject_number(tx: &Transaction, group: Group, name: &str) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT OR IGNORE INTO rollup_subjects (grp, name) VALUES (?1, ?2)")?
        .execute((group.name(), name))?;
    tx.prepare_cached("SELECT id FROM rollup_subjects WHERE grp = ?1 AND name = ?2")?
        .query_row((group.name(), name), |r| r.get(0))
}

/// The packed row of `host` for `block`, if any.
fn load_block(conn: &Connection, block: i64, host: i64) -> rusqlite::Result<Option<Vec<u8>>> {
    let part = part_of_block(block);
    let known: Option<i64> = conn
        .prepare_cached("SELECT part FROM rollup_packs WHERE part = ?1")?
        .query_row([part], |r| r.get(0))
        .optional()?;
    if known.is_none() {
        return Ok(None);
    }
    conn.prepare_cached(&format!("SELECT data FROM {} WHERE id = ?1", pack_table(part)))?
        .query_row([row_id(block, host)], |r| r.get(0))
        .optional()
}

fn ensure_pack(tx: &Transaction, part: i64) -> rusqlite::Result<()> {
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (id INTEGER PRIMARY KEY, data BLOB NOT NULL) STRICT",
        pack_table(part)
    ))?;
    tx.prepare_cached("INSERT OR IGNORE INTO rollup_packs (part) VALUES (?1)")?.execute([part])?;
    Ok(())
}

/// Packs the open rows of `host` in partition `part` before block `cut` into their
/// blocks (merged with what each block already holds) and deletes them from the open
/// tables. Returns the cells packed.
pub fn pack_host(tx: &Transaction, part: i64, host: i64, cut: i64) -> rusqlite::Result<usize> {
    let (lo, end) = part_hours(part);
    let hi = end.min(cut * BLOCK_HOURS);
    if hi <= lo {
        return Ok(0);
    }
    let mut blocks: BTreeMap<i64, Block> = BTreeMap::new();
    let mut cells = 0;
    for group in Group::ALL.into_iter().filter(|g| g.resolutions().contains(&Resolution::Hour)) {
        for (name, hour, cell) in open_cells(tx, group, part, host, lo, hi)? {
            let block = block_of_hour(hour);
            let subject = subject_number(tx, group, &name)?;
            let decoded = match blocks.entry(block) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => {
                    let old = load_block(tx, block, host)?;
                    new.insert(old.map(|b| block::decode(&b)).transpose().map_err(corrupt)?.unwrap_or_default())
                }
            };
            let slots = decoded.entry((group, subject)).or_insert_with(|| vec![None; BLOCK_HOURS as usize]);
            let slot = &mut slots[(hour - block * BLOCK_HOURS) as usize];
            match slot {
                Some(old) => old.merge(group, &cell),
                None => *slot = Some(cell),
            }
            cells += 1;
        }
    }
    if cells == 0 {
        return Ok(0);
    }
    for (block, data) in &blocks {
        let part = part_of_block(*block);
        ensure_pack(tx, part)?;
        tx.prepare_cached(&format!("INSERT OR REPLACE INTO {} (id, data) VALUES (?1, ?2)", pack_table(part)))?
            .execute((row_id(*block, host), block::encode(data)))?;
    }
    for group in Group::ALL.into_iter().filter(|g| g.resolutions().contains(&Resolution::Hour)) {
        let table = Resolution::Hour.table(group, part);
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE host = ?1 AND t >= ?2 AND t < ?3"))?
            .execute((host, lo, hi))?;
    }
    Ok(cells)
}

fn corrupt(e: super::codec::Corrupt) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// The next host after `after` with rows in the open tables of partition `part`.
pub fn next_host(conn: &Connection, part: i64, after: i64) -> rusqlite::Result<Option<i64>> {
    let mut next: Option<i64> = None;
    for group in Group::ALL.into_iter().filter(|g| g.resolutions().contains(&Resolution::Hour)) {
        let sql = format!("SELECT min(host) FROM {} WHERE host > ?1", Resolution::Hour.table(group, part));
        let found: Option<i64> = conn.prepare_cached(&sql)?.query_row([after], |r| r.get(0))?;
        next = match (next, found) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(next)
}

/// The open partitions a pass at `cut` visits: those that start before it.
pub fn open_parts(parts: &Parts, cut: i64) -> Vec<i64> {
    parts
        .known
        .iter()
        .filter(|(r, p)| *r == Resolution::Hour && part_hours(*p).0 < cut * BLOCK_HOURS)
        .map(|(_, p)| *p)
        .collect()
}

/// After a pass has packed every host of `part`: if the partition ends before `cut`, its
/// open tables are empty for good (a late sample creates them again), so they go.
pub fn close_part(tx: &Transaction, parts: &mut Parts, part: i64, cut: i64) -> rusqlite::Result<()> {
    if part_hours(part).1 > cut * BLOCK_HOURS {
        return Ok(());
    }
    parts.forget(tx, Resolution::Hour, part)?;
    for group in Group::ALL.into_iter().filter(|g| g.resolutions().contains(&Resolution::Hour)) {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", Resolution::Hour.table(group, part)))?;
    }
    Ok(())
}

/// Packs every block that has ended by `now_ms`, in one go (benchmarks, the demo's
/// seeding and tests; the writer runs the same steps between batches).
pub fn pack_all(conn: &mut Connection, parts: &mut Parts, now_ms: i64) -> rusqlite::Result<()> {
    let cut = first_open_block(now_ms);
    for part in open_parts(parts, cut) {
        let tx = conn.transaction()?;
        let mut host = 0;
        while let Some(next) = next_host(&tx, part, host)? {
            pack_host(&tx, part, next, cut)?;
            host = next;
        }
        close_part(&tx, parts, part, cut)?;
        tx.commit()?;
        conn.flush_prepared_statement_cache();
    }
    Ok(())
}

/// A subject's cells by hour, in order.
pub type Hours = Vec<(i64, Cell)>;

/// Every cell of `group` for `host` in hours `[lo, hi)`, packed and open, by subject name,
/// each subject's in hour order (an hour in both forms merged into one cell).
pub fn read_cells(
    conn: &Connection,
    group: Group,
    host: i64,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<BTreeMap<String, Hours>> {
    let mut out: BTreeMap<String, Hours> = BTreeMap::new();
    let packs: BTreeSet<i64> = conn
        .prepare_cached("SELECT part FROM rollup_packs WHERE part >= ?1 AND part <= ?2")?
        .query_map([part_of_block(block_of_hour(lo)), part_of_block(block_of_hour(hi - 1))], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut names: HashMap<i64, String> = HashMap::new();
    for block in block_of_hour(lo)..=block_of_hour(hi - 1) {
        if !packs.contains(&part_of_block(block)) {
            continue;
        }
        let Some(data) = load_block(conn, block, host)? else { continue };
        for (subject, slots) in block::decode_group(&data, group).map_err(corrupt)? {
            let name = match names.entry(subject) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(new) => new.insert(
                    conn.prepare_cached("SELECT name FROM rollup_subjects WHERE id = ?1")?
                        .query_row([subject], |r| r.get(0))?,
                ),
            };
            let hours = out.entry(name.clone()).or_default();
            for (i, cell) in slots.into_iter().enumerate() {
                let hour = block * BLOCK_HOURS + i as i64;
                if let Some(cell) = cell.filter(|_| hour >= lo && hour < hi) {
                    hours.push((hour, cell));
                }
            }
        }
    }
    let mut open = false;
    for part in Parts::load(conn)?.overlapping(Resolution::Hour, lo * HOUR_MS, hi * HOUR_MS) {
        for (name, hour, cell) in open_cells(conn, group, part, host, lo, hi)? {
            out.entry(name).or_default().push((hour, cell));
            open = true;
        }
    }
    if open {
        for hours in out.values_mut() {
            *hours = merge_hours(group, std::mem::take(hours));
        }
    }
    Ok(out)
}

/// Cells in hour order, those of the same hour (packed, then open) merged.
fn merge_hours(group: Group, mut hours: Hours) -> Hours {
    hours.sort_by_key(|(hour, _)| *hour);
    let mut merged: Hours = Vec::with_capacity(hours.len());
    for (hour, cell) in hours {
        match merged.last_mut() {
            Some((last, old)) if *last == hour => old.merge(group, &cell),
            _ => merged.push((hour, cell)),
        }
    }
    merged
}

/// Forgets the packed partitions before `first_kept` (retention; their tables are
/// dropped one by one after, see [`stale_packs`]).
pub fn detach_packs_before(tx: &Transaction, first_kept: i64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM rollup_packs WHERE part < ?1", [first_kept])?;
    Ok(())
}

/// Packed tables before `first_kept` or not attached (a crash between detaching and
/// dropping).
pub fn stale_packs(conn: &Connection, first_kept: i64) -> rusqlite::Result<Vec<String>> {
    let attached: BTreeSet<i64> =
        conn.prepare("SELECT part FROM rollup_packs")?.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(crate::db::tables_matching(conn, "rollpack_h_p[0-9]*")?
        .into_iter()
        .filter(|name| {
            let Some(Ok(part)) = name.strip_prefix("rollpack_h_p").map(str::parse::<i64>) else { return false };
            part < first_kept || !attached.contains(&part)
        })
        .collect())
}
