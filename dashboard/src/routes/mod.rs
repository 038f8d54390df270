//! The route table: which paths need a session, and which don't.

mod admin;
mod alerts;
mod api;
mod backups;
mod events;
mod hardware;
mod health;
mod login;
mod metrics;
mod mqtt_ws;
mod overview;
mod pages;
mod rules;
mod search;
#[cfg(test)]
mod tests;
mod timeline;

use std::path::Path;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::middleware::{from_fn_with_state, map_response};
use axum::routing::{get, post};
use axum::Router;
use recorder::read::Event;
use recorder::state::HostState;

use crate::error::AppError;
use crate::AppState;

pub fn router(state: AppState) -> Router {
    let private = Router::new()
        .route("/", get(overview::page))
        .route("/hosts/{host_id}", get(pages::host))
        .route("/search", get(search::page))
        .route("/timeline", get(timeline::page))
        .route("/admin/hosts", get(admin::page).post(admin::add))
        .route("/admin/hosts/{host_id}/rotate", post(admin::rotate))
        .route("/admin/hosts/{host_id}/remove", post(admin::remove))
        .route("/admin/alerts", get(alerts::page))
        .route("/admin/alerts/{id}/ack", post(alerts::ack))
        .route("/admin/alerts/channels", post(alerts::add_channel))
        .route("/admin/alerts/channels/{name}/test", post(alerts::test_channel))
        .route("/admin/alerts/channels/{name}/remove", post(alerts::remove_channel))
        .route("/admin/alerts/silences", post(alerts::add_silence))
        .route("/admin/alerts/silences/{id}/remove", post(alerts::remove_silence))
        .route("/admin/alerts/rules", get(rules::page).post(rules::update))
        .route("/events", get(events::stream))
        .route("/logout", post(login::logout))
        // Signed in, and for anything but GET and HEAD the session's CSRF token. An API
        // token is no way in here.
        .route_layer(from_fn_with_state(state.clone(), crate::auth::require_login));
    // Read-only: a session or an API token (`Authorization: Bearer`).
    let readable =
        Router::new().route("/api/v1/hosts", get(api::hosts)).route("/api/v1/hosts/{host_id}", get(api::host));
    let metrics = Router::new().route("/metrics", get(metrics::metrics));
    let (readable, metrics) = if state.metrics.public {
        (readable.route_layer(from_fn_with_state(state.clone(), crate::auth::require_reader)), metrics)
    } else {
        let readable = readable.merge(metrics);
        (readable.route_layer(from_fn_with_state(state.clone(), crate::auth::require_reader)), Router::new())
    };
    Router::new()
        .merge(private)
        .merge(readable)
        .merge(metrics)
        .route("/health", get(health::health))
        .route("/login", get(login::page).post(login::submit))
        .route("/static/{file}", get(crate::assets::serve))
        .route("/mqtt", get(mqtt_ws::upgrade))
        .fallback(|| async { AppError::NotFound })
        .layer(map_response(crate::headers::security_headers))
        .with_state(state)
}

/// Every registered host's state (see `recorder::read::all_hosts`).
pub(crate) async fn all_hosts(state: &AppState) -> Result<Vec<Arc<HostState>>, AppError> {
    let fleet = state.fleet.clone();
    read(&state.database, move |conn| recorder::read::all_hosts(conn, &fleet)).await
}

/// One host's state (None if it isn't registered) and its newest `events` timeline lines.
pub(crate) async fn one_host(
    state: &AppState,
    host_id: &str,
    events: usize,
) -> Result<(Option<Arc<HostState>>, Vec<Event>), AppError> {
    let (id, fleet) = (host_id.to_owned(), state.fleet.clone());
    read(&state.database, move |conn| {
        Ok((recorder::read::one_host(conn, &fleet, &id)?, recorder::read::recent_events(conn, &id, events)?))
    })
    .await
}

/// A page's query string, or 400 with a one-line reason when it does not parse (an
/// unknown `sort`, a `page` that is not a number, a repeated parameter).
pub(crate) fn parse_query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, AppError> {
    let Query(query) = query
        .map_err(|e| AppError::BadRequest(format!("malformed query string: {}", e.body_text().replace('\n', " "))))?;
    Ok(query)
}

/// Runs a read-only query off the async runtime.
pub(crate) async fn read<T, F>(database: &Path, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let path = database.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = recorder::db::open_read(&path)?;
        Ok::<T, anyhow::Error>(f(&conn)?)
    })
    .await?
    .map_err(AppError::Internal)
}

/// Runs a registry write (admin actions) off the async runtime.
pub(crate) async fn write<T, F>(database: &Path, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
{
    let path = database.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = recorder::db::open(&path)?;
        f(&mut conn)
    })
    .await?
    .map_err(AppError::Internal)
}
