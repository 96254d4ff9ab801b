-- Change counters, so scheduled verification reads only what changed since its last run.
-- They only grow: `inserted` and `deleted` count WAL rows, `backup_changes` backups
-- created, deleted or changing status. Totals would not do: one file in and one out
-- leaves the totals as they were.
ALTER TABLE wal_stats
    ADD COLUMN inserted BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN deleted BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN backup_changes BIGINT NOT NULL DEFAULT 0;

-- What the last verification saw: the counters, and the newest segment it read (NULL
-- when the newest file was not a segment). Reports from before have none, so their
-- clusters are verified whole once.
ALTER TABLE verifications
    ADD COLUMN wal_inserted BIGINT,
    ADD COLUMN wal_deleted BIGINT,
    ADD COLUMN backup_changes BIGINT,
    ADD COLUMN newest TEXT COLLATE "C";

CREATE OR REPLACE FUNCTION wal_stats_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wal_stats AS s (cluster, files, bytes, last_wal, last_archived_at, inserted)
    SELECT cluster, count(*), sum(stored_size),
           max(name) FILTER (WHERE kind = 'segment'), max(archived_at), count(*)
    FROM new_rows GROUP BY cluster
    ON CONFLICT (cluster) DO UPDATE SET
        files = s.files + excluded.files,
        bytes = s.bytes + excluded.bytes,
        last_wal = GREATEST(s.last_wal, excluded.last_wal),
        last_archived_at = GREATEST(s.last_archived_at, excluded.last_archived_at),
        inserted = s.inserted + excluded.inserted;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION wal_stats_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE wal_stats s SET
        files = s.files - d.files,
        bytes = s.bytes - d.bytes,
        last_wal = CASE WHEN d.last_wal >= s.last_wal
                        THEN (SELECT max(name) FROM wal_files w
                              WHERE w.cluster = s.cluster AND w.kind = 'segment')
                        ELSE s.last_wal END,
        deleted = s.deleted + d.files
    FROM (SELECT cluster, count(*) AS files, sum(stored_size) AS bytes,
                 max(name) FILTER (WHERE kind = 'segment') AS last_wal
          FROM old_rows GROUP BY cluster) d
    WHERE s.cluster = d.cluster;
    RETURN NULL;
END $$;

CREATE FUNCTION backups_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed TEXT := CASE WHEN TG_OP = 'DELETE' THEN OLD.cluster ELSE NEW.cluster END;
BEGIN
    INSERT INTO wal_stats AS s (cluster, files, bytes, backup_changes)
    VALUES (changed, 0, 0, 1)
    ON CONFLICT (cluster) DO UPDATE SET backup_changes = s.backup_changes + 1;
    RETURN NULL;
END $$;

-- Heartbeats and lock extensions change nothing verification reads.
CREATE TRIGGER backups_changed AFTER INSERT OR DELETE OR UPDATE OF status ON backups
    FOR EACH ROW EXECUTE FUNCTION backups_changed();
