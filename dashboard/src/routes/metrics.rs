//! `GET /metrics`: Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::AppError;
use crate::routes::all_hosts;
use crate::AppState;
use recorder::state::StatusCounts;

pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let states = all_hosts(&state).await?;
    let now = wire::now_ms();
    let by_status = StatusCounts::of(states.iter().map(|s| s.health(now).level));
    let g = state.gateway.stats();
    let r = &state.recorder_stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let plain = |v: u64| vec![(String::new(), v)];
    metric(
        "pmon_hosts",
        "gauge",
        "Registered hosts by status.",
        &by_status
            .iter()
            .map(|(level, n)| (format!("{{status=\"{}\"}}", level.as_str()), n as u64))
            .collect::<Vec<_>>(),
    );
    metric(
        "pmon_mqtt_sessions",
        "gauge",
        "Live MQTT sessions.",
        &plain(g.sessions.load(Ordering::Relaxed).max(0) as u64),
    );
    metric("pmon_mqtt_accepted_total", "counter", "Accepted MQTT connections.", &plain(load(&g.accepted)));
    let backlog = state.gateway.backlog();
    metric(
        "pmon_recorder_backlog_bytes",
        "gauge",
        "Bytes of published messages the recorder has not yet taken from the broker.",
        &plain(backlog.bytes().max(0) as u64),
    );
    metric(
        "pmon_mqtt_backpressure_waits_total",
        "counter",
        "Publishes held back (their client's socket not read) until the recorder caught up.",
        &plain(backlog.waits()),
    );
    metric(
        "pmon_mqtt_refused_total",
        "counter",
        "Refused MQTT connections by reason.",
        &[
            ("{reason=\"auth\"}".into(), load(&g.refused_auth)),
            ("{reason=\"protocol\"}".into(), load(&g.refused_protocol)),
            ("{reason=\"timeout\"}".into(), load(&g.connect_timeouts)),
            ("{reason=\"busy\"}".into(), load(&g.refused_busy)),
            ("{reason=\"rate\"}".into(), load(&g.refused_rate)),
        ],
    );
    metric(
        "pmon_mqtt_kicked_total",
        "counter",
        "Sessions closed by rotation, removal or replacement.",
        &plain(load(&g.kicked)),
    );
    metric(
        "pmon_mqtt_keepalive_timeouts_total",
        "counter",
        "Sessions closed for silence.",
        &plain(load(&g.keepalive_timeouts)),
    );
    metric(
        "pmon_mqtt_acl_violations_total",
        "counter",
        "Connections closed for an ACL violation.",
        &g.violations().into_iter().map(|(v, n)| (format!("{{reason=\"{}\"}}", v.as_str()), n)).collect::<Vec<_>>(),
    );
    metric("pmon_recorder_received_total", "counter", "Messages received by the recorder.", &plain(load(&r.received)));
    metric("pmon_recorder_stored_total", "counter", "Messages committed to SQLite.", &plain(load(&r.stored)));
    metric("pmon_recorder_duplicates_total", "counter", "Replayed payloads stored once.", &plain(load(&r.duplicates)));
    metric(
        "pmon_recorder_rejected_total",
        "counter",
        "Payloads rejected by reason.",
        &r.rejected().into_iter().map(|(v, n)| (format!("{{reason=\"{}\"}}", v.as_str()), n)).collect::<Vec<_>>(),
    );
    metric("pmon_recorder_write_errors_total", "counter", "Failed write batches.", &plain(load(&r.write_errors)));
    metric("pmon_recorder_lost_total", "counter", "Items of batches dropped on a write error.", &plain(load(&r.lost)));
    let full = u64::from(r.disk_full.load(std::sync::atomic::Ordering::Relaxed));
    metric("pmon_recorder_disk_full", "gauge", "1 while commits fail on a full disk.", &plain(full));
    metric(
        "pmon_recorder_last_batch_microseconds",
        "gauge",
        "Duration of the last write batch.",
        &plain(load(&r.last_batch_us)),
    );
    metric(
        "pmon_retention_last_pass_milliseconds",
        "gauge",
        "Duration of the last retention pass.",
        &plain(load(&r.last_prune_ms)),
    );
    metric(
        "pmon_retention_longest_chunk_microseconds",
        "gauge",
        "Longest ingest pause of the last retention pass.",
        &plain(load(&r.last_prune_longest_chunk_us)),
    );
    let (buckets, sum_ms) = r.lag_histogram();
    let name = "pmon_recorder_commit_lag_seconds";
    let _ = writeln!(out, "# HELP {name} Time from an agent's sample to its commit.\n# TYPE {name} histogram");
    for (bound, count) in &buckets {
        let le = bound.map_or("+Inf".to_owned(), |ms| format!("{}", ms as f64 / 1000.0));
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_sum {}", sum_ms as f64 / 1000.0);
    let _ = writeln!(out, "{name}_count {}", buckets.last().map_or(0, |b| b.1));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
