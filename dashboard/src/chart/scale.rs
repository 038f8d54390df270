//! Where the ticks go: nice numbers on the y axis, calendar steps on the x axis.

use super::time::{self, DAY, HOUR, MINUTE};
use super::Unit;

/// About this many intervals between y ticks.
const Y_INTERVALS: f64 = 5.0;
/// At most this many x ticks: a label is about 40 px wide in a 640 px plot.
const MAX_X_TICKS: i64 = 8;

/// The y axis: its domain and labelled ticks.
#[derive(Clone, Debug, PartialEq)]
pub struct YScale {
    pub lo: f64,
    pub hi: f64,
    /// (value, label), lowest first; the first is `lo` and the last `hi`.
    pub ticks: Vec<(f64, String)>,
}

/// Ticks on 1, 2 or 5 × 10^n covering `lo..=hi` in about `intervals` steps: the step
/// and the ticks, from the multiple of the step at or below `lo` to the one at or above `hi`.
pub fn nice_ticks(lo: f64, hi: f64, intervals: f64) -> (f64, Vec<f64>) {
    let step = nice_step((hi - lo) / intervals);
    ticks_by(lo, hi, step)
}

/// The y axis for `unit` when the data spans `data` (min, max), or `None` without data.
/// Percent is fixed at 0–100 (wider only if a value lies outside); bytes, rates and counts
/// start at 0; load and temperature span the data.
pub fn y_scale(unit: Unit, data: Option<(f64, f64)>) -> YScale {
    let (mut lo, mut hi) = data.unwrap_or((0.0, 0.0));
    if unit.starts_at_zero() {
        lo = lo.min(0.0);
    }
    if unit == Unit::Percent {
        hi = hi.max(100.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        // A flat line: give it room instead of dividing by zero.
        match unit {
            Unit::Bytes | Unit::BytesPerSecond => hi = lo + 1024.0,
            _ if unit.starts_at_zero() => hi = lo + 1.0,
            _ => (lo, hi) = (lo - 1.0, hi + 1.0),
        }
    }
    let power = unit.tick_power(hi.abs().max(lo.abs()));
    let divisor = 1024f64.powi(power as i32);
    let mut step = nice_step((hi - lo) / divisor / Y_INTERVALS);
    if unit == Unit::Count {
        step = step.max(1.0);
    }
    let (step, scaled) = ticks_by(lo / divisor, hi / divisor, step);
    let decimals = decimals(step);
    let ticks: Vec<(f64, String)> =
        scaled.iter().map(|&t| (t * divisor, unit.tick_label(t, power, decimals))).collect();
    YScale { lo: ticks[0].0, hi: ticks[ticks.len() - 1].0, ticks }
}

/// The smallest of 1, 2, 5 × 10^n at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalized = raw / magnitude;
    let nice = if normalized <= 1.0 + 1e-9 {
        1.0
    } else if normalized <= 2.0 + 1e-9 {
        2.0
    } else if normalized <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn ticks_by(lo: f64, hi: f64, step: f64) -> (f64, Vec<f64>) {
    let first = (lo / step + 1e-9).floor() as i64;
    let last = (hi / step - 1e-9).ceil() as i64;
    let last = last.max(first + 1);
    // Multiplying (not adding) keeps 0.1 + 0.2 from drifting into 0.30000000000000004;
    // rounding to the step's decimals removes what is left.
    let scale = 10f64.powi(decimals(step) as i32 + 1);
    (step, (first..=last).map(|i| (i as f64 * step * scale).round() / scale).collect())
}

/// Decimals that tell multiples of a nice `step` apart: 0 for 20, 1 for 0.5, 2 for 0.05.
fn decimals(step: f64) -> usize {
    (-(step.log10() + 1e-9).floor()).max(0.0) as usize
}

/// X ticks for a window: (timestamp, label), on round UTC times inside the window.
/// Up to 2 days: HH:MM (midnight shows the date instead); up to about 2 months: day and
/// month at whole days or Mondays; longer: the first of the month.
pub fn time_ticks(start_ms: i64, end_ms: i64) -> Vec<(i64, String)> {
    let span = (end_ms - start_ms).max(1);
    if span <= 2 * DAY {
        const STEPS: [i64; 12] = [
            MINUTE,
            2 * MINUTE,
            5 * MINUTE,
            10 * MINUTE,
            15 * MINUTE,
            30 * MINUTE,
            HOUR,
            2 * HOUR,
            3 * HOUR,
            6 * HOUR,
            12 * HOUR,
            DAY,
        ];
        let step = STEPS.into_iter().find(|s| span / s <= MAX_X_TICKS).unwrap_or(DAY);
        aligned(start_ms, end_ms, step, 0)
            .map(|t| (t, if t.rem_euclid(DAY) == 0 { time::day_month(t) } else { time::hour_minute(t) }))
            .collect()
    } else if span <= 62 * DAY {
        // 1970-01-01 was a Thursday; weeks start on Monday, 4 days later.
        const STEPS: [(i64, i64); 4] = [(DAY, 0), (2 * DAY, 0), (7 * DAY, 4 * DAY), (14 * DAY, 4 * DAY)];
        let (step, offset) = STEPS.into_iter().find(|(s, _)| span / s <= MAX_X_TICKS).unwrap_or(STEPS[3]);
        aligned(start_ms, end_ms, step, offset).map(|t| (t, time::day_month(t))).collect()
    } else {
        month_ticks(start_ms, end_ms)
    }
}

/// Multiples of `step` (shifted by `offset`) within `start..=end`.
fn aligned(start_ms: i64, end_ms: i64, step: i64, offset: i64) -> impl Iterator<Item = i64> {
    let first = (start_ms - offset).div_euclid(step) * step + offset;
    let first = if first < start_ms { first + step } else { first };
    (0..).map(move |i| first + i * step).take_while(move |&t| t <= end_ms)
}

/// The first of every 1st, 2nd, 3rd or 6th month (Jan-based), at most `MAX_X_TICKS`.
fn month_ticks(start_ms: i64, end_ms: i64) -> Vec<(i64, String)> {
    let (y, m, _) = time::civil_from_days(start_ms.div_euclid(DAY));
    let months_since_epoch = |y: i64, m: u32| y * 12 + i64::from(m) - 1;
    let first = months_since_epoch(y, m);
    let all: Vec<(i64, i64)> = (first..)
        .map(|n| (n, time::days_from_civil(n.div_euclid(12), n.rem_euclid(12) as u32 + 1, 1) * DAY))
        .skip_while(|&(_, t)| t < start_ms)
        .take_while(|&(_, t)| t <= end_ms)
        .collect();
    let every = [1, 2, 3, 6, 12].into_iter().find(|e| all.len() as i64 / e <= MAX_X_TICKS).unwrap_or(12);
    all.into_iter().filter(|(n, _)| n % every == 0).map(|(_, t)| (t, time::day_month(t))).collect()
}
