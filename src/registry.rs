//! The one watcher of the host registry, and the gateway's credentials installed from it.
//!
//! The CLI and the admin page change the registry (hosts, observers, Home Assistant
//! credentials) in SQLite, the CLI from another process. The watcher notices a change
//! every 250 ms and publishes the new [`Registry`] on a `watch` channel; its consumers
//! (the gateway's credentials, Home Assistant discovery, alerting) reload on a change
//! only, instead of each polling the database.
//!
//! A change is told by `(meta.registry_id, meta.credentials_version)`: the counter every
//! registry change bumps in its own transaction (`recorder::hosts`), and the id of the
//! database copy, new in every backup, so that a backup restored in place (SQLite's
//! `.restore`) is a change whichever way its version moved. Read on a connection of the
//! watcher's own. Not `PRAGMA data_version`: that changes with every commit of any other
//! connection, and the writer commits every batch and settles every 250 ms, so it would
//! say "changed" at almost every look and the registry would be read anyway.
//!
//! The runbook's restore (remove the files, copy the backup in) is done with the server
//! stopped. Under a running server it would leave every connection on the removed file:
//! the old credentials kept, everything written lost. So the watcher also checks that
//! the path still names the file it opened, and the server stops when it does not
//! ([`DatabaseReplaced`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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
/// checks at once, so that a host added a moment ago gets in).
pub struct RegistryWatcher {
    /// The watcher's own read connection, used only inside `spawn_blocking`. Held across
    /// "read the stamp, load, publish", so that registries are published in read order.
    conn: Arc<Mutex<Connection>>,
    prefix: DiscoveryPrefix,
    /// The file `conn` reads.
    file: DatabaseFile,
    /// The latest registry. Kept here (receivers subscribe); dropped with the watcher,
    /// which ends the consumers' waits for a change.
    tx: Arc<watch::Sender<Arc<Registry>>>,
}

impl RegistryWatcher {
    /// Opens the watcher's connection and loads the registry.
    pub async fn start(database: &Path, prefix: DiscoveryPrefix) -> anyhow::Result<RegistryWatcher> {
        let (path, load_prefix) = (database.to_owned(), prefix.clone());
        let (conn, first, file) = tokio::task::spawn_blocking(move || {
            let conn = recorder::db::open_read(&path)?;
            let first = recorder::hosts::registry(&conn, &load_prefix)?;
            Ok::<_, anyhow::Error>((conn, first, DatabaseFile::opened(path)?))
        })
        .await??;
        let (tx, _) = watch::channel(Arc::new(first));
        Ok(RegistryWatcher { conn: Arc::new(Mutex::new(conn)), prefix, file, tx: Arc::new(tx) })
    }

    /// Every registry from now on: the current one at once, then each change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Registry>> {
        self.tx.subscribe()
    }

    /// The latest registry published.
    pub fn current(&self) -> Arc<Registry> {
        self.tx.borrow().clone()
    }

    /// Publishes the registry if its stamp (id, version) changed since the last one; true
    /// if so. Any change, a version going back included: it can only be a restore, since
    /// this one connection reads in commit order.
    pub async fn check(&self) -> anyhow::Result<bool> {
        let (conn, tx, prefix) = (self.conn.clone(), self.tx.clone(), self.prefix.clone());
        tokio::task::spawn_blocking(move || {
            // Never held across a panic point that matters: a few short statements.
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            if recorder::hosts::registry_stamp(&conn)? == tx.borrow().stamp() {
                return Ok(false);
            }
            tx.send_replace(Arc::new(recorder::hosts::registry(&conn, &prefix)?));
            Ok(true)
        })
        .await?
    }

    /// Checks every [`REGISTRY_POLL`] until `stop`, or until the database path no longer
    /// names the file the server opened.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), DatabaseReplaced> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REGISTRY_POLL) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            self.file.check()?;
            if let Err(e) = self.check().await {
                warn!(error = format!("{e:#}"), "failed to read the host registry");
            }
        }
    }
}

/// The database file as opened, told by device and inode: a file copied into its place
/// has another inode.
struct DatabaseFile {
    path: PathBuf,
    dev_ino: (u64, u64),
}

impl DatabaseFile {
    fn opened(path: PathBuf) -> anyhow::Result<DatabaseFile> {
        let meta = std::fs::metadata(&path)?;
        Ok(DatabaseFile { dev_ino: (meta.dev(), meta.ino()), path })
    }

    /// Ok while the path names the opened file (or cannot be looked at: nothing is known).
    fn check(&self) -> Result<(), DatabaseReplaced> {
        let how = match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.dev_ino => return Ok(()),
            Ok(_) => "replaced",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "removed",
            Err(_) => return Ok(()),
        };
        Err(DatabaseReplaced { path: self.path.clone(), how })
    }
}

/// The database file was removed or replaced under the running server, which then
/// stops rather than go on with the removed file. `serve` exits with
/// [`DatabaseReplaced::EXIT_STATUS`], which the systemd unit does not restart: a restart
/// while the backup is still being copied in would open (or create) a half-written file.
#[derive(Debug)]
pub struct DatabaseReplaced {
    path: PathBuf,
    how: &'static str,
}

