//! The `rule_overrides` rows (migration 011): one per scope (rule; rule and host; rule,
//! host and subject), '' for "any" in the key. Changes merge into a scope's row, are
//! checked as merged, and a row left setting nothing is deleted.

use recorder::status::Rule;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreError;
use crate::overrides::{Override, Overrides, Scope};

const COLUMNS: &str = "rule, host_id, subject, enabled, trigger, critical, clear, pending_ms";

fn row(r: &Row) -> rusqlite::Result<Option<Override>> {
    let rule: String = r.get(0)?;
    // A row this binary cannot read (a rule renamed by a later version) is skipped.
    let Some(rule) = Rule::parse(&rule) else { return Ok(None) };
    let (host, subject): (String, String) = (r.get(1)?, r.get(2)?);
    let scope =
        Scope { rule, host: Some(host).filter(|h| !h.is_empty()), subject: Some(subject).filter(|s| !s.is_empty()) };
    Ok(Some(Override {
        scope,
        enabled: r.get(3)?,
        trigger: r.get(4)?,
        critical: r.get(5)?,
        clear: r.get(6)?,
        pending_ms: r.get(7)?,
    }))
}

fn key(scope: &Scope) -> (&'static str, &str, &str) {
    (scope.rule.as_str(), scope.host.as_deref().unwrap_or(""), scope.subject.as_deref().unwrap_or(""))
}

/// Every override, by rule, host, subject.
pub fn overrides(conn: &Connection) -> rusqlite::Result<Vec<Override>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM rule_overrides ORDER BY rule, host_id, subject"))?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.into_iter().flatten().collect())
}

/// The override stored at exactly `scope`, if any.
pub fn override_at(conn: &Connection, scope: &Scope) -> rusqlite::Result<Option<Override>> {
    let (rule, host, subject) = key(scope);
    let sql = format!("SELECT {COLUMNS} FROM rule_overrides WHERE rule = ?1 AND host_id = ?2 AND subject = ?3");
    Ok(conn.query_row(&sql, params![rule, host, subject], row).optional()?.flatten())
}

fn check_host(conn: &Connection, scope: &Scope) -> Result<(), StoreError> {
    let Some(host) = &scope.host else { return Ok(()) };
    let known: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM hosts WHERE host_id = ?1)", [host], |r| r.get(0))?;
    if known {
        Ok(())
    } else {
        Err(StoreError::NoSuchHost(host.clone()))
    }
}

fn write(conn: &Connection, o: &Override, now_ms: i64) -> rusqlite::Result<()> {
    let (rule, host, subject) = key(&o.scope);
    let nothing = o.enabled.is_none()
        && o.trigger.is_none()
        && o.critical.is_none()
        && o.clear.is_none()
        && o.pending_ms.is_none();
    if nothing {
        conn.execute(
            "DELETE FROM rule_overrides WHERE rule = ?1 AND host_id = ?2 AND subject = ?3",
            params![rule, host, subject],
        )?;
        return Ok(());
    }
    conn.execute(
        "INSERT INTO rule_overrides (rule, host_id, subject, enabled, trigger, critical, clear, pending_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (rule, host_id, subject) DO UPDATE SET enabled = ?4, trigger = ?5, critical = ?6, clear = ?7,
             pending_ms = ?8, updated_ms = ?9",
        params![rule, host, subject, o.enabled, o.trigger, o.critical, o.clear, o.pending_ms, now_ms],
    )?;
    Ok(())
}

/// Sets the numbers `change` gives at its scope, keeping what that scope already set,
/// and returns the scope's override as stored.
pub fn set_override(conn: &Connection, change: &Override, now_ms: i64) -> Result<Override, StoreError> {
    if change.trigger.is_none() && change.critical.is_none() && change.clear.is_none() && change.pending_ms.is_none() {
        return Err(crate::overrides::OverrideError::Nothing.into());
    }
    change.check()?;
    check_host(conn, &change.scope)?;
    let mut merged = override_at(conn, &change.scope)?.unwrap_or_else(|| Override::new(change.scope.clone()));
    merged.trigger = change.trigger.or(merged.trigger);
    merged.critical = change.critical.or(merged.critical);
    merged.clear = change.clear.or(merged.clear);
    merged.pending_ms = change.pending_ms.or(merged.pending_ms);
    merged.check()?;
    write(conn, &merged, now_ms)?;
    Ok(merged)
}

