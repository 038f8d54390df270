-- Rollups (see rollup/mod.rs): each resolution's partitions, whose tables the writer
-- creates when their first bucket is written.
CREATE TABLE rollup_parts (
    resolution TEXT NOT NULL,
    part INTEGER NOT NULL,
    PRIMARY KEY (resolution, part)
) STRICT, WITHOUT ROWID;

-- The root filesystem becomes a charted series like memory and swap: the Rust step
-- (`partitions::upgrade_fast_columns`) adds its columns to `fast_recent` and every hour's
-- fast table.
