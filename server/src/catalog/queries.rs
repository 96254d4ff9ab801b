//! Every statement the catalog runs, as constants.
//!
//! Both backends speak the same SQL here (`$n` placeholders, `ON CONFLICT`, `RETURNING`);
//! the few statements that differ have one constant per backend in [`sqlite`] and
//! [`postgres`]. Fragments several statements share are macros, so that `concat!` can
//! build each statement at compile time.

/// A WAL file's segment position as the catalog compares it: the 16 hex digits after
/// the timeline in its name (log id and segment), as text, which orders like the
/// positions themselves. The `wal_files_position` index of both migrations is on this
/// very expression, so every query must spell it the same way to use it.
macro_rules! name_position {
    () => {
        "substr(name, 9, 16)"
    };
}

/// The text form of [`name_position!`], for checks.
#[cfg(test)]
pub const NAME_POSITION: &str = name_position!();

macro_rules! cluster_columns {
    () => {
        "name, system_identifier, segment_size, pg_version, created_at, retention, target, \
         thresholds, drill_policy, drill_requested_at"
    };
}

/// A cluster's row of `wal_stats` (kept by triggers), joined as `w`.
macro_rules! stats_columns {
    () => {
        "CAST(COALESCE(w.files, 0) AS BIGINT) AS wal_files, \
         CAST(COALESCE(w.bytes, 0) AS BIGINT) AS wal_bytes, \
         w.last_wal AS last_wal, w.last_archived_at AS last_archived_at"
    };
}

macro_rules! wal_columns {
    () => {
        "name, size, stored_size, digest, archived_at, retain_until"
    };
}

macro_rules! backup_columns {
    () => {
        "id, status, label, method, from_standby, start_lsn, start_timeline, checkpoint_lsn, \
         end_lsn, end_timeline, system_identifier, size, stored_size, sha256, has_manifest, \
         started_at, finished_at, retain_until, parent"
    };
}

macro_rules! token_columns {
    () => {
        "id, clusters, role, description, created_at, expires_at, revoked_at"
    };
}

/// WAL files that retention may expire (`$1` cluster): all but history files, before
/// position `$2`.
macro_rules! expirable {
    () => {
        concat!(
            "cluster = $1 AND kind <> 'history' AND ",
            name_position!(),
            " < $2"
        )
    };
}

/// WAL archived per UTC day, `$day` being the day of `archived_at` as `YYYY-MM-DD`.
macro_rules! wal_volume {
    ($day:literal) => {
        concat!(
            "SELECT ",
            $day,
            " AS day, count(*) AS files, CAST(sum(stored_size) AS BIGINT) AS bytes \
             FROM wal_files WHERE cluster = $1 AND archived_at >= $2 GROUP BY 1 ORDER BY 1"
        )
    };
}

pub const PING: &str = "SELECT 1";

pub const CLUSTER: &str = concat!(
    "SELECT ",
    cluster_columns!(),
    " FROM clusters WHERE name = $1"
);

/// `$1` name, `$2` creation time, `$3` target.
pub const ENSURE_CLUSTER: &str = "INSERT INTO clusters (name, created_at, target) \
     VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";

/// `$1` name, then system identifier, segment size and version, each set only if unset.
pub const PIN_CLUSTER: &str = concat!(
    "UPDATE clusters SET system_identifier = COALESCE(system_identifier, $2), \
       segment_size = COALESCE(segment_size, $3), pg_version = COALESCE(pg_version, $4) \
     WHERE name = $1 RETURNING ",
    cluster_columns!()
);

/// `$1` name, `$2` target: only while the cluster holds no objects.
pub const SET_TARGET: &str = "UPDATE clusters SET target = $2 WHERE name = $1 AND (target = $2 OR ( \
       NOT EXISTS (SELECT 1 FROM wal_files WHERE cluster = $1) \
       AND NOT EXISTS (SELECT 1 FROM backups WHERE cluster = $1) \
       AND NOT EXISTS (SELECT 1 FROM wal_deletions WHERE cluster = $1)))";

pub const CLUSTERS: &str = concat!(
    "SELECT ",
    cluster_columns!(),
    ", ",
    stats_columns!(),
    " FROM clusters c LEFT JOIN wal_stats w ON w.cluster = c.name ORDER BY c.name"
);

