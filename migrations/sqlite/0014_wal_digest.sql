-- WAL files are hashed with BLAKE3 from now on: the column holds a digest named by its
-- algorithm (`blake3:<hex>`); rows from before keep their bare SHA-256 hex, read as such.
ALTER TABLE wal_files RENAME COLUMN sha256 TO digest;
