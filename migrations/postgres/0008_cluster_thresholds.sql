-- A cluster's own status thresholds (JSON); NULL follows the gateway's.
ALTER TABLE clusters ADD COLUMN thresholds TEXT;
