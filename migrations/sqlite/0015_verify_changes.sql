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

-- Every cluster's row as it should now be, its change counter one up: each trigger below
-- writes its cluster's.
CREATE VIEW backup_stats_next AS
SELECT c.name AS cluster,
       (SELECT count(*) FROM backups b
        WHERE b.cluster = c.name AND b.status = 'complete') AS complete,
       (SELECT COALESCE(sum(b.stored_size), 0) FROM backups b
        WHERE b.cluster = c.name AND b.status = 'complete') AS bytes,
       (SELECT min(b.finished_at) FROM backups b
        WHERE b.cluster = c.name AND b.status = 'complete') AS oldest,
       (SELECT max(b.finished_at) FROM backups b
        WHERE b.cluster = c.name AND b.status = 'complete') AS newest,
       (SELECT b.stored_size FROM backups b WHERE b.cluster = c.name
          AND b.status = 'complete' ORDER BY b.finished_at DESC LIMIT 1) AS newest_size,
       (SELECT b.started_at FROM backups b WHERE b.cluster = c.name
          AND b.status = 'complete' ORDER BY b.finished_at DESC LIMIT 1) AS newest_started,
       COALESCE((SELECT s.changes FROM backup_stats s WHERE s.cluster = c.name), 0) + 1
           AS changes
FROM clusters c;

INSERT INTO backup_stats SELECT * FROM backup_stats_next
WHERE cluster IN (SELECT cluster FROM backups);

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
    INSERT OR REPLACE INTO backup_stats SELECT * FROM backup_stats_next WHERE cluster = NEW.cluster;
END;
CREATE TRIGGER backups_deleted AFTER DELETE ON backups BEGIN
    INSERT OR REPLACE INTO backup_stats SELECT * FROM backup_stats_next WHERE cluster = OLD.cluster;
END;
CREATE TRIGGER backups_status AFTER UPDATE OF status ON backups BEGIN
    INSERT OR REPLACE INTO backup_stats SELECT * FROM backup_stats_next WHERE cluster = NEW.cluster;
END;
