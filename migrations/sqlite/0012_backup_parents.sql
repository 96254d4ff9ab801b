-- Incremental backups (PostgreSQL 17's pg_basebackup --incremental): the backup each
-- was taken against, NULL for a full backup. A backup with a dependant that is not
-- being deleted is never deleted itself, so a kept chain stays whole.
ALTER TABLE backups ADD COLUMN parent TEXT;
