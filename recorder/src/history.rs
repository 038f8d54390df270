//! A host's history for charts: each query picks its source by the length of the range
//! (raw samples up to 48 h, then minute rollups until hour rollups alone give half the
//! point budget, about 21 days; see [`Source::for_span`]) and returns at most
//! [`MAX_POINTS`] buckets per series, each with its minimum, mean and maximum. Raw samples and rollups are aggregated by the same metric definitions
//! ([`crate::rollup::metrics`]), so a chart means the same thing at every range. The
//! hour tier is read in Rust, packed blocks and open hours merged (`hours.rs`).

mod hours;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use crate::rollup::pack::subject_name;
use crate::rollup::{Agg, Group, Metric, Parts, Resolution};

/// Most buckets a series has in one answer.
pub const MAX_POINTS: i64 = 1000;
const RAW_UP_TO_MS: i64 = 48 * 3_600_000;
/// Hours serve a range once they give at least half of MAX_POINTS: a chart then loses
/// little to the minute tier's finer buckets, and reads a sixtieth of the rows (a 30-day
/// host chart from minutes took several times the page's budget; docs/PERFORMANCE.md).
const MINUTES_UP_TO_MS: i64 = MAX_POINTS / 2 * 3_600_000;

/// Where a range's points come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Raw,
    Rollup(Resolution),
}

impl Source {
    /// The source for a range of `span_ms` of `group`: raw samples up to 48 h, then the
    /// finest resolution the group is rolled up into that the range allows.
    pub fn for_span(group: Group, span_ms: i64) -> Source {
        if span_ms <= RAW_UP_TO_MS {
            return Source::Raw;
        }
        let finest = if span_ms <= MINUTES_UP_TO_MS { Resolution::Minute } else { Resolution::Hour };
        let resolution = group.resolutions().iter().copied().find(|r| *r >= finest).unwrap_or(Resolution::Hour);
        Source::Rollup(resolution)
    }

    /// The bucket width for a range of `span_ms`: a multiple of the source's own
    /// resolution, wide enough for at most MAX_POINTS buckets.
    pub fn bucket_ms(self, span_ms: i64) -> i64 {
        let unit = match self {
            Source::Raw => 1000,
            Source::Rollup(resolution) => resolution.bucket_ms(),
        };
        let buckets = (span_ms + unit * MAX_POINTS - 1) / (unit * MAX_POINTS);
        unit * buckets.max(1)
    }
}

/// One bucket of one series. Gauges have all three values; sizes, counters and shares
/// only `mean`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The start of the bucket.
    pub ts_ms: i64,
    pub min: Option<f64>,
    pub mean: Option<f64>,
    pub max: Option<f64>,
}

/// The series of one subject: the host itself, a pool, a storage or a guest.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// Empty for the host; the pool or storage name; `vm/101` or `ct/101` for a guest.
    pub name: String,
    /// One series per metric of the group, in [`Group::metrics`] order.
    pub series: Vec<Vec<Point>>,
}

impl Subject {
    /// The points of the metric called `name`.
    pub fn series(&self, group: Group, name: &str) -> &[Point] {
        group.metrics().iter().position(|m| m.name == name).map_or(&[], |i| &self.series[i])
    }
}

/// A group's history over one range.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub source: Source,
    /// The width of one bucket.
    pub bucket_ms: i64,
    pub subjects: Vec<Subject>,
}