/// One row even for a cluster without WAL (or without a row at all).
pub const CLUSTER_STATS: &str = concat!(
    "SELECT ",
    stats_columns!(),
    " FROM (SELECT 1 AS one) o LEFT JOIN wal_stats w ON w.cluster = $1"
);

/// `$1` a cluster, or NULL for the whole fleet: the totals triggers keep, for clusters
/// with a complete backup.
pub const BACKUP_STATS: &str = "SELECT cluster, complete AS n, bytes, oldest, newest, \
       newest_size, newest_started \
     FROM backup_stats WHERE complete > 0 AND ($1 IS NULL OR cluster = $1)";

pub const WAL: &str = concat!(
    "SELECT ",
    wal_columns!(),
    " FROM wal_files WHERE cluster = $1 AND name = $2"
);

/// The furthest segment position among a cluster's WAL files (`$1`), on any timeline:
/// the maximum of the indexed position expression, read from the index alone. History
/// files' `.history` sorts below every position.
pub const NEWEST_POSITION: &str = concat!(
    "SELECT max(",
    name_position!(),
    ") AS position FROM wal_files WHERE cluster = $1"
);

pub const INSERT_WAL: &str = "INSERT INTO wal_files \
       (cluster, name, kind, timeline, size, stored_size, digest, archived_at, retain_until) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (cluster, name) DO NOTHING";

/// Whether a WAL file's object waits for deletion (`$1` cluster, `$2` name).
pub const WAL_DELETING: &str =
    "SELECT 1 AS one FROM wal_deletions WHERE cluster = $1 AND name = $2";

/// `$2` timeline, `$3`..`$4` an inclusive name range, `$5` a cursor (each NULL for
/// none), `$6` how many.
pub const LIST_WAL: &str = concat!(
    "SELECT ",
    wal_columns!(),
    " FROM wal_files WHERE cluster = $1 \
       AND ($2 IS NULL OR timeline = $2) \
       AND ($3 IS NULL OR name >= $3) \
       AND ($4 IS NULL OR name <= $4) \
       AND ($5 IS NULL OR name > $5) \
     ORDER BY name LIMIT $6"
);

pub const INSERT_BACKUP: &str = "INSERT INTO backups (cluster, id, status, label, method, \
       from_standby, start_lsn, start_timeline, checkpoint_lsn, end_lsn, end_timeline, \
       system_identifier, size, stored_size, sha256, has_manifest, started_at, finished_at, \
       retain_until, parent) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
       $19, $20)";

/// The mutable fields, if the status is still `$12`. A backup becomes `deleting` only
/// while no backup that is not being deleted itself was taken against it: checked in
/// the same statement, so no incremental completes on a parent going away.
pub const UPDATE_BACKUP: &str = "UPDATE backups SET status = $3, end_lsn = $4, \
       end_timeline = $5, system_identifier = $6, size = $7, stored_size = $8, sha256 = $9, \
       has_manifest = $10, finished_at = $11, retain_until = $13 \
     WHERE cluster = $1 AND id = $2 AND status = $12 \
       AND ($3 <> 'deleting' OR NOT EXISTS (SELECT 1 FROM backups d \
         WHERE d.cluster = $1 AND d.parent = $2 AND d.status <> 'deleting'))";

pub const DELETE_BACKUP: &str = "DELETE FROM backups WHERE cluster = $1 AND id = $2";

pub const BEAT_BACKUP: &str = "UPDATE backups SET heartbeat_at = $3 WHERE cluster = $1 AND id = $2";

pub const STALE_UPLOADS: &str = "SELECT id FROM backups WHERE cluster = $1 \
     AND status = 'uploading' AND COALESCE(heartbeat_at, started_at) < $2 ORDER BY id";

pub const BACKUP: &str = concat!(
    "SELECT ",
    backup_columns!(),
    " FROM backups WHERE cluster = $1 AND id = $2"
);

pub const BACKUPS: &str = concat!(
    "SELECT ",
    backup_columns!(),
    " FROM backups WHERE cluster = $1 ORDER BY id DESC"
);

