//! `serve`: wires the router, gateway, recorder and dashboard together and runs them
//! until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use broker::{Gateway, GatewayConfig, Router};
use recorder::{Recorder, RecorderConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::ServerConfig;

/// Where a started server listens.
#[derive(Debug, Clone)]
pub struct Bound {
    pub http: SocketAddr,
    pub mqtt: Option<SocketAddr>,
    pub mqtts: Option<SocketAddr>,
}

/// How often the credential table is checked for changes made by other processes (the
/// CLI). A rotated or removed host is kicked within this plus a few milliseconds.
const CREDENTIALS_POLL: Duration = Duration::from_millis(250);

async fn bind(addr: SocketAddr, var: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} ({var}); is another process using it? `ss -ltnp` shows which")
    })
}

/// Runs the server until `shutdown` resolves. `ready` is called once every listener is
/// bound, with their addresses.
pub async fn run(
    config: ServerConfig,
    ready: impl FnOnce(&Bound),
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let auth = dashboard::Auth::new(&config.password_hash, &config.secret_key_base)?;
    let database = config.database.clone();
    tokio::task::spawn_blocking(move || recorder::db::open_and_migrate(&database)).await??;

    let http = bind(SocketAddr::new(config.bind, config.port), "BIND/PORT").await?;
    let mqtt = match config.mqtt_port {
        Some(port) => Some(bind(SocketAddr::new(config.bind, port), "BIND/MQTT_PORT").await?),
        None => None,
    };
    let mqtts = match &config.mqtts {
        Some((port, cert, key)) => Some((
            bind(SocketAddr::new(config.bind, *port), "BIND/MQTTS_PORT").await?,
            broker::listener::tls_acceptor(cert, key)?,
        )),
        None => None,
    };

    let gateway_config = GatewayConfig::default();
    let router = Router::start(gateway_config.max_connections + 16);
    let credentials = Arc::new(Credentials { database: config.database.clone(), seen: Mutex::new(None) });
    let refresh: broker::gateway::Refresh = {
        let credentials = credentials.clone();
        Arc::new(move || {
            let credentials = credentials.clone();
            Box::pin(async move { credentials.reload_if_changed().await.ok().flatten() })
        })
    };
    let gateway = Gateway::new(router.clone(), gateway_config, Some(refresh)).await?;
    let recorder =
        Recorder::start(&router, RecorderConfig { database: config.database.clone(), retention: config.retention })
            .await?;

    // rumqttd forgets retained messages on restart: republish every host's status.
    // Nobody is connected yet, so that is `offline` until each agent comes back.
    if let Some(table) = credentials.reload_if_changed().await? {
        gateway.set_credentials(table).await;
    }
    gateway.announce_offline(&host_ids(config.database.clone()).await?).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let watcher = tokio::spawn(watch_credentials(credentials, gateway.clone(), stop_rx.clone()));

    let bound = Bound {
        http: http.local_addr()?,
        mqtt: mqtt.as_ref().map(|l| l.local_addr()).transpose()?,
        mqtts: mqtts.as_ref().map(|(l, _)| l.local_addr()).transpose()?,
    };
    let mut listeners = Vec::new();
    if let Some(l) = mqtt {
        listeners.push(tokio::spawn(broker::listener::serve(l, gateway.clone(), None, stopped(stop_rx.clone()))));
    }
    if let Some((l, tls)) = mqtts {
        listeners.push(tokio::spawn(broker::listener::serve(l, gateway.clone(), Some(tls), stopped(stop_rx.clone()))));
    }
    let state = dashboard::AppState {
        database: config.database.clone(),
        auth: Arc::new(auth),
        gateway: gateway.clone(),
        live: recorder.live.clone(),
        recorder_stats: recorder.stats.clone(),
        shutdown: stop_rx.clone(),
        public_url: config.public_url(),
    };
    let web = tokio::spawn(dashboard::serve(http, state, stopped(stop_rx.clone())));
    info!(
        http = %bound.http,
        mqtt = ?bound.mqtt,
        mqtts = ?bound.mqtts,
        database = %config.database.display(),
        "proxmox-monitor {} serving",
        dashboard::VERSION
    );
    ready(&bound);

    shutdown.await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    for l in listeners {
        let _ = l.await;
    }
    if let Err(e) = web.await {
        warn!(error = %e, "web server task failed");
    }
    let _ = watcher.await;
    recorder.shutdown().await;
    info!("stopped");
    Ok(())
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The credential table in the database, and which version of it the gateway has.
struct Credentials {
    database: PathBuf,
    /// The `credentials_version` last loaded; a short lock, never held across an await.
    seen: Mutex<Option<i64>>,
}

impl Credentials {
    /// The table, if its version changed since the last call (always on the first).
    async fn reload_if_changed(&self) -> anyhow::Result<Option<broker::CredentialTable>> {
        let path = self.database.clone();
        let (version, table) = tokio::task::spawn_blocking(move || {
            let conn = recorder::db::open_read(&path)?;
            let version = recorder::hosts::credentials_version(&conn)?;
            Ok::<_, anyhow::Error>((version, recorder::hosts::credential_table(&conn)?))
        })
        .await??;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen == Some(version) {
            return Ok(None);
        }
        *seen = Some(version);
        Ok(Some(table))
    }
}

async fn host_ids(database: PathBuf) -> anyhow::Result<Vec<wire::HostId>> {
    tokio::task::spawn_blocking(move || {
        let conn = recorder::db::open_read(&database)?;
        Ok(recorder::hosts::host_ids(&conn)?)
    })
    .await?
}

/// Reloads credentials whenever their version changes, so that `host rotate/remove`
/// from the CLI or the admin page closes the affected session at once.
async fn watch_credentials(credentials: Arc<Credentials>, gateway: Gateway, mut stop: watch::Receiver<bool>) {
    loop {
        match credentials.reload_if_changed().await {
            Ok(Some(table)) => {
                let kicked = gateway.set_credentials(table).await;
                info!(kicked, "credentials loaded");
            }
            Ok(None) => {}
            Err(e) => warn!(error = format!("{e:#}"), "failed to reload credentials"),
        }
        tokio::select! {
            _ = tokio::time::sleep(CREDENTIALS_POLL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
