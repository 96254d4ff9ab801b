//! The catalog: the gateway's index of clusters, archived WAL and tokens.
//!
//! One [`Catalog`] trait with a native SQLite backend (the embedded default) and a native
//! PostgreSQL backend (for production and for several gateway replicas sharing state).
//! Each has its own migrations folder under `migrations/`. The catalog is an index only:
//! every stored object can be found again from its key, so it can be rebuilt from the
//! object store.

mod digest;
mod postgres;
mod queries;
mod records;
mod sha256;
mod sql;
mod sqlite;

use std::str::FromStr;

use time::OffsetDateTime;
use walgate_core::api::{self, Role};
use walgate_core::{
    ClusterName, Lsn, SegmentName, SegmentPosition, SegmentSize, Timeline, WalFileName,
};

use walgate_core::TargetName;

pub use digest::{Algorithm, ContentDigest, ContentHasher, DigestError};
pub use postgres::PostgresCatalog;
pub use sha256::{Sha256, Sha256Error};
pub use sql::{Backend, SqlCatalog};
pub use sqlite::SqliteCatalog;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("catalog migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported catalog URL scheme `{0}:`: use sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error("catalog row is corrupt: {0}")]
    Corrupt(String),
}

impl CatalogError {
    /// Whether waiting may help: the catalog could not be reached or was busy, rather
    /// than a statement or a row being wrong.
    pub fn is_unavailable(&self) -> bool {
        let CatalogError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(d) => {
                if let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    // Connection exceptions, operator intervention (a shutdown), too
                    // many connections.
                    let code = pg.code();
                    code.starts_with("08") || code.starts_with("57P") || code == "53300"
                } else {
                    // SQLite's SQLITE_BUSY and SQLITE_LOCKED, extended codes included.
                    d.code()
                        .and_then(|c| c.parse::<u32>().ok())
                        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
                }
            }
            _ => false,
        }
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// A cluster's identity. `system_identifier` and `segment_size` are pinned by the first
/// accepted segment (or by an admin) and never change afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRow {
    pub name: ClusterName,
    pub system_identifier: Option<u64>,
    pub segment_size: Option<SegmentSize>,
    pub pg_version: Option<u32>,
    pub created_at: OffsetDateTime,
    /// Its own retention policy; `None` follows the fleet default.
    pub retention: Option<api::RetentionPolicy>,
    /// The storage target holding its objects.
    pub target: TargetName,
    /// Its own status thresholds; `None` follows the gateway's.
    pub thresholds: Option<api::StatusThresholds>,
    /// Its own restore drill policy; `None` follows the gateway's.
    pub drill_policy: Option<api::DrillPolicy>,
    /// A drill asked for and not yet started.
    pub drill_requested_at: Option<OffsetDateTime>,
}

/// One restore drill as the catalog keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillRow {
    pub id: String,
    pub cluster: ClusterName,
    pub runner: String,
    pub status: api::DrillStatus,
    pub started_at: OffsetDateTime,
    /// A running drill whose lease ends is failed: its runner stopped reporting.
    pub lease_until: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub outcome: api::DrillOutcome,
}

impl DrillRow {
    pub fn to_api(&self) -> api::Drill {
        api::Drill {
            id: self.id.clone(),
            cluster: self.cluster.to_string(),
            runner: self.runner.clone(),
            status: self.status,
            started_at: self.started_at,
            finished_at: self.finished_at,
            outcome: self.outcome.clone(),
        }
    }
}

/// A drill runner the gateway has heard from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRow {
    pub name: String,
    pub majors: Vec<u32>,
    /// Drills are expected of every cluster from a runner's first contact on.
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

/// Which drill [`Catalog::last_drills`] finds of each cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastDrill {
    /// Of any status, running too: when it was last tried.
    Any,
    /// That ended `ok` or `failed`: what the archive's state is.
    Judged,
    /// That ended `ok`.
    Ok,
}

impl LastDrill {
    fn statuses(self) -> [&'static str; 4] {
        match self {
            LastDrill::Any => ["running", "ok", "failed", "skipped"],
            LastDrill::Judged => ["ok", "failed", "failed", "failed"],
            LastDrill::Ok => ["ok", "ok", "ok", "ok"],
        }
    }
}

/// WAL files before a position: how many, their stored bytes, the first and last name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalSpan {
    pub files: u64,
    pub bytes: u64,
    pub first: Option<WalFileName>,
    pub last: Option<WalFileName>,
}

