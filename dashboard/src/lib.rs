//! The web side of the server: pages, admin, live updates, JSON API, metrics, health,
//! and the `/mqtt` WebSocket endpoint that hands MQTT clients to the gateway.
//!
//! # Layout
//! - [`auth`]: the dashboard password (argon2id), sessions (signed cookie + `sessions`
//!   table), the sign-in check in front of private routes, read-only API tokens
//!   (Bearer) on `/api/v1` and `/metrics`; [`session`]: the cookie and
//!   the CSRF tokens; [`limit`]: sign-in attempts per source address; [`client`]: the
//!   client's address and scheme behind the loopback proxy.
//! - [`headers`]: CSP and the other security headers on every response; [`assets`]: the
//!   stylesheet and script at content-hashed URLs (no inline script or style anywhere).
//! - [`routes`]: one file per route group: pages, admin, events (SSE), api, metrics,
//!   health, mqtt_ws.
//! - [`format`]: numbers for people (bytes, percentages, ages); [`status`]: a host's
//!   presence and health, shown the same way on every page.
//! - [`chart`]: SVG charts and sparklines; [`history`]: a host's recorded history as
//!   charts (the host page) and sparklines (the overview's cards).
//! - [`error`]: the one `AppError`; a 5xx says only "internal error", details go to the log.
//!
//! Pages read SQLite through short read-only connections; they never write, except the
//! admin page's registry actions (through `recorder::hosts`) and sign-in and sign-out
//! (through `recorder::sessions`).

pub mod assets;
pub mod auth;
pub mod chart;
pub mod client;
pub mod error;
pub mod format;
pub mod headers;
pub mod history;
pub mod limit;
pub mod routes;
pub mod session;
pub mod status;

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
    pub live: broadcast::Sender<recorder::state::Card>,
    pub recorder_stats: Arc<recorder::Stats>,
    /// Every host's state as of the recorder's last settle (fleet-wide reads parse nothing).
    pub fleet: recorder::fleet::Fleet,
    /// Flips to true at shutdown, ending every SSE stream so the server can stop.
    pub shutdown: watch::Receiver<bool>,
    /// Shown in the agent.toml snippet after `add`/`rotate`: `wss://PUBLIC_HOST/mqtt`.
    pub public_url: String,
    /// Who may read `/metrics` and what it lists.
    pub metrics: MetricsOptions,
}

/// `/metrics`' switches (`METRICS_PUBLIC`, `METRICS_GUESTS`); both off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Anyone who can reach the port may read `/metrics`, without a token: only for a
    /// Prometheus on the same machine with the port bound to loopback.
    pub public: bool,
    /// Adds per-guest series (one set per VM and container: many more series).
    pub guests: bool,
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

/// How long a client may take to send its request headers (the WebSocket upgrade at
/// `/mqtt` included). `axum::serve` sets no limit, so a half-sent request would hold its
/// socket open for as long as the client likes.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most 5 s.
/// Each connection runs in its own task (one slow client never delays another), with
/// hyper's header read timeout.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::connect_info::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let app = app(state);
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    broker::listener::accept_loop(listener, shutdown, |stream, peer| {
        // What `ConnectInfo<SocketAddr>` extracts: the socket's peer.
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        Some(async move {
            // hyper's header timeout starts with the first byte; a client that sends
            // nothing at all gets the same deadline here.
            let mut first = [0u8; 1];
            if !matches!(tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut first)).await, Ok(Ok(1..))) {
                return;
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        })
    })
    .await;
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await.is_err() {
        tracing::warn!("HTTP connections still open after 5 s; closing them");
    }
    Ok(())
}
