-- Change counters, so scheduled verification reads only what changed since its last run.
-- They only grow: `inserted` and `deleted` count WAL rows, `backup_stats.changes`
-- backups created, deleted or changing status. Totals would not do: one file in and one
-- out leaves the totals as they were.
ALTER TABLE wal_stats ADD COLUMN inserted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE wal_stats ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;

-- Each cluster's complete backups in one row, kept by trigger like `wal_stats`: the
-- fleet view read them by aggregating every backup row.
CREATE TABLE backup_stats (
    cluster        TEXT PRIMARY KEY NOT NULL REFERENCES clusters (name),
    complete       INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    oldest         TEXT,
    newest         TEXT,
    -- The newest complete backup's stored size and start.
    newest_size    INTEGER,
    newest_started TEXT,
    changes        INTEGER NOT NULL DEFAULT 0
) STRICT;

-- A cluster's row, recomputed from its backups (`$cluster`, in each trigger below).
CREATE VIEW backup_stats_now AS
SELECT cluster, count(*) AS complete, COALESCE(sum(stored_size), 0) AS bytes,
       min(finished_at) AS oldest, max(finished_at) AS newest,
       (SELECT n.stored_size FROM backups n WHERE n.cluster = b.cluster
          AND n.status = 'complete' ORDER BY n.finished_at DESC LIMIT 1) AS newest_size,
       (SELECT n.started_at FROM backups n WHERE n.cluster = b.cluster
          AND n.status = 'complete' ORDER BY n.finished_at DESC LIMIT 1) AS newest_started
FROM backups b WHERE status = 'complete' GROUP BY cluster;

INSERT INTO backup_stats (cluster, complete, bytes, oldest, newest, newest_size, newest_started)
SELECT * FROM backup_stats_now;

-- What the last verification saw: the counters, and the newest segment it read (NULL
-- when the newest file was not a segment). Reports from before have none, so their
-- clusters are verified whole once.
ALTER TABLE verifications ADD COLUMN wal_inserted INTEGER;
ALTER TABLE verifications ADD COLUMN wal_deleted INTEGER;
ALTER TABLE verifications ADD COLUMN backup_changes INTEGER;
ALTER TABLE verifications ADD COLUMN newest TEXT;

DROP TRIGGER wal_stats_inserted;
CREATE TRIGGER wal_stats_inserted AFTER INSERT ON wal_files BEGIN
    INSERT INTO wal_stats (cluster, files, bytes, last_wal, last_archived_at, inserted)
    VALUES (NEW.cluster, 1, NEW.stored_size,
            CASE WHEN NEW.kind = 'segment' THEN NEW.name END, NEW.archived_at, 1)
    ON CONFLICT (cluster) DO UPDATE SET
        files = files + 1,
        bytes = bytes + excluded.bytes,
        last_wal = CASE WHEN excluded.last_wal > coalesce(last_wal, '')
                        THEN excluded.last_wal ELSE last_wal END,
        last_archived_at = CASE WHEN excluded.last_archived_at > coalesce(last_archived_at, '')
                                THEN excluded.last_archived_at ELSE last_archived_at END,
        inserted = inserted + 1;
END;

DROP TRIGGER wal_stats_deleted;
CREATE TRIGGER wal_stats_deleted AFTER DELETE ON wal_files BEGIN
    UPDATE wal_stats SET
        files = files - 1,
        bytes = bytes - OLD.stored_size,
        last_wal = CASE WHEN last_wal = OLD.name
                        THEN (SELECT max(name) FROM wal_files
                              WHERE cluster = OLD.cluster AND kind = 'segment')
                        ELSE last_wal END,
        deleted = deleted + 1
    WHERE cluster = OLD.cluster;
END;

-- Every statement that changes a backup's figures sets its status too; heartbeats and
-- lock extensions change nothing either table holds.
CREATE TRIGGER backups_inserted AFTER INSERT ON backups BEGIN
    INSERT INTO backup_stats (cluster, complete, bytes, changes) VALUES (NEW.cluster, 0, 0, 1)
    ON CONFLICT (cluster) DO UPDATE SET complete = 0, bytes = 0, oldest = NULL, newest = NULL,
        newest_size = NULL, newest_started = NULL, changes = changes + 1;
    UPDATE backup_stats SET (complete, bytes, oldest, newest, newest_size, newest_started) =
        (SELECT complete, bytes, oldest, newest, newest_size, newest_started
         FROM backup_stats_now n WHERE n.cluster = NEW.cluster)
    WHERE cluster = NEW.cluster AND EXISTS (SELECT 1 FROM backup_stats_now n WHERE n.cluster = NEW.cluster);
END;
CREATE TRIGGER backups_deleted AFTER DELETE ON backups BEGIN
    INSERT INTO backup_stats (cluster, complete, bytes, changes) VALUES (OLD.cluster, 0, 0, 1)
    ON CONFLICT (cluster) DO UPDATE SET complete = 0, bytes = 0, oldest = NULL, newest = NULL,
        newest_size = NULL, newest_started = NULL, changes = changes + 1;
    UPDATE backup_stats SET (complete, bytes, oldest, newest, newest_size, newest_started) =
        (SELECT complete, bytes, oldest, newest, newest_size, newest_started
         FROM backup_stats_now n WHERE n.cluster = OLD.cluster)
    WHERE cluster = OLD.cluster AND EXISTS (SELECT 1 FROM backup_stats_now n WHERE n.cluster = OLD.cluster);
END;
CREATE TRIGGER backups_status AFTER UPDATE OF status ON backups BEGIN
    INSERT INTO backup_stats (cluster, complete, bytes, changes) VALUES (NEW.cluster, 0, 0, 1)
    ON CONFLICT (cluster) DO UPDATE SET complete = 0, bytes = 0, oldest = NULL, newest = NULL,
        newest_size = NULL, newest_started = NULL, changes = changes + 1;
    UPDATE backup_stats SET (complete, bytes, oldest, newest, newest_size, newest_started) =
        (SELECT complete, bytes, oldest, newest, newest_size, newest_started
         FROM backup_stats_now n WHERE n.cluster = NEW.cluster)
    WHERE cluster = NEW.cluster AND EXISTS (SELECT 1 FROM backup_stats_now n WHERE n.cluster = NEW.cluster);
END;