pub const SET_RETENTION: &str = "UPDATE clusters SET retention = $2 WHERE name = $1";

pub const SET_THRESHOLDS: &str = "UPDATE clusters SET thresholds = $2 WHERE name = $1";

pub const SET_DRILL_POLICY: &str = "UPDATE clusters SET drill_policy = $2 WHERE name = $1";

pub const WAL_BEFORE: &str = concat!(
    "SELECT count(*) AS files, CAST(coalesce(sum(stored_size), 0) AS BIGINT) AS bytes, \
       min(name) AS first, max(name) AS last FROM wal_files WHERE ",
    expirable!()
);

/// Expiry, in one transaction: copy the names to `wal_deletions`, then delete the rows.
pub const EXPIRE_WAL: [&str; 2] = [
    concat!(
        "INSERT INTO wal_deletions (cluster, name, retain_until) \
         SELECT cluster, name, retain_until FROM wal_files WHERE ",
        expirable!(),
        " ON CONFLICT DO NOTHING"
    ),
    concat!("DELETE FROM wal_files WHERE ", expirable!()),
];

/// [`EXPIRE_WAL`] for every file of cluster `$1`, history files too.
pub const EXPIRE_ALL_WAL: [&str; 2] = [
    "INSERT INTO wal_deletions (cluster, name, retain_until) \
     SELECT cluster, name, retain_until FROM wal_files WHERE cluster = $1 ON CONFLICT DO NOTHING",
    "DELETE FROM wal_files WHERE cluster = $1",
];

/// What a cluster still holds: WAL, backups, pending deletions.
pub const CLUSTER_HOLDS: &str = "SELECT (SELECT count(*) FROM wal_files WHERE cluster = $1) \
       + (SELECT count(*) FROM backups WHERE cluster = $1) \
       + (SELECT count(*) FROM wal_deletions WHERE cluster = $1)";

/// A cluster's rows beside `clusters` itself, deleted with it.
pub const DELETE_CLUSTER_ROWS: [&str; 5] = [
    "DELETE FROM verifications WHERE cluster = $1",
    "DELETE FROM drills WHERE cluster = $1",
    "DELETE FROM wal_stats WHERE cluster = $1",
    "DELETE FROM backup_stats WHERE cluster = $1",
    "DELETE FROM deletion_failures WHERE cluster = $1",
];

pub const DELETE_CLUSTER: &str = "DELETE FROM clusters WHERE name = $1";

/// `$2`: the name to start after, or `''` from the first.
pub const WAL_DELETIONS: &str = "SELECT name, retain_until FROM wal_deletions \
     WHERE cluster = $1 AND name > $2 ORDER BY name LIMIT $3";

pub const SET_BACKUP_LOCK: &str =
    "UPDATE backups SET retain_until = $3 WHERE cluster = $1 AND id = $2";

/// The latest lock end among cluster `$1`'s objects.
pub const LOCK_ENDS: [&str; 3] = [
    "SELECT max(retain_until) FROM wal_files WHERE cluster = $1",
    "SELECT max(retain_until) FROM wal_deletions WHERE cluster = $1",
    "SELECT max(retain_until) FROM backups WHERE cluster = $1",
];

/// `$1` cluster, `$2` object, `$3` error, `$4` when.
pub const RECORD_DELETION_FAILURE: &str = "INSERT INTO deletion_failures \
       (cluster, object, error, attempts, first_failed_at, last_failed_at) \
     VALUES ($1, $2, $3, 1, $4, $4) \
     ON CONFLICT (cluster, object) DO UPDATE SET error = excluded.error, \
       attempts = deletion_failures.attempts + 1, last_failed_at = excluded.last_failed_at";

pub const FORGET_DELETION_FAILURE: &str =
    "DELETE FROM deletion_failures WHERE cluster = $1 AND object = $2";

pub const DELETION_FAILURES: &str = "SELECT object, error, attempts, first_failed_at, \
       last_failed_at FROM deletion_failures WHERE cluster = $1 \
     ORDER BY first_failed_at, object";

pub const DELETION_FAILURE_STATS: &str = "SELECT cluster, count(*) AS n, \
       min(first_failed_at) AS since FROM deletion_failures GROUP BY cluster";

