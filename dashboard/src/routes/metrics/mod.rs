//! `GET /metrics`: Prometheus text format. The fleet (`fleet.rs`: hosts, pools,
//! storages, guest counts; per guest with `METRICS_GUESTS=1`) and the server's own
//! figures (MQTT gateway, recorder, retention). Behind an API token or a session unless
//! `METRICS_PUBLIC=1` (see `routes::router`).

mod fleet;
mod text;

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use recorder::state::StatusCounts;

use crate::error::AppError;
use crate::routes::all_hosts;
use crate::AppState;
use text::Text;

pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let now = wire::now_ms();
    let hosts: Vec<fleet::Host> = all_hosts(&state)
        .await?
        .into_iter()
        .map(|state| fleet::Host { level: state.health(now).level, state })
        .collect();
    let mut text = Text::default();
    let name = "pmon_hosts";
    text.family(name, "gauge", "Registered hosts by status.");
    for (level, n) in StatusCounts::of(hosts.iter().map(|h| h.level)).iter() {
        text.sample(name, &[("status", level.as_str())], n as u64);
    }
    fleet::write(&mut text, &hosts, state.metrics.guests);
    write_server(&mut text, &state);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text.into_string()))
}

/// The server's own figures: gateway, recorder, retention.
fn write_server(text: &mut Text, state: &AppState) {
    let g = state.gateway.stats();
    let r = &state.recorder_stats;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut one = |name: &str, kind: &str, help: &str, value: f64| {
        text.family(name, kind, help);
        text.sample(name, &[], value);
    };
    one("pmon_mqtt_sessions", "gauge", "Live MQTT sessions.", g.sessions.load(Ordering::Relaxed).max(0) as f64);
    one("pmon_mqtt_accepted_total", "counter", "Accepted MQTT connections.", load(&g.accepted) as f64);
    let backlog = state.gateway.backlog();
    one(
        "pmon_recorder_backlog_bytes",
        "gauge",
        "Bytes of published messages the recorder has not yet taken from the broker.",
        backlog.bytes().max(0) as f64,
    );
    one(
        "pmon_mqtt_backpressure_waits_total",
        "counter",
        "Publishes held back (their client's socket not read) until the recorder caught up.",
        backlog.waits() as f64,
    );
    one(
        "pmon_mqtt_kicked_total",
        "counter",
        "Sessions closed by rotation, removal, replacement or an observer's session cap.",
        load(&g.kicked) as f64,
    );
    one(
        "pmon_mqtt_observer_evictions_total",
        "counter",
        "Observer sessions closed because their credential went over its session cap.",
        load(&g.observer_evictions) as f64,
    );
    one(
        "pmon_mqtt_clones_detected_total",
        "counter",
        "Times two agents were seen taking one host's session from each other.",
        load(&g.clones_detected) as f64,
    );
    one(
        "pmon_mqtt_keepalive_timeouts_total",
        "counter",
        "Sessions closed for silence.",
        load(&g.keepalive_timeouts) as f64,
    );
    one("pmon_recorder_received_total", "counter", "Messages received by the recorder.", load(&r.received) as f64);
    one("pmon_recorder_stored_total", "counter", "Messages committed to SQLite.", load(&r.stored) as f64);
    one("pmon_recorder_duplicates_total", "counter", "Replayed payloads stored once.", load(&r.duplicates) as f64);
    one("pmon_recorder_write_errors_total", "counter", "Failed write batches.", load(&r.write_errors) as f64);
    one("pmon_recorder_lost_total", "counter", "Items of batches dropped on a write error.", load(&r.lost) as f64);
    one(
        "pmon_recorder_disk_full",
        "gauge",
        "1 while commits fail on a full disk.",
        u64::from(r.disk_full.load(std::sync::atomic::Ordering::Relaxed)) as f64,
    );
    one(
        "pmon_recorder_last_batch_seconds",
        "gauge",
        "Duration of the last write batch.",
        load(&r.last_batch_us) as f64 / 1e6,
    );
    one(
        "pmon_retention_last_pass_seconds",
        "gauge",
        "Duration of the last retention pass.",
        load(&r.last_prune_ms) as f64 / 1e3,
    );
    one(
        "pmon_retention_longest_chunk_seconds",
        "gauge",
        "Longest ingest pause of the last retention pass.",
        load(&r.last_prune_longest_chunk_us) as f64 / 1e6,
    );
    let name = "pmon_build_info";
    text.family(name, "gauge", "The server's version, as a label; always 1.");
    text.sample(name, &[("version", crate::VERSION)], 1u64);

    let name = "pmon_mqtt_refused_total";
    text.family(name, "counter", "Refused MQTT connections by reason.");
    for (reason, counter) in [
        ("auth", &g.refused_auth),
        ("protocol", &g.refused_protocol),
        ("timeout", &g.connect_timeouts),
        ("busy", &g.refused_busy),
        ("rate", &g.refused_rate),
        ("clone", &g.refused_clone),
    ] {
        text.sample(name, &[("reason", reason)], load(counter));
    }
    let name = "pmon_mqtt_acl_violations_total";
    text.family(name, "counter", "Connections closed for an ACL violation.");
    for (v, n) in g.violations() {
        text.sample(name, &[("reason", v.as_str())], n);
    }
    let name = "pmon_recorder_rejected_total";
    text.family(name, "counter", "Payloads rejected by reason.");
    for (v, n) in r.rejected() {
        text.sample(name, &[("reason", v.as_str())], n);
    }

    let (buckets, sum_ms) = r.lag_histogram();
    let name = "pmon_recorder_commit_lag_seconds";
    text.family(name, "histogram", "Time from an agent's sample to its commit.");
    for (bound, count) in &buckets {
        let le = bound.map_or("+Inf".to_owned(), |ms| format!("{}", ms as f64 / 1000.0));
        text.sample(&format!("{name}_bucket"), &[("le", &le)], *count);
    }
    text.sample(&format!("{name}_sum"), &[], sum_ms as f64 / 1000.0);
    text.sample(&format!("{name}_count"), &[], buckets.last().map_or(0, |b| b.1));
}
