-- Restore drills: a runner restores a cluster's newest backup into scratch space,
-- recovers it to the end of the archive with archiving off, starts and checks it.
-- The cluster's drill policy (JSON; NULL follows the gateway's) and a drill asked for.
ALTER TABLE clusters ADD COLUMN drill_policy TEXT;
ALTER TABLE clusters ADD COLUMN drill_requested_at TEXT;
-- `outcome`: what the runner reported (JSON), or why the gateway ended the drill.
CREATE TABLE drills (
    id          TEXT PRIMARY KEY,
    cluster     TEXT NOT NULL,
    runner      TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT NOT NULL
) STRICT;
-- One running drill per cluster, whichever runner or gateway replica claims it.
CREATE UNIQUE INDEX drills_running ON drills (cluster) WHERE status = 'running';
CREATE INDEX drills_by_cluster ON drills (cluster, status, started_at);
-- Runners seen: once one is, every cluster is expected to be drilled on schedule.
CREATE TABLE drill_runners (
    name       TEXT PRIMARY KEY,
    majors     TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL
) STRICT;
