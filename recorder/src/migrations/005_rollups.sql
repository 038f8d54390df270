-- Rollups (see rollup/mod.rs): each resolution's partitions, whose tables the writer
-- creates when their first bucket is written.
CREATE TABLE rollup_parts (
    resolution TEXT NOT NULL,
    part INTEGER NOT NULL,
    PRIMARY KEY (resolution, part)
) STRICT, WITHOUT ROWID;

-- Rollup rows name their host by number (see rollup/mod.rs). A removed host's number goes
-- with it: a host added again under the same name starts a history of its own.
CREATE TABLE rollup_hosts (
    id INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL UNIQUE
) STRICT;

-- The root filesystem becomes a charted series like memory and swap: the Rust step
-- (`partitions::upgrade_fast_columns`) adds its columns to `fast_recent` and every hour's
-- fast table.
