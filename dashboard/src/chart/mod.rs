//! Charts of a host's history, drawn on the server as SVG.
//!
//! [`ChartView::new`] turns a time window and one or more series of points into
//! everything `chart.html` needs: a line per series (broken at gaps, never drawn across
//! a time the host was offline), the min–max band of rollups behind it, y ticks on nice
//! numbers in the series' [`Unit`], x ticks on round UTC times, a legend told apart by
//! colour and dash pattern, and up to [`MAX_HOVER_TARGETS`] hover strips whose SVG
//! `<title>` is the browser's own tooltip. [`SparklineView`] is the same line without axes,
//! for an overview card. [`Range`] is the host page's `?range=` choice.
//!
//! Why SVG from the server: the dashboard has no JavaScript build step and must read
//! with JavaScript off. An SVG is a few kilobytes of text (coordinates rounded to one
//! decimal), renders in every browser, scales with the page, and is escaped by askama
//! like any other template, so a guest or pool name in a label is only ever text.
//!
//! How a page uses it: build a [`ChartView`] (field `chart`) or a list of them and
//! `{% include "chart.html" %}` where `chart` is in scope, like `card.html` with `c`.
//! [`ChartTemplate`] renders one on its own.

mod geometry;
mod range;
mod scale;
pub(crate) mod time;
mod unit;

#[cfg(test)]
mod tests;

use askama::Template;

pub use geometry::PlotBox;
pub use range::{Range, UnknownRangeError};
pub use scale::{nice_ticks, time_ticks, y_scale, YScale};
pub use unit::Unit;

use geometry::Mapping;

/// At most this many hover strips per chart; more points share a strip.
pub const MAX_HOVER_TARGETS: usize = 250;

/// Readable on a light background, and apart for the common colour blindnesses.
const PALETTE: [&str; 6] = ["#1f77b4", "#d95f02", "#1b9e77", "#7570b3", "#c2185b", "#555555"];
/// Series 2 onwards are also told apart without colour. Five patterns against six
/// colours: the pairs repeat only after 30 series.
const DASHES: [&str; 5] = ["", "6 3", "2 3", "8 3 2 3", "1 3"];

const WIDTH: f64 = 720.0;
const PLOT_LEFT: f64 = 64.0;
const PLOT_RIGHT: f64 = WIDTH - 16.0;
const PLOT_HEIGHT: f64 = 180.0;
/// Room under the plot for the x labels.
const X_AXIS_HEIGHT: f64 = 24.0;
const LEGEND_ROW: f64 = 18.0;

const SPARK_WIDTH: f64 = 120.0;
const SPARK_HEIGHT: f64 = 28.0;

/// One sample, or one rollup bucket (min, mean, max), at `ts_ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub ts_ms: i64,
    /// `None` (or not finite) breaks the line here.
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Point {
    /// A raw sample.
    pub fn new(ts_ms: i64, value: f64) -> Point {
        Point { ts_ms, mean: Some(value), min: None, max: None }
    }

    /// A rollup bucket; its min–max band is drawn behind the line.
    pub fn rollup(ts_ms: i64, min: f64, mean: f64, max: f64) -> Point {
        Point { ts_ms, mean: Some(mean), min: Some(min), max: Some(max) }
    }

    /// A sample whose value was not collected.
    pub fn missing(ts_ms: i64) -> Point {
        Point { ts_ms, mean: None, min: None, max: None }
    }
}

/// One line on a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// User text (a pool or guest name): escaped, never marked safe.
    pub label: String,
    /// In any order; those outside the window are left out. At most about 1,000.
    pub points: Vec<Point>,
}

/// The time a chart covers, and the spacing its points should have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    /// The tier's resolution: points further apart than two steps are a gap.
    pub step_ms: i64,
}

impl Window {
    /// The `range` up to `end_ms` (usually now).
    pub fn last(range: Range, end_ms: i64, step_ms: i64) -> Window {
        Window { start_ms: end_ms - range.duration_ms(), end_ms, step_ms }
    }
}

/// What to draw. One unit per chart: there is one y axis, and a line in GiB against an
/// axis in percent would mislead.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartData {
    /// User text: escaped.
    pub title: String,
    pub unit: Unit,
    pub window: Window,
    pub series: Vec<Series>,
}

/// A tick: where (x or y in SVG units) and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub at: f64,
    pub label: String,
}

/// One series as drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesView {
    pub label: String,
    pub colour: &'static str,
    /// An SVG `stroke-dasharray`; empty for a solid line.
    pub dash: &'static str,
    /// Path data, one per unbroken run of points.
    pub lines: Vec<String>,
    /// Path data of the min–max band, one per run of rollup points.
    pub bands: Vec<String>,
}

/// A legend entry: its swatch starts at (x, y).
#[derive(Clone, Debug, PartialEq)]
pub struct LegendItem {
    pub label: String,
    pub colour: &'static str,
    pub dash: &'static str,
    pub x: f64,
    pub y: f64,
}

