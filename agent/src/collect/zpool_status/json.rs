//! `zpool status -j --json-int` (OpenZFS 2.3 and later).
//!
//! Shape (see zpool-status(8) and https://github.com/openzfs/zfs/pull/16217):
//! `{"output_version": {..}, "pools": {"<name>": {"name", "state", "status"?, "action"?,
//! "scan_stats"?: {"function", "state", "start_time", "end_time", "errors", ..},
//! "vdevs": {"<name>": {root vdev, "vdevs": {top-level vdevs ..}}},
//! "dedup"?, "special"?, "logs"?, "l2cache"?, "spares"?: {"<vdev>": {..}}, "error_count"}}}`.
//! Vdev maps are read in document order (serde_json's `Map` would sort them by name).
//! Numbers are read leniently, so output without `--json-int` parses too.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use wire::{Pool, Scan, Vdev};

use super::{normalize_text, CLASSES};
use crate::collect::lenient::{i64_of, u64_of};
use crate::collect::ParseError;

pub fn parse(text: &str) -> Result<Vec<Pool>, ParseError> {
    let status: StatusJson =
        serde_json::from_str(text).map_err(|e| ParseError::new(format!("invalid zpool status JSON: {e}")))?;
    status.pools.0.into_iter().map(|(key, pool)| pool.into_pool(key)).collect()
}

/// A JSON object read as a list of entries, in document order.
struct Ordered<T>(Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
            type Value = Ordered<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, T>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }

        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

#[derive(serde::Deserialize)]
struct StatusJson {
    #[serde(default)]
    pools: Ordered<PoolJson>,
}

#[derive(serde::Deserialize)]
struct PoolJson {
    name: Option<String>,
    state: Option<String>,
    status: Option<String>,
    action: Option<String>,
    scan_stats: Option<ScanJson>,
    #[serde(default)]
    vdevs: Ordered<VdevJson>,
    #[serde(default)]
    dedup: Ordered<VdevJson>,
    #[serde(default)]
    special: Ordered<VdevJson>,
    #[serde(default)]
    logs: Ordered<VdevJson>,
    #[serde(default)]
    l2cache: Ordered<VdevJson>,
    #[serde(default)]
    spares: Ordered<VdevJson>,
    error_count: Option<Value>,
}

#[derive(serde::Deserialize)]
struct VdevJson {
    name: Option<String>,
    state: Option<String>,
    read_errors: Option<Value>,
    write_errors: Option<Value>,
    checksum_errors: Option<Value>,
    #[serde(default)]
    vdevs: Ordered<VdevJson>,
}

#[derive(serde::Deserialize)]
struct ScanJson {
    function: Option<String>,
    state: Option<String>,
    start_time: Option<Value>,
    end_time: Option<Value>,
    errors: Option<Value>,
}

impl PoolJson {
    fn into_pool(self, key: String) -> Result<Pool, ParseError> {
        let name = self.name.unwrap_or(key);
        let state = self.state.ok_or_else(|| ParseError::new(format!("pool {name} has no state")))?;
        let mut vdevs = Vec::new();
        // The single root vdev is the pool itself; its children are the top-level vdevs (depth 0).
        for (_, root) in self.vdevs.0 {
            for (key, child) in root.vdevs.0 {
                child.flatten(key, 0, &mut vdevs);
            }
        }
        let classes = [self.dedup, self.special, self.logs, self.l2cache, self.spares];
        for (class, members) in CLASSES.iter().zip(classes) {
            if members.0.is_empty() {
                continue;
            }
            vdevs.push(Vdev { name: class.to_string(), depth: 0, ..Vdev::default() });
            for (key, member) in members.0 {
                member.flatten(key, 1, &mut vdevs);
            }
        }
        Ok(Pool {
            name,
            state: state.into(),
            // Pre-release builds printed a status code ("OK") instead of the message.
            status: self.status.map(|s| normalize_text(&s)).filter(|s| !s.is_empty() && s != "OK"),
            action: self.action.map(|s| normalize_text(&s)).filter(|s| !s.is_empty()),
            vdevs,
            scan: self.scan_stats.and_then(ScanJson::into_scan),
            error_count: self.error_count.as_ref().and_then(u64_of).unwrap_or(0),
            ..Pool::default()
        })
    }
}

impl VdevJson {
    fn flatten(self, key: String, depth: u8, out: &mut Vec<Vdev>) {
        let count = |v: &Option<Value>| v.as_ref().and_then(u64_of).unwrap_or(0);
        out.push(Vdev {
            name: self.name.unwrap_or(key),
            depth,
            state: self.state.unwrap_or_default().into(),
            read_errors: count(&self.read_errors),
            write_errors: count(&self.write_errors),
            checksum_errors: count(&self.checksum_errors),
        });
        for (key, child) in self.vdevs.0 {
            child.flatten(key, depth.saturating_add(1), out);
        }
    }
}

impl ScanJson {
    fn into_scan(self) -> Option<Scan> {
        let function = self.function.filter(|f| !f.is_empty() && f != "NONE")?;
        // Times are Unix seconds with --json-int; 0 means "not yet" (a running scan has no end).
        let time = |v: &Option<Value>| v.as_ref().and_then(i64_of).filter(|t| *t > 0);
        Some(Scan {
            function: function.into(),
            state: self.state.unwrap_or_default().into(),
            start: time(&self.start_time),
            end: time(&self.end_time),
            errors: self.errors.as_ref().and_then(u64_of).unwrap_or(0),
        })
    }
}
