-- Each cluster's WAL totals, kept by triggers so the fleet view reads one row per
-- cluster instead of aggregating every WAL file on each request.
CREATE TABLE wal_stats (
    cluster          TEXT PRIMARY KEY NOT NULL REFERENCES clusters (name),
    files            INTEGER NOT NULL,
    bytes            INTEGER NOT NULL,
    -- The newest segment (not history or backup label) still in the catalog.
    last_wal         TEXT,
    -- When the newest file was archived; expiry leaves it.
    last_archived_at TEXT
) STRICT;

INSERT INTO wal_stats (cluster, files, bytes, last_wal, last_archived_at)
SELECT cluster, count(*), sum(stored_size),
       max(CASE WHEN kind = 'segment' THEN name END), max(archived_at)
FROM wal_files GROUP BY cluster;

CREATE TRIGGER wal_stats_inserted AFTER INSERT ON wal_files BEGIN
    INSERT INTO wal_stats (cluster, files, bytes, last_wal, last_archived_at)
    VALUES (NEW.cluster, 1, NEW.stored_size,
            CASE WHEN NEW.kind = 'segment' THEN NEW.name END, NEW.archived_at)
    ON CONFLICT (cluster) DO UPDATE SET
        files = files + 1,
        bytes = bytes + excluded.bytes,
        last_wal = CASE WHEN excluded.last_wal > coalesce(last_wal, '')
                        THEN excluded.last_wal ELSE last_wal END,
        last_archived_at = CASE WHEN excluded.last_archived_at > coalesce(last_archived_at, '')
                                THEN excluded.last_archived_at ELSE last_archived_at END;
END;

CREATE TRIGGER wal_stats_deleted AFTER DELETE ON wal_files BEGIN
    UPDATE wal_stats SET
        files = files - 1,
        bytes = bytes - OLD.stored_size,
        last_wal = CASE WHEN last_wal = OLD.name
                        THEN (SELECT max(name) FROM wal_files
                              WHERE cluster = OLD.cluster AND kind = 'segment')
                        ELSE last_wal END
    WHERE cluster = OLD.cluster;
END;
