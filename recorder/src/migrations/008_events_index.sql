-- The fleet timeline filtered by kind alone (`read::fleet_events`): without this, a rare
-- kind is found by walking every event newest first.
CREATE INDEX events_kind_ts ON events (kind, ts_ms);