/// The history of `group` for `host` over `[start_ms, end_ms)`.
pub fn read(conn: &Connection, group: Group, host: &str, start_ms: i64, end_ms: i64) -> rusqlite::Result<History> {
    let span = (end_ms - start_ms).max(1);
    let source = Source::for_span(group, span);
    let bucket_ms = source.bucket_ms(span);
    let empty = History { source, bucket_ms, subjects: Vec::new() };
    let (sql, key, lo, hi) = match source {
        Source::Raw => (raw_sql(group, bucket_ms), Value::Text(host.to_owned()), start_ms, end_ms),
        Source::Rollup(Resolution::Hour) => {
            let subjects = hours::read(conn, group, host, start_ms, end_ms, bucket_ms)?;
            return Ok(History { source, bucket_ms, subjects });
        }
        Source::Rollup(resolution) => {
            let parts = Parts::load(conn)?.overlapping(resolution, start_ms, end_ms);
            let number: Option<i64> = conn
                .prepare_cached("SELECT id FROM rollup_hosts WHERE host_id = ?1")?
                .query_row([host], |r| r.get(0))
                .optional()?;
            let Some(number) = number.filter(|_| !parts.is_empty()) else { return Ok(empty) };
            let bucket = resolution.bucket_ms();
            let (lo, hi) = (start_ms.div_euclid(bucket), (end_ms - 1).div_euclid(bucket) + 1);
            (rollup_sql(group, resolution, &parts, bucket_ms), Value::Integer(number), lo, hi)
        }
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let subject_columns = group.subject_columns().len();
    let mut subjects: Vec<Subject> = Vec::new();
    let mut rows = stmt.query(rusqlite::params![key, lo, hi])?;
    while let Some(row) = rows.next()? {
        let name = subject_name(group, row)?;
        if subjects.last().is_none_or(|s| s.name != name) {
            subjects.push(Subject { name, series: vec![Vec::new(); group.metrics().len()] });
        }
        let ts_ms: i64 = row.get(subject_columns)?;
        let subject = subjects.last_mut().expect("pushed above when missing");
        let mut at = subject_columns + 1;
        for (i, metric) in group.metrics().iter().enumerate() {
            let (point, used) = match source {
                Source::Raw => raw_point(metric, row, at, ts_ms)?,
                Source::Rollup(_) => rollup_point(metric, row, at, ts_ms)?,
            };
            at += used;
            subject.series[i].push(point);
        }
    }
    Ok(History { source, bucket_ms, subjects })
}

/// Points of a few host `metrics` for many `hosts` over `[start_ms, end_ms)`, read from
/// raw samples in buckets of `bucket_ms`, in one query (an overview's sparklines: one
/// query for the page, not one per card). Each host's key range is a seek in every hour
/// table, so the cost grows with the hosts asked for, not with the fleet. Returns the
/// hosts that have samples, by id, each with one series per metric in `metrics` order.
pub fn read_hosts(
    conn: &Connection,
    metrics: &[&str],
    hosts: &[&str],
    start_ms: i64,
    end_ms: i64,
    bucket_ms: i64,
) -> rusqlite::Result<Vec<(String, Vec<Vec<Point>>)>> {
    let chosen: Vec<&Metric> = metrics
        .iter()
        .map(|name| {
            Group::Host
                .metrics()
                .iter()
                .find(|m| m.name == *name)
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(format!("no host metric {name}")))
        })
        .collect::<rusqlite::Result<_>>()?;
    if hosts.is_empty() || chosen.is_empty() {
        return Ok(Vec::new());
    }
    let sql = hosts_sql(&chosen, hosts.len(), bucket_ms);
    let mut params: Vec<Value> = hosts.iter().map(|h| Value::Text((*h).to_owned())).collect();
    params.extend([Value::Integer(start_ms), Value::Integer(end_ms)]);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out: Vec<(String, Vec<Vec<Point>>)> = Vec::new();
    while let Some(row) = rows.next()? {
        let host: String = row.get(0)?;
        if out.last().is_none_or(|(h, _)| *h != host) {
            out.push((host, vec![Vec::new(); chosen.len()]));
        }
        let ts_ms: i64 = row.get(1)?;
        let (_, series) = out.last_mut().expect("pushed above when missing");
        let mut at = 2;
        for (i, metric) in chosen.iter().enumerate() {
            let (point, used) = raw_point(metric, row, at, ts_ms)?;
            at += used;
            series[i].push(point);
        }
    }
    Ok(out)
}

/// [`read_hosts`]'s query (parameters: the hosts, then start and end).
pub(crate) fn hosts_sql(metrics: &[&Metric], hosts: usize, bucket_ms: i64) -> String {
    let bucket_ms = bucket_ms.max(1);
    format!(
        "SELECT host_id, (ts_ms / {bucket_ms}) * {bucket_ms} AS bucket, {}
         FROM {} WHERE host_id IN ({}) AND ts_ms >= ? AND ts_ms < ?
         GROUP BY host_id, bucket ORDER BY host_id, bucket",
        raw_columns(metrics.iter().copied()).join(", "),
        Group::Host.raw_view(),
        vec!["?"; hosts].join(", ")
    )
}

fn subject_list(group: Group) -> String {
    group.subject_columns().iter().map(|(name, _)| format!("{name}, ")).collect()
}

/// Aggregates raw samples into buckets of `bucket_ms` (parameters: host, start, end).
fn raw_sql(group: Group, bucket_ms: i64) -> String {
    let columns = raw_columns(group.metrics());
    let subjects = subject_list(group);
    format!(
        "SELECT {subjects}(ts_ms / {bucket_ms}) * {bucket_ms} AS bucket, {}
         FROM {} WHERE host_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3
         GROUP BY {subjects}bucket ORDER BY {subjects}bucket",
        columns.join(", "),
        group.raw_view()
    )
}

/// The aggregate columns of `metrics` over raw rows, in the order [`raw_point`] reads them.
fn raw_columns<'m>(metrics: impl IntoIterator<Item = &'m Metric>) -> Vec<String> {
    let mut columns = Vec::new();
    for m in metrics {
        let v = m.raw();
        match m.agg {
            Agg::Gauge => columns.extend([format!("min({v})"), format!("avg({v})"), format!("max({v})")]),
            Agg::Max | Agg::Last => columns.push(format!("max({v})")),
            Agg::Share => columns.push(format!("100.0 * avg({v})")),
        }
    }
    columns
}

