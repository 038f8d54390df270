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
    let guests = state.metrics.guests;
    let hosts: Vec<fleet::Host> =
        all_hosts(&state).await?.into_iter().map(|host| fleet::Host::new(host, now, guests)).collect();
    let mut text = Text::default();
    let counts = StatusCounts::of(hosts.iter().map(|h| h.level));
    let by_status = counts.iter().map(|(level, n)| (level.as_str(), n as u64));
    text.by_label("pmon_hosts", "gauge", "Registered hosts by status.", "status", by_status);
    fleet::write(&mut text, &hosts, guests);
    write_server(&mut text, &state);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text.into_string()))
}

/// The server's own figures: gateway, recorder, retention. The order of the families
/// is the order the page has always had.
fn write_server(text: &mut Text, state: &AppState) {
    write_gateway(text, state);
    write_recorder(text, &state.recorder_stats);
    write_retention(text, &state.recorder_stats);
    let name = "pmon_build_info";
    text.family(name, "gauge", "The server's version, as a label; always 1.");
    text.sample(name, &[("version", crate::VERSION)], 1u64);
    write_refusals(text, state.gateway.stats(), &state.recorder_stats);
    write_commit_lag(text, &state.recorder_stats);
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Sessions, connections and the backlog between the broker and the recorder.
fn write_gateway(text: &mut Text, state: &AppState) {
    let g = state.gateway.stats();
    let sessions = g.sessions.load(Ordering::Relaxed).max(0) as f64;
    text.single("pmon_mqtt_sessions", "gauge", "Live MQTT sessions.", sessions);
    text.single("pmon_mqtt_accepted_total", "counter", "Accepted MQTT connections.", load(&g.accepted) as f64);
    let backlog = state.gateway.backlog();
    text.single(
        "pmon_recorder_backlog_bytes",
        "gauge",
        "Bytes of published messages the recorder has not yet taken from the broker.",
        backlog.bytes().max(0) as f64,
    );
    text.single(
        "pmon_mqtt_backpressure_waits_total",
        "counter",
        "Publishes held back (their client's socket not read) until the recorder caught up.",
        backlog.waits() as f64,
    );
    text.single(
        "pmon_mqtt_kicked_total",
        "counter",
        "Sessions closed by rotation, removal, replacement or an observer's session cap.",
        load(&g.kicked) as f64,
    );
    text.single(
        "pmon_mqtt_observer_evictions_total",
        "counter",
        "Observer sessions closed because their credential went over its session cap.",
        load(&g.observer_evictions) as f64,
    );
    text.single(
        "pmon_mqtt_clones_detected_total",
        "counter",
        "Times two agents were seen taking one host's session from each other.",
        load(&g.clones_detected) as f64,
    );
    text.single(
        "pmon_mqtt_keepalive_timeouts_total",
        "counter",
        "Sessions closed for silence.",
        load(&g.keepalive_timeouts) as f64,
    );
    text.single(
        "pmon_mqtt_presence_dropped_total",
        "counter",
        "Hosts' online/offline dropped unstored: a host flapping while the recorder could not store.",
        load(&g.presence_dropped) as f64,
    );
}

/// What the recorder received, stored and lost.
fn write_recorder(text: &mut Text, r: &recorder::Stats) {
    let mut counter = |name: &str, help: &str, c: &AtomicU64| text.single(name, "counter", help, load(c) as f64);
    counter("pmon_recorder_received_total", "Messages received by the recorder.", &r.received);
    counter("pmon_recorder_stored_total", "Messages committed to SQLite.", &r.stored);
    counter("pmon_recorder_duplicates_total", "Replayed payloads stored once.", &r.duplicates);
    counter("pmon_recorder_write_errors_total", "Failed write batches.", &r.write_errors);
    counter("pmon_recorder_lost_total", "Items of batches dropped on a write error.", &r.lost);
    let disk_full = u64::from(r.disk_full.load(Ordering::Relaxed)) as f64;
    text.single("pmon_recorder_disk_full", "gauge", "1 while commits fail on a full disk.", disk_full);
    text.single(
        "pmon_recorder_last_batch_seconds",
        "gauge",
        "Duration of the last write batch.",
        load(&r.last_batch_us) as f64 / 1e6,
    );
}

fn write_retention(text: &mut Text, r: &recorder::Stats) {
    text.single(
        "pmon_retention_last_pass_seconds",
        "gauge",
        "Duration of the last retention pass.",
        load(&r.last_prune_ms) as f64 / 1e3,
    );
    text.single(
        "pmon_retention_longest_chunk_seconds",
        "gauge",
        "Longest ingest pause of the last retention pass.",
        load(&r.last_prune_longest_chunk_us) as f64 / 1e6,
    );
}

/// Connections refused or closed, and payloads rejected, by reason.
fn write_refusals(text: &mut Text, g: &broker::stats::Stats, r: &recorder::Stats) {
    let refused = [
        ("auth", &g.refused_auth),
        ("protocol", &g.refused_protocol),
        ("timeout", &g.connect_timeouts),
        ("busy", &g.refused_busy),
        ("rate", &g.refused_rate),
        ("clone", &g.refused_clone),
    ];
    let name = "pmon_mqtt_refused_total";
    let refused = refused.map(|(reason, counter)| (reason, load(counter)));
    text.by_label(name, "counter", "Refused MQTT connections by reason.", "reason", refused);
    let violations = g.violations().into_iter().map(|(v, n)| (v.as_str(), n));
    let help = "Connections closed for an ACL violation.";
    text.by_label("pmon_mqtt_acl_violations_total", "counter", help, "reason", violations);
    let rejected = r.rejected().into_iter().map(|(v, n)| (v.as_str(), n));
    text.by_label("pmon_recorder_rejected_total", "counter", "Payloads rejected by reason.", "reason", rejected);
}

fn write_commit_lag(text: &mut Text, r: &recorder::Stats) {
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
