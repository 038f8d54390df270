//! What the rollups keep: for each group of series (a host, a pool, a storage, a guest),
//! its key columns and its metrics, each defined once as an SQL expression over the raw
//! sample columns. The same definition aggregates raw samples for charts of the last 48 h
//! and builds the minute and hour rollups, so every range of a chart means the same thing.

use super::Resolution;

/// How a metric is aggregated over a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// Minimum, maximum and mean (sum and count of non-null values).
    Gauge,
    /// The maximum only: sizes that change only with hardware (memory total, pool size).
    Max,
    /// The value of the latest sample in the bucket: counters such as pool errors, which
    /// `zpool clear` resets.
    Last,
    /// How many samples matched a condition, read as a share of the bucket's samples (a
    /// guest's time running).
    Share,
}

/// One series of a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    /// An SQL expression over the raw sample columns.
    expr: &'static str,
    /// Stored as `round(value * scale)` in an INTEGER column: SQLite stores small
    /// integers in 1 to 4 bytes and every REAL in 8, and the rollups are mostly numbers.
    scale: f64,
    /// The same in the packed hour tier ([`super::pack`]), coarser: the precision a
    /// chart shows (see `cell.rs`).
    packed: f64,
    pub agg: Agg,
}

/// Bytes are kept in KiB: exact enough for any chart, and 4 bytes on disk up to 2 TiB.
const KIB: f64 = 1.0 / 1024.0;
/// Packed, in MiB: a chart 200 pixels high shows a pixel per 0.5 % of its range, and
/// 1 MiB is below that for anything from 256 MiB up.
const MIB: f64 = 1.0 / (1024.0 * 1024.0);
/// Percentages: stored to 0.01, packed to 0.1.
const PCT: (f64, f64) = (100.0, 10.0);
const BYTES: (f64, f64) = (KIB, MIB);

const fn gauge(name: &'static str, expr: &'static str, (scale, packed): (f64, f64)) -> Metric {
    Metric { name, expr, scale, packed, agg: Agg::Gauge }
}

const fn max(name: &'static str, expr: &'static str, (scale, packed): (f64, f64)) -> Metric {
    Metric { name, expr, scale, packed, agg: Agg::Max }
}

impl Metric {
    /// The name of its stored value in the query that folds raw rows (computed once per
    /// row there, then aggregated by name).
    pub(crate) fn value(&self) -> String {
        format!("v_{}", self.name)
    }

    /// The stored integer of one raw sample.
    pub fn stored(&self) -> String {
        format!("CAST(round(({}) * {:?}) AS INTEGER)", self.expr, self.scale)
    }

    /// The raw expression itself, for charts read from raw samples.
    pub fn raw(&self) -> &'static str {
        self.expr
    }

    /// A stored integer back in the metric's unit.
    pub fn decode(&self, stored: f64) -> f64 {
        stored / self.scale
    }

    /// Packed integers per unit of the metric.
    pub fn packed_scale(&self) -> f64 {
        self.packed
    }
}

const LOAD: (f64, f64) = (100.0, 100.0);

const HOST: &[Metric] = &[
    gauge("load1", "load1", LOAD),
    gauge("load5", "load5", LOAD),
    gauge("load15", "load15", LOAD),
    gauge("cpu_pct", "cpu_pct", PCT),
    gauge("iowait_pct", "iowait_pct", PCT),
    gauge("mem_used", "mem_used", BYTES),
    // What the kernel would not give back: the ARC shrinks under pressure.
    gauge("mem_used_without_arc", "mem_used - coalesce(arc_bytes, 0)", BYTES),
    gauge("arc_bytes", "arc_bytes", BYTES),
    max("mem_total", "mem_total", BYTES),
    gauge("swap_used", "swap_used", BYTES),
    max("swap_total", "swap_total", BYTES),
    gauge("rootfs_used", "rootfs_used", BYTES),
    max("rootfs_total", "rootfs_total", BYTES),
];

const POOL: &[Metric] = &[
    gauge("cap_pct", "cap_pct", PCT),
    gauge("frag_pct", "frag_pct", PCT),
    Metric {
        name: "errors",
        expr: "read_errors + write_errors + checksum_errors",
        scale: 1.0,
        packed: 1.0,
        agg: Agg::Last,
    },
];

const STORAGE: &[Metric] = &[gauge("used", "used", BYTES), max("total", "total", BYTES)];

const GUEST: &[Metric] = &[
    // A fraction of the guest's CPUs, as Proxmox reports it; packed to 0.1 % of a CPU.
    gauge("cpu", "cpu", (10_000.0, 1000.0)),
    gauge("mem", "mem", BYTES),
    max("maxmem", "maxmem", BYTES),
    Metric { name: "running", expr: "status = 'running'", scale: 1.0, packed: 1.0, agg: Agg::Share },
];