/// One archived WAL file. The object key is derived from `(cluster, name)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRow {
    pub name: WalFileName,
    pub size: u64,
    pub stored_size: u64,
    /// Of the file's content, uncompressed.
    pub digest: ContentDigest,
    pub archived_at: OffsetDateTime,
    /// Until when its object is locked (write-once targets).
    pub retain_until: Option<OffsetDateTime>,
}

impl WalRow {
    pub fn to_api(&self) -> api::WalFile {
        api::WalFile {
            name: self.name.to_string(),
            kind: self.name.kind(),
            timeline: self.name.timeline().0,
            size: self.size,
            stored_size: self.stored_size,
            digest: self.digest.to_string(),
            sha256: match self.digest {
                ContentDigest::Sha256(sha) => sha.to_string(),
                ContentDigest::Blake3(_) => String::new(),
            },
            archived_at: self.archived_at,
        }
    }
}

/// Which WAL files to list: in name order, after a cursor, optionally one timeline and a
/// name range (inclusive).
#[derive(Debug, Clone, Default)]
pub struct WalFilter {
    pub timeline: Option<u32>,
    pub from: Option<WalFileName>,
    pub to: Option<WalFileName>,
    pub after: Option<WalFileName>,
    pub limit: u32,
}

/// Per-cluster figures for the fleet view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStats {
    pub wal_files: u64,
    pub wal_bytes: u64,
    /// The newest segment (not partial, history or backup history file) still kept.
    pub last_wal: Option<SegmentName>,
    pub last_archived_at: Option<OffsetDateTime>,
}

/// How much a cluster's archive has changed: counters the catalog's triggers keep, which
/// only grow. What a verification saw of them tells the next run whether it may skip
/// the cluster, read only what was appended, or must read it all again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub wal_inserted: u64,
    pub wal_deleted: u64,
    /// Backups created, deleted or changing status.
    pub backups: u64,
}

/// What a verification read: the counters as they were before it began, and the newest
/// segment, when the newest file was one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub changes: Changes,
    pub newest: Option<SegmentName>,
}

/// A cluster whose archive changed since its last verification, or never verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub cluster: ClusterName,
    /// Whether that verification found the archive whole.
    pub ok: bool,
    /// What it saw; `None` without a verification, or one from before the counters.
    pub seen: Option<Seen>,
}

/// A cluster's complete backups, for the fleet view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupStats {
    pub complete: u64,
    pub stored_bytes: u64,
    /// The newest: when it finished, its stored bytes.
    pub newest: Option<(OffsetDateTime, u64)>,
    /// How long the newest took, start to finish.
    pub newest_took: Option<time::Duration>,
    /// When the oldest finished: the oldest point a restore reaches.
    pub oldest: Option<OffsetDateTime>,
}

/// Where a backup is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupStatus {
    /// Objects are being written; not usable for a restore.
    Uploading,
    /// Every object, the sentinel last, is durable.
    Complete,
    /// Its objects are being removed; not usable for a restore.
    Deleting,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Uploading => "uploading",
            BackupStatus::Complete => "complete",
            BackupStatus::Deleting => "deleting",
        }
    }
}

impl FromStr for BackupStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Uploading, Self::Complete, Self::Deleting]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown backup status `{s}`"))
    }
}

/// One base backup. Its objects live under a prefix derived from `(cluster, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRow {
    pub id: String,
    pub status: BackupStatus,
    pub label: String,
    pub method: String,
    pub from_standby: bool,
    pub start_lsn: Lsn,
    pub start_timeline: Timeline,
    pub checkpoint_lsn: Lsn,
    /// Where the backup becomes consistent, from its manifest's WAL range.
    pub end_lsn: Option<Lsn>,
    pub end_timeline: Option<Timeline>,
    pub system_identifier: Option<u64>,
    /// Bytes of the tar stream.
    pub size: u64,
    pub stored_size: u64,
    /// SHA-256 of the stored object; `None` until the upload is complete.
    pub sha256: Option<Sha256>,
    pub has_manifest: bool,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// Until when its objects are locked (write-once targets): the latest of theirs.
    pub retain_until: Option<OffsetDateTime>,
    /// The backup an incremental was taken against; `None` for a full backup.
    pub parent: Option<String>,
}

impl BackupRow {
    pub fn kind(&self) -> walgate_core::api::BackupKind {
        match self.parent {
            None => walgate_core::api::BackupKind::Full,
            Some(_) => walgate_core::api::BackupKind::Incremental,
        }
    }

