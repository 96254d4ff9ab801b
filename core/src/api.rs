//! JSON bodies of the HTTP API, shared by the gateway (which derives their OpenAPI
//! schemas) and the client.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::wal::{SegmentPosition, WalFileKind};

/// Every error answer: a stable machine code and a sentence a person can act on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

/// The stable machine code of an error answer: what a program matches on (the message
/// is for people). Codes are only ever added, so a client must accept one it does not
/// know: this type reads it as `Unknown`, and an old client still reads the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a malformed query string or JSON body, or a value in it out of range.
    BadRequest,
    /// 400: the request path does not parse.
    BadPath,
    /// 400: the path's cluster name is not one (`[a-z0-9][a-z0-9_-]{0,62}`).
    BadCluster,
    /// 400: the path's file name is not a WAL file name the gateway archives.
    BadName,
    /// 400: the path's backup id is neither a backup id nor `latest`.
    BadId,
    /// 400: a WAL file's content contradicts its name (page header, position, size), is
    /// empty, or is not a timeline history file PostgreSQL wrote.
    BadContent,
    /// 400: a WAL segment of another size than the cluster's segments.
    WrongSegmentSize,
    /// 400: the request body was cut or could not be decoded.
    BadBody,
    /// 400: an uploaded stream is not a base backup.
    NotABackup,
    /// 401: no token, or one that is invalid, expired or revoked.
    Unauthorized,
    /// 403: the token lacks the role, or is not scoped to the cluster.
    Forbidden,
    /// 404: no such cluster, backup or archived WAL file.
    NotFound,
    /// 408: a WAL file's body stopped arriving; nothing was stored.
    Timeout,
    /// 409: WAL or a backup of another database system than the cluster's.
    WrongSystem,
    /// 409: the name is taken by different content (a WAL file, a backup) or the cluster
    /// is pinned otherwise (system, segment size, storage target); nothing was overwritten.
    Conflict,
    /// 409: the backup was deleted while it was uploading.
    Deleted,
    /// 409: the backup or cluster is on a write-once target and still locked; nothing
    /// was deleted.
    Locked,
    /// 409: an incremental backup whose parent is not a complete backup of the cluster
    /// (none, deleted, being deleted, not the one named, or ending the longest chain
    /// kept); nothing was kept.
    NoParent,
    /// 409: incremental backups were taken against this backup; nothing was deleted.
    HasDependants,
    /// 413: a body larger than the file it names can be.
    TooLarge,
    /// 415: a `Content-Encoding` this request does not take.
    UnsupportedEncoding,
    /// 422: the archive cannot reach the restore target, or a history file on the way
    /// cannot be read.
    NotReachable,
    /// 429 or 503 with `Retry-After`: the cluster's or the gateway's limit of concurrent
    /// uploads (or of memory for WAL) is reached; nothing was stored.
    Busy,
    /// 503 with `Retry-After`: retention is deleting an earlier copy of this WAL file.
    BeingDeleted,
    /// 503 with `Retry-After`: the catalog is unreachable or busy.
    CatalogUnavailable,
    /// 503 with `Retry-After`: the object store failed or is not configured.
    StorageUnavailable,
    /// 500: a stored object cannot be read back (decryption failed).
    UnreadableObject,
    /// 500: the gateway itself failed; details are in its log.
    Internal,
    /// Never sent: a code newer than this program, as it reads it.
    #[serde(other, skip_serializing)]
    Unknown,
}

