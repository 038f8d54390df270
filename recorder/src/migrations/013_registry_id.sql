-- Which copy of the database the registry is read from: random, and given anew to every
-- backup (`proxmox-monitor backup`). A running server installs credentials when this id
-- or credentials_version changes, so a backup restored in place under it (SQLite's
-- `.restore`), whose version may be lower than the one it replaces, is installed too.
INSERT INTO meta (key, value) VALUES ('registry_id', random());
