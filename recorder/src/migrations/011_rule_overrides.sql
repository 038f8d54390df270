-- Alerting's per-rule settings (the `alerting` crate owns these rows): a rule disabled or
-- its numbers changed for everyone (host_id ''), for one host (subject ''), or for one
-- subject on a host (a pool, storage, guest, disk or sensor). NULL: not set at this
-- scope, the next less specific one applies (subject > host > global > built-in).
CREATE TABLE rule_overrides (
    rule TEXT NOT NULL,
    host_id TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    -- 0: disabled, 1: enabled (undoes a broader disable).
    enabled INTEGER,
    -- Numeric rules: where warning starts, where critical starts, and where an active
    -- alert clears (below the trigger: the hysteresis).
    trigger REAL,
    critical REAL,
    clear REAL,
    -- How long the condition must hold before the alert fires.
    pending_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (rule, host_id, subject),
    CHECK (subject = '' OR host_id != '')
) STRICT;