impl ErrorCode {
    /// The code as it is sent, e.g. `not_found`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BadPath => "bad_path",
            ErrorCode::BadCluster => "bad_cluster",
            ErrorCode::BadName => "bad_name",
            ErrorCode::BadId => "bad_id",
            ErrorCode::BadContent => "bad_content",
            ErrorCode::WrongSegmentSize => "wrong_segment_size",
            ErrorCode::BadBody => "bad_body",
            ErrorCode::NotABackup => "not_a_backup",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Timeout => "timeout",
            ErrorCode::WrongSystem => "wrong_system",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Deleted => "deleted",
            ErrorCode::Locked => "locked",
            ErrorCode::NoParent => "no_parent",
            ErrorCode::HasDependants => "has_dependants",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedEncoding => "unsupported_encoding",
            ErrorCode::NotReachable => "not_reachable",
            ErrorCode::Busy => "busy",
            ErrorCode::BeingDeleted => "being_deleted",
            ErrorCode::CatalogUnavailable => "catalog_unavailable",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::UnreadableObject => "unreadable_object",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token may do. Each role includes the rights of those before it in this list:
/// viewer < restorer < archiver < admin; a driller has a restorer's rights and also
/// claims and reports restore drills, which no archiver may (a database host must not
/// be able to report its own archive as proven restorable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads metadata: cluster status, WAL and backup lists.
    Viewer,
    /// Also fetches WAL and backups, for restores.
    Restorer,
    /// Also pushes WAL and backups.
    Archiver,
    /// Everything, on every cluster it is scoped to, plus token and cluster management.
    Admin,
    /// A restore drill runner: a restorer that also claims drills and reports them.
    Driller,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Restorer,
        Role::Archiver,
        Role::Admin,
        Role::Driller,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Restorer => "restorer",
            Role::Archiver => "archiver",
            Role::Admin => "admin",
            Role::Driller => "driller",
        }
    }

    /// Whether a token of this role may do what `need` may.
    pub fn grants(self, need: Role) -> bool {
        match (self, need) {
            (Role::Admin, _) => true,
            (Role::Driller, need) => matches!(need, Role::Viewer | Role::Restorer | Role::Driller),
            (_, Role::Driller) => false,
            (have, need) => have >= need,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role `{s}`: use viewer, restorer, archiver, admin or driller")
            })
    }
}

/// One archived WAL file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WalFile {
    pub name: String,
    pub kind: WalFileKind,
    pub timeline: u32,
    /// Size of the file as PostgreSQL wrote it.
    pub size: u64,
    /// Size stored, after compression.
    pub stored_size: u64,
    /// Digest of the file as PostgreSQL wrote it, named by its algorithm:
    /// `blake3:<64 hex digits>` (`b3sum` checks a restored file), or `sha256:<64 hex
    /// digits>` for files archived before walgate hashed with BLAKE3. (Gateways before
    /// then did not send it.)
    #[serde(default)]
    pub digest: String,
    /// Deprecated, use `digest`: the SHA-256 in hexadecimal of a file archived before
    /// BLAKE3, else empty. Kept because clients before BLAKE3 require the field in an
    /// acknowledgement, so that upgrading the gateway first keeps them archiving.
    #[serde(default)]
    pub sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub archived_at: OffsetDateTime,
}

/// A page of the WAL list, in name order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WalList {
    pub files: Vec<WalFile>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// A cluster's own status thresholds; a field left out follows the gateway's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StatusThresholds {
    /// No WAL archived for this many seconds: `late` (four times as long: `failing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_lag_seconds: Option<u64>,
    /// The newest complete backup older than this many seconds: `late`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_age_seconds: Option<u64>,
}

impl StatusThresholds {
    /// The longest threshold accepted: a year. Status arithmetic never meets a value
    /// that overflows it.
    pub const MAX_SECONDS: u64 = 366 * 86_400;

    /// Each threshold given must be at most a year.
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("archive_lag_seconds", self.archive_lag_seconds),
            ("backup_age_seconds", self.backup_age_seconds),
        ] {
            if let Some(v) = value
                && v > Self::MAX_SECONDS
            {
                return Err(format!(
                    "{name} must be at most {} (a year), not {v}",
                    Self::MAX_SECONDS
                ));
            }
        }
        Ok(())
    }
}