/// A hover strip over the plot, `x..x + width`, with its tooltip text.
#[derive(Clone, Debug, PartialEq)]
pub struct Hover {
    pub x: f64,
    pub width: f64,
    /// The time, then one line per series: "CPU: 12.3% (3.0%–40.0%)".
    pub title: String,
}

/// Everything `chart.html` draws, laid out.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartView {
    pub title: String,
    /// The accessible name: title and time span.
    pub description: String,
    pub width: f64,
    pub height: f64,
    pub plot: PlotBox,
    /// Baseline of the title, which starts the first legend row.
    pub title_y: f64,
    pub legend: Vec<LegendItem>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    pub series: Vec<SeriesView>,
    pub hovers: Vec<Hover>,
    /// No series has a value in the window: the plot says so instead.
    pub no_data: bool,
}

/// A chart on its own (tests, a partial); a page includes `chart.html` instead.
#[derive(Template)]
#[template(path = "chart.html")]
pub struct ChartTemplate {
    pub chart: ChartView,
}

/// A line without axes for an overview card.
#[derive(Clone, Debug, PartialEq)]
pub struct SparklineView {
    pub width: f64,
    pub height: f64,
    /// The tooltip: "CPU: latest 12.3%, 3.0%–40.0%", or "CPU: no data".
    pub title: String,
    pub series: Vec<SeriesView>,
    pub no_data: bool,
}

/// A sparkline on its own; a card includes `sparkline.html` with `spark` in scope.
#[derive(Template)]
#[template(path = "sparkline.html")]
pub struct SparklineTemplate {
    pub spark: SparklineView,
}

/// The series' points inside the window, by time.
fn in_window(series: &Series, window: &Window) -> Vec<Point> {
    let mut points: Vec<Point> =
        series.points.iter().filter(|p| (window.start_ms..=window.end_ms).contains(&p.ts_ms)).copied().collect();
    points.sort_by_key(|p| p.ts_ms);
    points
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// The lowest and highest value drawn (means, and band edges where there is a mean).
fn extent<'p>(points: impl IntoIterator<Item = &'p Point>) -> Option<(f64, f64)> {
    points
        .into_iter()
        .filter_map(|p| {
            let mean = finite(p.mean)?;
            Some((finite(p.min).unwrap_or(mean).min(mean), finite(p.max).unwrap_or(mean).max(mean)))
        })
        .reduce(|(lo, hi), (l, h)| (lo.min(l), hi.max(h)))
}

fn draw(points: &[Point], step_ms: i64, map: &Mapping, index: usize, label: &str) -> SeriesView {
    let lines = geometry::runs(points, step_ms, |p| p.mean);
    let bands = geometry::band_runs(points, step_ms);
    SeriesView {
        label: label.to_owned(),
        colour: PALETTE[index % PALETTE.len()],
        dash: DASHES[index % DASHES.len()],
        lines: lines.iter().map(|r| geometry::line_path(r, map)).collect(),
        bands: bands.iter().map(|r| geometry::band_path(r, map)).collect(),
    }
}

/// "CPU: 12.3%" for one plain sample, "CPU: 12.3% (3.0%–40.0%)" for a rollup or several
/// samples, "CPU: no data".
fn summarize(label: &str, points: &[Point], unit: Unit) -> String {
    let means: Vec<&Point> = points.iter().filter(|p| finite(p.mean).is_some()).collect();
    let Some(first) = means.first() else { return format!("{label}: no data") };
    let mean = means.iter().filter_map(|p| p.mean).sum::<f64>() / means.len() as f64;
    let lo = means.iter().map(|p| finite(p.min).or(p.mean).unwrap_or(mean)).fold(f64::INFINITY, f64::min);
    let hi = means.iter().map(|p| finite(p.max).or(p.mean).unwrap_or(mean)).fold(f64::NEG_INFINITY, f64::max);
    if means.len() == 1 && first.min.is_none() && first.max.is_none() {
        format!("{label}: {}", unit.format(mean))
    } else {
        format!("{label}: {} ({}–{})", unit.format(mean), unit.format(lo), unit.format(hi))
    }
}

impl ChartView {
    pub fn new(data: &ChartData) -> ChartView {
        let window = data.window;
        let points: Vec<Vec<Point>> = data.series.iter().map(|s| in_window(s, &window)).collect();
        let extent = extent(points.iter().flatten());

        let (legend, rows) = lay_out_legend(&data.title, &data.series);
        let top = 8.0 + rows * LEGEND_ROW + 6.0;
        let plot = PlotBox { left: PLOT_LEFT, top, right: PLOT_RIGHT, bottom: top + PLOT_HEIGHT };
        let scale = y_scale(data.unit, extent);
        let map = Mapping { plot, start_ms: window.start_ms, end_ms: window.end_ms, lo: scale.lo, hi: scale.hi };

        let x_ticks = time_ticks(window.start_ms, window.end_ms)
            .into_iter()
            .map(|(t, label)| Tick { at: geometry::round1(map.x(t)), label })
            .collect();
        let no_data = extent.is_none();
        let y_ticks = if no_data {
            Vec::new()
        } else {
            scale.ticks.into_iter().map(|(v, label)| Tick { at: geometry::round1(map.y(v)), label }).collect()
        };
        let series =
            points.iter().zip(&data.series).enumerate().map(|(i, (p, s))| draw(p, window.step_ms, &map, i, &s.label));

        ChartView {
            title: data.title.clone(),
            description: format!("{}, {}", data.title, time::span(window.start_ms, window.end_ms)),
            width: WIDTH,
            height: plot.bottom + X_AXIS_HEIGHT,
            plot,
            title_y: 8.0 + LEGEND_ROW - 5.0,
            legend,
            y_ticks,
            x_ticks,
            series: series.collect(),
            hovers: hovers(data, &points, &map),
            no_data,
        }
    }
}

