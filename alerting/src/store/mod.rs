//! Alerting's rows in SQLite (schema: the recorder's migration 006): alerts, silences,
//! channels and the notification log; rule overrides (migration 011) in [`overrides`].
//! Used by the engine's task, the CLI and the admin page.

mod overrides;

pub use overrides::{override_at, overrides, reset_override, set_enabled, set_override};

use std::collections::HashSet;

use recorder::status::{Level, Rule};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::alert::{Alert, Identity, State};
use crate::channel::{Channel, Kind};
use crate::silence::Silence;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no alert with id {0}; `alert list` shows them")]
    NoSuchAlert(i64),
    #[error("no silence with id {0}; `silence list` shows them")]
    NoSuchSilence(i64),
    #[error("no channel named {0}; `channel list` shows them")]
    NoSuchChannel(String),
    #[error("a channel named {0} already exists; remove it first to change it")]
    ChannelExists(String),
    #[error("unknown rule {0}; known rules: {1}")]
    UnknownRule(String, String),
    #[error("no override of {0}; `rule list` shows them")]
    NoSuchOverride(String),
    #[error("no host named {0}; `host list` shows the registered ones")]
    NoSuchHost(String),
    #[error(transparent)]
    Override(#[from] crate::overrides::OverrideError),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

const ALERT_COLUMNS: &str = "id, host_id, rule, subject, state, severity, value, message, started_ms, changed_ms, \
     acked, notified_ms, notified_severity, notified_value, resolved_notified, changes, flapping, flap_notified";

fn alert_row(r: &Row) -> rusqlite::Result<Option<Alert>> {
    let rule: String = r.get(2)?;
    let state: String = r.get(4)?;
    let severity: String = r.get(5)?;
    let notified_severity: Option<String> = r.get(12)?;
    // A row this binary cannot read (a rule renamed by a later version) is skipped.
    let (Some(rule), Some(state), Some(severity)) = (Rule::parse(&rule), State::parse(&state), Level::parse(&severity))
    else {
        return Ok(None);
    };
    let changes: String = r.get(15)?;
    Ok(Some(Alert {
        id: r.get(0)?,
        identity: Identity { host: r.get(1)?, rule, subject: r.get(3)? },
        state,
        severity,
        value: r.get(6)?,
        message: r.get(7)?,
        started_ms: r.get(8)?,
        changed_ms: r.get(9)?,
        acked: r.get(10)?,
        notified_ms: r.get(11)?,
        notified_severity: notified_severity.as_deref().and_then(Level::parse),
        notified_value: r.get(13)?,
        resolved_notified: r.get(14)?,
        changes: changes.split(',').filter_map(|t| t.parse().ok()).collect(),
        flapping: r.get(16)?,
        flap_notified: r.get(17)?,
        dirty: false,
        ack_cleared: false,
        seen_ms: 0,
    }))
}

/// Every alert row, resolved ones included, by id.
pub fn load_alerts(conn: &Connection) -> rusqlite::Result<Vec<Alert>> {
    let mut stmt = conn.prepare(&format!("SELECT {ALERT_COLUMNS} FROM alerts ORDER BY id"))?;
    let rows = stmt.query_map([], alert_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.into_iter().flatten().collect())
}

/// Stores `alerts` in one transaction and returns each one's row id.
pub fn save_alerts(conn: &mut Connection, alerts: &[Alert]) -> rusqlite::Result<Vec<(Identity, i64)>> {
    // Immediate, as the recorder's writer: the write lock is waited for, not lost to a
    // commit of another connection between a read and the first write.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut ids = Vec::with_capacity(alerts.len());
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO alerts (host_id, rule, subject, state, severity, value, message, started_ms, changed_ms,
                 acked, notified_ms, notified_severity, notified_value, resolved_notified, changes, flapping,
                 flap_notified)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
             ON CONFLICT (host_id, rule, subject) DO UPDATE SET
                 state = ?4, severity = ?5, value = ?6, message = ?7, started_ms = ?8, changed_ms = ?9,
                 -- The CLI may have acknowledged since the engine read it: keep that
                 -- unless the engine took the acknowledgement back.
                 acked = CASE WHEN ?18 THEN 0 ELSE max(acked, ?10) END,
                 notified_ms = ?11, notified_severity = ?12, notified_value = ?13, resolved_notified = ?14,
                 changes = ?15, flapping = ?16, flap_notified = ?17
             RETURNING id",
        )?;
        for a in alerts {
            let changes: Vec<String> = a.changes.iter().map(i64::to_string).collect();
            let id: i64 = stmt.query_row(
                params![
                    a.identity.host,
                    a.identity.rule.as_str(),
                    a.identity.subject,
                    a.state.as_str(),
                    a.severity.as_str(),
                    a.value,
                    a.message,
                    a.started_ms,
                    a.changed_ms,
                    a.acked,
                    a.notified_ms,
                    a.notified_severity.map(Level::as_str),
                    a.notified_value,
                    a.resolved_notified,
                    changes.join(","),
                    a.flapping,
                    a.flap_notified,
                    a.ack_cleared,
                ],
                |r| r.get(0),
            )?;
            ids.push((a.identity.clone(), id));
        }
    }
    tx.commit()?;
    Ok(ids)
}

/// The ids of acknowledged alerts.
pub fn acked(conn: &Connection) -> rusqlite::Result<HashSet<i64>> {
    conn.prepare_cached("SELECT id FROM alerts WHERE acked = 1")?.query_map([], |r| r.get(0))?.collect()
}

