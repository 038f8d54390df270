-- Time series partitioned by hour (see partitions.rs): retention drops an hour's tables
-- whole instead of deleting its rows one by one. This SQL renames the unpartitioned
-- tables; `partitions::adopt_legacy` then moves their rows into hour tables, drops them
-- and creates the readers' views.
CREATE TABLE sample_hours (
    hour INTEGER PRIMARY KEY,
    -- Sample rows stored in the hour, for retention's log line.
    rows INTEGER NOT NULL
) STRICT;

DROP VIEW fast_samples;
ALTER TABLE fast_history RENAME TO legacy_fast;
ALTER TABLE pool_samples RENAME TO legacy_pool;
ALTER TABLE storage_samples RENAME TO legacy_storage;
ALTER TABLE guest_samples RENAME TO legacy_guest;
ALTER TABLE ingested RENAME TO legacy_ingested;
