//! `pvesh get /nodes/<node>/status`: load, memory, swap, root filesystem, uptime, CPU count.
//!
//! Its `cpu` field is useless here: a one-shot pvesh has no previous sample and always reports 0,
//! so CPU and iowait percentages come from `/proc/stat` deltas instead (see [`super::proc_stat`]).

use serde_json::Value;

use super::lenient::{f64_of, field, u64_of};
use super::ParseError;

/// The fields of the node status the fast tier uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeStatus {
    pub cpus: Option<u32>,
    pub load: [Option<f64>; 3],
    pub mem_total: Option<u64>,
    pub mem_used: Option<u64>,
    pub swap_total: Option<u64>,
    pub swap_used: Option<u64>,
    pub rootfs_total: Option<u64>,
    pub rootfs_used: Option<u64>,
    pub uptime_s: Option<u64>,
}

pub fn args(node: &str) -> Vec<String> {
    vec!["get".into(), format!("/nodes/{node}/status"), "--output-format".into(), "json".into()]
}

/// Parses pvesh's JSON. Also accepts the raw API form wrapped in `{"data": ...}`.
pub fn parse(text: &str) -> Result<NodeStatus, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::new(format!("invalid JSON: {e}")))?;
    let status = match value.get("data") {
        Some(data) if value.as_object().is_some_and(|o| o.len() == 1) => data,
        _ => &value,
    };
    if !status.is_object() {
        return Err(ParseError::new("node status is not a JSON object"));
    }
    let (memory, swap, rootfs) = (&status["memory"], &status["swap"], &status["rootfs"]);
    let mut load = [None; 3];
    if let Some(values) = status.get("loadavg").and_then(Value::as_array) {
        for (slot, v) in load.iter_mut().zip(values) {
            *slot = f64_of(v);
        }
    }
    let parsed = NodeStatus {
        cpus: status.get("cpuinfo").and_then(|c| field(c, "cpus", u64_of)).and_then(|n| u32::try_from(n).ok()),
        load,
        mem_total: field(memory, "total", u64_of),
        mem_used: field(memory, "used", u64_of),
        swap_total: field(swap, "total", u64_of),
        swap_used: field(swap, "used", u64_of),
        rootfs_total: field(rootfs, "total", u64_of),
        rootfs_used: field(rootfs, "used", u64_of),
        uptime_s: field(status, "uptime", u64_of),
    };
    if parsed == NodeStatus::default() {
        return Err(ParseError::new("node status has none of the expected fields"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = include_str!("../../tests/fixtures/node_status.json");

    #[test]
    fn parses_captured_node_status() {
        let s = parse(STATUS).unwrap();
        assert_eq!(s.cpus, Some(4));
        assert_eq!(s.load, [Some(0.51), Some(0.47), Some(0.62)]);
        assert_eq!(s.mem_total, Some(8_269_389_824));
        assert_eq!(s.mem_used, Some(5_493_719_040));
        assert_eq!(s.swap_total, Some(7_516_188_672));
        assert_eq!(s.swap_used, Some(127_664_128));
        assert_eq!(s.rootfs_total, Some(21_003_583_488));
        assert_eq!(s.rootfs_used, Some(6_877_716_480));
        assert_eq!(s.uptime_s, Some(1_433_562));
    }

    #[test]
    fn accepts_the_api_envelope_and_numeric_loadavg() {
        let s = parse(r#"{"data":{"loadavg":[1.5,"2",null],"uptime":"60","cpuinfo":{"cpus":"8"}}}"#).unwrap();
        assert_eq!(s.load, [Some(1.5), Some(2.0), None]);
        assert_eq!(s.uptime_s, Some(60));
        assert_eq!(s.cpus, Some(8));
        assert_eq!(s.mem_total, None);
    }

    #[test]
    fn malformed_output_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("{\"memory\":").is_err());
        assert!(parse("[1,2]").is_err());
        assert!(parse("{}").is_err());
        assert!(parse("proxy detected vanished client connection").is_err());
    }
}
