//! `/api/v1/...`: JSON for scripts.

use axum::extract::{Path, State};
use axum::Json;
use axum_extra::extract::WithRejection;
use recorder::state::Card;
use serde_json::{json, Value};

use crate::error::AppError;
use crate::routes::{all_hosts, one_host, read};
use crate::AppState;

/// `GET /api/v1/hosts`: every host's card (status, reasons, load, memory, ...).
pub async fn hosts(State(state): State<AppState>) -> Result<Json<Vec<Card>>, AppError> {
    let states = all_hosts(&state).await?;
    let now = wire::now_ms();
    // Serialized straight from the cards, not through a `Value` first.
    Ok(Json(states.iter().map(|s| s.card(now)).collect()))
}

/// `GET /api/v1/hosts/<host_id>`: the card, the latest payload of each tier, and events.
pub async fn host(
    State(state): State<AppState>,
    WithRejection(Path(host_id), _): WithRejection<Path<String>, AppError>,
) -> Result<Json<Value>, AppError> {
    let (host, events) = one_host(&state, &host_id, 100).await?;
    let host = host.ok_or(AppError::NotFound)?;
    // The whole slow payload: the state holds it without its snapshot list.
    let slow = read(&state.database, move |conn| recorder::read::latest_slow(conn, &host_id)).await?;
    let decoded = host.decoded();
    Ok(Json(json!({
        "card": decoded.card(wire::now_ms()),
        "fast": host.fast.as_deref(),
        "medium": decoded.medium,
        "slow": slow,
        "events": events,
    })))
}
