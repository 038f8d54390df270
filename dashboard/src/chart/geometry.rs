//! From values to SVG coordinates: the plot box, line segments split at gaps, band
//! outlines, compact path data, and the hover buckets.

use super::Point;

/// The rectangle the data is drawn in, in SVG user units (y grows downwards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlotBox {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

/// Maps (time, value) into a [`PlotBox`].
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    pub plot: PlotBox,
    pub start_ms: i64,
    pub end_ms: i64,
    pub lo: f64,
    pub hi: f64,
}

impl Mapping {
    /// `start_ms` at the left edge, `end_ms` at the right.
    pub fn x(&self, ts_ms: i64) -> f64 {
        let span = (self.end_ms - self.start_ms).max(1) as f64;
        self.plot.left + (ts_ms - self.start_ms) as f64 / span * (self.plot.right - self.plot.left)
    }

    /// `lo` at the bottom edge, `hi` at the top.
    pub fn y(&self, v: f64) -> f64 {
        let span = if self.hi > self.lo { self.hi - self.lo } else { 1.0 };
        self.plot.bottom - (v - self.lo) / span * (self.plot.bottom - self.plot.top)
    }
}

/// Rounds to one decimal, the precision of every coordinate we write.
pub fn round1(v: f64) -> f64 {
    let r = (v * 10.0).round() / 10.0;
    // No "-0" in the output.
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// Splits points (sorted by time) into runs to draw as one line each: a run ends where
/// `value` is missing or the next point is more than two steps later (the host was
/// offline, or the agent was not collecting).
pub fn runs(points: &[Point], step_ms: i64, value: impl Fn(&Point) -> Option<f64>) -> Vec<Vec<(&Point, f64)>> {
    let max_gap = 2 * step_ms.max(1);
    let mut runs: Vec<Vec<(&Point, f64)>> = Vec::new();
    let mut current: Vec<(&Point, f64)> = Vec::new();
    for p in points {
        let Some(v) = value(p).filter(|v| v.is_finite()) else {
            runs.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            continue;
        };
        if current.last().is_some_and(|(last, _)| p.ts_ms - last.ts_ms > max_gap) {
            runs.push(std::mem::take(&mut current));
        }
        current.push((p, v));
    }
    runs.extend((!current.is_empty()).then_some(current));
    runs
}

/// Path data for one line: "M10 20L11.5 21 13 19.5". A run of one point becomes a dot
/// ("M10 20h0", drawn by the round line cap), so a lone sample is not lost.
pub fn line_path(run: &[(&Point, f64)], map: &Mapping) -> String {
    let coords: Vec<(f64, f64)> = run.iter().map(|(p, v)| (map.x(p.ts_ms), map.y(*v))).collect();
    let mut d = polyline(&coords);
    if coords.len() == 1 {
        d.push_str("h0");
    }
    d
}

/// Path data for a min–max band: along the maxima, back along the minima, closed.
pub fn band_path(run: &[(&Point, f64)], map: &Mapping) -> String {
    let upper = run.iter().map(|(p, max)| (map.x(p.ts_ms), map.y(*max)));
    // A run is built from points whose min is present (see `band_runs`).
    let lower = run.iter().rev().map(|(p, max)| (map.x(p.ts_ms), map.y(p.min.unwrap_or(*max))));
    let coords: Vec<(f64, f64)> = upper.chain(lower).collect();
    let mut d = polyline(&coords);
    d.push('Z');
    d
}

/// The runs a band is drawn over: points with both a min and a max, valued by the max.
pub fn band_runs(points: &[Point], step_ms: i64) -> Vec<Vec<(&Point, f64)>> {
    runs(points, step_ms, |p| p.min.filter(|m| m.is_finite()).and(p.max))
}

/// "M x y L x y x y …" with one decimal, dropping points that round onto the previous one.
fn polyline(coords: &[(f64, f64)]) -> String {
    let mut d = String::with_capacity(coords.len() * 12);
    let mut last = None;
    let mut written = 0;
    for &(x, y) in coords {
        let here = (round1(x), round1(y));
        if last == Some(here) {
            continue;
        }
        // After the first "L", further coordinate pairs repeat the lineto implicitly.
        d.push(match written {
            0 => 'M',
            1 => 'L',
            _ => ' ',
        });
        d.push_str(&format!("{} {}", here.0, here.1));
        last = Some(here);
        written += 1;
    }
    d
}

/// A stretch of time one hover target covers: the points from `first_ms` to `last_ms`,
/// and the time its rectangle spans (halfway to the neighbours, at most half a step out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub first_ms: i64,
    pub last_ms: i64,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Groups the sorted, distinct timestamps into at most `max` buckets of consecutive ones.
pub fn buckets(timestamps: &[i64], step_ms: i64, max: usize) -> Vec<Bucket> {
    if timestamps.is_empty() || max == 0 {
        return Vec::new();
    }
    let per = timestamps.len().div_ceil(max);
    let half = step_ms.max(1) / 2;
    let groups: Vec<&[i64]> = timestamps.chunks(per).collect();
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (first, last) = (g[0], g[g.len() - 1]);
            let mut from = first - half;
            if let Some(prev) = i.checked_sub(1).map(|j| groups[j][groups[j].len() - 1]) {
                from = from.max(prev + (first - prev) / 2);
            }
            let mut to = last + half;
            if let Some(next) = groups.get(i + 1).map(|n| n[0]) {
                to = to.min(last + (next - last) / 2);
            }
            Bucket { first_ms: first, last_ms: last, from_ms: from, to_ms: to }
        })
        .collect()
}
