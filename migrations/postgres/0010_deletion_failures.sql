-- Objects that retention or a purge failed to delete, with the last error. Later runs
-- retry them; one object that cannot go never holds up the others, and the cluster
-- page and metrics show what is stuck and since when.
CREATE TABLE deletion_failures (
    cluster         TEXT NOT NULL,
    object          TEXT COLLATE "C" NOT NULL,
    error           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    first_failed_at TIMESTAMPTZ NOT NULL,
    last_failed_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cluster, object)
);
