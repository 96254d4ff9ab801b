-- Write-once targets (S3 Object Lock): until when each object is locked, NULL when it
-- is not. Retention never sends a delete before then, so no delete marker ever hides
-- locked data; a backup's is the latest of its objects'.
ALTER TABLE wal_files ADD COLUMN retain_until TEXT;
ALTER TABLE wal_deletions ADD COLUMN retain_until TEXT;
ALTER TABLE backups ADD COLUMN retain_until TEXT;
