-- The storage target that holds each cluster's objects, fixed while it has any. Clusters
-- from before targets existed are on `default`, the target `storage_url` defines.
ALTER TABLE clusters ADD COLUMN target TEXT NOT NULL DEFAULT 'default';
