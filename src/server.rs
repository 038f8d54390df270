//! `serve`: binds the listeners, then wires the router, gateway, recorder, alerting and
//! dashboard together on them and runs them until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use broker::{Gateway, GatewayConfig, Router};
use recorder::{Recorder, RecorderConfig, Source};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::ServerConfig;
use crate::registry::{install_credentials, DatabaseReplaced, Installed, RegistryWatcher};

/// Where a server listens, as bound (port 0 resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub http: SocketAddr,
    pub mqtt: Option<SocketAddr>,
    pub mqtts: Option<SocketAddr>,
}

/// The line `serve` prints on stdout once every listener is bound, for scripts and tests
/// that start it on port 0: `listening http=127.0.0.1:40123 mqtt=127.0.0.1:40124`, then
/// ` mqtts=ADDR` when MQTTS is on; `mqtt=` is absent with `MQTT_PORT=off`.
impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "listening http={}", self.http)?;
        if let Some(mqtt) = self.mqtt {
            write!(f, " mqtt={mqtt}")?;
        }
        if let Some(mqtts) = self.mqtts {
            write!(f, " mqtts={mqtts}")?;
        }
        Ok(())
    }
}

/// The server's sockets, bound before anything else starts, so that a port in use fails
/// at once and port 0 is resolved before [`run`].
pub struct Listeners {
    http: TcpListener,
    mqtt: Option<TcpListener>,
    mqtts: Option<(TcpListener, TlsAcceptor)>,
    bound: Bound,
}

impl Listeners {
    /// Binds HTTP, MQTT (unless off) and MQTTS (if configured, with its certificate) on
    /// `config.bind`. A failure names the variable to change.
    pub async fn bind(config: &ServerConfig) -> anyhow::Result<Listeners> {
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
        let bound = Bound {
            http: http.local_addr()?,
            mqtt: mqtt.as_ref().map(|l| l.local_addr()).transpose()?,
            mqtts: mqtts.as_ref().map(|(l, _)| l.local_addr()).transpose()?,
        };
        Ok(Listeners { http, mqtt, mqtts, bound })
    }

    /// Where these listeners are bound.
    pub fn bound(&self) -> Bound {
        self.bound
    }
}

async fn bind(addr: SocketAddr, var: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} ({var}); is another process using it? `ss -ltnp` shows which")
    })
}