/// Disables (`enabled` false) or enables the rule at `scope`. Enabling stores an explicit
/// "enabled" only where a broader scope still disables it; otherwise it just removes the
/// scope's disable. Returns whether the rule is now enabled at `scope`.
pub fn set_enabled(conn: &Connection, scope: &Scope, enabled: bool, now_ms: i64) -> Result<bool, StoreError> {
    if scope.subject.is_some() && scope.host.is_none() {
        return Err(crate::overrides::OverrideError::SubjectWithoutHost.into());
    }
    check_host(conn, scope)?;
    let mut at = override_at(conn, scope)?.unwrap_or_else(|| Override::new(scope.clone()));
    at.enabled = if enabled {
        let others: Vec<Override> = overrides(conn)?.into_iter().filter(|o| o.scope != *scope).collect();
        let host = scope.host.as_deref().unwrap_or("\u{0}any");
        let subject = scope.subject.as_deref().unwrap_or("\u{0}any");
        (!Overrides::new(others).resolve(host, scope.rule, subject).enabled).then_some(true)
    } else {
        Some(false)
    };
    write(conn, &at, now_ms)?;
    Ok(enabled)
}

/// Removes everything set at exactly `scope`.
pub fn reset_override(conn: &Connection, scope: &Scope) -> Result<(), StoreError> {
    let (rule, host, subject) = key(scope);
    match conn.execute(
        "DELETE FROM rule_overrides WHERE rule = ?1 AND host_id = ?2 AND subject = ?3",
        params![rule, host, subject],
    )? {
        0 => Err(StoreError::NoSuchOverride(scope.describe())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = recorder::db::open_and_migrate(&dir.path().join("t.db")).unwrap();
        recorder::hosts::add_host(&mut recorder::db::open(&dir.path().join("t.db")).unwrap(), "pve1").unwrap();
        (dir, conn)
    }

    fn scope(host: Option<&str>, subject: Option<&str>) -> Scope {
        Scope { rule: Rule::PoolCapacity, host: host.map(Into::into), subject: subject.map(Into::into) }
    }

    #[test]
    fn changes_merge_into_their_scope_and_are_checked_as_merged() {
        let (_dir, conn) = db();
        let set = |s: Scope, f: fn(&mut Override)| {
            let mut o = Override::new(s);
            f(&mut o);
            set_override(&conn, &o, 1)
        };
        set(scope(Some("pve1"), None), |o| o.trigger = Some(70.0)).unwrap();
        let merged = set(scope(Some("pve1"), None), |o| o.pending_ms = Some(300_000)).unwrap();
        assert_eq!((merged.trigger, merged.pending_ms), (Some(70.0), Some(300_000)));
        let e = set(scope(Some("pve1"), None), |o| o.clear = Some(75.0)).unwrap_err();
        assert!(e.to_string().contains("--clear 75 must be below --trigger 70"), "{e}");
        let e = set(scope(Some("nope"), None), |o| o.trigger = Some(70.0)).unwrap_err();
        assert!(matches!(e, StoreError::NoSuchHost(_)), "{e}");
        assert!(matches!(set(scope(None, None), |_| ()), Err(StoreError::Override(_))));
        assert_eq!(overrides(&conn).unwrap().len(), 1);
        reset_override(&conn, &scope(Some("pve1"), None)).unwrap();
        assert!(overrides(&conn).unwrap().is_empty());
        let e = reset_override(&conn, &scope(Some("pve1"), None)).unwrap_err();
        assert_eq!(e.to_string(), "no override of pool_capacity on pve1; `rule list` shows them");
    }

    #[test]
    fn enabling_undoes_a_disable_or_overrides_a_broader_one() {
        let (_dir, conn) = db();
        let tank = scope(Some("pve1"), Some("tank"));
        set_enabled(&conn, &tank, false, 1).unwrap();
        assert_eq!(override_at(&conn, &tank).unwrap().unwrap().enabled, Some(false));
        set_enabled(&conn, &tank, true, 2).unwrap();
        assert_eq!(override_at(&conn, &tank).unwrap(), None, "nothing broader disables it: the row goes");
        set_enabled(&conn, &scope(None, None), false, 3).unwrap();
        set_enabled(&conn, &tank, true, 4).unwrap();
        assert_eq!(override_at(&conn, &tank).unwrap().unwrap().enabled, Some(true), "explicit under a global disable");
    }
}
