-- The last verification of each cluster: when, and the report (JSON).
CREATE TABLE verifications (
    cluster     TEXT PRIMARY KEY,
    verified_at TIMESTAMPTZ NOT NULL,
    ok          BIGINT NOT NULL,
    report      TEXT NOT NULL
);
