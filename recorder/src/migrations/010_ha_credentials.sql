-- Home Assistant credentials (`proxmox-monitor ha add NAME`): read `pmon/v1/#` and the
-- discovery prefix, publish only Home Assistant's birth and will. Names share one
-- namespace with hosts and observers (checked by `hosts::add_credential`).
CREATE TABLE ha_clients (
    name TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;
