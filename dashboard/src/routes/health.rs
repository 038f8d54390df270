//! `GET /health`: 200 `{"status":"ok","db":"ok","version":"X.Y.Z"}`, or 503 naming the
//! failing part, for uptime monitors: `"db":"unavailable"` when the database cannot be
//! read, `"db":"disk_full"` while the recorder's commits fail on a full disk.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::{AppState, VERSION};

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.recorder_stats.disk_full.load(std::sync::atomic::Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "db": "disk_full", "version": VERSION})),
        );
    }
    let path = state.database.clone();
    let db = tokio::task::spawn_blocking(move || {
        let conn = recorder::db::open_read(&path)?;
        conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    match db {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ok", "db": "ok", "version": VERSION}))),
        Ok(Err(e)) => {
            tracing::warn!(error = format!("{e:#}"), "health: database unusable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "error", "db": "unavailable", "version": VERSION})))
        }
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "error", "db": "unavailable", "version": VERSION})))
        }
    }
}
