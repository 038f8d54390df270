//! What the dashboard draws of the recorded history: the host page's charts (one
//! [`recorder::history::read`] per group, see [`HostHistory`]) and the overview cards'
//! sparklines (one [`recorder::history::read_hosts`] for the whole page, see
//! [`read_sparklines`]). Pure but for the two reads, so the mapping from history to
//! charts tests without a database.

use std::collections::HashMap;

use recorder::history::{self, History, Source};
use recorder::rollup::Group;
use rusqlite::Connection;

use crate::chart::{self, ChartData, ChartView, Range, Series, SparklineView, Unit, Window};

/// The fast tier's interval when the host has not shown its own yet: the agent's default.
pub const FAST_INTERVAL_MS: i64 = 30_000;
/// Pools, storages and guests come with the medium tier. The host does not report that
/// interval, so this is the agent's default: a shorter one only makes a short outage
/// look like a line instead of a gap.
pub const MEDIUM_INTERVAL_MS: i64 = 300_000;
/// A sparkline's bucket: 60 points across its 120 pixels.
const SPARK_BUCKET_MS: i64 = 60_000;
/// The host metrics a card's sparklines need, in this order.
const SPARK_METRICS: [&str; 3] = ["cpu_pct", "mem_used_without_arc", "mem_total"];

impl From<history::Point> for chart::Point {
    fn from(p: history::Point) -> chart::Point {
        chart::Point { ts_ms: p.ts_ms, mean: p.mean, min: p.min, max: p.max }
    }
}

/// The points of one history series, each value multiplied by `factor` (a guest's CPU
/// fraction to percent).
fn points(series: &[history::Point], factor: f64) -> Vec<chart::Point> {
    let scale = |v: Option<f64>| v.map(|v| v * factor);
    series
        .iter()
        .map(|&p| chart::Point { mean: scale(p.mean), min: scale(p.min), max: scale(p.max), ..p.into() })
        .collect()
}

/// The spacing a chart expects between points: the bucket of a rollup, but for raw
/// samples at least the interval they are taken at, so that a gap means the host was
/// offline, not that a bucket fell between two samples.
pub fn step_ms(source: Source, bucket_ms: i64, sample_interval_ms: i64) -> i64 {
    match source {
        Source::Raw => bucket_ms.max(sample_interval_ms),
        Source::Rollup(_) => bucket_ms,
    }
}

/// One host's history over one range, a read per group.
#[derive(Debug, Clone, PartialEq)]
pub struct HostHistory {
    pub host: History,
    pub pools: History,
    pub storages: History,
    pub guests: History,
}

impl HostHistory {
    pub fn read(conn: &Connection, host_id: &str, window: (i64, i64)) -> rusqlite::Result<HostHistory> {
        let read = |group| history::read(conn, group, host_id, window.0, window.1);
        Ok(HostHistory {
            host: read(Group::Host)?,
            pools: read(Group::Pool)?,
            storages: read(Group::Storage)?,
            guests: read(Group::Guest)?,
        })
    }
}

/// A guest's two charts, under a label such as "VM 101 web".
#[derive(Debug, Clone, PartialEq)]
pub struct GuestCharts {
    pub label: String,
    pub cpu: ChartView,
    pub mem: ChartView,
}

/// Every chart of the host page.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCharts {
    /// Load, CPU, memory, swap, root filesystem: always drawn, "No data" when empty.
    pub host: Vec<ChartView>,
    /// Capacity and errors of each pool with history in the range.
    pub pools: Vec<ChartView>,
    pub storages: Vec<ChartView>,
    /// By vmid.
    pub guests: Vec<GuestCharts>,
}

/// How to draw a group's charts: its metrics' names, and the window with its step.
struct Draw {
    group: Group,
    window: Window,
}

impl Draw {
    fn new(history: &History, group: Group, range: Range, end_ms: i64, interval_ms: i64) -> Draw {
        let step = step_ms(history.source, history.bucket_ms, interval_ms);
        Draw { group, window: Window::last(range, end_ms, step) }
    }

    /// A chart of `metrics` (name, label, factor) of `subject`'s series (None: no data).
    fn chart(
        &self,
        title: String,
        unit: Unit,
        subject: Option<&history::Subject>,
        metrics: &[(&str, &str, f64)],
    ) -> ChartView {
        let series = metrics
            .iter()
            .map(|(name, label, factor)| Series {
                label: (*label).to_owned(),
                points: subject.map(|s| points(s.series(self.group, name), *factor)).unwrap_or_default(),
            })
            .collect();
        ChartView::new(&ChartData { title, unit, window: self.window, series })
    }
}