/// A cluster as the gateway knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cluster {
    pub name: String,
    /// The database system identifier, as a decimal string (it exceeds JSON's safe integers).
    pub system_identifier: Option<String>,
    pub segment_size: Option<u64>,
    /// PostgreSQL major version, from the WAL page magic.
    pub pg_version: Option<u32>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The storage target holding its objects.
    pub target: String,
    pub wal_files: u64,
    pub wal_bytes: u64,
    pub last_wal: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_archived_at: Option<OffsetDateTime>,
    /// `new` (nothing archived), `ok`, `late` or `failing`, against the gateway's
    /// status thresholds.
    pub status: String,
    /// Why the status is not `ok`, in words.
    pub status_reasons: Vec<String>,
    /// The cluster's own thresholds, if it has any.
    pub thresholds: Option<StatusThresholds>,
    /// Complete base backups.
    pub backups: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_backup_at: Option<OffsetDateTime>,
    pub last_backup_stored_bytes: Option<u64>,
    /// The oldest point a restore can reach: the oldest complete backup's end.
    #[serde(with = "time::serde::rfc3339::option")]
    pub recovery_window_start: Option<OffsetDateTime>,
    /// Stored bytes of WAL and complete backups.
    pub storage_bytes: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_verified_at: Option<OffsetDateTime>,
    /// Problems the last verification found.
    pub verify_problems: Option<u64>,
    /// The newest successful restore drill: proven restorable up to its LSN and time.
    #[serde(default)]
    pub last_ok_drill: Option<Drill>,
    /// The newest drill that ended `ok` or `failed`.
    #[serde(default)]
    pub last_drill: Option<Drill>,
}

/// A base backup's metadata. Also stored, as the backup's sentinel object, next to its
/// data: the catalog can be rebuilt from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Backup {
    /// Sorts by time: upload start (UTC), then the first WAL segment it needs.
    pub id: String,
    pub cluster: String,
    /// `uploading`, `complete` or `deleting`; only complete backups can be restored.
    pub status: String,
    pub label: String,
    pub method: String,
    pub from_standby: bool,
    pub system_identifier: Option<String>,
    pub start_lsn: String,
    pub start_timeline: u32,
    pub checkpoint_lsn: String,
    /// Where the backup becomes consistent (from its manifest); absent without one.
    pub end_lsn: Option<String>,
    pub end_timeline: Option<u32>,
    /// The first WAL segment a restore needs.
    pub start_wal: String,
    /// The last WAL segment a restore needs to become consistent, when known.
    pub end_wal: Option<String>,
    /// Bytes of the tar stream.
    pub size: u64,
    /// Bytes stored, compressed.
    pub stored_size: u64,
    /// SHA-256 of the stored object (`base.tar.zst`), hexadecimal; every zstd frame in it
    /// also carries a checksum of the tar bytes it holds.
    pub sha256: String,
    pub has_manifest: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// `full`, or `incremental` (restorable only combined with its chain).
    #[serde(default)]
    pub kind: BackupKind,
    /// The backup an incremental was taken against.
    #[serde(default)]
    pub parent: Option<String>,
    /// What a restore of this backup combines: its full backup first, then each
    /// incremental up to this one. Just this one for a full backup.
    #[serde(default)]
    pub chain: Vec<String>,
}

/// Whether a backup is a whole data directory or the changes since its parent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    #[default]
    Full,
    /// `pg_basebackup --incremental` (PostgreSQL 17 and later): changed blocks only.
    Incremental,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Incremental => "incremental",
        }
    }
}

/// One backup of the chain a restore combines, with where to download it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainLink {
    pub id: String,
    pub kind: BackupKind,
    /// The tar stream to extract, as `GET …/backups/{id}/archive`.
    pub archive_url: String,
    pub size: u64,
    pub stored_size: u64,
}

/// One timeline of a recovery path and the LSN range replayed from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineLeg {
    pub timeline: u32,
    pub begin_lsn: String,
    /// Where the next timeline branched off; absent for the target timeline.
    pub end_lsn: Option<String>,
}

/// How to restore a cluster to a target: a `200` means the archive covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestorePlan {
    pub cluster: String,
    /// The backup to restore: the newest consistent before the target.
    pub backup: Backup,
    pub target_timeline: u32,
    pub timelines: Vec<TimelineLeg>,
    /// First and last WAL segment replay reads, and how many.
    pub first_wal: String,
    pub last_wal: String,
    /// The newest segment archived on the target timeline: past `last_wal` when a gap
    /// stops replay short of it (the notes say so).
    #[serde(default)]
    pub archive_end_wal: String,
    pub segments: u64,
    pub history_files: Vec<String>,
    /// Every segment from `first_wal` to `last_wal` is archived.
    pub covered: bool,
    /// Settings for postgresql.conf (with `recovery.signal` in the data directory).
    pub recovery_settings: std::collections::BTreeMap<String, String>,
    pub notes: Vec<String>,
    /// The backups to restore, full first: one for a full backup; for an incremental,
    /// each link of its chain, to be combined with `pg_combinebackup`.
    #[serde(default)]
    pub chain: Vec<ChainLink>,
    /// Shell commands (for `bash -euo pipefail`, with `PGDATA` set to an empty or
    /// missing directory) that download and extract the chain into `$PGDATA` with curl
    /// and the host's PostgreSQL binaries, and write the recovery settings.
    #[serde(default)]
    pub commands: Vec<String>,
}

