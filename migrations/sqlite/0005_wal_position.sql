-- Retention and verification find WAL by position (log and segment, 16 hex digits) on
-- every timeline at once: `substr(name, 9, 16)`, as the catalog's queries spell it.
CREATE INDEX wal_files_position ON wal_files (cluster, substr(name, 9, 16));