/// Followed by one placeholder per name from `$2`, comma-separated, and `)`.
pub const FORGET_WAL_DELETIONS: &str = "DELETE FROM wal_deletions WHERE cluster = $1 AND name IN (";

/// `$1` job, `$2` holder, `$3` until, `$4` now.
pub const TAKE_LEASE: &str = "INSERT INTO job_leases (job, holder, until) VALUES ($1, $2, $3) \
     ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, until = excluded.until \
     WHERE job_leases.until < $4 OR job_leases.holder = excluded.holder";

pub const LEASE_UNTIL: &str = "SELECT until FROM job_leases WHERE job = $1";

/// `$5`..`$8`: the counters and newest segment the verification saw.
pub const RECORD_VERIFICATION: &str = "INSERT INTO verifications \
       (cluster, verified_at, ok, report, wal_inserted, wal_deleted, backup_changes, newest) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (cluster) DO UPDATE SET verified_at = excluded.verified_at, \
       ok = excluded.ok, report = excluded.report, wal_inserted = excluded.wal_inserted, \
       wal_deleted = excluded.wal_deleted, backup_changes = excluded.backup_changes, \
       newest = excluded.newest";

/// The column, not the report's copy, says when: [`REFRESH_VERIFICATIONS`] moves it alone.
pub const LAST_VERIFICATION: &str =
    "SELECT verified_at, report FROM verifications WHERE cluster = $1";

pub const VERIFICATIONS: &str = "SELECT verified_at, report FROM verifications";

/// A cluster's counters, zero before it has a row (`$cluster`: a column or placeholder).
macro_rules! changes_of {
    ($cluster:literal) => {
        concat!(
            "COALESCE((SELECT w.inserted FROM wal_stats w WHERE w.cluster = ",
            $cluster,
            "), 0) AS inserted, \
             COALESCE((SELECT w.deleted FROM wal_stats w WHERE w.cluster = ",
            $cluster,
            "), 0) AS deleted, \
             COALESCE((SELECT b.changes FROM backup_stats b WHERE b.cluster = ",
            $cluster,
            "), 0) AS backup_changes"
        )
    };
}

/// Marks verified at `$1` every report whose cluster's archive is as its verification
/// saw it: its findings still hold. One statement, so a change committed meanwhile is
/// either seen here or left for the next run.
pub const REFRESH_VERIFICATIONS: &str = concat!(
    "UPDATE verifications SET verified_at = $1 WHERE cluster IN (\
       SELECT v.cluster FROM verifications v, (SELECT c.name, ",
    changes_of!("c.name"),
    " FROM clusters c) n WHERE n.name = v.cluster AND v.wal_inserted = n.inserted \
         AND v.wal_deleted = n.deleted AND v.backup_changes = n.backup_changes)"
);

/// Clusters whose archive changed since their last verification, or never verified,
/// with what that verification saw.
pub const STALE_VERIFICATIONS: &str = concat!(
    "SELECT n.name AS cluster, v.ok AS ok, v.wal_inserted AS wal_inserted, \
       v.wal_deleted AS wal_deleted, v.backup_changes AS backup_changes, v.newest AS newest \
     FROM (SELECT c.name, ",
    changes_of!("c.name"),
    " FROM clusters c) n LEFT JOIN verifications v ON v.cluster = n.name \
     WHERE v.wal_inserted IS NULL OR v.wal_deleted IS NULL OR v.backup_changes IS NULL \
       OR v.wal_inserted <> n.inserted OR v.wal_deleted <> n.deleted \
       OR v.backup_changes <> n.backup_changes \
     ORDER BY n.name"
);

/// Cluster `$1`'s counters.
macro_rules! changes {
    () => {
        concat!("SELECT ", changes_of!("$1"))
    };
}

pub const CHANGES: &str = changes!();

/// [`CHANGES`] with the names after `$2`, at most `$3`: one statement, so they agree.
pub const APPENDED: &str = concat!(
    "SELECT s.inserted AS inserted, s.deleted AS deleted, \
       s.backup_changes AS backup_changes, f.name AS name FROM (",
    changes!(),
    ") s LEFT JOIN wal_files f ON f.cluster = $1 AND f.name > $2 ORDER BY f.name LIMIT $3"
);

