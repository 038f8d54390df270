use askama::Template;

use super::time::{DAY, HOUR, MINUTE};
use super::*;

const GIB: f64 = (1u64 << 30) as f64;
/// 2025-03-03 00:00 UTC, a Monday.
const MONDAY: i64 = 1_740_960_000_000;

fn values(scale: &YScale) -> Vec<f64> {
    scale.ticks.iter().map(|t| t.0).collect()
}

fn labels(scale: &YScale) -> Vec<&str> {
    scale.ticks.iter().map(|t| t.1.as_str()).collect()
}

fn data(unit: Unit, window: Window, series: Vec<Series>) -> ChartData {
    ChartData { title: "CPU".into(), unit, window, series }
}

fn series(label: &str, points: Vec<Point>) -> Series {
    Series { label: label.into(), points }
}

/// A point every `step` from `start`, valued by `f(i)`.
fn every(start: i64, step: i64, n: usize, f: impl Fn(usize) -> f64) -> Vec<Point> {
    (0..n).map(|i| Point::new(start + i as i64 * step, f(i))).collect()
}

fn render(data: &ChartData) -> String {
    ChartTemplate { chart: ChartView::new(data) }.render().unwrap()
}

#[test]
fn nice_ticks_step_on_one_two_five() {
    assert_eq!(nice_ticks(0.0, 37.0, 5.0), (10.0, vec![0.0, 10.0, 20.0, 30.0, 40.0]));
    assert_eq!(nice_ticks(0.0, 0.7, 5.0), (0.2, vec![0.0, 0.2, 0.4, 0.6, 0.8]));
    assert_eq!(nice_ticks(-3.0, 12.0, 5.0).1, vec![-5.0, 0.0, 5.0, 10.0, 15.0]);
    assert_eq!(nice_ticks(1200.0, 9000.0, 5.0), (2000.0, vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10_000.0]));
}