impl HostCharts {
    /// The charts of `range` up to `end_ms`. `fast_interval_ms` is the host's own, if
    /// known; `guest_names` maps "vm/101" to the guest's name.
    pub fn new(
        h: &HostHistory,
        range: Range,
        end_ms: i64,
        fast_interval_ms: Option<i64>,
        guest_names: &HashMap<String, String>,
    ) -> HostCharts {
        let fast_interval_ms = fast_interval_ms.unwrap_or(FAST_INTERVAL_MS);
        HostCharts {
            host: host_charts(&h.host, Draw::new(&h.host, Group::Host, range, end_ms, fast_interval_ms)),
            pools: pool_charts(&h.pools, Draw::new(&h.pools, Group::Pool, range, end_ms, MEDIUM_INTERVAL_MS)),
            storages: storage_charts(
                &h.storages,
                Draw::new(&h.storages, Group::Storage, range, end_ms, MEDIUM_INTERVAL_MS),
            ),
            guests: guest_charts(
                &h.guests,
                Draw::new(&h.guests, Group::Guest, range, end_ms, MEDIUM_INTERVAL_MS),
                guest_names,
            ),
        }
    }
}

/// Load, CPU, memory, swap and root filesystem, drawn even with no data.
fn host_charts(history: &History, fast: Draw) -> Vec<ChartView> {
    let host = history.subjects.first();
    vec![
        fast.chart(
            "Load".into(),
            Unit::Number,
            host,
            &[("load1", "1 min", 1.0), ("load5", "5 min", 1.0), ("load15", "15 min", 1.0)],
        ),
        fast.chart("CPU".into(), Unit::Percent, host, &[("cpu_pct", "busy", 1.0), ("iowait_pct", "iowait", 1.0)]),
        fast.chart(
            "Memory".into(),
            Unit::Bytes,
            host,
            &[
                ("mem_used_without_arc", "used without ARC", 1.0),
                ("arc_bytes", "ARC", 1.0),
                ("mem_total", "total", 1.0),
            ],
        ),
        fast.chart("Swap".into(), Unit::Bytes, host, &[("swap_used", "used", 1.0), ("swap_total", "total", 1.0)]),
        fast.chart(
            "Root filesystem".into(),
            Unit::Bytes,
            host,
            &[("rootfs_used", "used", 1.0), ("rootfs_total", "total", 1.0)],
        ),
    ]
}

/// Capacity and errors of each pool.
fn pool_charts(history: &History, pools: Draw) -> Vec<ChartView> {
    history
        .subjects
        .iter()
        .flat_map(|s| {
            [
                pools.chart(format!("Pool {}: capacity", s.name), Unit::Percent, Some(s), &[("cap_pct", "used", 1.0)]),
                pools.chart(format!("Pool {}: errors", s.name), Unit::Count, Some(s), &[("errors", "errors", 1.0)]),
            ]
        })
        .collect()
}

fn storage_charts(history: &History, storages: Draw) -> Vec<ChartView> {
    history
        .subjects
        .iter()
        .map(|s| {
            let series = &[("used", "used", 1.0), ("total", "total", 1.0)];
            storages.chart(format!("Storage {}", s.name), Unit::Bytes, Some(s), series)
        })
        .collect()
}

/// CPU and memory of each guest, by vmid, labelled with the guest's name where known.
fn guest_charts(history: &History, guests: Draw, guest_names: &HashMap<String, String>) -> Vec<GuestCharts> {
    let mut subjects: Vec<&history::Subject> = history.subjects.iter().collect();
    subjects.sort_by_key(|s| guest_key(&s.name));
    subjects
        .into_iter()
        .map(|s| {
            let label = guest_label(&s.name, guest_names.get(&s.name).map(String::as_str));
            GuestCharts {
                cpu: guests.chart(format!("{label}: CPU"), Unit::Percent, Some(s), &[("cpu", "CPU", 100.0)]),
                mem: guests.chart(
                    format!("{label}: memory"),
                    Unit::Bytes,
                    Some(s),
                    &[("mem", "used", 1.0), ("maxmem", "max", 1.0)],
                ),
                label,
            }
        })
        .collect()
}

/// Sorts "vm/101" and "ct/102" by vmid, then kind.
fn guest_key(name: &str) -> (u64, String) {
    let (kind, vmid) = name.split_once('/').unwrap_or(("", name));
    (vmid.parse().unwrap_or(u64::MAX), kind.to_owned())
}

/// "VM 101 web", "CT 102" (no name known).
fn guest_label(subject: &str, name: Option<&str>) -> String {
    let (kind, vmid) = subject.split_once('/').unwrap_or(("", subject));
    let mut label = format!("{} {vmid}", kind.to_uppercase());
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        label.push(' ');
        label.push_str(name);
    }
    label.trim().to_owned()
}