/// A token's record; the token itself is shown once, when issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: String,
    /// Cluster names, or `*` for every cluster.
    pub clusters: Vec<String>,
    pub role: Role,
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// How long a cluster's backups and WAL are kept. With neither `keep_last` nor
/// `window_days` set, nothing is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep the newest N complete backups.
    pub keep_last: Option<u32>,
    /// Keep every point of the last D days restorable.
    pub window_days: Option<u32>,
    /// Never keep fewer complete backups than this, whatever the rules above say.
    #[serde(default = "one")]
    pub min_backups: u32,
}

fn one() -> u32 {
    1
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: None,
            window_days: None,
            min_backups: 1,
        }
    }
}

/// A backup a retention run deletes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExpiredBackup {
    pub id: String,
    pub stored_size: u64,
}

/// What a retention run deletes (preview) or deleted (run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionPlan {
    pub cluster: String,
    pub policy: RetentionPolicy,
    /// `cluster` (its own policy), `fleet` (the gateway's default) or `none`.
    pub policy_source: String,
    /// Complete backups kept, newest first.
    pub keep: Vec<String>,
    pub delete_backups: Vec<ExpiredBackup>,
    /// WAL files (segments, partial segments, backup history files) before this segment
    /// go, on every timeline; history files always stay.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub wal_before: Option<SegmentPosition>,
    pub delete_wal_files: u64,
    pub first_wal: Option<String>,
    pub last_wal: Option<String>,
    /// Stored bytes freed: backups and WAL.
    pub delete_bytes: u64,
    /// Why no backup is deleted now, when the policy would: the archive has a gap
    /// after a backup, which an operator must look at first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    /// Objects earlier runs failed to delete, retried by every run: how many in all,
    /// and the oldest hundred.
    #[serde(default)]
    pub failing_deletions: u64,
    #[serde(default)]
    pub failures: Vec<DeletionFailure>,
    /// Backups the policy expires that are kept, with their WAL, until their objects'
    /// locks end (write-once targets); a later run deletes them.
    #[serde(default)]
    pub locked: Vec<LockedBackup>,
}

/// A backup kept because its objects are still locked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockedBackup {
    pub id: String,
    /// Absent while a legal hold keeps it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub retain_until: Option<OffsetDateTime>,
}

/// An object a retention run or purge could not delete. It stays, and every later run
/// tries again; the other deletions go on without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletionFailure {
    /// The object's key in the cluster's storage target.
    pub object: String,
    /// The store's answer to the last attempt.
    pub error: String,
    pub attempts: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub first_failed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_failed_at: OffsetDateTime,
}

/// The result of checking a cluster's archive: its WAL chain and, with a scrub, every
/// stored object against its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReport {
    pub cluster: String,
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
    /// No problems found.
    pub ok: bool,
    /// Gaps in the WAL chain and timelines without their history file.
    pub chain_problems: Vec<String>,
    /// Timelines that kept receiving WAL after a child timeline branched from them
    /// (a restored copy that archived, or an old primary after a failover).
    #[serde(default)]
    pub forks: Vec<String>,
    /// Whether stored objects were re-read.
    pub scrubbed: bool,
    /// Objects re-read and checked.
    pub objects_checked: u64,
    /// Objects missing, unreadable, or not matching their checksum.
    pub object_problems: Vec<String>,
}

impl VerifyReport {
    /// The report of a chain check that found nothing wrong.
    pub fn clean(cluster: impl Into<String>, verified_at: OffsetDateTime) -> Self {
        VerifyReport {
            cluster: cluster.into(),
            verified_at,
            ok: true,
            chain_problems: vec![],
            forks: vec![],
            scrubbed: false,
            objects_checked: 0,
            object_problems: vec![],
        }
    }
}

