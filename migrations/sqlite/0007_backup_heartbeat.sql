-- Backup uploads beat while data arrives; an `uploading` row that has not beaten for
-- a while belongs to a gateway that died mid-upload, and retention removes it.
ALTER TABLE backups ADD COLUMN heartbeat_at TEXT;
