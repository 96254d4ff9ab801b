-- Each cluster's WAL totals, kept by triggers so the fleet view reads one row per
-- cluster instead of aggregating every WAL file on each request. Statement-level
-- triggers: a bulk insert or an expiry updates each cluster's row once.
CREATE TABLE wal_stats (
    cluster          TEXT PRIMARY KEY REFERENCES clusters (name),
    files            BIGINT NOT NULL,
    bytes            BIGINT NOT NULL,
    -- The newest segment (not history or backup label) still in the catalog.
    last_wal         TEXT COLLATE "C",
    -- When the newest file was archived; expiry leaves it.
    last_archived_at TIMESTAMPTZ
);

INSERT INTO wal_stats (cluster, files, bytes, last_wal, last_archived_at)
SELECT cluster, count(*), sum(stored_size),
       max(name) FILTER (WHERE kind = 'segment'), max(archived_at)
FROM wal_files GROUP BY cluster;

CREATE FUNCTION wal_stats_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wal_stats AS s (cluster, files, bytes, last_wal, last_archived_at)
    SELECT cluster, count(*), sum(stored_size),
           max(name) FILTER (WHERE kind = 'segment'), max(archived_at)
    FROM new_rows GROUP BY cluster
    ON CONFLICT (cluster) DO UPDATE SET
        files = s.files + excluded.files,
        bytes = s.bytes + excluded.bytes,
        last_wal = GREATEST(s.last_wal, excluded.last_wal),
        last_archived_at = GREATEST(s.last_archived_at, excluded.last_archived_at);
    RETURN NULL;
END $$;

CREATE TRIGGER wal_stats_inserted AFTER INSERT ON wal_files
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION wal_stats_inserted();

CREATE FUNCTION wal_stats_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE wal_stats s SET
        files = s.files - d.files,
        bytes = s.bytes - d.bytes,
        last_wal = CASE WHEN d.last_wal >= s.last_wal
                        THEN (SELECT max(name) FROM wal_files w
                              WHERE w.cluster = s.cluster AND w.kind = 'segment')
                        ELSE s.last_wal END
    FROM (SELECT cluster, count(*) AS files, sum(stored_size) AS bytes,
                 max(name) FILTER (WHERE kind = 'segment') AS last_wal
          FROM old_rows GROUP BY cluster) d
    WHERE s.cluster = d.cluster;
    RETURN NULL;
END $$;

CREATE TRIGGER wal_stats_deleted AFTER DELETE ON wal_files
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION wal_stats_deleted();
