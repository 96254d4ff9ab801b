-- Change counters, so scheduled verification reads only what changed since its last run.
-- They only grow: `inserted` and `deleted` count WAL rows, `backup_stats.changes`
-- backups created, deleted or changing status. Totals would not do: one file in and one
-- out leaves the totals as they were.
ALTER TABLE wal_stats
    ADD COLUMN inserted BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN deleted BIGINT NOT NULL DEFAULT 0;

-- Each cluster's complete backups in one row, kept by trigger like `wal_stats`: the
-- fleet view read them by aggregating every backup row, 150 ms at 10,000 clusters.
CREATE TABLE backup_stats (
    cluster        TEXT PRIMARY KEY REFERENCES clusters (name),
    complete       BIGINT NOT NULL,
    bytes          BIGINT NOT NULL,
    oldest         TIMESTAMPTZ,
    newest         TIMESTAMPTZ,
    -- The newest complete backup's stored size and start.
    newest_size    BIGINT,
    newest_started TIMESTAMPTZ,
    changes        BIGINT NOT NULL DEFAULT 0
);

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
    changed TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD.cluster;
    ELSE
        changed := NEW.cluster;
    END IF;
    INSERT INTO backup_stats AS s
        (cluster, complete, bytes, oldest, newest, newest_size, newest_started, changes)
    SELECT changed, count(*), COALESCE(sum(stored_size), 0), min(finished_at), max(finished_at),
           (SELECT n.stored_size FROM backups n WHERE n.cluster = changed
              AND n.status = 'complete' ORDER BY n.finished_at DESC LIMIT 1),
           (SELECT n.started_at FROM backups n WHERE n.cluster = changed
              AND n.status = 'complete' ORDER BY n.finished_at DESC LIMIT 1),
           1
    FROM backups WHERE cluster = changed AND status = 'complete'
    ON CONFLICT (cluster) DO UPDATE SET complete = excluded.complete, bytes = excluded.bytes,
        oldest = excluded.oldest, newest = excluded.newest, newest_size = excluded.newest_size,
        newest_started = excluded.newest_started, changes = s.changes + 1;
    RETURN NULL;
END $$;

-- Every statement that changes a backup's figures sets its status too; heartbeats and
-- lock extensions change nothing either table holds.
CREATE TRIGGER backups_changed AFTER INSERT OR DELETE OR UPDATE OF status ON backups
    FOR EACH ROW EXECUTE FUNCTION backups_changed();

INSERT INTO backup_stats (cluster, complete, bytes, oldest, newest, newest_size, newest_started)
SELECT cluster, count(*) FILTER (WHERE status = 'complete'),
       COALESCE(sum(stored_size) FILTER (WHERE status = 'complete'), 0),
       min(finished_at) FILTER (WHERE status = 'complete'),
       max(finished_at) FILTER (WHERE status = 'complete'),
       (SELECT n.stored_size FROM backups n WHERE n.cluster = b.cluster
          AND n.status = 'complete' ORDER BY n.finished_at DESC LIMIT 1),
       (SELECT n.started_at FROM backups n WHERE n.cluster = b.cluster
          AND n.status = 'complete' ORDER BY n.finished_at DESC LIMIT 1)
FROM backups b GROUP BY cluster;
