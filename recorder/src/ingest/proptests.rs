//! Property tests of the recorder's edge (issue 15, "Fuzzing"): any bytes on any topic
//! become an `Item` or a counted `Reject`, never a panic, and a valid payload comes through
//! exactly as the agent serialized it. `fuzz/fuzz_targets/ingest.rs` runs the same for
//! longer (docs/RELIABILITY.md).

use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use serde_json::{json, Value};
use wire::{Fast, Guest, Medium, Payload, Pool, Slow, Versions};

use super::*;

const NOW: i64 = 1_764_000_000_000;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

fn host_id() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,20}"
}

fn topic(host: &str, kind: Kind) -> Vec<u8> {
    format!("{}/{host}/{kind}", wire::PREFIX).into_bytes()
}

/// Topics as they may arrive: the four of a host, near misses and noise.
fn any_topic() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop::sample::select(vec!["status", "fast", "medium", "slow", "alerts", "ha/fast", "", "fast/x"]);
    prop_oneof![
        (host_id(), kind).prop_map(|(h, k)| format!("pmon/v1/{h}/{k}").into_bytes()),
        ".{0,40}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..40),
    ]
}

/// JSON values of every type, small, for replacing one field of a valid payload.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((".{0,6}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A finite, non-negative float, as a valid payload carries (percentages within 0–100).
fn pct() -> impl Strategy<Value = f64> {
    (0.0..=100.0f64).prop_map(|v| v.clamp(0.0, 100.0))
}

fn envelope<T>(host: String, ts_ms: i64, seq: u64, boot_id: String, data: T) -> Payload<T> {
    Payload {
        schema: wire::SCHEMA_VERSION,
        host_id: host,
        ts_ms,
        boot_id,
        seq,
        agent_version: "0.1.0".into(),
        dropped: 0,
        errors: Default::default(),
        data,
    }
}

fn fast() -> impl Strategy<Value = Fast> {
    let loads = (of(0.0..1e4f64), of(0.0..1e4f64), of(0.0..1e4f64), of(pct()), of(pct()));
    let sizes = (of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(any::<u32>()), of(any::<u64>()));
    (loads, sizes).prop_map(|((load1, load5, load15, cpu_pct, iowait_pct), (mem_total, mem_used, arc, cpus, up))| {
        Fast {
            cpus,
            load1,
            load5,
            load15,
            cpu_pct,
            iowait_pct,
            mem_total,
            mem_used,
            arc_bytes: arc,
            uptime_s: up,
            ..Fast::default()
        }
    })
}

fn medium() -> impl Strategy<Value = Medium> {
    let pool = (".{0,10}", ".{0,10}", of(0.0..100.0f64), of(0.0..1e3f64)).prop_map(|(name, state, frag, dedup)| Pool {
        name,
        state: state.into(),
        frag_pct: frag,
        dedup_ratio: dedup,
        ..Pool::default()
    });
    let guest = (any::<u32>(), ".{0,10}", of(0.0..64.0f64), of(0.0..512.0f64))
        .prop_map(|(vmid, status, cpu, cpus)| Guest { vmid, status: status.into(), cpu, cpus, ..Guest::default() });
    (of(vec(pool, 0..3)), of(vec(guest.clone(), 0..3)), of(vec(guest, 0..3))).prop_map(|(pools, vms, cts)| Medium {
        pools,
        vms,
        cts,
        ..Medium::default()
    })
}

fn slow() -> impl Strategy<Value = Slow> {
    (of(".{0,10}"), of(".{0,10}")).prop_map(|(kernel, zfs)| Slow {
        versions: Some(Versions { kernel, zfs, pve_manager: None }),
        ..Slow::default()
    })
}

/// The envelope fields a valid payload may carry: any past time, up to a day ahead.
fn valid_head() -> impl Strategy<Value = (String, i64, u64, String)> {
    (host_id(), 1..=NOW + 24 * 3600 * 1000, 1..=u64::MAX, "[a-f0-9]{1,16}")
}

