//! The web side of the server: pages, admin, live updates, JSON API, metrics, health,
//! and the `/mqtt` WebSocket endpoint that hands MQTT clients to the gateway.
//!
//! # Layout
//! - [`auth`]: the dashboard password (argon2id), the signed session cookie, login/logout.
//! - [`routes`]: one file per route group: pages, admin, events (SSE), api, metrics,
//!   health, mqtt_ws.
//! - [`format`]: numbers for people (bytes, percentages, ages).
//! - [`error`]: the one `AppError`; a 5xx says only "internal error", details go to the log.
//!
//! Pages read SQLite through short read-only connections; they never write, except the
//! admin page's registry actions, which go through `recorder::hosts`.

pub mod auth;
pub mod error;
pub mod format;
pub mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum::Router;
use axum_extra::extract::cookie::Key;
use tokio::sync::{broadcast, watch};

pub use auth::Auth;

/// The server's version, as `/health` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub database: PathBuf,
    pub auth: Arc<Auth>,
    pub gateway: broker::Gateway,
    /// The recorder's post-commit card updates; each SSE stream subscribes.
    pub live: broadcast::Sender<recorder::view::Card>,
    pub recorder_stats: Arc<recorder::Stats>,
    /// Flips to true at shutdown, ending every SSE stream so the server can stop.
    pub shutdown: watch::Receiver<bool>,
    /// Shown in the agent.toml snippet after `add`/`rotate`: `wss://PUBLIC_HOST/mqtt`.
    pub public_url: String,
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Key {
        state.auth.key.clone()
    }
}

/// The whole HTTP app.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most 5 s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = done_tx.send(());
    });
    let server = tokio::spawn(async move { server.await });
    // The grace period starts when shutdown begins.
    let _ = done_rx.await;
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(r)) => r,
        _ => Ok(()),
    }
}