/// Acknowledges the active alert `id`: no re-notification until it resolves or gets worse.
pub fn ack(conn: &Connection, id: i64) -> Result<Alert, StoreError> {
    let n = conn.execute("UPDATE alerts SET acked = 1 WHERE id = ?1 AND state != 'resolved'", [id])?;
    let alert = conn
        .query_row(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"), [id], alert_row)
        .optional()?
        .flatten();
    match alert {
        Some(a) if n == 1 => Ok(a),
        _ => Err(StoreError::NoSuchAlert(id)),
    }
}

/// The active alerts and those resolved within `recent_ms` of `now_ms`, newest change first.
pub fn list_alerts(conn: &Connection, now_ms: i64, recent_ms: i64) -> rusqlite::Result<Vec<Alert>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE state != 'resolved' OR changed_ms >= ?1 ORDER BY changed_ms DESC"
    ))?;
    let rows = stmt.query_map([now_ms - recent_ms], alert_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.into_iter().flatten().collect())
}

pub fn add_silence(
    conn: &Connection,
    host: &str,
    rule: Option<&str>,
    subject: Option<&str>,
    ends_ms: i64,
    comment: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    if let Some(rule) = rule {
        parse_rule(rule)?;
    }
    conn.execute(
        "INSERT INTO silences (host_id, rule, subject, ends_ms, comment, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![host, rule, subject, ends_ms, comment, now_ms],
    )?;
    Ok(conn.last_insert_rowid())
}

/// `rule` as a known rule, or the error that lists them.
pub fn parse_rule(rule: &str) -> Result<Rule, StoreError> {
    Rule::parse(rule).ok_or_else(|| {
        let known: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
        StoreError::UnknownRule(rule.to_owned(), known.join(", "))
    })
}

/// Ends the silence `id` now (its row goes).
pub fn remove_silence(conn: &Connection, id: i64) -> Result<(), StoreError> {
    match conn.execute("DELETE FROM silences WHERE id = ?1", [id])? {
        0 => Err(StoreError::NoSuchSilence(id)),
        _ => Ok(()),
    }
}

/// The silences that have not ended at `now_ms`.
pub fn silences(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<Silence>> {
    conn.prepare_cached(
        "SELECT id, host_id, rule, subject, ends_ms, comment FROM silences WHERE ends_ms > ?1 ORDER BY id",
    )?
    .query_map([now_ms], |r| {
        Ok(Silence {
            id: r.get(0)?,
            host: r.get(1)?,
            rule: r.get(2)?,
            subject: r.get(3)?,
            ends_ms: r.get(4)?,
            comment: r.get(5)?,
        })
    })?
    .collect()
}

fn channel_row(r: &Row) -> rusqlite::Result<Option<Channel>> {
    let kind: String = r.get(1)?;
    let Ok(kind) = Kind::parse(&kind) else { return Ok(None) };
    Ok(Some(Channel { name: r.get(0)?, kind, url: r.get(2)?, token: r.get(3)?, secret: r.get(4)? }))
}

pub fn add_channel(conn: &Connection, channel: &Channel, now_ms: i64) -> Result<(), StoreError> {
    let n = conn.execute(
        "INSERT INTO channels (name, kind, url, token, secret, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO NOTHING",
        params![channel.name, channel.kind.as_str(), channel.url, channel.token, channel.secret, now_ms],
    )?;
    if n == 0 {
        return Err(StoreError::ChannelExists(channel.name.clone()));
    }
    Ok(())
}

pub fn remove_channel(conn: &Connection, name: &str) -> Result<(), StoreError> {
    match conn.execute("DELETE FROM channels WHERE name = ?1", [name])? {
        0 => Err(StoreError::NoSuchChannel(name.to_owned())),
        _ => Ok(()),
    }
}

/// Every channel this binary can send to, by name.
pub fn channels(conn: &Connection) -> rusqlite::Result<Vec<Channel>> {
    let mut stmt = conn.prepare_cached("SELECT name, kind, url, token, secret FROM channels ORDER BY name")?;
    let rows = stmt.query_map([], channel_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.into_iter().flatten().collect())
}

pub fn channel(conn: &Connection, name: &str) -> Result<Channel, StoreError> {
    conn.query_row("SELECT name, kind, url, token, secret FROM channels WHERE name = ?1", [name], channel_row)
        .optional()?
        .flatten()
        .ok_or_else(|| StoreError::NoSuchChannel(name.to_owned()))
}

/// One delivery's outcome, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub ts_ms: i64,
    pub channel: String,
    pub host: Option<String>,
    pub event_id: String,
    /// `sent`, `failed` or `suppressed`.
    pub outcome: &'static str,
    pub http_status: Option<u16>,
    pub attempts: u32,
    pub detail: String,
}

pub fn log(conn: &Connection, e: &LogEntry) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO notifications (ts_ms, channel, host_id, event_id, outcome, http_status, attempts, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![e.ts_ms, e.channel, e.host, e.event_id, e.outcome, e.http_status, e.attempts, e.detail])?;
    Ok(())
}

/// A channel's last logged delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct LastDelivery {
    pub channel: String,
    pub ts_ms: i64,
    pub outcome: String,
    pub http_status: Option<u16>,
}

/// The last delivery outcome of each channel.
pub fn last_outcomes(conn: &Connection) -> rusqlite::Result<Vec<LastDelivery>> {
    // SQLite takes the bare columns from the row with the max().
    conn.prepare(
        "SELECT channel, max(ts_ms), outcome, http_status FROM notifications GROUP BY channel ORDER BY channel",
    )?
    .query_map([], |r| {
        Ok(LastDelivery { channel: r.get(0)?, ts_ms: r.get(1)?, outcome: r.get(2)?, http_status: r.get(3)? })
    })?
    .collect()
}
