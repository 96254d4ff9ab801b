-- Retention. A cluster's own policy (JSON), or NULL for the fleet default.
ALTER TABLE clusters ADD COLUMN retention TEXT;

-- WAL files retention has taken out of the catalog whose objects may still exist. Rows
-- move here and out of wal_files in one transaction, so no restore plan sees them, and
-- leave once their object is deleted: a run that dies half-way is finished by the next.
CREATE TABLE wal_deletions (
    cluster TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
) STRICT;

-- Leases on background jobs, so that one gateway replica runs each at a time.
CREATE TABLE job_leases (
    job    TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    -- Unix seconds.
    until  INTEGER NOT NULL
) STRICT;
