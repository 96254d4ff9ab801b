-- The last verification of each cluster: when, and the report (JSON).
CREATE TABLE verifications (
    cluster     TEXT PRIMARY KEY NOT NULL,
    verified_at TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    report      TEXT NOT NULL
) STRICT;
