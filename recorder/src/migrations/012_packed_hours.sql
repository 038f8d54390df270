-- The packed hour tier (see rollup/pack.rs): a row per host and block of 96 hours in
-- `rollpack_h_p<part>` tables, listed here so that retention drops them whole.
CREATE TABLE rollup_packs (
    part INTEGER PRIMARY KEY
) STRICT;

-- Subjects (a pool, a storage, a guest; the host itself is '') named once: packed rows
-- refer to them by number.
CREATE TABLE rollup_subjects (
    id INTEGER PRIMARY KEY,
    grp TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (grp, name)
) STRICT;

-- Existing hour partitions (`roll_<group>_h_p<part>`) are the open tables of the new tier
-- as they are: still read as before, and packed by the writer's first packing pass, a
-- host and a partition per step, between ingest batches.
