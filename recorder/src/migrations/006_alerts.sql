-- Alerting (the `alerting` crate owns these rows; the recorder only owns the schema).

-- One row per alert identity (host, rule, subject): an identity that fires again reuses
-- its row and id, so flapping and acknowledgements are tracked in one place.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    -- '' for the host itself.
    subject TEXT NOT NULL DEFAULT '',
    -- 'pending', 'firing' or 'resolved'.
    state TEXT NOT NULL,
    -- 'warning', 'critical' or 'offline'.
    severity TEXT NOT NULL,
    value REAL,
    message TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    changed_ms INTEGER NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0,
    -- What the receivers last heard: when, at which severity and value, and whether the
    -- resolution was sent. NULL notified_ms: nothing sent for this episode.
    notified_ms INTEGER,
    notified_severity TEXT,
    notified_value REAL,
    resolved_notified INTEGER NOT NULL DEFAULT 0,
    -- Flap detection: the times of recent state changes (comma-separated ms), and
    -- whether the identity is flapping and its notice went out.
    changes TEXT NOT NULL DEFAULT '',
    flapping INTEGER NOT NULL DEFAULT 0,
    flap_notified INTEGER NOT NULL DEFAULT 0,
    UNIQUE (host_id, rule, subject)
) STRICT;

CREATE TABLE silences (
    id INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL,
    -- NULL matches every rule / subject.
    rule TEXT,
    subject TEXT,
    ends_ms INTEGER NOT NULL,
    comment TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;

-- Secrets (token, secret) stay here, server-side: the CLI shows them only redacted.
CREATE TABLE channels (
    name TEXT PRIMARY KEY,
    -- 'webhook' or 'ntfy'.
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    token TEXT,
    secret TEXT,
    -- Kind-specific options as a JSON object.
    settings TEXT NOT NULL DEFAULT '{}',
    created_ms INTEGER NOT NULL
) STRICT;

-- Every delivery attempt's outcome, for `channel list` and the admin page.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    channel TEXT NOT NULL,
    host_id TEXT,
    event_id TEXT NOT NULL,
    -- 'sent', 'failed' or 'suppressed'.
    outcome TEXT NOT NULL,
    http_status INTEGER,
    attempts INTEGER NOT NULL,
    detail TEXT NOT NULL
) STRICT;
CREATE INDEX notifications_by_time ON notifications (ts_ms);