/// Runs the server on `listeners` until `shutdown` resolves: applies migrations, starts
/// the router, gateway, recorder and dashboard, then stops them in order.
pub async fn run(
    config: ServerConfig,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let auth = dashboard::Auth::new(&config.password_hash, &config.secret_key_base)?;
    let database = config.database.clone();
    tokio::task::spawn_blocking(move || recorder::db::open_and_migrate(&database)).await??;
    // Before any host is evaluated: every card and alert reads it.
    recorder::status::set_daily_backup_max_age_s(config.backup_max_age_hours as i64 * 3600);

    let gateway_config = GatewayConfig::default();
    let router = Router::start(gateway_config.max_connections + 16);
    // Hosts' publishes reach the recorder through the ingest sink, so that a PUBACK
    // means committed; observers and Home Assistant still read them from the router.
    let (ingest, deliveries) = broker::ingest::channel(broker::ingest::CAPACITY);
    // Before the gateway: its credentials come from the registry.
    let registry = Arc::new(RegistryWatcher::start(&config.database, config.ha_prefix.clone()).await?);
    let installed = Arc::new(Installed::default());
    let gateway = start_gateway(&registry, &installed, &router, gateway_config, ingest).await?;
    let recorder_config = RecorderConfig { database: config.database.clone(), retention: config.retention };
    let recorder = Recorder::start(Source::Ingest(deliveries), recorder_config).await?;

    // rumqttd forgets retained messages on restart: republish every host's status.
    // Nobody is connected yet, so that is `offline` until each agent comes back.
    installed.install(&gateway, &registry).await;
    let hosts: Vec<wire::HostId> = registry.current().hosts.iter().cloned().collect();
    gateway.announce_offline(&hosts).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut watcher = {
        let (registry, stop) = (registry.clone(), stop_rx.clone());
        tokio::spawn(async move { registry.run(stop).await })
    };
    let credentials = tokio::spawn(install_credentials(registry.clone(), installed, gateway.clone(), stop_rx.clone()));
    let clones = tokio::spawn(report_clones(gateway.clone_events(), recorder.reports.clone(), stop_rx.clone()));

    let Listeners { http, mqtt, mqtts, bound } = listeners;
    let mqtt_tasks = spawn_mqtt(mqtt, mqtts, &gateway, &stop_rx);
    let state = dashboard_state(&config, auth, &gateway, &recorder, &stop_rx, bound);
    let web = tokio::spawn(dashboard::serve(http, state, stopped(stop_rx.clone())));
    let alerting = spawn_alerting(&config, &router, &recorder, &registry, &stop_rx).await?;
    let homeassistant = if config.ha_discovery {
        Some(spawn_homeassistant(&config, &router, &recorder, &registry, &stop_rx, bound).await?)
    } else {
        None
    };
    info!(
        http = %bound.http,
        mqtt = ?bound.mqtt,
        mqtts = ?bound.mqtts,
        database = %config.database.display(),
        "proxmox-monitor {} serving",
        dashboard::VERSION
    );

    let outcome = serving(shutdown, &mut watcher).await;
    let _ = stop_tx.send(true);
    for task in mqtt_tasks {
        let _ = task.await;
    }
    if let Err(e) = web.await {
        warn!(error = %e, "web server task failed");
    }
    if outcome.is_ok() {
        let _ = watcher.await;
    }
    let _ = credentials.await;
    let _ = clones.await;
    log_exit("alerting", alerting.await);
    if let Some(task) = homeassistant {
        log_exit("home assistant discovery", task.await);
    }
    recorder.shutdown().await;
    info!("stopped");
    outcome
}

/// Waits for `shutdown`, or for the registry watcher to end before it: Err says why
/// (`serve` prints it as it exits). The watcher ends by itself only when the database
/// file was removed or replaced ([`DatabaseReplaced`]); the server stops then, and on a
/// panic too, since no credential would change any more.
async fn serving(
    shutdown: impl std::future::Future<Output = ()>,
    watcher: &mut JoinHandle<Result<(), DatabaseReplaced>>,
) -> anyhow::Result<()> {
    let outcome = tokio::select! {
        _ = shutdown => Ok(()),
        ended = watcher => Err(match ended {
            Ok(Err(replaced)) => anyhow::Error::from(replaced),
            Ok(Ok(())) => anyhow::anyhow!("the registry watcher stopped before shutdown; restart the server"),
            Err(e) => anyhow::anyhow!("the registry watcher failed ({e}); restart the server"),
        }),
    };
    match &outcome {
        Ok(()) => info!("shutting down"),
        Err(e) => warn!(reason = format!("{e:#}"), "shutting down"),
    }
    outcome
}

/// The gateway, with a refresh that checks the registry at once when a CONNECT fails, so
/// that a host added a moment ago by another process gets in.
async fn start_gateway(
    registry: &Arc<RegistryWatcher>,
    installed: &Arc<Installed>,
    router: &Router,
    gateway_config: GatewayConfig,
    ingest: broker::Ingest,
) -> anyhow::Result<Gateway> {
    let refresh: broker::gateway::Refresh = {
        let (registry, installed) = (registry.clone(), installed.clone());
        Arc::new(move |gateway| {
            let (registry, installed) = (registry.clone(), installed.clone());
            Box::pin(async move {
                if let Err(e) = registry.check().await {
                    warn!(error = format!("{e:#}"), "failed to read the host registry");
                    return false;
                }
                // Installed here rather than left to the install loop, so the CONNECT
                // retries against it; a None counts too: the loop may have installed
                // the very credential this CONNECT needs meanwhile.
                installed.install(&gateway, &registry).await;
                true
            })
        })
    };
    Gateway::new(router.clone(), gateway_config, Some(refresh), Some(ingest)).await
}

