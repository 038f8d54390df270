//! The alerting round's cost with held payloads (issue 15, 10,000 hosts in a small
//! footprint): N hosts in steady state (a fast, a medium and a slow sample, each with the
//! one before it, as `integration::samples` sends them), judged by `Engine::evaluate`,
//! which decodes each host's held medium and slow payloads.
//! Alternated, in the same minutes, with the same round over states decoded beforehand:
//! the rules and the engine alone, which is what a round cost before payloads were held
//! encoded. Prints the median of each, per round and per host.
//!
//! `cargo build --profile profiling -p integration --bin bench_alerting &&
//!  target/profiling/bench_alerting --hosts 10000 --rounds 10`

use std::sync::Arc;
use std::time::Instant;

use alerting::{Engine, Settings};
use integration::samples::{fast_data, medium_data, slow_data};
use recorder::state::{held_slow, HostState};
use recorder::status::{Overrides, PreviousMedium, PreviousSlow};
use wire::{now_ms, Held, Payload, SCHEMA_VERSION};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn payload<T>(host: &str, ts_ms: i64, data: T) -> Payload<T> {
    Payload {
        schema: SCHEMA_VERSION,
        host_id: host.into(),
        ts_ms,
        boot_id: "bench".into(),
        seq: 1,
        agent_version: "bench".into(),
        dropped: 0,
        errors: Default::default(),
        data,
    }
}

/// A host in steady state: every tier with the sample before it.
fn state(host: String, now: i64) -> HostState {
    let before = now - 300_000;
    HostState {
        online: true,
        online_changed_ms: Some(before),
        last_seen_ms: Some(now),
        fast: Some(Arc::new(payload(&host, now, fast_data(1)))),
        fast_received_ms: Some(now),
        fast_interval_ms: Some(30_000),
        medium: Some(Held::new(&payload(&host, now, medium_data()))),
        previous_medium: Some(Arc::new(PreviousMedium::of(&medium_data()))),
        previous_medium_ts_ms: Some(before),
        slow: Some(held_slow(payload(&host, now, slow_data()))),
        previous_slow: Some(Arc::new(PreviousSlow::of(&slow_data()))),
        host_id: host,
        ..HostState::default()
    }
}

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn main() {
    let hosts = arg("--hosts", 10_000);
    let rounds = arg("--rounds", 10);
    let now = now_ms();
    let states: Vec<HostState> = (0..hosts).map(|i| state(format!("pve{i:05}"), now)).collect();
    let decoded: Vec<_> = states.iter().map(HostState::decoded).collect();
    let limits = Overrides::default();
    let mut engine = Engine::new(Settings::default(), Vec::new());
    let (mut held, mut parsed) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        for state in &states {
            engine.evaluate(state, now);
        }
        held.push(start.elapsed().as_secs_f64() * 1000.0);
        let start = Instant::now();
        for d in &decoded {
            let findings = d.findings_under(now, &limits);
            engine.apply_latest(&d.state.host_id, &findings, d.latest(), now);
        }
        parsed.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    for (name, ms) in [("held (decode + judge)", held), ("decoded beforehand (judge only)", parsed)] {
        let m = median(ms);
        println!("{name}: {hosts} hosts, median {m:.1} ms per round, {:.2} µs per host", m * 1000.0 / hosts as f64);
    }
}
