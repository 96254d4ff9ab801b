-- Catalog of the PostgreSQL backend. Object keys are not stored: they are derived from
-- (cluster, name) by the storage layout, so the bucket alone can rebuild this.

CREATE TABLE clusters (
    name              TEXT PRIMARY KEY,
    -- The 64-bit system identifier stored as its two's-complement bit pattern.
    system_identifier BIGINT,
    segment_size      BIGINT,
    pg_version        INTEGER,
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE wal_files (
    cluster      TEXT NOT NULL REFERENCES clusters (name),
    -- Byte order, like SQLite: WAL names sort by timeline and position.
    name         TEXT COLLATE "C" NOT NULL,
    kind         TEXT NOT NULL,
    timeline     BIGINT NOT NULL,
    size         BIGINT NOT NULL,
    stored_size  BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    archived_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cluster, name)
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    -- Comma-separated cluster names, or `*`.
    clusters    TEXT NOT NULL,
    role        TEXT NOT NULL,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
