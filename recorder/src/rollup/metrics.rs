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
    pub agg: Agg,
}

/// Bytes are kept in KiB: exact enough for any chart, and 4 bytes on disk up to 2 TiB.
const KIB: f64 = 1.0 / 1024.0;

const fn gauge(name: &'static str, expr: &'static str, scale: f64) -> Metric {
    Metric { name, expr, scale, agg: Agg::Gauge }
}

const fn max(name: &'static str, expr: &'static str, scale: f64) -> Metric {
    Metric { name, expr, scale, agg: Agg::Max }
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
}

const HOST: &[Metric] = &[
    gauge("load1", "load1", 100.0),
    gauge("load5", "load5", 100.0),
    gauge("load15", "load15", 100.0),
    gauge("cpu_pct", "cpu_pct", 100.0),
    gauge("iowait_pct", "iowait_pct", 100.0),
    gauge("mem_used", "mem_used", KIB),
    // What the kernel would not give back: the ARC shrinks under pressure.
    gauge("mem_used_without_arc", "mem_used - coalesce(arc_bytes, 0)", KIB),
    gauge("arc_bytes", "arc_bytes", KIB),
    max("mem_total", "mem_total", KIB),
    gauge("swap_used", "swap_used", KIB),
    max("swap_total", "swap_total", KIB),
    gauge("rootfs_used", "rootfs_used", KIB),
    max("rootfs_total", "rootfs_total", KIB),
];

const POOL: &[Metric] = &[
    gauge("cap_pct", "cap_pct", 100.0),
    gauge("frag_pct", "frag_pct", 100.0),
    Metric { name: "errors", expr: "read_errors + write_errors + checksum_errors", scale: 1.0, agg: Agg::Last },
];

const STORAGE: &[Metric] = &[gauge("used", "used", KIB), max("total", "total", KIB)];

const GUEST: &[Metric] = &[
    // A fraction of the guest's CPUs, as Proxmox reports it.
    gauge("cpu", "cpu", 10_000.0),
    gauge("mem", "mem", KIB),
    max("maxmem", "maxmem", KIB),
    Metric { name: "running", expr: "status = 'running'", scale: 1.0, agg: Agg::Share },
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
                    out.push(StoredColumn::new(format!("{n}_n"), format!("count({v})"), |c| {
                        format!("{c} + excluded.{c}")
                    }));
                    out.push(StoredColumn::new(format!("{n}_min"), format!("min({v})"), merge_min));
                    out.push(StoredColumn::new(format!("{n}_max"), format!("max({v})"), merge_max));
                    out.push(StoredColumn::new(format!("{n}_sum"), format!("sum({v})"), |c| {
                        format!("coalesce({c} + excluded.{c}, {c}, excluded.{c})")
                    }));
                }
                Agg::Max => out.push(StoredColumn::new(format!("{n}_max"), format!("max({v})"), merge_max)),
                // Last rows come one sample at a time (medium payloads), so an aggregate
                // over one sample's rows is that sample's value; between samples the later
                // one wins.
                Agg::Last => out.push(StoredColumn::new(format!("{n}_last"), format!("max({v})"), |c| {
                    format!("CASE WHEN excluded.t_last >= t_last THEN excluded.{c} ELSE {c} END")
                })),
                Agg::Share => out.push(StoredColumn::new(format!("{n}_sum"), format!("sum({v})"), |c| {
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
    /// Its value after merging a new aggregate (`excluded`) into an existing row.
    pub merge: String,
}

impl StoredColumn {
    fn new(name: String, aggregate: String, merge: impl Fn(&str) -> String) -> StoredColumn {
        let merge = merge(&name);
        StoredColumn { name, aggregate, merge }
    }
}
