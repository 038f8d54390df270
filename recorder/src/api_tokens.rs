//! Read-only API tokens: what scripts and Prometheus send as `Authorization: Bearer` to
//! `/api/v1/*` and `/metrics` (`proxmox-monitor token add|remove|list`).
//!
//! A token is `pmon_` and 256 random bits in hex (the prefix lets secret scanners and
//! people recognise one), shown once and stored only as its SHA-256, as host tokens are
//! (see `broker::auth`). A token is looked up by its hash: the hash of a random 256-bit
//! secret tells a timing observer nothing about any stored one, so no constant-time scan
//! is needed. There is no cache: removing a token refuses its next request.

use broker::{hash_token, new_token};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use wire::HostId;

use crate::now_ms;

/// What every API token starts with.
pub const PREFIX: &str = "pmon_";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("an API token named {0} exists; remove it first or choose another name")]
    Exists(String),
    #[error("no API token named {0}; `token list` shows them")]
    NotFound(String),
    #[error("invalid token name: {0}")]
    InvalidName(String),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

/// One row of `token list` (never the token: it is not stored).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenRow {
    pub name: String,
    pub created_ms: i64,
}

/// Creates a token named `name` and returns it; only its hash is stored.
pub fn add(conn: &mut Connection, name: &str) -> Result<String, TokenError> {
    // Names follow host id rules: short, safe in log lines and in a shell.
    HostId::parse(name).map_err(|e| TokenError::InvalidName(e.to_string()))?;
    let token = format!("{PREFIX}{}", new_token());
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists = tx.prepare("SELECT 1 FROM api_tokens WHERE name = ?1")?.exists([name])?;
    if exists {
        return Err(TokenError::Exists(name.to_owned()));
    }
    tx.execute(
        "INSERT INTO api_tokens (name, token_hash, created_ms) VALUES (?1, ?2, ?3)",
        params![name, hash_token(&token).as_slice(), now_ms()],
    )?;
    tx.commit()?;
    Ok(token)
}

/// Revokes the token named `name`.
pub fn remove(conn: &Connection, name: &str) -> Result<(), TokenError> {
    match conn.execute("DELETE FROM api_tokens WHERE name = ?1", [name])? {
        0 => Err(TokenError::NotFound(name.to_owned())),
        _ => Ok(()),
    }
}

/// Every token's name and creation time, by name.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<TokenRow>> {
    conn.prepare("SELECT name, created_ms FROM api_tokens ORDER BY name")?
        .query_map([], |r| Ok(TokenRow { name: r.get(0)?, created_ms: r.get(1)? }))?
        .collect()
}

/// The name of the token `presented`, if it is a live one.
pub fn verify(conn: &Connection, presented: &str) -> rusqlite::Result<Option<String>> {
    if !presented.starts_with(PREFIX) {
        return Ok(None);
    }
    conn.prepare_cached("SELECT name FROM api_tokens WHERE token_hash = ?1")?
        .query_row([hash_token(presented).as_slice()], |r| r.get(0))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_until_removed_and_is_stored_only_as_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open_and_migrate(&dir.path().join("t.db")).unwrap();
        let token = add(&mut conn, "prometheus").unwrap();
        assert!(token.starts_with(PREFIX) && token.len() == PREFIX.len() + 64, "{token}");
        assert_eq!(verify(&conn, &token).unwrap().as_deref(), Some("prometheus"));
        assert_eq!(verify(&conn, "pmon_wrong").unwrap(), None);
        assert_eq!(verify(&conn, &token[PREFIX.len()..]).unwrap(), None, "the prefix is part of the token");
        assert!(matches!(add(&mut conn, "prometheus"), Err(TokenError::Exists(_))));
        assert!(matches!(add(&mut conn, "a b"), Err(TokenError::InvalidName(_))));
        let stored: Vec<u8> = conn.query_row("SELECT token_hash FROM api_tokens", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, hash_token(&token).to_vec());
        assert_eq!(list(&conn).unwrap().iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["prometheus"]);
        remove(&conn, "prometheus").unwrap();
        assert_eq!(verify(&conn, &token).unwrap(), None, "revoked");
        assert!(matches!(remove(&conn, "prometheus"), Err(TokenError::NotFound(_))));
        assert!(list(&conn).unwrap().is_empty());
    }
}
