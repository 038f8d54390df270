-- Read-only API tokens for scripts and Prometheus (`proxmox-monitor token add NAME`),
-- sent as `Authorization: Bearer <token>` to `/api/v1/*` and `/metrics`. Stored as the
-- SHA-256 of the token, like host tokens: the token itself is shown once and never kept.
-- Removing the row revokes the token at the next request (the dashboard looks it up on
-- every request, no cache).
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
) STRICT;
