//! The host, observer and Home Assistant registry: add, rotate, remove, list, and the
//! credential table the gateway checks tokens against. Used by the CLI and the admin page
//! alike.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use broker::{hash_token, new_token, Credential, CredentialTable, Role};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use wire::{DiscoveryPrefix, HostId};

use crate::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0} is already registered; use `host rotate {0}` for a new token")]
    Exists(String),
    #[error("no host or observer named {0}; `host list` shows the registered ones")]
    NotFound(String),
    #[error("no Home Assistant credential named {0}; `ha list` shows them")]
    NoHomeAssistant(String),
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

/// One row of `host list`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostRow {
    pub host_id: String,
    pub online: bool,
    pub last_seen_ms: Option<i64>,
    pub agent_version: Option<String>,
    pub created_ms: i64,
    pub rotated_ms: Option<i64>,
}

fn bump_credentials(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'credentials_version'", [])?;
    Ok(())
}

fn name_taken(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM hosts WHERE host_id = ?1)
             OR EXISTS(SELECT 1 FROM observers WHERE name = ?1)
             OR EXISTS(SELECT 1 FROM ha_clients WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// Registers a host and returns its token, which is stored only as a hash.
pub fn add_host(conn: &mut Connection, name: &str) -> Result<(HostId, String), RegistryError> {
    let host = HostId::parse(name).map_err(|e| RegistryError::InvalidName(e.to_string()))?;
    let token = add_credential(conn, name, "INSERT INTO hosts (host_id, token_hash, created_ms) VALUES (?1, ?2, ?3)")?;
    Ok((host, token))
}

/// Gives a host a new token; the old one stops working at once.
pub fn rotate_host(conn: &mut Connection, name: &str) -> Result<String, RegistryError> {
    let token = new_token();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE hosts SET token_hash = ?2, rotated_ms = ?3 WHERE host_id = ?1",
        params![name, hash_token(&token).as_slice(), now_ms()],
    )?;
    if n == 0 {
        return Err(RegistryError::NotFound(name.to_owned()));
    }
    bump_credentials(&tx)?;
    tx.commit()?;
    Ok(token)
}

/// Removes a host and everything recorded about it.
pub fn remove_host(conn: &mut Connection, name: &str) -> Result<(), RegistryError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute("DELETE FROM hosts WHERE host_id = ?1", [name])?;
    if n == 0 {
        return Err(RegistryError::NotFound(name.to_owned()));
    }
    let hours = crate::partitions::hours(&tx)?;
    let tables = ["latest", "fast_recent", "events", "rollup_hosts", "alerts", "silences", "rule_overrides"]
        .map(String::from)
        .into_iter();
    for table in tables.chain(hours.into_iter().flat_map(crate::partitions::tables)) {
        tx.execute(&format!("DELETE FROM {table} WHERE host_id = ?1"), [name])?;
    }
    bump_credentials(&tx)?;
    tx.commit()?;
    Ok(())
}

/// Registers a read-only MQTT credential and returns its token.
pub fn add_observer(conn: &mut Connection, name: &str) -> Result<String, RegistryError> {
    // Observer names follow host id rules: safe as usernames and in log lines.
    HostId::parse(name).map_err(|e| RegistryError::InvalidName(e.to_string()))?;
    add_credential(conn, name, "INSERT INTO observers (name, token_hash, created_ms) VALUES (?1, ?2, ?3)")
}

/// Registers a Home Assistant MQTT credential and returns its token.
pub fn add_home_assistant(conn: &mut Connection, name: &str) -> Result<String, RegistryError> {
    HostId::parse(name).map_err(|e| RegistryError::InvalidName(e.to_string()))?;
    add_credential(conn, name, "INSERT INTO ha_clients (name, token_hash, created_ms) VALUES (?1, ?2, ?3)")
}

/// Removes a Home Assistant credential; its live session is closed.
pub fn remove_home_assistant(conn: &mut Connection, name: &str) -> Result<(), RegistryError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if tx.execute("DELETE FROM ha_clients WHERE name = ?1", [name])? == 0 {
        return Err(RegistryError::NoHomeAssistant(name.to_owned()));
    }
    bump_credentials(&tx)?;
    tx.commit()?;
    Ok(())
}

/// One row of `ha list`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HomeAssistantRow {
    pub name: String,
    pub created_ms: i64,
}

