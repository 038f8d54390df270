-- Hosts and observers: only a SHA-256 of each token is stored.
CREATE TABLE hosts (
    host_id TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    rotated_ms INTEGER,
    last_seen_ms INTEGER,
    agent_version TEXT,
    online INTEGER NOT NULL DEFAULT 0,
    online_changed_ms INTEGER
) STRICT;

CREATE TABLE observers (
    name TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;

-- Bumped in the same transaction as every credential change, so that a running server
-- notices a CLI `host add/rotate/remove` and kicks revoked sessions.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('credentials_version', 0);

-- The latest payload of each host and tier, as received.
CREATE TABLE latest (
    host_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (host_id, tier)
) STRICT, WITHOUT ROWID;

-- One row per medium and slow payload stored: makes their replays idempotent (fast
-- samples are keyed in fast_samples itself). Pruned with retention.
CREATE TABLE ingested (
    host_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    PRIMARY KEY (host_id, tier, boot_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX ingested_ts ON ingested (ts_ms);

-- Fast-tier time series: what the dashboard charts.
CREATE TABLE fast_samples (
    host_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    load1 REAL,
    load5 REAL,
    load15 REAL,
    cpu_pct REAL,
    iowait_pct REAL,
    mem_total INTEGER,
    mem_used INTEGER,
    arc_bytes INTEGER,
    swap_total INTEGER,
    swap_used INTEGER
) STRICT;
-- Serves per-host charts and makes a replayed sample (same host, time and seq) a no-op.
CREATE UNIQUE INDEX fast_samples_key ON fast_samples (host_id, ts_ms, seq);
CREATE INDEX fast_samples_ts ON fast_samples (ts_ms);

-- Changes worth a line on a host's timeline.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
) STRICT;
CREATE INDEX events_host_ts ON events (host_id, ts_ms);
CREATE INDEX events_ts ON events (ts_ms);
