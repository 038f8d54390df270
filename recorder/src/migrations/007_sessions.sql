-- Dashboard sign-in sessions (see dashboard/src/session.rs). A session cookie is valid
-- only while its id is here: signing out deletes the row, so a copy of the cookie is
-- refused afterwards, across restarts too. Expired rows are deleted at the next sign-in.
-- (006 is reserved for alerting.)
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    created_s INTEGER NOT NULL,
    expires_s INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