/// A cluster's restore drill policy (admin). Left out: the gateway's interval, no check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DrillPolicy {
    /// Hours between scheduled drills; 0 schedules none (drills asked for still run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_hours: Option<u32>,
    /// A query run on the restored copy, which must return at least `min`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<DrillCheck>,
}

/// A per-cluster check of a drill's restored copy, for example that `orders` has rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DrillCheck {
    /// The database to run it in.
    #[serde(default = "postgres")]
    pub database: String,
    /// One query returning one integer, e.g. `select count(*) from orders`. It runs
    /// read-only, as a role that can read every table and nothing else.
    pub sql: String,
    /// The least value the query must return.
    pub min: i64,
}

fn postgres() -> String {
    "postgres".to_owned()
}

impl DrillPolicy {
    /// The longest interval: a year. The longest query: 4 KiB.
    pub const MAX_INTERVAL_HOURS: u32 = 366 * 24;
    pub const MAX_SQL: usize = 4096;

    pub fn check(&self) -> Result<(), String> {
        if self
            .interval_hours
            .is_some_and(|h| h > Self::MAX_INTERVAL_HOURS)
        {
            return Err(format!(
                "interval_hours must be at most {} (a year)",
                Self::MAX_INTERVAL_HOURS
            ));
        }
        if let Some(c) = &self.check {
            if c.sql.trim().is_empty() || c.sql.len() > Self::MAX_SQL || c.sql.contains('\0') {
                return Err(format!(
                    "check.sql must be one query of 1 to {} bytes",
                    Self::MAX_SQL
                ));
            }
            let name_ok = !c.database.is_empty()
                && c.database.len() < 64
                && !c.database.chars().any(char::is_control);
            if !name_ok {
                return Err("check.database must be a database name (1 to 63 bytes)".into());
            }
        }
        Ok(())
    }
}

/// How a drill ended, or that it is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DrillStatus {
    Running,
    /// Restored, recovered to the end of the archive, and every check passed.
    Ok,
    /// The archive could not be restored as promised; `reason` says why.
    Failed,
    /// The runner could not try (no binaries for the major, no scratch space): says
    /// nothing about the archive.
    Skipped,
}

impl DrillStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DrillStatus::Running => "running",
            DrillStatus::Ok => "ok",
            DrillStatus::Failed => "failed",
            DrillStatus::Skipped => "skipped",
        }
    }
}

impl std::str::FromStr for DrillStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Running, Self::Ok, Self::Failed, Self::Skipped]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown drill status `{s}`"))
    }
}

/// One restore drill: a backup restored by a runner, recovered to the end of the
/// archive with archiving off, started and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Drill {
    pub id: String,
    pub cluster: String,
    /// The runner that claimed it.
    pub runner: String,
    pub status: DrillStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub outcome: DrillOutcome,
}

/// How a drill ended, as its runner reports it (`POST /v1/drills/{id}/result`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DrillReport {
    /// `ok`, `failed` or `skipped`.
    pub status: DrillStatus,
    pub outcome: DrillOutcome,
}

/// What a runner found, as it reports it when the drill ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DrillOutcome {
    /// The backup restored (the last link of its chain).
    #[serde(default)]
    pub backup: Option<String>,
    /// The LSN replay reached: proven restorable up to here.
    #[serde(default)]
    pub lsn: Option<String>,
    #[serde(default)]
    pub timeline: Option<u32>,
    /// The commit time of the last transaction replayed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub restorable_to: Option<OffsetDateTime>,
    /// Downloading and extracting the backup (and combining its chain).
    #[serde(default)]
    pub restore_seconds: Option<f64>,
    /// From starting PostgreSQL to its accepting connections after recovery.
    #[serde(default)]
    pub replay_seconds: Option<f64>,
    /// Why it failed or was skipped, in words.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A cluster's drills: its policy as it applies, and the newest drills first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrillHistory {
    pub cluster: String,
    /// Hours between scheduled drills (the cluster's own, or the gateway's); 0: none.
    pub interval_hours: u32,
    pub check: Option<DrillCheck>,
    /// A drill asked for and not yet started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub requested_at: Option<OffsetDateTime>,
    /// The newest successful drill.
    pub last_ok: Option<Drill>,
    /// The newest hundred drills, newest first.
    pub drills: Vec<Drill>,
}