    /// A complete backup known only by where it starts and ends on `timeline` and when it
    /// finished: what restore planning and retention look at. For tests and benchmarks
    /// that need no stored objects.
    pub fn positioned(
        id: &str,
        timeline: Timeline,
        start: Lsn,
        end: Lsn,
        finished_at: OffsetDateTime,
    ) -> Self {
        BackupRow {
            id: id.into(),
            status: BackupStatus::Complete,
            label: String::new(),
            method: "streamed".into(),
            from_standby: false,
            start_lsn: start,
            start_timeline: timeline,
            checkpoint_lsn: start,
            end_lsn: Some(end),
            end_timeline: Some(timeline),
            system_identifier: None,
            size: 0,
            stored_size: 0,
            sha256: None,
            has_manifest: true,
            started_at: finished_at,
            finished_at: Some(finished_at),
            retain_until: None,
            parent: None,
        }
    }

    /// The hash as stored and as the API shows it: hex, empty until complete.
    pub fn sha256_hex(&self) -> String {
        self.sha256.map(|s| s.to_string()).unwrap_or_default()
    }
}

/// What a token may touch: a list of clusters or all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Clusters(Vec<ClusterName>),
}

impl Scope {
    /// Every cluster `other` covers, this covers too.
    pub fn includes(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::All, _) => true,
            (Scope::Clusters(_), Scope::All) => false,
            (Scope::Clusters(_), Scope::Clusters(list)) => list.iter().all(|c| self.covers(c)),
        }
    }

    pub fn covers(&self, cluster: &ClusterName) -> bool {
        match self {
            Scope::All => true,
            Scope::Clusters(list) => list.contains(cluster),
        }
    }

    /// The stored and signed form: comma-separated names, or `*`.
    pub fn encode(&self) -> String {
        match self {
            Scope::All => "*".to_owned(),
            Scope::Clusters(list) => list
                .iter()
                .map(ClusterName::as_str)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(Scope::All);
        }
        let names = s
            .split(',')
            .map(|n| n.parse::<ClusterName>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scope::Clusters(names))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub scope: Scope,
    pub role: Role,
    pub description: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl TokenRow {
    pub fn to_api(&self) -> api::TokenInfo {
        let clusters = match &self.scope {
            Scope::All => vec!["*".to_owned()],
            Scope::Clusters(list) => list.iter().map(ToString::to_string).collect(),
        };
        api::TokenInfo {
            id: self.id.clone(),
            clusters,
            role: self.role,
            description: self.description.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// The outcome of recording a WAL file: new, or the row already there (which the caller
/// compares, so that a race between two pushes of one file is decided by the catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New,
    Existing(WalRow),
    /// Retention is deleting a file of that name: try again once it is gone.
    Deleting,
}

#[async_trait::async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Which backend this is, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;

    async fn cluster(&self, name: &ClusterName) -> Result<Option<ClusterRow>>;
    /// Creates the cluster on `target` unless it exists; returns the row either way.
    async fn ensure_cluster(&self, name: &ClusterName, target: &TargetName) -> Result<ClusterRow>;
    /// Moves an existing cluster to `target` if it holds no objects yet (no WAL, no
    /// backups, nothing waiting for deletion): a cluster's objects never mix targets.
    /// Returns whether the cluster is now on `target`.
    async fn set_target(&self, name: &ClusterName, target: &TargetName) -> Result<bool>;
    /// Pins identity fields of an existing cluster that are still unset; fields already
    /// set are left alone, so the caller compares the returned row with what it asked for.
    async fn pin_cluster(
        &self,
        name: &ClusterName,
        system_identifier: u64,
        segment_size: SegmentSize,
        pg_version: Option<u32>,
    ) -> Result<ClusterRow>;
    async fn clusters(&self) -> Result<Vec<(ClusterRow, ClusterStats)>>;
    async fn cluster_stats(&self, name: &ClusterName) -> Result<ClusterStats>;
    /// Complete backups of `cluster`, or of every cluster that has one: one query for
    /// the whole fleet.
    async fn backup_stats(
        &self,
        cluster: Option<&ClusterName>,
    ) -> Result<Vec<(ClusterName, BackupStats)>>;

    async fn wal(&self, cluster: &ClusterName, name: &WalFileName) -> Result<Option<WalRow>>;
    /// Records a WAL file unless a row for its name exists.
    async fn insert_wal(&self, cluster: &ClusterName, row: &WalRow) -> Result<Inserted>;
    async fn list_wal(&self, cluster: &ClusterName, filter: &WalFilter) -> Result<Vec<WalRow>>;
    /// WAL archived per UTC day since `since` and still kept: day, files, stored bytes.
    async fn wal_volume(
        &self,
        cluster: &ClusterName,
        since: OffsetDateTime,
    ) -> Result<Vec<(time::Date, u64, u64)>>;

    /// Records a new backup; fails if the id is taken.
    async fn insert_backup(&self, cluster: &ClusterName, row: &BackupRow) -> Result<()>;
    /// Rewrites a backup's mutable fields (status, end, sizes, hash, finish time) if
    /// its status is still `from`; false when it is not (or the row is gone), so an
    /// upload that was deleted while it ran is never brought back as complete.
    async fn update_backup(
        &self,
        cluster: &ClusterName,
        row: &BackupRow,
        from: BackupStatus,
    ) -> Result<bool>;
    async fn delete_backup(&self, cluster: &ClusterName, id: &str) -> Result<()>;
    /// Records that an upload is alive at `at`.
    async fn beat_backup(&self, cluster: &ClusterName, id: &str, at: OffsetDateTime) -> Result<()>;
    /// Uploads that have not beaten (or started, if they never beat) since `before`:
    /// their gateway died.
    async fn stale_uploads(
        &self,
        cluster: &ClusterName,
        before: OffsetDateTime,
    ) -> Result<Vec<String>>;
    async fn backup(&self, cluster: &ClusterName, id: &str) -> Result<Option<BackupRow>>;
    /// Every backup of the cluster, newest first.
    async fn backups(&self, cluster: &ClusterName) -> Result<Vec<BackupRow>>;

    /// Sets (`None`: clears) a cluster's own retention policy; false if no such cluster.
    async fn set_retention(
        &self,
        cluster: &ClusterName,
        policy: Option<&api::RetentionPolicy>,
    ) -> Result<bool>;
    /// Sets (or with `None` clears) the cluster's own status thresholds.
    async fn set_thresholds(
        &self,
        cluster: &ClusterName,
        thresholds: Option<&api::StatusThresholds>,
    ) -> Result<bool>;
    /// The furthest segment position the cluster has WAL at, on any timeline.
    async fn newest_position(&self, cluster: &ClusterName) -> Result<Option<SegmentPosition>>;
    /// The WAL files [`Catalog::expire_wal`] would take out for `position`.
    async fn wal_before(&self, cluster: &ClusterName, position: SegmentPosition)
    -> Result<WalSpan>;
    /// Moves every WAL file but history files whose segment is before `position` (on any
    /// timeline) from `wal_files` to `wal_deletions`, in one transaction; returns how many.
    async fn expire_wal(&self, cluster: &ClusterName, position: SegmentPosition) -> Result<u64>;
    /// Moves every WAL file of the cluster, history files too, to `wal_deletions`.
    async fn expire_all_wal(&self, cluster: &ClusterName) -> Result<u64>;
    /// Forgets a cluster that holds nothing (no WAL, no backups, no pending deletions):
    /// its row, totals and last verification. False if it still holds something.
    async fn delete_cluster(&self, cluster: &ClusterName) -> Result<bool>;
    /// Up to `limit` files whose objects still wait for deletion, in name order after
    /// `after`, with when their objects' locks end.
    async fn wal_deletions(
        &self,
        cluster: &ClusterName,
        after: Option<&WalFileName>,
        limit: u32,
    ) -> Result<Vec<(WalFileName, Option<OffsetDateTime>)>>;
    /// Records until when a backup's objects are locked, as the store says.
    async fn set_backup_lock(
        &self,
        cluster: &ClusterName,
        id: &str,
        until: OffsetDateTime,
    ) -> Result<()>;
    /// When the last lock on the cluster's objects ends (write-once targets): of its
    /// WAL, backups and objects waiting for deletion.
    async fn lock_ends(&self, cluster: &ClusterName) -> Result<Option<OffsetDateTime>>;
    /// Whether `name`'s object waits for deletion.
    async fn wal_deleting(&self, cluster: &ClusterName, name: &WalFileName) -> Result<bool>;
    /// Forgets files whose objects are gone.
    async fn forget_wal_deletions(
        &self,
        cluster: &ClusterName,
        names: &[WalFileName],
    ) -> Result<()>;
    /// Records that deleting `object` failed with `error` at `at` (counting attempts).
    async fn record_deletion_failure(
        &self,
        cluster: &ClusterName,
        object: &str,
        error: &str,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// Forgets `object`'s failures once it is deleted.
    async fn forget_deletion_failure(&self, cluster: &ClusterName, object: &str) -> Result<()>;
    /// The cluster's objects that failed to delete, oldest failure first.
    async fn deletion_failures(&self, cluster: &ClusterName) -> Result<Vec<api::DeletionFailure>>;
    /// Per cluster with failed deletions: how many objects, and the oldest first failure.
    async fn deletion_failure_stats(&self) -> Result<Vec<(ClusterName, u64, OffsetDateTime)>>;
    /// Takes the lease on `job` for `holder` until `until` (unix seconds) if it is free,
    /// expired at `now`, or `holder`'s already; true if `holder` now holds it.
    async fn take_lease(&self, job: &str, holder: &str, now: i64, until: i64) -> Result<bool>;
    /// Until when (unix seconds) `job`'s lease was last taken, if ever.
    async fn lease_until(&self, job: &str) -> Result<Option<i64>>;

    /// Keeps a cluster's latest verification, replacing the one before, with what it saw;
    /// without `seen` it is never renewed ([`Catalog::refresh_verifications`]).
    async fn record_verification(
        &self,
        cluster: &ClusterName,
        report: &api::VerifyReport,
        seen: Option<&Seen>,
    ) -> Result<()>;
    /// A cluster's change counters.
    async fn changes(&self, cluster: &ClusterName) -> Result<Changes>;
    /// The names after `after` in name order (at most `limit`) with the counters, read
    /// together in one snapshot.
    async fn appended(
        &self,
        cluster: &ClusterName,
        after: &WalFileName,
        limit: u32,
    ) -> Result<(Changes, Vec<WalFileName>)>;
    /// Marks verified at `at` every report whose cluster has not changed since; how many.
    async fn refresh_verifications(&self, at: OffsetDateTime) -> Result<u64>;
    /// The clusters [`Catalog::refresh_verifications`] cannot vouch for, in name order.
    async fn stale_verifications(&self) -> Result<Vec<Stale>>;
    async fn last_verification(&self, cluster: &ClusterName) -> Result<Option<api::VerifyReport>>;
    /// Every cluster's latest verification.
    async fn verifications(&self) -> Result<Vec<api::VerifyReport>>;

    async fn insert_token(&self, token: &TokenRow) -> Result<()>;
    async fn token(&self, id: &str) -> Result<Option<TokenRow>>;
    async fn tokens(&self) -> Result<Vec<TokenRow>>;
    /// Marks a token revoked; false when no such token exists.
    async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<bool>;

    /// Sets (`None`: clears) the cluster's drill policy; false if no such cluster.
    async fn set_drill_policy(
        &self,
        cluster: &ClusterName,
        policy: Option<&api::DrillPolicy>,
    ) -> Result<bool>;
    /// Asks for a drill of the cluster (an earlier request stands); false if no such
    /// cluster.
    async fn request_drill(&self, cluster: &ClusterName, at: OffsetDateTime) -> Result<bool>;
    /// Ends as skipped the running drills whose lease ended before `now`, with `outcome`.
    async fn expire_drills(&self, now: OffsetDateTime, outcome: &api::DrillOutcome) -> Result<u64>;
    /// Records a running drill, and answers the cluster's request for one; false (and
    /// nothing recorded) when a drill of the cluster is already running.
    async fn start_drill(&self, drill: &DrillRow) -> Result<bool>;
    /// Extends a running drill's lease; false if it is not running any more.
    async fn renew_drill(&self, id: &str, until: OffsetDateTime) -> Result<bool>;
    /// Ends a running drill; false if it was not running.
    async fn finish_drill(
        &self,
        id: &str,
        status: api::DrillStatus,
        at: OffsetDateTime,
        outcome: &api::DrillOutcome,
    ) -> Result<bool>;
    async fn drill(&self, id: &str) -> Result<Option<DrillRow>>;
    /// The cluster's newest `limit` drills, newest first.
    async fn drills(&self, cluster: &ClusterName, limit: u32) -> Result<Vec<DrillRow>>;
    /// Each cluster's newest drill of the kind `which`.
    async fn last_drills(&self, which: LastDrill) -> Result<Vec<DrillRow>>;
    async fn record_runner(&self, runner: &RunnerRow) -> Result<()>;
    async fn runners(&self) -> Result<Vec<RunnerRow>>;
}

/// Opens (creating if needed) and migrates the catalog at `url`.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Catalog>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteCatalog::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PostgresCatalog::open(url).await?))
    } else {
        // Its scheme only: the rest may hold a password.
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        Err(CatalogError::BadUrl(scheme.chars().take(20).collect()))
    }
}

#[cfg(test)]
mod tests;
