//! The catalog's rows as the database returns them, decoded once per table, and their
//! conversion into the typed rows of [`super`].
//!
//! Columns hold what both backends can store: 64-bit integers (unsigned values as their
//! two's-complement bit pattern), text, and timestamps (SQLite's as text, which sqlx
//! decodes like PostgreSQL's `TIMESTAMPTZ`). Booleans are integers, 0 or 1.

use time::OffsetDateTime;
use walgate_core::api::{self, VerifyReport};
use walgate_core::{ClusterName, Lsn, SegmentName, SegmentSize, Timeline, WalFileName};

use super::{
    BackupRow, BackupStats, CatalogError, Changes, ClusterRow, ClusterStats, DigestError, Result,
    Seen, Sha256, Stale, TokenRow, WalRow, WalSpan,
};

fn corrupt<E: std::fmt::Display>(e: E) -> CatalogError {
    CatalogError::Corrupt(e.to_string())
}

/// A JSON column.
fn json<T: serde::de::DeserializeOwned>(what: &str, s: Option<String>) -> Result<Option<T>> {
    s.map(|j| serde_json::from_str(&j))
        .transpose()
        .map_err(|e| corrupt(format!("{what}: {e}")))
}

/// Stored as its bit pattern in a signed column.
fn unsigned(v: i64) -> u64 {
    v as u64
}

pub fn parse_name(s: &str) -> Result<WalFileName> {
    s.parse()
        .map_err(|e: walgate_core::WalNameError| corrupt(e))
}

fn parse_cluster(s: &str) -> Result<ClusterName> {
    s.parse()
        .map_err(|e: walgate_core::names::ClusterNameError| corrupt(e))
}

fn parse_sha(s: &str) -> Result<Sha256> {
    s.parse().map_err(|e: super::Sha256Error| corrupt(e))
}

/// A backup's hash column: empty until the backup is complete.
fn parse_backup_sha(s: &str) -> Result<Option<Sha256>> {
    (!s.is_empty()).then(|| parse_sha(s)).transpose()
}

#[derive(sqlx::FromRow)]
pub struct ClusterRecord {
    name: String,
    system_identifier: Option<i64>,
    segment_size: Option<i64>,
    pg_version: Option<i32>,
    created_at: OffsetDateTime,
    retention: Option<String>,
    target: String,
    thresholds: Option<String>,
    drill_policy: Option<String>,
    drill_requested_at: Option<OffsetDateTime>,
}

impl TryFrom<ClusterRecord> for ClusterRow {
    type Error = CatalogError;

