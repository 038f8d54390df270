//! A range read from the hour tier: the packed blocks and the open hour tables merged
//! into hourly cells ([`pack::read_cells`]), then into the chart's buckets here.

use rusqlite::{Connection, OptionalExtension};

use super::{Point, Subject};
use crate::partitions::HOUR_MS;
use crate::rollup::cell::{self, Cell};
use crate::rollup::{pack, Agg, Group};

/// The subjects of `group` for `host` over `[start_ms, end_ms)`, in buckets of
/// `bucket_ms` (a multiple of an hour).
pub(super) fn read(
    conn: &Connection,
    group: Group,
    host: &str,
    start_ms: i64,
    end_ms: i64,
    bucket_ms: i64,
) -> rusqlite::Result<Vec<Subject>> {
    let number: Option<i64> = conn
        .prepare_cached("SELECT id FROM rollup_hosts WHERE host_id = ?1")?
        .query_row([host], |r| r.get(0))
        .optional()?;
    let Some(number) = number else { return Ok(Vec::new()) };
    let (lo, hi) = (start_ms.div_euclid(HOUR_MS), (end_ms - 1).div_euclid(HOUR_MS) + 1);
    let mut subjects: Vec<Subject> = pack::read_cells(conn, group, number, lo, hi)?
        .into_iter()
        .map(|(name, hours)| Subject { series: series(group, &hours, bucket_ms), name })
        .collect();
    subjects.sort_by_cached_key(|s| order(group, &s.name));
    Ok(subjects)
}

/// Subjects in the order of their key columns, as the other sources give them: a guest
/// by kind, then by number.
fn order(group: Group, name: &str) -> (String, i64, String) {
    match name.split_once('/').filter(|_| group == Group::Guest) {
        Some((kind, vmid)) => (kind.to_owned(), vmid.parse().unwrap_or(i64::MAX), String::new()),
        None => (String::new(), 0, name.to_owned()),
    }
}

/// One series per metric from a subject's hourly cells (in hour order), a point per
/// bucket with cells.
fn series(group: Group, hours: &pack::Hours, bucket_ms: i64) -> Vec<Vec<Point>> {
    let mut buckets: Vec<(i64, Vec<&Cell>)> = Vec::new();
    for (hour, cell) in hours {
        let bucket = (hour * HOUR_MS).div_euclid(bucket_ms) * bucket_ms;
        match buckets.last_mut() {
            Some((last, cells)) if *last == bucket => cells.push(cell),
            _ => buckets.push((bucket, vec![cell])),
        }
    }
    let mut out = vec![Vec::with_capacity(buckets.len()); group.metrics().len()];
    let mut at = 0;
    for (i, metric) in group.metrics().iter().enumerate() {
        let scale = metric.packed_scale();
        let unit = |v: i64| v as f64 / scale;
        for (ts_ms, cells) in &buckets {
            let field = |f: usize| cells.iter().filter_map(move |c| c.fields[at + f]);
            let point = match metric.agg {
                Agg::Gauge => {
                    let count: i64 = field(cell::COUNT).sum();
                    let weighted: f64 = cells
                        .iter()
                        .filter_map(|c| Some(c.fields[at + cell::MEAN]? as f64 * c.fields[at + cell::COUNT]? as f64))
                        .sum();
                    Point {
                        ts_ms: *ts_ms,
                        min: field(cell::MIN).min().map(unit),
                        mean: (count > 0).then(|| weighted / count as f64 / scale),
                        max: field(cell::MAX).max().map(unit),
                    }
                }
                Agg::Max => Point { ts_ms: *ts_ms, min: None, mean: field(0).max().map(unit), max: None },
                // The later hour's value: a counter cleared within the bucket shows so.
                Agg::Last => {
                    Point { ts_ms: *ts_ms, min: None, mean: field(cell::LAST).next_back().map(unit), max: None }
                }
                Agg::Share => {
                    let (sum, n) = (field(0).sum::<i64>(), cells.iter().map(|c| c.n).sum::<i64>());
                    Point { ts_ms: *ts_ms, min: None, mean: (n > 0).then(|| 100.0 * sum as f64 / n as f64), max: None }
                }
            };
            out[i].push(point);
        }
        at += cell::fields_of(metric);
    }
    out
}