/// A drill runner asking for work (`POST /v1/drills/claim`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DrillClaim {
    /// The runner's name (its host, by default): its drills are recorded under it, and
    /// one that starts again fails the drills it left running.
    pub runner: String,
    /// The PostgreSQL majors it has binaries for.
    pub majors: Vec<u32>,
}

/// A drill handed to a runner: restore `plan`, recover, check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrillAssignment {
    pub drill: String,
    pub cluster: String,
    pub pg_version: u32,
    /// Bytes per WAL segment.
    pub segment_size: u64,
    /// Renew the lease (`POST /v1/drills/{id}/lease`) well within this; a drill whose
    /// lease runs out is failed, and its cluster may be claimed again.
    pub lease_seconds: u64,
    pub check: Option<DrillCheck>,
    /// To the end of the archive on the live timeline: replay must reach its
    /// `archive_end_wal`.
    pub plan: RestorePlan,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gateways and clients are upgraded one host at a time: a WAL acknowledgement from a
    /// gateway before BLAKE3 still reads, and a new one still carries the field a client
    /// before BLAKE3 requires.
    #[test]
    fn wal_acknowledgements_read_across_the_blake3_change() {
        let old = r#"{"name": "000000010000000000000001", "kind": "segment", "timeline": 1,
            "size": 16777216, "stored_size": 100, "sha256": "ab", "archived_at": "2026-12-01T00:00:00Z"}"#;
        let ack: WalFile = serde_json::from_str(old).unwrap();
        assert_eq!((ack.size, ack.digest.as_str()), (16 << 20, ""));
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct BeforeBlake3 {
            name: String,
            size: u64,
            sha256: String,
        }
        let new = WalFile {
            digest: format!("blake3:{}", "0".repeat(64)),
            sha256: String::new(),
            ..ack
        };
        serde_json::from_str::<BeforeBlake3>(&serde_json::to_string(&new).unwrap()).unwrap();
    }

    #[test]
    fn error_codes_are_sent_as_their_names_and_unknown_ones_still_read() {
        use ErrorCode as E;
        let sent = [
            E::BadRequest,
            E::BadPath,
            E::BadCluster,
            E::BadName,
            E::BadId,
            E::BadContent,
            E::WrongSegmentSize,
            E::BadBody,
            E::NotABackup,
            E::Unauthorized,
            E::Forbidden,
            E::NotFound,
            E::Timeout,
            E::WrongSystem,
            E::Conflict,
            E::Deleted,
            E::Locked,
            E::TooLarge,
            E::UnsupportedEncoding,
            E::NotReachable,
            E::Busy,
            E::BeingDeleted,
            E::CatalogUnavailable,
            E::StorageUnavailable,
            E::UnreadableObject,
            E::Internal,
        ];
        for code in sent {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<E>(&json).unwrap(), code);
        }
        assert_eq!(E::WrongSegmentSize.to_string(), "wrong_segment_size");

        // A newer gateway's code: the body still reads, and only the code is unknown.
        let body: ErrorBody =
            serde_json::from_str(r#"{"error": "quota_exceeded", "message": "full"}"#).unwrap();
        assert_eq!((body.error, body.message.as_str()), (E::Unknown, "full"));
        assert!(serde_json::to_string(&E::Unknown).is_err(), "never sent");
    }

    #[test]
    fn roles_are_ordered_by_rights() {
        assert!(Role::Viewer < Role::Restorer && Role::Restorer < Role::Archiver);
        assert!(Role::Archiver < Role::Admin);
        for have in Role::ALL {
            assert!(have.grants(have) && have.grants(Role::Viewer), "{have:?}");
            assert!(Role::Admin.grants(have));
        }
        assert!(Role::Driller.grants(Role::Restorer));
        assert!(!Role::Driller.grants(Role::Archiver) && !Role::Driller.grants(Role::Admin));
        assert!(!Role::Archiver.grants(Role::Driller) && !Role::Restorer.grants(Role::Driller));
        assert!(Role::Archiver.grants(Role::Restorer) && !Role::Archiver.grants(Role::Admin));
        assert_eq!("archiver".parse::<Role>(), Ok(Role::Archiver));
        assert!("root".parse::<Role>().is_err());
        assert_eq!(
            serde_json::to_string(&Role::Restorer).unwrap(),
            "\"restorer\""
        );
    }
}
