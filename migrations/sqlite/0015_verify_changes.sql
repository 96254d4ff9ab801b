-- Change counters, so scheduled verification reads only what changed since its last run.
-- They only grow: `inserted` and `deleted` count WAL rows, `backup_changes` backups
-- created, deleted or changing status. Totals would not do: one file in and one out
-- leaves the totals as they were.
ALTER TABLE wal_stats ADD COLUMN inserted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE wal_stats ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE wal_stats ADD COLUMN backup_changes INTEGER NOT NULL DEFAULT 0;

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

-- Heartbeats and lock extensions change nothing verification reads.
CREATE TRIGGER backups_inserted AFTER INSERT ON backups BEGIN
    INSERT INTO wal_stats (cluster, files, bytes, backup_changes) VALUES (NEW.cluster, 0, 0, 1)
    ON CONFLICT (cluster) DO UPDATE SET backup_changes = backup_changes + 1;
END;
CREATE TRIGGER backups_deleted AFTER DELETE ON backups BEGIN
    INSERT INTO wal_stats (cluster, files, bytes, backup_changes) VALUES (OLD.cluster, 0, 0, 1)
    ON CONFLICT (cluster) DO UPDATE SET backup_changes = backup_changes + 1;
END;
CREATE TRIGGER backups_status AFTER UPDATE OF status ON backups BEGIN
    INSERT INTO wal_stats (cluster, files, bytes, backup_changes) VALUES (NEW.cluster, 0, 0, 1)
    ON CONFLICT (cluster) DO UPDATE SET backup_changes = backup_changes + 1;
END;