/// Parses and checks the invariants every outcome must hold.
fn parse_checked(topic: &[u8], payload: &[u8], now: i64) -> Result<Result<Item, Reject>, TestCaseError> {
    let result = parse(topic, payload, now);
    match &result {
        Err(reject) => prop_assert!(Reject::ALL.contains(reject)),
        Ok(item) => {
            let topic = std::str::from_utf8(topic).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(item.topic(), topic, "an item is for the topic it came on");
            if let Some(ts) = item.ts_ms() {
                prop_assert!(ts > 0 && ts <= now.saturating_add(MAX_FUTURE_MS));
            }
        }
    }
    Ok(result)
}

/// Sends `data` in a valid envelope on its host's `kind` topic: it must arrive as `item`
/// of exactly what was sent, with the text as the agent serialized it.
fn comes_through<T: serde::Serialize>(
    (host, ts, seq, boot): (String, i64, u64, String),
    data: T,
    kind: Kind,
    item: fn(Payload<T>, String) -> Item,
) -> Result<(), TestCaseError> {
    let sent = envelope(host.clone(), ts, seq, boot, data);
    let json = serde_json::to_string(&sent).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let parsed = parse_checked(&topic(&host, kind), json.as_bytes(), NOW)?;
    prop_assert_eq!(parsed, Ok(item(sent, json)));
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_on_any_topic_are_an_item_or_a_reject(
        topic in any_topic(),
        payload in prop_oneof![vec(any::<u8>(), 0..300), ".{0,300}".prop_map(String::into_bytes)],
        // The server's wall clock: any time from 1970 to the year 2500.
        now in 0..16_725_225_600_000i64,
    ) {
        let _ = parse_checked(&topic, &payload, now)?;
    }

    #[test]
    fn a_valid_payload_with_one_field_replaced_never_panics(
        (host, ts, seq, boot) in valid_head(),
        data in fast(),
        field in prop::sample::select(vec!["schema", "host_id", "ts_ms", "seq", "boot_id", "dropped", "errors", "data"]),
        inner in prop::sample::select(vec!["", "load1", "cpu_pct", "mem_used", "net", "pools", "vms", "snapshots"]),
        value in any_json(),
        kind in prop::sample::select(vec![Kind::Fast, Kind::Medium, Kind::Slow]),
    ) {
        let mut doc = serde_json::to_value(envelope(host.clone(), ts, seq, boot, data))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        if field == "data" && !inner.is_empty() {
            doc["data"][inner] = value;
        } else {
            doc[field] = value;
        }
        let _ = parse_checked(&topic(&host, kind), doc.to_string().as_bytes(), NOW)?;
    }

    #[test]
    fn a_valid_fast_payload_comes_through_unchanged(head in valid_head(), data in fast()) {
        comes_through(head, data, Kind::Fast, Item::Fast)?;
    }

    #[test]
    fn a_valid_medium_payload_comes_through_unchanged(head in valid_head(), data in medium()) {
        comes_through(head, data, Kind::Medium, Item::Medium)?;
    }

    #[test]
    fn a_valid_slow_payload_comes_through_unchanged(head in valid_head(), data in slow()) {
        comes_through(head, data, Kind::Slow, Item::Slow)?;
    }

    #[test]
    fn a_payload_on_another_hosts_topic_is_refused((host, ts, seq, boot) in valid_head(), other in host_id()) {
        prop_assume!(host != other);
        let json = json!(envelope(host, ts, seq, boot, Fast::default())).to_string();
        prop_assert_eq!(parse(&topic(&other, Kind::Fast), json.as_bytes(), NOW), Err(Reject::HostMismatch));
    }
}

#[test]
fn each_reject_counts_in_its_own_slot() {
    // `Stats::rejected` indexes its counters by discriminant, in `ALL`'s order.
    for (i, r) in Reject::ALL.into_iter().enumerate() {
        assert_eq!(r as usize, i, "{}", r.as_str());
    }
}
