-- Fast samples arrive for every host in every batch. Written straight into a host-keyed
-- index, each batch would dirty one index page per host, and the WAL would grow with the
-- fleet on every commit. So they land in `fast_recent`, whose only index is time-first, so
-- a batch appends to a few pages whatever the number of hosts; every so often the writer
-- moves them, sorted by host, into `fast_history`, writing each host's page once per move.
-- Readers use the `fast_samples` view, which is both tables: every sample is in exactly
-- one of them.
ALTER TABLE fast_samples RENAME TO fast_history;
DROP INDEX fast_samples_key;
DROP INDEX fast_samples_ts;
-- Serves per-host charts and makes a replayed sample (same host, time and seq) a no-op.
CREATE UNIQUE INDEX fast_history_key ON fast_history (host_id, ts_ms, seq);
-- Serves retention.
CREATE INDEX fast_history_ts ON fast_history (ts_ms);

CREATE TABLE fast_recent (
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
-- The same key, time first: live samples all append at its end.
CREATE UNIQUE INDEX fast_recent_key ON fast_recent (ts_ms, host_id, seq);

CREATE VIEW fast_samples AS
    SELECT host_id, ts_ms, seq, load1, load5, load15, cpu_pct, iowait_pct, mem_total, mem_used,
           arc_bytes, swap_total, swap_used FROM fast_history
    UNION ALL
    SELECT host_id, ts_ms, seq, load1, load5, load15, cpu_pct, iowait_pct, mem_total, mem_used,
           arc_bytes, swap_total, swap_used FROM fast_recent;
