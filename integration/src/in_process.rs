//! The server inside the test process, as mini-redis's tests run theirs: the library's
//! own bind step and `run` on 127.0.0.1:0, on a runtime of its own thread. For tests that
//! only talk HTTP and MQTT to a running server; restarts, crashes and signals need the
//! real process ([`crate::Server`]).

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use proxmox_monitor::{Listeners, ServerConfig};
use tokio::sync::oneshot;

use crate::{TestServer, PASSWORD_HASH, SECRET};

/// A server running in this process until dropped.
pub struct InProcessServer {
    server: TestServer,
    /// Sending (or dropping) it resolves the server's shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The thread that owns the server's runtime; joined on drop, after a clean shutdown.
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl std::ops::Deref for InProcessServer {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl InProcessServer {
    /// HTTP and MQTT on 127.0.0.1:0, a fresh database, the test password and secret.
    pub fn start() -> InProcessServer {
        InProcessServer::start_with(|_| {})
    }

    /// [`InProcessServer::start`] with `configure` applied to the config first (e.g. MQTTS
    /// on port 0).
    pub fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> InProcessServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            database: dir.path().join("monitor.db"),
            secret_key_base: SECRET.into(),
            password_hash: PASSWORD_HASH.into(),
            public_host: None,
            bind: [127, 0, 0, 1].into(),
            port: 0,
            mqtt_port: Some(0),
            mqtts: None,
            retention: recorder::Retention::raw(Duration::from_secs(48 * 3600)),
            backup_max_age_hours: 36,
            alert_group_wait: None,
            alert_group_interval: None,
            metrics: Default::default(),
            ha_discovery: false,
            ha_prefix: wire::DiscoveryPrefix::default(),
        };
        configure(&mut config);
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("in-process-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
                let result = runtime.block_on(async move {
                    let listeners = Listeners::bind(&config).await?;
                    let _ = bound_tx.send(listeners.bound());
                    proxmox_monitor::run(config, listeners, async {
                        let _ = stopped.await;
                    })
                    .await
                });
                runtime.shutdown_timeout(Duration::from_secs(5));
                result
            })
            .expect("spawn the in-process server's thread");
        let Ok(bound) = bound_rx.recv() else {
            panic!("the in-process server did not bind: {:?}", thread.join().map(|r| r.map_err(|e| format!("{e:#}"))));
        };
        let unset = SocketAddr::from(([0, 0, 0, 0], 0));
        let server = TestServer {
            dir,
            http: bound.http,
            mqtt: bound.mqtt.unwrap_or(unset),
            mqtts: bound.mqtts,
            metrics_token: Default::default(),
        };
        let server = InProcessServer { server, stop: Some(stop), thread: Some(thread) };
        let thread = server.thread.as_ref().expect("set above");
        server.server.wait_healthy(|| thread.is_finished().then(|| "the in-process server stopped".into()));
        server
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("the in-process server failed: {e:#}"),
                Err(_) => eprintln!("the in-process server panicked"),
            }
        }
    }
}
