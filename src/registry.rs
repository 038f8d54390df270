//! The one watcher of the host registry, and the gateway's credentials installed from it.
//!
//! The CLI and the admin page change the registry (hosts, observers, Home Assistant
//! credentials) in SQLite, the CLI from another process. The watcher notices a change
//! every 250 ms and publishes the new [`Registry`] on a `watch` channel; its consumers
//! (the gateway's credentials, Home Assistant discovery, alerting) reload on a change
//! only, instead of each polling the database.
//!
//! A change is told by `meta.credentials_version`, the counter every registry change
//! bumps in its own transaction (`recorder::hosts`), read on a connection of the
//! watcher's own. Not `PRAGMA data_version`: that changes with every commit of any other
//! connection, and the writer commits every batch and settles every 250 ms, so it would
//! say "changed" at almost every look and the counter would be read anyway.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::Gateway;
use recorder::hosts::Registry;
use rusqlite::Connection;
use tokio::sync::watch;
use tracing::{info, warn};
use wire::DiscoveryPrefix;

/// How often the registry is checked for changes. A rotated or removed host is kicked
/// within this plus a few milliseconds.
const REGISTRY_POLL: Duration = Duration::from_millis(250);

/// Watches the registry; shared by its loop and the gateway's refresh (a failed CONNECT
/// checks at once, so that a host added a moment ago gets in without waiting).
pub struct RegistryWatcher {
    /// The watcher's own read connection, used only inside `spawn_blocking`. Held across
    /// "read the version, load, publish", so that versions are published in order.
    conn: Arc<Mutex<Connection>>,
    prefix: DiscoveryPrefix,
    /// The latest registry. Kept here (receivers subscribe); dropped with the watcher,
    /// which ends the consumers' waits for a change.
    tx: Arc<watch::Sender<Arc<Registry>>>,
}

impl RegistryWatcher {
    /// Opens the watcher's connection and loads the registry.
    pub async fn start(database: &Path, prefix: DiscoveryPrefix) -> anyhow::Result<RegistryWatcher> {
        let (path, load_prefix) = (database.to_owned(), prefix.clone());
        let (conn, first) = tokio::task::spawn_blocking(move || {
            let conn = recorder::db::open_read(&path)?;
            let first = recorder::hosts::registry(&conn, &load_prefix)?;
            Ok::<_, anyhow::Error>((conn, first))
        })
        .await??;
        let (tx, _) = watch::channel(Arc::new(first));
        Ok(RegistryWatcher { conn: Arc::new(Mutex::new(conn)), prefix, tx: Arc::new(tx) })
    }

    /// Every registry from now on: the current one at once, then each change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Registry>> {
        self.tx.subscribe()
    }

    /// The latest registry published.
    pub fn current(&self) -> Arc<Registry> {
        self.tx.borrow().clone()
    }

    /// Publishes the registry if its version changed since the last one; true if so.
    pub async fn check(&self) -> anyhow::Result<bool> {
        let (conn, tx, prefix) = (self.conn.clone(), self.tx.clone(), self.prefix.clone());
        tokio::task::spawn_blocking(move || {
            // Never held across a panic point that matters: a few short statements.
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            if recorder::hosts::credentials_version(&conn)? == tx.borrow().version {
                return Ok(false);
            }
            tx.send_replace(Arc::new(recorder::hosts::registry(&conn, &prefix)?));
            Ok(true)
        })
        .await?
    }

    /// Checks every [`REGISTRY_POLL`] until `stop`.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REGISTRY_POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.check().await {
                warn!(error = format!("{e:#}"), "failed to read the host registry");
            }
        }
    }
}

/// The `credentials_version` installed in the gateway. Held across "compare, install" by
/// the install loop and the gateway's refresh (a failed CONNECT) alike, so that installs
/// happen in version order: a table installed late over a newer one would refuse, and
/// kick, credentials made in between.
#[derive(Default)]
pub struct Installed(tokio::sync::Mutex<Option<i64>>);

impl Installed {
    /// Installs `registry`'s credentials in `gateway` unless a newer or the same version
    /// is installed; how many sessions that closed.
    pub async fn install(&self, gateway: &Gateway, registry: &Registry) -> Option<usize> {
        let mut installed = self.0.lock().await;
        if installed.is_some_and(|v| v >= registry.version) {
            return None;
        }
        let kicked = gateway.set_credentials(registry.credentials.clone()).await;
        *installed = Some(registry.version);
        Some(kicked)
    }
}

/// Installs each new registry's credentials in the gateway, which closes the sessions of
/// rotated or removed credentials, until `stop`.
pub async fn install_credentials(
    mut registry: watch::Receiver<Arc<Registry>>,
    installed: Arc<Installed>,
    gateway: Gateway,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let current = registry.borrow_and_update().clone();
        if let Some(kicked) = installed.install(&gateway, &current).await {
            info!(kicked, version = current.version, "credentials loaded");
        }
        tokio::select! {
            changed = registry.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_by_another_connection_is_published_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut cli = recorder::db::open_and_migrate(&path).unwrap();
        recorder::hosts::add_host(&mut cli, "pve1").unwrap();
        let watcher = RegistryWatcher::start(&path, DiscoveryPrefix::default()).await.unwrap();
        let mut rx = watcher.subscribe();
        let names = |r: &Registry| r.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&rx.borrow_and_update()), ["pve1"]);
        assert!(!watcher.check().await.unwrap(), "nothing changed");
        assert!(!rx.has_changed().unwrap());

        // The CLI, another connection: a host added, then one removed.
        recorder::hosts::add_host(&mut cli, "pve2").unwrap();
        assert!(watcher.check().await.unwrap());
        assert!(rx.has_changed().unwrap());
        assert_eq!(names(&rx.borrow_and_update()), ["pve1", "pve2"]);
        recorder::hosts::remove_host(&mut cli, "pve1").unwrap();
        assert!(watcher.check().await.unwrap());
        let now = rx.borrow_and_update().clone();
        assert_eq!(names(&now), ["pve2"]);
        assert!(now.credentials.0.contains_key("pve2") && !now.credentials.0.contains_key("pve1"));
        assert!(!watcher.check().await.unwrap(), "published once per change");
    }
}
