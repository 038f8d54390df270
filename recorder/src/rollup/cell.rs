//! One subject's aggregates over one hour, in the packed tier's units: what a packed
//! block holds per subject and hour, what the open hour tables' rows are converted to,
//! and what a chart's hourly buckets are merged from.
//!
//! Values are quantised to [`Metric::packed_scale`] (the precision a chart can show:
//! 0.1 % for percentages, 0.01 for loads, 1 MiB for bytes, 0.001 of a CPU for guests;
//! counters and shares exact). A gauge keeps its count of values, minimum, mean and
//! maximum; a size its maximum; a counter its last value and when in the hour that was;
//! a share its count of matching samples.

use super::{Agg, Group, Metric};

/// The fields a metric keeps in a cell, in order.
pub fn fields_of(metric: &Metric) -> usize {
    match metric.agg {
        Agg::Gauge => 4,
        Agg::Max | Agg::Share => 1,
        Agg::Last => 2,
    }
}

/// Offsets of a gauge's fields.
pub const COUNT: usize = 0;
pub const MIN: usize = 1;
pub const MEAN: usize = 2;
pub const MAX: usize = 3;
/// Offsets of a counter's fields: its last value, and the second of the hour it was taken.
pub const LAST: usize = 0;
pub const LAST_AT: usize = 1;

/// Every field of a group's cell, in order.
pub fn field_count(group: Group) -> usize {
    group.metrics().iter().map(fields_of).sum()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Samples folded into it.
    pub n: i64,
    /// Each metric's fields ([`fields_of`]), in [`Group::metrics`] order.
    pub fields: Vec<Option<i64>>,
}

impl Cell {
    pub fn empty(group: Group) -> Cell {
        Cell { n: 0, fields: vec![None; field_count(group)] }
    }

    /// `other` folded into `self`: counts add, extremes widen, means weigh by their
    /// counts and a counter keeps the later of the two values (`other` on a tie: it was
    /// folded last).
    pub fn merge(&mut self, group: Group, other: &Cell) {
        let mut at = 0;
        for metric in group.metrics() {
            let (a, b) = (&mut self.fields[at..at + fields_of(metric)], &other.fields[at..at + fields_of(metric)]);
            match metric.agg {
                Agg::Gauge => merge_gauge(a, b),
                Agg::Max => a[0] = either(a[0], b[0], i64::max),
                Agg::Share => a[0] = either(a[0], b[0], |x, y| x + y),
                Agg::Last => {
                    if b[LAST].is_some() && (a[LAST].is_none() || b[LAST_AT] >= a[LAST_AT]) {
                        a.copy_from_slice(b);
                    }
                }
            }
            at += fields_of(metric);
        }
        self.n += other.n;
    }
}

fn either(a: Option<i64>, b: Option<i64>, f: impl Fn(i64, i64) -> i64) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}

fn merge_gauge(a: &mut [Option<i64>], b: &[Option<i64>]) {
    let (ca, cb) = (a[COUNT].unwrap_or(0), b[COUNT].unwrap_or(0));
    if cb == 0 {
        return;
    }
    if ca == 0 {
        a.copy_from_slice(b);
        return;
    }
    let (ma, mb) = (a[MEAN].unwrap_or(0) as i128, b[MEAN].unwrap_or(0) as i128);
    let mean = (ma * ca as i128 + mb * cb as i128) as f64 / (ca + cb) as f64;
    a[COUNT] = Some(ca + cb);
    a[MIN] = either(a[MIN], b[MIN], i64::min);
    a[MAX] = either(a[MAX], b[MAX], i64::max);
    a[MEAN] = Some(mean.round() as i64);
}

/// Packed values saturate at plus or minus this (2^59 MiB is far beyond any disk), so
/// that a gauge's spreads stay within what a stream stores ([`super::codec::LIMIT`]).
pub const VALUE_LIMIT: i64 = 1 << 59;

/// A value of a metric in the open hour tables' units (`Metric::stored`) in packed units.
pub fn requantise(metric: &Metric, stored: f64) -> i64 {
    let v = (metric.decode(stored) * metric.packed_scale()).round();
    v.clamp(-(VALUE_LIMIT as f64), VALUE_LIMIT as f64) as i64
}

/// The cell of one row of an open hour table: `n`, the second of the hour of the latest
/// sample (for counters), then the stored columns ([`Group::columns`]) as read.
pub fn from_open_row(group: Group, n: i64, last_at_s: Option<i64>, columns: &[Option<f64>]) -> Cell {
    let mut fields = Vec::with_capacity(field_count(group));
    let mut at = 0;
    for metric in group.metrics() {
        let q = |v: Option<f64>| v.map(|v| requantise(metric, v));
        match metric.agg {
            Agg::Gauge => {
                // Stored as count, min, max, sum.
                let (count, min, max, sum) = (columns[at], columns[at + 1], columns[at + 2], columns[at + 3]);
                let count = count.unwrap_or(0.0) as i64;
                let mean = sum.filter(|_| count > 0).map(|s| s / count as f64);
                if count == 0 {
                    fields.extend([Some(0), None, None, None]);
                } else {
                    fields.extend([Some(count), q(min), q(mean), q(max)]);
                }
                at += 4;
            }
            Agg::Max => {
                fields.push(q(columns[at]));
                at += 1;
            }
            Agg::Last => {
                let last = q(columns[at]);
                fields.extend([last, last.and(last_at_s)]);
                at += 1;
            }
            // A count of samples: exact.
            Agg::Share => {
                fields.push(columns[at].map(|v| v.round() as i64));
                at += 1;
            }
        }
    }
    Cell { n, fields }
}