impl DatabaseReplaced {
    /// `serve`'s exit status after this (`RestartPreventExitStatus=` in the unit).
    pub const EXIT_STATUS: u8 = 3;
}

impl std::fmt::Display for DatabaseReplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the database {} was {} while the server ran (a restore?), so the server stopped; \
             start it again once the restored file is in place: systemctl start proxmox-monitor",
            self.path.display(),
            self.how
        )
    }
}

impl std::error::Error for DatabaseReplaced {}

/// The registry whose credentials are in the gateway. Held by the install loop and the
/// gateway's refresh (a failed CONNECT) alike across "read the watcher's latest, compare,
/// install": the latest is read under it, so a registry read earlier is never installed
/// over a later one (which would refuse, and kick, credentials made in between), whichever
/// way the version moved: a backup restored in place takes it back.
#[derive(Default)]
pub struct Installed(tokio::sync::Mutex<Option<Arc<Registry>>>);

impl Installed {
    /// Installs the watcher's latest registry in `gateway` unless it is installed
    /// already; that registry and how many sessions the install closed.
    pub async fn install(&self, gateway: &Gateway, watcher: &RegistryWatcher) -> Option<(Arc<Registry>, usize)> {
        let mut installed = self.0.lock().await;
        let latest = watcher.current();
        // The watcher publishes a new `Arc` for each change only, and the one held here
        // keeps its address from being reused.
        if installed.as_ref().is_some_and(|i| Arc::ptr_eq(i, &latest)) {
            return None;
        }
        let kicked = gateway.set_credentials(latest.credentials.clone()).await;
        *installed = Some(latest.clone());
        Some((latest, kicked))
    }
}

/// Installs each new registry's credentials in the gateway, which closes the sessions of
/// rotated or removed credentials, until `stop`.
pub async fn install_credentials(
    watcher: Arc<RegistryWatcher>,
    installed: Arc<Installed>,
    gateway: Gateway,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = watcher.subscribe();
    loop {
        // Marked seen before the install reads the latest: a change after that read wakes
        // the wait below.
        changes.borrow_and_update();
        if let Some((registry, kicked)) = installed.install(&gateway, &watcher).await {
            info!(kicked, version = registry.version, registry_id = registry.id, "credentials loaded");
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
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

    /// A backup of `path`'s database as `proxmox-monitor backup` writes it.
    fn backup(path: &Path, to: &Path) {
        let src = recorder::db::open_read(path).unwrap();
        let mut dst = Connection::open(to).unwrap();
        rusqlite::backup::Backup::new(&src, &mut dst).unwrap().step(-1).unwrap();
        recorder::hosts::new_registry_id(&dst).unwrap();
    }

    #[tokio::test]
    async fn a_backup_restored_in_place_is_published_though_its_version_went_back() {
        let dir = tempfile::tempdir().unwrap();
        let (path, copy) = (dir.path().join("t.db"), dir.path().join("backup.db"));
        let mut cli = recorder::db::open_and_migrate(&path).unwrap();
        recorder::hosts::add_host(&mut cli, "pve1").unwrap();
        backup(&path, &copy);
        recorder::hosts::add_host(&mut cli, "pve2").unwrap();
        recorder::hosts::rotate_host(&mut cli, "pve1").unwrap();
        let watcher = RegistryWatcher::start(&path, DiscoveryPrefix::default()).await.unwrap();
        let before = watcher.current();

        // SQLite's `.restore`: the backup's pages copied into the live file.
        cli.restore(rusqlite::MAIN_DB, &copy, None::<fn(rusqlite::backup::Progress)>).unwrap();
        assert!(watcher.check().await.unwrap());
        let now = watcher.current();
        assert!(now.version < before.version && now.id != before.id, "{:?} after {:?}", now.stamp(), before.stamp());
        assert_eq!(now.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(), ["pve1"]);
        assert!(!watcher.check().await.unwrap(), "published once");
    }

    #[tokio::test]
    async fn the_watcher_ends_when_the_database_file_is_removed_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let copy = dir.path().join("copy.db");
        drop(recorder::db::open_and_migrate(&path).unwrap());
        let (_stop_tx, stop) = watch::channel(false);
        let limit = Duration::from_secs(5);

        let watcher = RegistryWatcher::start(&path, DiscoveryPrefix::default()).await.unwrap();
        std::fs::copy(&path, &copy).unwrap();
        std::fs::rename(&copy, &path).unwrap();
        let replaced = tokio::time::timeout(limit, watcher.run(stop.clone())).await.unwrap().unwrap_err();
        assert!(replaced.to_string().contains("was replaced while the server ran"), "{replaced}");

        let watcher = RegistryWatcher::start(&path, DiscoveryPrefix::default()).await.unwrap();
        let running = tokio::time::timeout(2 * REGISTRY_POLL, watcher.run(stop.clone())).await;
        assert!(running.is_err(), "the same file: the watcher goes on");
        std::fs::remove_file(&path).unwrap();
        let removed = tokio::time::timeout(limit, watcher.run(stop)).await.unwrap().unwrap_err();
        assert!(removed.to_string().contains("was removed"), "{removed}");
    }
}