pub const INSERT_TOKEN: &str = "INSERT INTO tokens \
       (id, clusters, role, description, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

pub const TOKEN: &str = concat!("SELECT ", token_columns!(), " FROM tokens WHERE id = $1");

pub const TOKENS: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM tokens ORDER BY created_at, id"
);

pub const REVOKE_TOKEN: &str =
    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1";

/// Statements only SQLite's catalog runs.
pub mod sqlite {
    /// Timestamps are stored as text, in UTC: the date is the first ten characters.
    pub const WAL_VOLUME: &str = wal_volume!("substr(archived_at, 1, 10)");
}

/// Statements only PostgreSQL's catalog runs.
pub mod postgres {
    pub const WAL_VOLUME: &str =
        wal_volume!("to_char(archived_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')");
}

macro_rules! drill_columns {
    () => {
        "id, cluster, runner, status, started_at, lease_until, finished_at, outcome"
    };
}

/// `$2`: when; an earlier request stands.
pub const REQUEST_DRILL: &str = "UPDATE clusters \
     SET drill_requested_at = COALESCE(drill_requested_at, $2) WHERE name = $1";

/// Ends as skipped (the runner failed, not the archive), with outcome `$2`, the running
/// drills whose lease ended before `$1`.
pub const EXPIRE_DRILLS: &str = "UPDATE drills SET status = 'skipped', \
       finished_at = lease_until, outcome = $2 WHERE status = 'running' AND lease_until < $1";

/// Nothing when the cluster already has a running drill (the `drills_running` index).
pub const START_DRILL: &str = concat!(
    "INSERT INTO drills (",
    drill_columns!(),
    ") VALUES ($1, $2, $3, 'running', $4, $5, NULL, '{}') ON CONFLICT DO NOTHING"
);

/// Clears the request a drill of the cluster `$1` started at `$2` answers.
pub const ANSWER_DRILL_REQUEST: &str = "UPDATE clusters SET drill_requested_at = NULL \
     WHERE name = $1 AND drill_requested_at <= $2";

pub const RENEW_DRILL: &str =
    "UPDATE drills SET lease_until = $2 WHERE id = $1 AND status = 'running'";

/// `$2` status, `$3` when, `$4` outcome: only a drill still running.
pub const FINISH_DRILL: &str = "UPDATE drills SET status = $2, finished_at = $3, outcome = $4 \
     WHERE id = $1 AND status = 'running'";

pub const DRILL: &str = concat!("SELECT ", drill_columns!(), " FROM drills WHERE id = $1");

/// A cluster's newest `$2` drills.
pub const DRILLS: &str = concat!(
    "SELECT ",
    drill_columns!(),
    " FROM drills WHERE cluster = $1 ORDER BY started_at DESC, id DESC LIMIT $2"
);

/// Each cluster's newest drill whose status is `$1`, `$2`, `$3` or `$4`.
pub const LAST_DRILLS: &str = concat!(
    "SELECT ",
    drill_columns!(),
    " FROM drills d WHERE d.status IN ($1, $2, $3, $4) AND d.started_at = \
       (SELECT max(e.started_at) FROM drills e WHERE e.cluster = d.cluster \
          AND e.status IN ($1, $2, $3, $4))"
);

pub const RECORD_RUNNER: &str = "INSERT INTO drill_runners (name, majors, first_seen, last_seen) \
     VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO UPDATE SET majors = excluded.majors, \
       last_seen = excluded.last_seen";

pub const RUNNERS: &str =
    "SELECT name, majors, first_seen, last_seen FROM drill_runners ORDER BY name";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_index_is_on_the_expression_queries_use() {
        for migration in [
            include_str!("../../../migrations/sqlite/0005_wal_position.sql"),
            include_str!("../../../migrations/postgres/0005_wal_position.sql"),
        ] {
            let index = format!("ON wal_files (cluster, {NAME_POSITION})");
            assert!(migration.contains(&index), "{migration}");
        }
        assert!(WAL_BEFORE.contains(&format!("{NAME_POSITION} < $2")));
        assert!(EXPIRE_WAL.iter().all(|sql| sql.contains(NAME_POSITION)));
    }
}
