-- Catalog of the embedded SQLite backend. Object keys are not stored: they are derived
-- from (cluster, name) by the storage layout, so the bucket alone can rebuild this.

CREATE TABLE clusters (
    name              TEXT PRIMARY KEY NOT NULL,
    -- The 64-bit system identifier stored as its two's-complement bit pattern.
    system_identifier INTEGER,
    segment_size      INTEGER,
    pg_version        INTEGER,
    created_at        TEXT NOT NULL
) STRICT;

CREATE TABLE wal_files (
    cluster      TEXT NOT NULL REFERENCES clusters (name),
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    timeline     INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    stored_size  INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    archived_at  TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
) STRICT;

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    -- Comma-separated cluster names, or `*`.
    clusters    TEXT NOT NULL,
    role        TEXT NOT NULL,
    description TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
) STRICT;