/// Merges rollup rows into buckets of `bucket_ms` (parameters: the host's number, first
/// and end bucket of the resolution).
fn rollup_sql(group: Group, resolution: Resolution, parts: &[i64], bucket_ms: i64) -> String {
    let mut columns = Vec::new();
    for m in group.metrics() {
        let n = m.name;
        match m.agg {
            Agg::Gauge => columns.extend([
                format!("min({n}_min)"),
                format!("sum({n}_sum)"),
                format!("sum({n}_n)"),
                format!("max({n}_max)"),
            ]),
            Agg::Max => columns.push(format!("max({n}_max)")),
            // Counters only grow until cleared: the largest is the last but for a clear.
            Agg::Last => columns.push(format!("max({n}_last)")),
            Agg::Share => columns.push(format!("100.0 * sum({n}_sum) / sum(n)")),
        }
    }
    let unions: Vec<String> = parts
        .iter()
        .map(|p| format!("SELECT * FROM {} WHERE host = ?1 AND t >= ?2 AND t < ?3", resolution.table(group, *p)))
        .collect();
    let subjects = subject_list(group);
    let unit = resolution.bucket_ms();
    format!(
        "SELECT {subjects}(t * {unit} / {bucket_ms}) * {bucket_ms} AS bucket, {}
         FROM ({}) GROUP BY {subjects}bucket ORDER BY {subjects}bucket",
        columns.join(", "),
        unions.join(" UNION ALL ")
    )
}

/// One point from the raw query's columns at `at`; returns it and how many columns it used.
fn raw_point(metric: &Metric, row: &rusqlite::Row, at: usize, ts_ms: i64) -> rusqlite::Result<(Point, usize)> {
    Ok(match metric.agg {
        Agg::Gauge => (Point { ts_ms, min: row.get(at)?, mean: row.get(at + 1)?, max: row.get(at + 2)? }, 3),
        _ => (Point { ts_ms, min: None, mean: row.get(at)?, max: None }, 1),
    })
}

/// One point from the rollup query's columns at `at`; returns it and how many columns it used.
fn rollup_point(metric: &Metric, row: &rusqlite::Row, at: usize, ts_ms: i64) -> rusqlite::Result<(Point, usize)> {
    let decode = |v: Option<f64>| v.map(|v| metric.decode(v));
    Ok(match metric.agg {
        Agg::Gauge => {
            let (sum, n): (Option<f64>, Option<f64>) = (row.get(at + 1)?, row.get(at + 2)?);
            let mean = sum.zip(n.filter(|n| *n > 0.0)).map(|(s, n)| s / n);
            (Point { ts_ms, min: decode(row.get(at)?), mean: decode(mean), max: decode(row.get(at + 3)?) }, 4)
        }
        Agg::Max | Agg::Last => (Point { ts_ms, min: None, mean: decode(row.get(at)?), max: None }, 1),
        Agg::Share => (Point { ts_ms, min: None, mean: row.get(at)?, max: None }, 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_pick_their_source_and_stay_under_the_point_limit() {
        let hour = 3_600_000;
        for (span, source) in [
            (hour, Source::Raw),
            (48 * hour, Source::Raw),
            (7 * 24 * hour, Source::Rollup(Resolution::Minute)),
            (500 * hour, Source::Rollup(Resolution::Minute)),
            (501 * hour, Source::Rollup(Resolution::Hour)),
            (30 * 24 * hour, Source::Rollup(Resolution::Hour)),
            (365 * 24 * hour, Source::Rollup(Resolution::Hour)),
            (730 * 24 * hour, Source::Rollup(Resolution::Hour)),
        ] {
            assert_eq!(Source::for_span(Group::Host, span), source, "span {span}");
            let bucket = source.bucket_ms(span);
            assert!(span / bucket <= MAX_POINTS, "span {span}: {} buckets", span / bucket);
            if let Source::Rollup(r) = source {
                assert_eq!(bucket % r.bucket_ms(), 0, "whole rollup buckets");
            }
        }
        assert_eq!(Source::Rollup(Resolution::Minute).bucket_ms(500 * hour), 30 * 60_000);
        assert_eq!(Source::Raw.bucket_ms(hour), 4000);
        // Medium series have no minute tier: beyond the raw window they come by the hour.
        assert_eq!(Source::for_span(Group::Guest, 7 * 24 * hour), Source::Rollup(Resolution::Hour));
        assert_eq!(Source::for_span(Group::Pool, 24 * hour), Source::Raw);
    }
}