/// A group of series stored together, one row per key and bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    Host,
    Pool,
    Storage,
    Guest,
}

impl Group {
    pub const ALL: [Group; 4] = [Group::Host, Group::Pool, Group::Storage, Group::Guest];

    pub fn name(self) -> &'static str {
        match self {
            Group::Host => "host",
            Group::Pool => "pool",
            Group::Storage => "storage",
            Group::Guest => "guest",
        }
    }

    /// The resolutions it is rolled up into. Pools, storages and guests come with the
    /// medium tier, every 5 minutes by default: a minute bucket would hold one sample,
    /// the raw sample again, so beyond the raw window they are kept per hour only.
    pub fn resolutions(self) -> &'static [Resolution] {
        match self {
            Group::Host => &[Resolution::Minute, Resolution::Hour],
            Group::Pool | Group::Storage | Group::Guest => &[Resolution::Hour],
        }
    }

    /// Whether its rows keep the time of their latest sample (for [`Agg::Last`]).
    pub fn keeps_last(self) -> bool {
        self.metrics().iter().any(|m| m.agg == Agg::Last)
    }

    /// The readers' view of this group's raw samples.
    pub fn raw_view(self) -> &'static str {
        match self {
            Group::Host => "fast_samples",
            Group::Pool => "pool_samples",
            Group::Storage => "storage_samples",
            Group::Guest => "guest_samples",
        }
    }

    /// Key columns after `host_id`, naming the subject (pool, storage, guest).
    pub fn subject_columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Group::Host => &[],
            Group::Pool => &[("pool", "TEXT NOT NULL")],
            Group::Storage => &[("storage", "TEXT NOT NULL")],
            Group::Guest => &[("kind", "TEXT NOT NULL"), ("vmid", "INTEGER NOT NULL")],
        }
    }

    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Group::Host => HOST,
            Group::Pool => POOL,
            Group::Storage => STORAGE,
            Group::Guest => GUEST,
        }
    }

    /// The stored columns of every metric, with their aggregate over the folding query's
    /// values ([`Metric::value`]) and their merge into an existing row (`excluded` is the
    /// new aggregate).
    pub(crate) fn columns(self) -> Vec<StoredColumn> {
        let mut out = Vec::new();
        for m in self.metrics() {
            let v = m.value();
            let n = m.name;
            let merge_min = |c: &str| format!("min(coalesce({c}, excluded.{c}), coalesce(excluded.{c}, {c}))");
            let merge_max = |c: &str| format!("max(coalesce({c}, excluded.{c}), coalesce(excluded.{c}, {c}))");
            match m.agg {
                Agg::Gauge => {
                    out.push(StoredColumn::new(format!("{n}_n"), format!("count({v})"), "sum", |c| {
                        format!("{c} + excluded.{c}")
                    }));
                    out.push(StoredColumn::new(format!("{n}_min"), format!("min({v})"), "min", merge_min));
                    out.push(StoredColumn::new(format!("{n}_max"), format!("max({v})"), "max", merge_max));
                    out.push(StoredColumn::new(format!("{n}_sum"), format!("sum({v})"), "sum", |c| {
                        format!("coalesce({c} + excluded.{c}, {c}, excluded.{c})")
                    }));
                }
                Agg::Max => out.push(StoredColumn::new(format!("{n}_max"), format!("max({v})"), "max", merge_max)),
                // Last rows come one sample at a time (medium payloads), so an aggregate
                // over one sample's rows is that sample's value; between samples the later
                // one wins.
                Agg::Last => out.push(StoredColumn::new(format!("{n}_last"), format!("max({v})"), "max", |c| {
                    format!("CASE WHEN excluded.t_last >= t_last THEN excluded.{c} ELSE {c} END")
                })),
                Agg::Share => out.push(StoredColumn::new(format!("{n}_sum"), format!("sum({v})"), "sum", |c| {
                    format!("{c} + excluded.{c}")
                })),
            }
        }
        out
    }
}

/// One stored column of a rollup table.
pub(crate) struct StoredColumn {
    pub name: String,
    /// Its aggregate over raw rows.
    pub aggregate: String,
    /// The aggregate function that merges several of its aggregates (minutes into an
    /// hour); a counter's last value is not one of them (see `fold_recent`).
    pub reaggregate: &'static str,
    /// Its value after merging a new aggregate (`excluded`) into an existing row.
    pub merge: String,
}

impl StoredColumn {
    fn new(name: String, aggregate: String, reaggregate: &'static str, merge: impl Fn(&str) -> String) -> StoredColumn {
        let merge = merge(&name);
        StoredColumn { name, aggregate, reaggregate, merge }
    }
}
