-- Medium-tier time series: what the dashboard charts for pools, storages and guests.
CREATE TABLE pool_samples (
    host_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    pool TEXT NOT NULL,
    state TEXT NOT NULL,
    cap_pct REAL,
    frag_pct REAL,
    alloc INTEGER,
    size INTEGER,
    read_errors INTEGER NOT NULL,
    write_errors INTEGER NOT NULL,
    checksum_errors INTEGER NOT NULL
) STRICT;
CREATE INDEX pool_samples_host_ts ON pool_samples (host_id, ts_ms);
CREATE INDEX pool_samples_ts ON pool_samples (ts_ms);

CREATE TABLE storage_samples (
    host_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    storage TEXT NOT NULL,
    used INTEGER,
    total INTEGER
) STRICT;
CREATE INDEX storage_samples_host_ts ON storage_samples (host_id, ts_ms);
CREATE INDEX storage_samples_ts ON storage_samples (ts_ms);

CREATE TABLE guest_samples (
    host_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    vmid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    cpu REAL,
    mem INTEGER,
    maxmem INTEGER
) STRICT;
CREATE INDEX guest_samples_host_ts ON guest_samples (host_id, ts_ms);
CREATE INDEX guest_samples_ts ON guest_samples (ts_ms);
