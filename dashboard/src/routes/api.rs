//! `/api/v1/...`: JSON for scripts.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use crate::error::AppError;
use crate::routes::read;
use crate::AppState;

/// `GET /api/v1/hosts`: every host's card (status, reasons, load, memory, ...).
pub async fn hosts(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let states = read(&state.database, recorder::view::load_states).await?;
    let now = recorder::now_ms();
    let cards: Vec<_> = states.iter().map(|s| s.card(now)).collect();
    Ok(Json(json!(cards)))
}

/// `GET /api/v1/hosts/<host_id>`: the card, the latest payload of each tier, and events.
pub async fn host(State(state): State<AppState>, Path(host_id): Path<String>) -> Result<Json<Value>, AppError> {
    let id = host_id.clone();
    let (host, events) = read(&state.database, move |conn| {
        Ok((recorder::view::load_state(conn, &id)?, recorder::view::recent_events(conn, &id, 100)?))
    })
    .await?;
    let host = host.ok_or(AppError::NotFound)?;
    Ok(Json(json!({
        "card": host.card(recorder::now_ms()),
        "fast": host.fast,
        "medium": host.medium,
        "slow": host.slow,
        "events": events,
    })))
}
