//! What both long-running binaries (the agent and `proxmox-monitor serve`) set up the same
//! way: logging to stderr and the stop signal. Here because the server already depends on
//! this crate (its demo runs the agent's scheduler) and `wire` must stay free of I/O.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Logs to stderr (journald under systemd), filtered by `RUST_LOG` or else by
/// `default_filter` (e.g. `"info,rumqttd=warn"`). Spans whose target starts with one of
/// `spanless` are dropped; their events still log.
pub fn init_tracing(default_filter: &str, spanless: &'static [&'static str]) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(move |meta| {
            !(meta.is_span() && spanless.iter().any(|t| meta.target().starts_with(t)))
        }))
        .init();
}

/// Resolves on SIGINT or SIGTERM (what systemd sends).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // No SIGTERM handler (it cannot be installed): Ctrl+C still works.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