/// A card's CPU and memory sparklines, labelled.
pub type Sparklines = Vec<(&'static str, SparklineView)>;

/// The sparklines of the last hour up to `end_ms` for each of `hosts` (id and fast
/// interval, if known), in one query. A host without samples gets "no data" lines.
pub fn read_sparklines(
    conn: &Connection,
    hosts: &[(String, Option<i64>)],
    end_ms: i64,
) -> rusqlite::Result<HashMap<String, Sparklines>> {
    let start_ms = end_ms - Range::Hour.duration_ms();
    let ids: Vec<&str> = hosts.iter().map(|(id, _)| id.as_str()).collect();
    let mut found: HashMap<String, Vec<Vec<history::Point>>> =
        history::read_hosts(conn, &SPARK_METRICS, &ids, start_ms, end_ms, SPARK_BUCKET_MS)?.into_iter().collect();
    Ok(hosts
        .iter()
        .map(|(id, interval)| {
            let step = step_ms(Source::Raw, SPARK_BUCKET_MS, interval.unwrap_or(FAST_INTERVAL_MS));
            let window = Window { start_ms, end_ms, step_ms: step };
            (id.clone(), sparklines(&found.remove(id).unwrap_or_default(), window))
        })
        .collect())
}

/// CPU (percent) and memory without ARC (percent of total) from the [`SPARK_METRICS`]
/// series, whose points are the same buckets in the same order.
fn sparklines(series: &[Vec<history::Point>], window: Window) -> Sparklines {
    let empty = Vec::new();
    let get = |i: usize| series.get(i).unwrap_or(&empty);
    let cpu = points(get(0), 1.0);
    let share = |v: Option<f64>, total: Option<f64>| Some(100.0 * v? / total.filter(|t| *t > 0.0)?);
    let mem = get(1)
        .iter()
        .zip(get(2))
        .map(|(used, total)| chart::Point {
            ts_ms: used.ts_ms,
            mean: share(used.mean, total.mean),
            min: share(used.min, total.mean),
            max: share(used.max, total.mean),
        })
        .collect();
    let spark = |label: &str, points| {
        SparklineView::new(&ChartData {
            title: label.to_owned(),
            unit: Unit::Percent,
            window,
            series: vec![Series { label: label.to_owned(), points }],
        })
    };
    vec![("CPU", spark("CPU", cpu)), ("Mem", spark("Memory without ARC", mem))]
}

#[cfg(test)]
mod tests {
    use recorder::rollup::Resolution;

    use super::*;

    #[test]
    fn points_keep_min_mean_and_max_and_scale_them() {
        let p = history::Point { ts_ms: 7, min: Some(0.1), mean: Some(0.25), max: None };
        assert_eq!(chart::Point::from(p), chart::Point { ts_ms: 7, min: Some(0.1), mean: Some(0.25), max: None });
        assert_eq!(points(&[p], 100.0), [chart::Point { ts_ms: 7, min: Some(10.0), mean: Some(25.0), max: None }]);
    }

    #[test]
    fn raw_steps_are_at_least_the_sample_interval_and_rollups_their_bucket() {
        assert_eq!(step_ms(Source::Raw, 4_000, 30_000), 30_000, "1 h: a 4 s bucket, a sample every 30 s");
        assert_eq!(step_ms(Source::Raw, 173_000, 30_000), 173_000, "48 h: buckets wider than the interval");
        assert_eq!(step_ms(Source::Rollup(Resolution::Hour), 9 * 3_600_000, 30_000), 9 * 3_600_000);
        assert_eq!(step_ms(Source::Rollup(Resolution::Minute), 60_000, 300_000), 60_000, "rollups ignore it");
    }

    #[test]
    fn guests_sort_by_vmid_and_read_as_kind_id_and_name() {
        let mut names = vec!["vm/1000", "ct/102", "vm/101", "vm/99"];
        names.sort_by_key(|n| guest_key(n));
        assert_eq!(names, ["vm/99", "vm/101", "ct/102", "vm/1000"]);
        assert_eq!(guest_label("vm/101", Some("web")), "VM 101 web");
        assert_eq!(guest_label("ct/102", None), "CT 102");
    }

    #[test]
    fn memory_sparkline_is_a_share_of_total() {
        let at = |ts_ms, v| history::Point { ts_ms, min: Some(v), mean: Some(v), max: Some(v) };
        let series =
            vec![vec![at(0, 10.0)], vec![at(0, 16.0)], vec![history::Point { min: None, max: None, ..at(0, 64.0) }]];
        let window = Window { start_ms: 0, end_ms: 3_600_000, step_ms: 60_000 };
        let sparks = sparklines(&series, window);
        assert_eq!(sparks.len(), 2);
        assert_eq!(sparks[0].1.title, "CPU: latest 10.0%, 10.0%–10.0%");
        assert_eq!(sparks[1].1.title, "Memory without ARC: latest 25.0%, 25.0%–25.0%");
        assert!(sparklines(&[], window).iter().all(|(_, s)| s.no_data), "a host without samples");
    }
}
