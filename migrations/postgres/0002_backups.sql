-- Base backups. A row is `uploading` while its objects are written, `complete` once its
-- sentinel object is durable, `deleting` while its objects are removed.
CREATE TABLE backups (
    cluster           TEXT NOT NULL REFERENCES clusters (name),
    id                TEXT COLLATE "C" NOT NULL,
    status            TEXT NOT NULL,
    label             TEXT NOT NULL,
    method            TEXT NOT NULL,
    from_standby      BIGINT NOT NULL,
    start_lsn         BIGINT NOT NULL,
    start_timeline    BIGINT NOT NULL,
    checkpoint_lsn    BIGINT NOT NULL,
    end_lsn           BIGINT,
    end_timeline      BIGINT,
    system_identifier BIGINT,
    size              BIGINT NOT NULL,
    stored_size       BIGINT NOT NULL,
    sha256            TEXT NOT NULL,
    has_manifest      BIGINT NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    PRIMARY KEY (cluster, id)
);