/// One accept loop per MQTT listener that is on (plain, TLS).
fn spawn_mqtt(
    mqtt: Option<TcpListener>,
    mqtts: Option<(TcpListener, TlsAcceptor)>,
    gateway: &Gateway,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let plain = mqtt.map(|l| (l, None));
    let tls = mqtts.map(|(l, tls)| (l, Some(tls)));
    plain
        .into_iter()
        .chain(tls)
        .map(|(l, tls)| tokio::spawn(broker::listener::serve(l, gateway.clone(), tls, stopped(stop.clone()))))
        .collect()
}

fn dashboard_state(
    config: &ServerConfig,
    auth: dashboard::Auth,
    gateway: &Gateway,
    recorder: &Recorder,
    stop: &watch::Receiver<bool>,
    bound: Bound,
) -> dashboard::AppState {
    dashboard::AppState {
        database: config.database.clone(),
        auth: Arc::new(auth),
        gateway: gateway.clone(),
        live: recorder.live.clone(),
        recorder_stats: recorder.stats.clone(),
        fleet: recorder.fleet.clone(),
        shutdown: stop.clone(),
        public_url: config.public_url(bound.http),
        metrics: config.metrics,
    }
}

/// Alerting, with the grouping times the config overrides.
async fn spawn_alerting(
    config: &ServerConfig,
    router: &Router,
    recorder: &Recorder,
    registry: &RegistryWatcher,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let mut alerting_config = alerting::AlertingConfig::new(config.database.clone());
    if let Some(wait) = config.alert_group_wait {
        alerting_config.settings.group_wait = wait;
    }
    if let Some(interval) = config.alert_group_interval {
        alerting_config.settings.group_interval = interval;
    }
    // Alerting republishes every host's retained firing set as it starts, like presence.
    let publisher = broker::Publisher::new(router, "alerting").await?;
    Ok(tokio::spawn(alerting::run(
        alerting_config,
        recorder.fleet.clone(),
        recorder.live.subscribe(),
        registry.subscribe(),
        Some(publisher),
        stopped(stop.clone()),
    )))
}

/// Home Assistant discovery (opt-in): configs and flat states through a link of its own.
async fn spawn_homeassistant(
    config: &ServerConfig,
    router: &Router,
    recorder: &Recorder,
    registry: &RegistryWatcher,
    stop: &watch::Receiver<bool>,
    bound: Bound,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let context = homeassistant::discovery::Context {
        base_url: config.dashboard_url(bound.http),
        version: dashboard::VERSION.to_owned(),
    };
    let ha_config = homeassistant::HaConfig::new(config.ha_prefix.clone(), context);
    Ok(tokio::spawn(homeassistant::run(
        ha_config,
        router.clone(),
        broker::Publisher::new(router, "homeassistant").await?,
        recorder.fleet.clone(),
        recorder.live.subscribe(),
        registry.subscribe(),
        stopped(stop.clone()),
    )))
}

/// Logs how a service task ended, if not cleanly: shutdown goes on either way.
fn log_exit(what: &str, joined: Result<anyhow::Result<()>, tokio::task::JoinError>) {
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = format!("{e:#}"), "{what} stopped"),
        Err(e) => warn!(error = %e, "{what} task failed"),
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Hands each trip of the gateway's clone detector to the recorder (an event and a
/// reason on the host's card): the gateway never touches SQLite.
async fn report_clones(
    mut detected: tokio::sync::broadcast::Receiver<broker::CloneDetected>,
    reports: recorder::Reports,
    stop: watch::Receiver<bool>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            next = detected.recv() => match next {
                Ok(d) => reports.shared_token(d).await,
                Err(RecvError::Lagged(n)) => warn!(missed = n, "clone detections dropped before the recorder saw them"),
                Err(RecvError::Closed) => return,
            },
            _ = &mut stop => return,
        }
    }
}
