-- Base backups. A row is `uploading` while its objects are written, `complete` once its
-- sentinel object is durable, `deleting` while its objects are removed.
CREATE TABLE backups (
    cluster           TEXT NOT NULL REFERENCES clusters (name),
    id                TEXT NOT NULL,
    status            TEXT NOT NULL,
    label             TEXT NOT NULL,
    method            TEXT NOT NULL,
    from_standby      INTEGER NOT NULL,
    start_lsn         INTEGER NOT NULL,
    start_timeline    INTEGER NOT NULL,
    checkpoint_lsn    INTEGER NOT NULL,
    end_lsn           INTEGER,
    end_timeline      INTEGER,
    system_identifier INTEGER,
    size              INTEGER NOT NULL,
    stored_size       INTEGER NOT NULL,
    sha256            TEXT NOT NULL,
    has_manifest      INTEGER NOT NULL,
    started_at        TEXT NOT NULL,
    finished_at       TEXT,
    PRIMARY KEY (cluster, id)
) STRICT;