    fn try_from(r: ClusterRecord) -> Result<Self> {
        let segment_size = r
            .segment_size
            .map(|b| {
                SegmentSize::new(b as u64).ok_or_else(|| corrupt(format!("bad segment size {b}")))
            })
            .transpose()?;
        Ok(ClusterRow {
            name: parse_cluster(&r.name)?,
            system_identifier: r.system_identifier.map(unsigned),
            segment_size,
            pg_version: r.pg_version.map(|v| v as u32),
            created_at: r.created_at,
            retention: json("retention policy", r.retention)?,
            target: r.target.parse().map_err(corrupt)?,
            thresholds: json("thresholds", r.thresholds)?,
            drill_policy: json("drill policy", r.drill_policy)?,
            drill_requested_at: r.drill_requested_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct StatsRecord {
    wal_files: i64,
    wal_bytes: i64,
    last_wal: Option<String>,
    last_archived_at: Option<OffsetDateTime>,
}

impl TryFrom<StatsRecord> for ClusterStats {
    type Error = CatalogError;

    fn try_from(r: StatsRecord) -> Result<Self> {
        let last_wal = r.last_wal.as_deref();
        Ok(ClusterStats {
            wal_files: unsigned(r.wal_files),
            wal_bytes: unsigned(r.wal_bytes),
            last_wal: last_wal
                .map(|s| {
                    s.parse()
                        .map_err(|e: walgate_core::WalNameError| corrupt(e))
                })
                .transpose()?,
            last_archived_at: r.last_archived_at,
        })
    }
}

/// A cluster joined with its WAL totals.
#[derive(sqlx::FromRow)]
pub struct ClusterStatsRecord {
    #[sqlx(flatten)]
    cluster: ClusterRecord,
    #[sqlx(flatten)]
    stats: StatsRecord,
}

impl TryFrom<ClusterStatsRecord> for (ClusterRow, ClusterStats) {
    type Error = CatalogError;

    fn try_from(r: ClusterStatsRecord) -> Result<Self> {
        Ok((r.cluster.try_into()?, r.stats.try_into()?))
    }
}

#[derive(sqlx::FromRow)]
pub struct BackupStatsRecord {
    cluster: String,
    n: i64,
    bytes: i64,
    oldest: Option<OffsetDateTime>,
    newest: Option<OffsetDateTime>,
    newest_size: Option<i64>,
    newest_started: Option<OffsetDateTime>,
}

impl TryFrom<BackupStatsRecord> for (ClusterName, BackupStats) {
    type Error = CatalogError;

    fn try_from(r: BackupStatsRecord) -> Result<Self> {
        let size = unsigned(r.newest_size.unwrap_or(0));
        let stats = BackupStats {
            complete: unsigned(r.n),
            stored_bytes: unsigned(r.bytes),
            newest: r.newest.map(|at| (at, size)),
            newest_took: r
                .newest
                .zip(r.newest_started)
                .map(|(end, start)| end - start),
            oldest: r.oldest,
        };
        Ok((parse_cluster(&r.cluster)?, stats))
    }
}

#[derive(sqlx::FromRow)]
pub struct WalRecord {
    name: String,
    size: i64,
    stored_size: i64,
    digest: String,
    archived_at: OffsetDateTime,
    retain_until: Option<OffsetDateTime>,
}

impl TryFrom<WalRecord> for WalRow {
    type Error = CatalogError;

    fn try_from(r: WalRecord) -> Result<Self> {
        Ok(WalRow {
            name: parse_name(&r.name)?,
            size: unsigned(r.size),
            stored_size: unsigned(r.stored_size),
            digest: r.digest.parse().map_err(|e: DigestError| corrupt(e))?,
            archived_at: r.archived_at,
            retain_until: r.retain_until,
        })
    }
}

/// The furthest position among a cluster's WAL file names.
#[derive(sqlx::FromRow)]
pub struct PositionRecord {
    pub position: Option<String>,
}

#[derive(sqlx::FromRow)]
pub struct WalSpanRecord {
    files: i64,
    bytes: i64,
    first: Option<String>,
    last: Option<String>,
}

impl TryFrom<WalSpanRecord> for WalSpan {
    type Error = CatalogError;

    fn try_from(r: WalSpanRecord) -> Result<Self> {
        Ok(WalSpan {
            files: unsigned(r.files),
            bytes: unsigned(r.bytes),
            first: r.first.as_deref().map(parse_name).transpose()?,
            last: r.last.as_deref().map(parse_name).transpose()?,
        })
    }
}

/// WAL archived on one day.
#[derive(sqlx::FromRow)]
pub struct VolumeRecord {
    day: String,
    files: i64,
    bytes: i64,
}

impl TryFrom<VolumeRecord> for (time::Date, u64, u64) {
    type Error = CatalogError;

    fn try_from(r: VolumeRecord) -> Result<Self> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let day = time::Date::parse(&r.day, format)
            .map_err(|e| corrupt(format!("archive day `{}`: {e}", r.day)))?;
        Ok((day, unsigned(r.files), unsigned(r.bytes)))
    }
}

#[derive(sqlx::FromRow)]
pub struct DeletionFailureRecord {
    object: String,
    error: String,
    attempts: i64,
    first_failed_at: OffsetDateTime,
    last_failed_at: OffsetDateTime,
}

impl From<DeletionFailureRecord> for api::DeletionFailure {
    fn from(r: DeletionFailureRecord) -> Self {
        api::DeletionFailure {
            object: r.object,
            error: r.error,
            attempts: unsigned(r.attempts),
            first_failed_at: r.first_failed_at,
            last_failed_at: r.last_failed_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct DeletionStatsRecord {
    cluster: String,
    n: i64,
    since: OffsetDateTime,
}

impl TryFrom<DeletionStatsRecord> for (ClusterName, u64, OffsetDateTime) {
    type Error = CatalogError;

    fn try_from(r: DeletionStatsRecord) -> Result<Self> {
        Ok((parse_cluster(&r.cluster)?, unsigned(r.n), r.since))
    }
}

#[derive(sqlx::FromRow)]
pub struct BackupRecord {
    id: String,
    status: String,
    label: String,
    method: String,
    from_standby: i64,
    start_lsn: i64,
    start_timeline: i64,
    checkpoint_lsn: i64,
    end_lsn: Option<i64>,
    end_timeline: Option<i64>,
    system_identifier: Option<i64>,
    size: i64,
    stored_size: i64,
    sha256: String,
    has_manifest: i64,
    started_at: OffsetDateTime,
    finished_at: Option<OffsetDateTime>,
    retain_until: Option<OffsetDateTime>,
    parent: Option<String>,
}

impl TryFrom<BackupRecord> for BackupRow {
    type Error = CatalogError;

    fn try_from(r: BackupRecord) -> Result<Self> {
        let lsn = |v: i64| Lsn(v as u64);
        let timeline = |v: i64| Timeline(v as u32);
        Ok(BackupRow {
            status: r.status.parse().map_err(corrupt::<String>)?,
            label: r.label,
            method: r.method,
            from_standby: r.from_standby != 0,
            start_lsn: lsn(r.start_lsn),
            start_timeline: timeline(r.start_timeline),
            checkpoint_lsn: lsn(r.checkpoint_lsn),
            end_lsn: r.end_lsn.map(lsn),
            end_timeline: r.end_timeline.map(timeline),
            system_identifier: r.system_identifier.map(unsigned),
            size: unsigned(r.size),
            stored_size: unsigned(r.stored_size),
            sha256: parse_backup_sha(&r.sha256)?,
            has_manifest: r.has_manifest != 0,
            started_at: r.started_at,
            finished_at: r.finished_at,
            retain_until: r.retain_until,
            parent: r.parent,
            id: r.id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct TokenRecord {
    id: String,
    clusters: String,
    role: String,
    description: Option<String>,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<TokenRecord> for TokenRow {
    type Error = CatalogError;

    fn try_from(r: TokenRecord) -> Result<Self> {
        Ok(TokenRow {
            id: r.id,
            scope: r.clusters.parse().map_err(corrupt::<String>)?,
            role: r.role.parse().map_err(corrupt::<String>)?,
            description: r.description,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// A stored verification report (JSON) and when it was last found to hold.
#[derive(sqlx::FromRow)]
pub struct ReportRecord {
    verified_at: OffsetDateTime,
    report: String,
}

impl TryFrom<ReportRecord> for VerifyReport {
    type Error = CatalogError;

    fn try_from(r: ReportRecord) -> Result<Self> {
        let mut report: VerifyReport = serde_json::from_str(&r.report)
            .map_err(|e| corrupt(format!("verification report: {e}")))?;
        report.verified_at = r.verified_at;
        Ok(report)
    }
}

#[derive(sqlx::FromRow)]
pub struct StaleRecord {
    cluster: String,
    ok: Option<i64>,
    wal_inserted: Option<i64>,
    wal_deleted: Option<i64>,
    backup_changes: Option<i64>,
    newest: Option<String>,
}

impl TryFrom<StaleRecord> for Stale {
    type Error = CatalogError;

    fn try_from(r: StaleRecord) -> Result<Self> {
        let seen = match (r.wal_inserted, r.wal_deleted, r.backup_changes) {
            (Some(inserted), Some(deleted), Some(backups)) => Some(Seen {
                changes: Changes {
                    wal_inserted: unsigned(inserted),
                    wal_deleted: unsigned(deleted),
                    backups: unsigned(backups),
                },
                newest: r.newest.as_deref().map(parse_segment).transpose()?,
            }),
            _ => None,
        };
        Ok(Stale {
            cluster: r.cluster.parse().map_err(corrupt)?,
            ok: r.ok == Some(1),
            seen,
        })
    }
}

/// A cluster's change counters.
#[derive(sqlx::FromRow)]
pub struct ChangesRecord {
    inserted: i64,
    deleted: i64,
    backup_changes: i64,
}

impl From<&ChangesRecord> for Changes {
    fn from(r: &ChangesRecord) -> Self {
        Changes {
            wal_inserted: unsigned(r.inserted),
            wal_deleted: unsigned(r.deleted),
            backups: unsigned(r.backup_changes),
        }
    }
}

/// A row of [`super::queries::APPENDED`]: the counters, and a name after the cursor.
#[derive(sqlx::FromRow)]
pub struct AppendedRecord {
    #[sqlx(flatten)]
    pub changes: ChangesRecord,
    name: Option<String>,
}

impl AppendedRecord {
    pub fn name(&self) -> Result<Option<WalFileName>> {
        self.name.as_deref().map(parse_name).transpose()
    }
}

fn parse_segment(s: &str) -> Result<SegmentName> {
    match parse_name(s)? {
        WalFileName::Segment(segment) => Ok(segment),
        other => Err(corrupt(format!("{other} is not a segment"))),
    }
}

/// A settings column's JSON.
pub fn settings(value: Option<&impl serde::Serialize>) -> Option<String> {
    value.map(|v| serde_json::to_string(v).expect("settings serialize"))
}

/// A verification report as stored.
pub fn report_json(report: &api::VerifyReport) -> String {
    serde_json::to_string(report).expect("reports serialize")
}

#[derive(sqlx::FromRow)]
pub struct DrillRecord {
    id: String,
    cluster: String,
    runner: String,
    status: String,
    started_at: OffsetDateTime,
    lease_until: OffsetDateTime,
    finished_at: Option<OffsetDateTime>,
    outcome: String,
}

impl TryFrom<DrillRecord> for super::DrillRow {
    type Error = CatalogError;

    fn try_from(r: DrillRecord) -> Result<Self> {
        Ok(super::DrillRow {
            id: r.id,
            cluster: parse_cluster(&r.cluster)?,
            runner: r.runner,
            status: r.status.parse().map_err(corrupt)?,
            started_at: r.started_at,
            lease_until: r.lease_until,
            finished_at: r.finished_at,
            outcome: serde_json::from_str(&r.outcome)
                .map_err(|e| corrupt(format!("drill outcome: {e}")))?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct RunnerRecord {
    name: String,
    majors: String,
    first_seen: OffsetDateTime,
    last_seen: OffsetDateTime,
}

impl TryFrom<RunnerRecord> for super::RunnerRow {
    type Error = CatalogError;

    fn try_from(r: RunnerRecord) -> Result<Self> {
        Ok(super::RunnerRow {
            name: r.name,
            majors: serde_json::from_str(&r.majors)
                .map_err(|e| corrupt(format!("runner majors: {e}")))?,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
        })
    }
}

/// A drill's outcome as stored.
pub fn outcome_json(outcome: &api::DrillOutcome) -> String {
    serde_json::to_string(outcome).expect("a drill outcome always serializes")
}