#[test]
fn percent_axis_is_fixed_at_0_to_100() {
    let scale = y_scale(Unit::Percent, Some((3.0, 37.0)));
    assert_eq!(values(&scale), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
    assert_eq!(labels(&scale), ["0%", "20%", "40%", "60%", "80%", "100%"]);
    assert_eq!(values(&y_scale(Unit::Percent, Some((99.0, 99.5)))), values(&scale));
}

#[test]
fn plain_numbers_span_the_data_and_counts_start_at_zero() {
    assert_eq!(labels(&y_scale(Unit::Number, Some((0.0, 37.0)))), ["0", "10", "20", "30", "40"]);
    assert_eq!(labels(&y_scale(Unit::Number, Some((0.42, 0.61)))), ["0.40", "0.45", "0.50", "0.55", "0.60", "0.65"]);
    assert_eq!(labels(&y_scale(Unit::Celsius, Some((41.0, 58.0)))), ["40 °C", "45 °C", "50 °C", "55 °C", "60 °C"]);
    // Counts: whole steps, from zero.
    assert_eq!(labels(&y_scale(Unit::Count, Some((2.0, 3.0)))), ["0", "1", "2", "3"]);
}

#[test]
fn bytes_tick_in_powers_of_1024() {
    let scale = y_scale(Unit::Bytes, Some((0.5 * GIB, 3.2 * GIB)));
    assert_eq!(values(&scale), [0.0, GIB, 2.0 * GIB, 3.0 * GIB, 4.0 * GIB]);
    assert_eq!(labels(&scale), ["0 GiB", "1 GiB", "2 GiB", "3 GiB", "4 GiB"]);
    let scale = y_scale(Unit::Bytes, Some((0.0, 700.0 * 1024.0 * 1024.0)));
    assert_eq!(labels(&scale), ["0 MiB", "200 MiB", "400 MiB", "600 MiB", "800 MiB"]);
    let scale = y_scale(Unit::BytesPerSecond, Some((0.0, 1.2 * GIB)));
    assert_eq!(labels(&scale), ["0.0 GiB/s", "0.5 GiB/s", "1.0 GiB/s", "1.5 GiB/s"]);
    // All zero: still an axis, not a division by zero.
    let flat = y_scale(Unit::Bytes, Some((0.0, 0.0)));
    assert_eq!((flat.lo, flat.hi, flat.ticks[1].1.as_str()), (0.0, 1024.0, "0.2 KiB"));
}

#[test]
fn a_gap_of_three_steps_splits_the_line() {
    let step = MINUTE;
    let mut points = every(MONDAY, step, 10, |i| i as f64);
    // The host was offline: the next point comes 3 steps after the last.
    points.extend(every(MONDAY + 12 * step, step, 5, |i| i as f64));
    let window = Window { start_ms: MONDAY, end_ms: MONDAY + HOUR, step_ms: step };
    let view = ChartView::new(&data(Unit::Percent, window, vec![series("cpu", points)]));
    assert_eq!(view.series[0].lines.len(), 2);
    assert_eq!(view.series[0].lines[1].matches('M').count(), 1);

    let view = ChartView::new(&data(Unit::Percent, window, vec![series("cpu", every(MONDAY, step, 60, |_| 5.0))]));
    assert_eq!(view.series[0].lines.len(), 1);
    // Two steps apart is still one line (a late sample is not an outage).
    let points = vec![Point::new(MONDAY, 1.0), Point::new(MONDAY + 2 * step, 2.0)];
    let view = ChartView::new(&data(Unit::Percent, window, vec![series("cpu", points)]));
    assert_eq!(view.series[0].lines.len(), 1);
}

#[test]
fn a_missing_value_splits_the_line_and_a_lone_point_is_a_dot() {
    let step = MINUTE;
    let points = vec![
        Point::new(MONDAY, 1.0),
        Point::new(MONDAY + step, 2.0),
        Point::missing(MONDAY + 2 * step),
        Point::new(MONDAY + 3 * step, f64::NAN),
        Point::new(MONDAY + 4 * step, 4.0),
    ];
    let window = Window { start_ms: MONDAY, end_ms: MONDAY + 4 * step, step_ms: step };
    let view = ChartView::new(&data(Unit::Number, window, vec![series("load", points)]));
    assert_eq!(view.series[0].lines.len(), 2);
    assert!(view.series[0].lines[1].ends_with("h0"), "{}", view.series[0].lines[1]);
}

#[test]
fn coordinates_map_into_the_plot() {
    let step = 50 * MINUTE;
    let window = Window { start_ms: MONDAY, end_ms: MONDAY + 2 * step, step_ms: step };
    // 0..40 on a plain axis: 40 is the top tick, so it is drawn at the top edge.
    let points = vec![Point::new(MONDAY, 40.0), Point::new(MONDAY + step, 0.0), Point::new(MONDAY + 2 * step, 20.0)];
    let view = ChartView::new(&data(Unit::Number, window, vec![series("load", points)]));
    let p = view.plot;
    let mid_x = (p.left + p.right) / 2.0;
    let mid_y = (p.top + p.bottom) / 2.0;
    assert_eq!(view.series[0].lines, [format!("M{} {}L{mid_x} {} {} {mid_y}", p.left, p.top, p.bottom, p.right)]);
    assert_eq!(view.y_ticks.first().map(|t| t.at), Some(p.bottom));
    assert_eq!(view.y_ticks.last().map(|t| (t.at, t.label.as_str())), Some((p.top, "40")));
}

#[test]
fn path_data_is_rounded_to_one_decimal() {
    let step = 1000;
    let window = Window { start_ms: 0, end_ms: 999 * step, step_ms: step };
    let points = every(0, step, 1000, |i| (i as f64 / 37.0).sin() * 50.0 + 50.0);
    let view = ChartView::new(&data(Unit::Percent, window, vec![series("cpu", points)]));
    let d = &view.series[0].lines[0];
    for number in d.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter(|n| !n.is_empty()) {
        assert!(number.split('.').nth(1).is_none_or(|f| f.len() == 1), "{number} in {d}");
    }
    // About 12 bytes a point at most.
    assert!(d.len() < 12_000, "{}", d.len());
}

#[test]
fn rollups_draw_a_band_behind_the_line() {
    let step = HOUR;
    let window = Window { start_ms: MONDAY, end_ms: MONDAY + 3 * step, step_ms: step };
    let points = (0..4).map(|i| Point::rollup(MONDAY + i * step, 10.0, 20.0, 30.0)).collect();
    let view = ChartView::new(&data(Unit::Percent, window, vec![series("cpu", points)]));
    assert_eq!(view.series[0].bands.len(), 1);
    assert!(view.series[0].bands[0].ends_with('Z'));
    let out = render(&data(Unit::Percent, window, vec![series("cpu", vec![Point::rollup(MONDAY, 10.0, 20.0, 30.0)])]));
    assert!(out.contains("fill-opacity=\"0.15\""), "{out}");
    assert!(out.contains("cpu: 20.0% (10.0%–30.0%)"), "{out}");
}

#[test]
fn hovers_carry_time_and_values_and_are_thinned() {
    let step = MINUTE;
    let window = Window { start_ms: MONDAY, end_ms: MONDAY + HOUR, step_ms: step };
    let view = ChartView::new(&data(
        Unit::Bytes,
        window,
        vec![series("used", every(MONDAY, step, 3, |_| 1536.0)), series("free", every(MONDAY, step, 2, |_| 512.0))],
    ));
    assert_eq!(view.hovers.len(), 3);
    assert_eq!(view.hovers[0].title, "2025-03-03 00:00 UTC\nused: 1.5 KiB\nfree: 512 B");
    assert_eq!(view.hovers[2].title, "2025-03-03 00:02 UTC\nused: 1.5 KiB\nfree: no data");

    let window = Window { start_ms: MONDAY, end_ms: MONDAY + 1000 * step, step_ms: step };
    let view = ChartView::new(&data(Unit::Count, window, vec![series("vms", every(MONDAY, step, 1000, |i| i as f64))]));
    assert_eq!(view.hovers.len(), 250);
    assert_eq!(view.hovers[0].title, "2025-03-03 00:00–00:03 UTC\nvms: 1.5 (0–3)");
    // The strips do not overlap.
    for w in view.hovers.windows(2) {
        assert!(w[0].x + w[0].width <= w[1].x + 0.1, "{:?}", (w[0].x, w[0].width, w[1].x));
    }
}

#[test]
fn labels_are_escaped() {
    let window = Window { start_ms: MONDAY, end_ms: MONDAY + HOUR, step_ms: MINUTE };
    let mut chart =
        data(Unit::Percent, window, vec![series("<script>alert(1)</script>", every(MONDAY, MINUTE, 3, |_| 1.0))]);
    chart.title = "vm \"a\" & <b>".into();
    let out = render(&chart);
    assert!(!out.contains("<script>"), "{out}");
    assert!(!out.contains("<b>"), "{out}");
    assert!(out.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{out}");
    let spark = SparklineTemplate { spark: SparklineView::new(&chart) }.render().unwrap();
    assert!(!spark.contains("<script>"), "{spark}");
}

#[test]
fn an_empty_window_says_no_data() {
    let window = Window { start_ms: MONDAY, end_ms: MONDAY + DAY, step_ms: MINUTE };
    for series in [vec![], vec![series("cpu", vec![])], vec![series("cpu", vec![Point::missing(MONDAY)])]] {
        let chart = data(Unit::Percent, window, series);
        let view = ChartView::new(&chart);
        assert!(view.no_data);
        assert!(view.hovers.is_empty());
        let out = render(&chart);
        assert!(out.contains("No data for this range"), "{out}");
        assert!(!out.contains("<path"), "{out}");
        let spark = SparklineTemplate { spark: SparklineView::new(&chart) }.render().unwrap();
        assert!(spark.contains("no data"), "{spark}");
    }
    // Points outside the window do not count.
    let chart = data(Unit::Percent, window, vec![series("cpu", vec![Point::new(MONDAY - HOUR, 5.0)])]);
    assert!(ChartView::new(&chart).no_data);
}

#[test]
fn time_ticks_suit_the_window() {
    let labels = |start, end| time_ticks(start, end).into_iter().map(|t| t.1).collect::<Vec<_>>();
    assert_eq!(
        labels(MONDAY + 10 * HOUR + 7 * MINUTE, MONDAY + 11 * HOUR + 7 * MINUTE),
        ["10:10", "10:20", "10:30", "10:40", "10:50", "11:00"]
    );
    // 24 hours: every 3 h, midnight as the date.
    assert_eq!(
        labels(MONDAY + 13 * HOUR, MONDAY + 37 * HOUR),
        ["15:00", "18:00", "21:00", "4 Mar", "03:00", "06:00", "09:00", "12:00"]
    );
    // 48 hours: every 6 h.
    assert_eq!(labels(MONDAY + 13 * HOUR, MONDAY + 61 * HOUR)[..3], ["18:00", "4 Mar", "06:00"]);
    // 30 days: Mondays.
    assert_eq!(labels(MONDAY + HOUR, MONDAY + 30 * DAY), ["10 Mar", "17 Mar", "24 Mar", "31 Mar"]);
    // A year: the first of every second month.
    assert_eq!(labels(MONDAY, MONDAY + 365 * DAY), ["1 May", "1 Jul", "1 Sep", "1 Nov", "1 Jan", "1 Mar"]);
    let first = time_ticks(MONDAY + HOUR, MONDAY + 7 * DAY);
    assert_eq!(first[0], (MONDAY + DAY, "4 Mar".to_string()));
}

#[test]
fn civil_dates_round_trip() {
    for days in [-719_468, -1, 0, 59, 11_016, 20_150, 2_932_896] {
        let (y, m, d) = time::civil_from_days(days);
        assert_eq!(time::days_from_civil(y, m, d), days);
    }
    assert_eq!(time::civil_from_days(MONDAY / DAY), (2025, 3, 3));
    assert_eq!(time::civil_from_days(19_417), (2023, 3, 1));
}

#[test]
fn ranges_parse_and_label() {
    for r in Range::ALL {
        assert_eq!(r.as_str().parse::<Range>(), Ok(r));
        assert_eq!(r.to_string(), r.as_str());
    }
    let labels: Vec<&str> = Range::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels, ["1 hour", "6 hours", "24 hours", "48 hours", "7 days", "30 days", "1 year"]);
    assert_eq!(Range::TwoDays.duration().as_secs(), 48 * 3600);
    assert_eq!(Range::Year.duration_ms(), 365 * DAY);
    assert_eq!(Range::default(), Range::Day);
    let err = "2h".parse::<Range>().unwrap_err();
    assert_eq!(err, UnknownRangeError { given: "2h".into() });
    assert_eq!(err.to_string(), "unknown range \"2h\", expected one of 1h, 6h, 24h, 48h, 7d, 30d, 1y");
    assert!("".parse::<Range>().is_err());
    assert!("24H".parse::<Range>().is_err());
    assert_eq!("x".repeat(100).parse::<Range>().unwrap_err().given.len(), 16);
    let window = Window::last(Range::Hour, MONDAY, MINUTE);
    assert_eq!((window.start_ms, window.end_ms), (MONDAY - HOUR, MONDAY));
}