pub fn list_home_assistant(conn: &Connection) -> rusqlite::Result<Vec<HomeAssistantRow>> {
    let mut stmt = conn.prepare("SELECT name, created_ms FROM ha_clients ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok(HomeAssistantRow { name: r.get(0)?, created_ms: r.get(1)? }))?;
    rows.collect()
}

/// Stores a new token for `name` with `insert` (parameters: name, token hash, time), unless
/// a host or observer already has the name, and returns the token.
fn add_credential(conn: &mut Connection, name: &str, insert: &str) -> Result<String, RegistryError> {
    let token = new_token();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if name_taken(&tx, name)? {
        return Err(RegistryError::Exists(name.to_owned()));
    }
    tx.execute(insert, params![name, hash_token(&token).as_slice(), now_ms()])?;
    bump_credentials(&tx)?;
    tx.commit()?;
    Ok(token)
}

pub fn list_hosts(conn: &Connection) -> rusqlite::Result<Vec<HostRow>> {
    let mut stmt = conn.prepare(
        "SELECT host_id, online, last_seen_ms, agent_version, created_ms, rotated_ms
         FROM hosts ORDER BY host_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(HostRow {
            host_id: r.get(0)?,
            online: r.get(1)?,
            last_seen_ms: r.get(2)?,
            agent_version: r.get(3)?,
            created_ms: r.get(4)?,
            rotated_ms: r.get(5)?,
        })
    })?;
    rows.collect()
}

pub fn host_ids(conn: &Connection) -> rusqlite::Result<Vec<HostId>> {
    let mut stmt = conn.prepare("SELECT host_id FROM hosts ORDER BY host_id")?;
    let ids = stmt.query_map([], |r| r.get::<_, String>(0))?;
    // Ids were validated on insert; a row edited by hand into an invalid id is skipped.
    Ok(ids.filter_map(|r| r.ok()).filter_map(|s| HostId::parse(&s).ok()).collect())
}

/// Changes whenever a credential changes, from any process.
pub fn credentials_version(conn: &Connection) -> rusqlite::Result<i64> {
    meta_value(conn, "credentials_version")
}

/// Which copy of the database this is: random, and new in every backup
/// ([`new_registry_id`]), so that restoring one changes it even where the version does not.
pub fn registry_id(conn: &Connection) -> rusqlite::Result<i64> {
    meta_value(conn, "registry_id")
}

/// Gives a copy of the database (a backup just written) a registry id of its own.
pub fn new_registry_id(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("UPDATE meta SET value = random() WHERE key = 'registry_id'", [])?;
    Ok(())
}

/// `(registry_id, credentials_version)` in one statement: what the running server compares
/// to learn that the registry changed, by an edit or a restore.
pub fn registry_stamp(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT coalesce((SELECT value FROM meta WHERE key = 'registry_id'), 0),
                coalesce((SELECT value FROM meta WHERE key = 'credentials_version'), 0)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn meta_value(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map(|v| v.unwrap_or(0))
}

/// Every credential, for the gateway. Home Assistant credentials get `discovery_prefix`
/// (`HA_DISCOVERY_PREFIX`), the one they may publish their status under.
pub fn credential_table(conn: &Connection, discovery_prefix: &DiscoveryPrefix) -> rusqlite::Result<CredentialTable> {
    let prefix = Arc::new(discovery_prefix.clone());
    let mut table = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT host_id, token_hash, 'host' FROM hosts
         UNION ALL SELECT name, token_hash, 'observer' FROM observers
         UNION ALL SELECT name, token_hash, 'ha' FROM ha_clients",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?)))?;
    for row in rows {
        let (name, hash, role) = row?;
        let Ok(token_hash) = <[u8; 32]>::try_from(hash.as_slice()) else { continue };
        let role = match role.as_str() {
            "host" => Role::Host,
            "ha" => Role::HomeAssistant(prefix.clone()),
            _ => Role::Observer,
        };
        table.insert(name, Credential { role, token_hash });
    }
    Ok(CredentialTable(table))
}

/// The registry as the running server sees it: the gateway's credentials and the hosts
/// Home Assistant and alerting cover, at one `credentials_version` of one database copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    /// The database copy's [`registry_id`]: a restored backup has another.
    pub id: i64,
    pub version: i64,
    pub credentials: CredentialTable,
    pub hosts: BTreeSet<HostId>,
}

impl Registry {
    /// What [`registry_stamp`] read when this registry was loaded.
    pub fn stamp(&self) -> (i64, i64) {
        (self.id, self.version)
    }
}