/// The title, then a swatch and label per series, in rows that wrap at the chart's width.
/// Text widths are estimated (about 6.5 px a character at 11 px): SVG cannot measure
/// text without script, and a wrong guess only spaces the legend a little unevenly.
fn lay_out_legend(title: &str, series: &[Series]) -> (Vec<LegendItem>, f64) {
    let mut x = 8.0 + title.chars().count() as f64 * 7.5 + 20.0;
    let mut row = 0.0;
    let mut items = Vec::with_capacity(series.len());
    for (i, s) in series.iter().enumerate() {
        let width = 26.0 + s.label.chars().count() as f64 * 6.5 + 18.0;
        if x + width > WIDTH - 8.0 && x > 8.0 {
            row += 1.0;
            x = 8.0;
        }
        items.push(LegendItem {
            label: s.label.clone(),
            colour: PALETTE[i % PALETTE.len()],
            dash: DASHES[i % DASHES.len()],
            x: geometry::round1(x),
            y: 8.0 + row * LEGEND_ROW + LEGEND_ROW / 2.0 - 1.0,
        });
        x += width;
    }
    (items, row + 1.0)
}

/// Strips across the plot, one per distinct timestamp or, past [`MAX_HOVER_TARGETS`], per
/// run of consecutive timestamps; each tooltip has the time and every series' value.
fn hovers(data: &ChartData, points: &[Vec<Point>], map: &Mapping) -> Vec<Hover> {
    let mut timestamps: Vec<i64> =
        points.iter().flatten().filter(|p| finite(p.mean).is_some()).map(|p| p.ts_ms).collect();
    timestamps.sort_unstable();
    timestamps.dedup();
    geometry::buckets(&timestamps, data.window.step_ms, MAX_HOVER_TARGETS)
        .into_iter()
        .map(|b| {
            let mut title = time::span(b.first_ms, b.last_ms);
            for (s, p) in data.series.iter().zip(points) {
                let from = p.partition_point(|p| p.ts_ms < b.first_ms);
                let to = p.partition_point(|p| p.ts_ms <= b.last_ms);
                title.push('\n');
                title.push_str(&summarize(&s.label, &p[from..to], data.unit));
            }
            // Both edges rounded first, so neighbouring strips meet without overlapping.
            let x0 = geometry::round1(map.x(b.from_ms).max(map.plot.left));
            let x1 = geometry::round1(map.x(b.to_ms).min(map.plot.right));
            Hover { x: x0, width: geometry::round1((x1 - x0).max(0.0)), title }
        })
        .collect()
}

impl SparklineView {
    pub fn new(data: &ChartData) -> SparklineView {
        let window = data.window;
        let points: Vec<Vec<Point>> = data.series.iter().map(|s| in_window(s, &window)).collect();
        let all = extent(points.iter().flatten());
        let scale = y_scale(data.unit, all);
        // Inset by the stroke's half width so the line is not clipped at the edges.
        let plot = PlotBox { left: 1.0, top: 2.0, right: SPARK_WIDTH - 1.0, bottom: SPARK_HEIGHT - 2.0 };
        let map = Mapping { plot, start_ms: window.start_ms, end_ms: window.end_ms, lo: scale.lo, hi: scale.hi };
        let title = data
            .series
            .iter()
            .zip(&points)
            .map(|(s, p)| {
                let latest = p.iter().rev().find_map(|p| finite(p.mean));
                match (latest, extent(p)) {
                    (Some(v), Some((lo, hi))) => format!(
                        "{}: latest {}, {}–{}",
                        s.label,
                        data.unit.format(v),
                        data.unit.format(lo),
                        data.unit.format(hi)
                    ),
                    _ => format!("{}: no data", s.label),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        SparklineView {
            width: SPARK_WIDTH,
            height: SPARK_HEIGHT,
            title: if title.is_empty() { data.title.clone() } else { title },
            series: points
                .iter()
                .zip(&data.series)
                .enumerate()
                .map(|(i, (p, s))| draw(p, window.step_ms, &map, i, &s.label))
                .collect(),
            no_data: all.is_none(),
        }
    }
}
