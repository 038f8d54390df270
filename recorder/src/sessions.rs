//! The dashboard's sign-in sessions: which session ids are live. The dashboard keeps
//! the rest (expiry, CSRF token) in its signed cookie.

use rusqlite::{params, Connection, OptionalExtension};

/// Records a new session and deletes the expired ones.
pub fn insert(conn: &Connection, id: &str, now_s: i64, expires_s: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM sessions WHERE expires_s <= ?1", params![now_s])?;
    conn.execute("INSERT INTO sessions (id, created_s, expires_s) VALUES (?1, ?2, ?3)", params![id, now_s, expires_s])?;
    Ok(())
}

/// The expiry of session `id`, if it is live (recorded, not yet deleted).
pub fn expiry(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT expires_s FROM sessions WHERE id = ?1", params![id], |r| r.get(0)).optional()
}

/// Ends session `id` (sign-out); a no-op for an unknown one.
pub fn delete(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM sessions WHERE id = ?1", params![id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_deleted_and_expired_ones_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_and_migrate(&dir.path().join("m.db")).unwrap();
        insert(&conn, "old", 0, 10).unwrap();
        insert(&conn, "a", 100, 200).unwrap();
        assert_eq!(expiry(&conn, "a").unwrap(), Some(200));
        assert_eq!(expiry(&conn, "old").unwrap(), None, "expired at the next sign-in");
        delete(&conn, "a").unwrap();
        assert_eq!(expiry(&conn, "a").unwrap(), None);
        delete(&conn, "a").unwrap();
    }
}