/// Reads the [`Registry`] in one read transaction, so that its version and content agree.
pub fn registry(conn: &Connection, discovery_prefix: &DiscoveryPrefix) -> rusqlite::Result<Registry> {
    let tx = conn.unchecked_transaction()?;
    let registry = Registry {
        id: registry_id(&tx)?,
        version: credentials_version(&tx)?,
        credentials: credential_table(&tx, discovery_prefix)?,
        hosts: host_ids(&tx)?.into_iter().collect(),
    };
    tx.finish()?;
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_and_migrate(&dir.path().join("t.db")).unwrap();
        (dir, conn)
    }

    #[test]
    fn add_rotate_remove_change_what_the_gateway_accepts() {
        let (_dir, mut conn) = db();
        let v0 = credentials_version(&conn).unwrap();
        let (_, token) = add_host(&mut conn, "pve1").unwrap();
        assert!(credential_table(&conn, &DiscoveryPrefix::default()).unwrap().verify("pve1", &token).is_some());
        assert!(matches!(add_host(&mut conn, "pve1"), Err(RegistryError::Exists(_))));
        let rotated = rotate_host(&mut conn, "pve1").unwrap();
        let table = credential_table(&conn, &DiscoveryPrefix::default()).unwrap();
        assert!(table.verify("pve1", &token).is_none(), "old token must stop working");
        assert!(table.verify("pve1", &rotated).is_some());
        remove_host(&mut conn, "pve1").unwrap();
        assert!(credential_table(&conn, &DiscoveryPrefix::default()).unwrap().verify("pve1", &rotated).is_none());
        assert!(matches!(remove_host(&mut conn, "pve1"), Err(RegistryError::NotFound(_))));
        assert_eq!(credentials_version(&conn).unwrap(), v0 + 3);
    }

    #[test]
    fn the_registry_snapshot_has_the_hosts_and_every_credential_at_its_version() {
        let (_dir, mut conn) = db();
        let (_, token) = add_host(&mut conn, "pve1").unwrap();
        add_host(&mut conn, "pve2").unwrap();
        add_observer(&mut conn, "ops").unwrap();
        let r = registry(&conn, &DiscoveryPrefix::default()).unwrap();
        assert_eq!(r.version, credentials_version(&conn).unwrap());
        assert_eq!(r.hosts.iter().map(HostId::as_str).collect::<Vec<_>>(), ["pve1", "pve2"]);
        assert!(r.credentials.verify("pve1", &token).is_some());
        assert_eq!(r.credentials.0.len(), 3, "hosts and the observer");
        assert_eq!(r.stamp(), registry_stamp(&conn).unwrap());
        assert_ne!(r.id, 0, "set by the migration");
        // A backup's copy gets an id of its own; its version stays.
        new_registry_id(&conn).unwrap();
        let (id, version) = registry_stamp(&conn).unwrap();
        assert!(id != r.id && version == r.version);
    }

    #[test]
    fn the_token_itself_is_never_stored() {
        let (_dir, mut conn) = db();
        let (_, token) = add_host(&mut conn, "pve1").unwrap();
        let stored: Vec<u8> = conn.query_row("SELECT token_hash FROM hosts", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, hash_token(&token).to_vec());
        assert!(!String::from_utf8_lossy(&stored).contains(&token));
    }

    #[test]
    fn home_assistant_credentials_share_the_namespace_and_carry_the_prefix() {
        let (_dir, mut conn) = db();
        let token = add_home_assistant(&mut conn, "ha").unwrap();
        let prefix = DiscoveryPrefix::parse("site/ha").unwrap();
        let (identity, _) = credential_table(&conn, &prefix).unwrap().verify("ha", &token).unwrap();
        assert_eq!(identity, broker::Identity::HomeAssistant("ha".into(), Arc::new(prefix.clone())));
        assert!(matches!(add_host(&mut conn, "ha"), Err(RegistryError::Exists(_))));
        assert!(matches!(add_home_assistant(&mut conn, "ha"), Err(RegistryError::Exists(_))));
        assert_eq!(list_home_assistant(&conn).unwrap().len(), 1);
        remove_home_assistant(&mut conn, "ha").unwrap();
        assert!(credential_table(&conn, &prefix).unwrap().verify("ha", &token).is_none());
        assert!(matches!(remove_home_assistant(&mut conn, "ha"), Err(RegistryError::NoHomeAssistant(_))));
    }

    #[test]
    fn bad_names_and_clashes_are_refused() {
        let (_dir, mut conn) = db();
        assert!(matches!(add_host(&mut conn, "a/b"), Err(RegistryError::InvalidName(_))));
        add_observer(&mut conn, "ops").unwrap();
        assert!(matches!(add_host(&mut conn, "ops"), Err(RegistryError::Exists(_))));
    }
}
