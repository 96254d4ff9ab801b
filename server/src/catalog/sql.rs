//! The SQLite and PostgreSQL catalog backends.
//!
//! The two speak the same SQL here (`$n` placeholders, `ON CONFLICT`, `RETURNING`), and
//! sqlx decodes `TIMESTAMPTZ` and SQLite's text timestamps into the same
//! `OffsetDateTime`, so one body of code serves both. It is written once, as a macro,
//! because sqlx's generic-over-database bounds would be longer than the code itself.
//! Connection setup and migrations, which do differ, are written per backend.

use std::str::FromStr;
use std::time::Duration;

use walgate_core::TargetName;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;
use walgate_core::{ClusterName, Lsn, SegmentPosition, SegmentSize, Timeline, WalFileName};

use super::{
    BackupRow, BackupStats, BackupStatus, Catalog, ClusterRow, ClusterStats, Inserted, Result,
    TokenRow, WalFilter, WalRow, WalSpan, parse_cluster, parse_name, parse_backup_sha, parse_segment, parse_segment_size, parse_sha,
};

/// Whether a WAL file's object waits for deletion (`$1` cluster, `$2` name).
const WAL_DELETING: &str = "SELECT 1 AS one FROM wal_deletions WHERE cluster = $1 AND name = $2";

/// The embedded catalog: one SQLite file in WAL mode with `synchronous=FULL`, so a
/// committed row survives power loss (an ack depends on it).
pub struct SqliteCatalog {
    pool: SqlitePool,
}

impl SqliteCatalog {
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(SqliteCatalog { pool })
    }
}

/// The production catalog, shared by every gateway replica pointed at it.
pub struct PostgresCatalog {
    pool: PgPool,
}

impl PostgresCatalog {
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(PostgresCatalog { pool })
    }
}

const CLUSTER_COLUMNS: &str =
    "name, system_identifier, segment_size, pg_version, created_at, retention, target, thresholds";
/// WAL files that retention may expire: all but history files, before position `$2`.
const EXPIRABLE: &str = "cluster = $1 AND kind <> 'history' AND substr(name, 9, 16) < $2";
const WAL_COLUMNS: &str = "name, size, stored_size, sha256, archived_at";
const BACKUP_COLUMNS: &str = "id, status, label, method, from_standby, start_lsn, start_timeline, \
     checkpoint_lsn, end_lsn, end_timeline, system_identifier, size, stored_size, sha256, \
     has_manifest, started_at, finished_at";
const TOKEN_COLUMNS: &str = "id, clusters, role, description, created_at, expires_at, revoked_at";

fn u64_col(v: i64) -> u64 {
    v as u64
}

macro_rules! sql_catalog {
    ($catalog:ty, $row:ty, $backend:literal) => {
        impl $catalog {
            fn cluster_row(row: &$row) -> Result<ClusterRow> {
                Ok(ClusterRow {
                    name: parse_cluster(row.try_get("name")?)?,
                    system_identifier: row.try_get::<Option<i64>, _>("system_identifier")?.map(u64_col),
                    segment_size: parse_segment_size(row.try_get("segment_size")?)?,
                    pg_version: row.try_get::<Option<i32>, _>("pg_version")?.map(|v| v as u32),
                    created_at: row.try_get("created_at")?,
                    retention: row
                        .try_get::<Option<String>, _>("retention")?
                        .map(|j| serde_json::from_str(&j))
                        .transpose()
                        .map_err(|e| super::CatalogError::Corrupt(format!("retention policy: {e}")))?,
                    target: row
                        .try_get::<&str, _>("target")?
                        .parse()
                        .map_err(super::CatalogError::Corrupt)?,
                    thresholds: row
                        .try_get::<Option<String>, _>("thresholds")?
                        .map(|j| serde_json::from_str(&j))
                        .transpose()
                        .map_err(|e| super::CatalogError::Corrupt(format!("thresholds: {e}")))?,
                })
            }

            fn wal_row(row: &$row) -> Result<WalRow> {
                Ok(WalRow {
                    name: parse_name(row.try_get("name")?)?,
                    size: u64_col(row.try_get("size")?),
                    stored_size: u64_col(row.try_get("stored_size")?),
                    sha256: parse_sha(row.try_get("sha256")?)?,
                    archived_at: row.try_get("archived_at")?,
                })
            }

            fn token_row(row: &$row) -> Result<TokenRow> {
                let corrupt = |e: String| super::CatalogError::Corrupt(e);
                Ok(TokenRow {
                    id: row.try_get("id")?,
                    scope: row.try_get::<&str, _>("clusters")?.parse().map_err(corrupt)?,
                    role: row.try_get::<&str, _>("role")?.parse().map_err(corrupt)?,
                    description: row.try_get("description")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            }

            fn backup_row(row: &$row) -> Result<BackupRow> {
                let corrupt = |e: String| super::CatalogError::Corrupt(e);
                let lsn = |v: i64| Lsn(v as u64);
                let timeline = |v: i64| Timeline(v as u32);
                Ok(BackupRow {
                    id: row.try_get("id")?,
                    status: row.try_get::<&str, _>("status")?.parse().map_err(corrupt)?,
                    label: row.try_get("label")?,
                    method: row.try_get("method")?,
                    from_standby: row.try_get::<i64, _>("from_standby")? != 0,
                    start_lsn: lsn(row.try_get("start_lsn")?),
                    start_timeline: timeline(row.try_get("start_timeline")?),
                    checkpoint_lsn: lsn(row.try_get("checkpoint_lsn")?),
                    end_lsn: row.try_get::<Option<i64>, _>("end_lsn")?.map(lsn),
                    end_timeline: row.try_get::<Option<i64>, _>("end_timeline")?.map(timeline),
                    system_identifier: row.try_get::<Option<i64>, _>("system_identifier")?.map(u64_col),
                    size: u64_col(row.try_get("size")?),
                    stored_size: u64_col(row.try_get("stored_size")?),
                    sha256: parse_backup_sha(row.try_get("sha256")?)?,
                    has_manifest: row.try_get::<i64, _>("has_manifest")? != 0,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                })
            }

            /// Sets (`None`: clears) one of a cluster's JSON settings columns; false if no
            /// such cluster.
            async fn set_json(
                &self,
                column: &str,
                cluster: &ClusterName,
                value: Option<&impl serde::Serialize>,
            ) -> Result<bool> {
                let json = value.map(|v| serde_json::to_string(v).expect("settings serialize"));
                let sql = format!("UPDATE clusters SET {column} = $2 WHERE name = $1");
                let done = sqlx::query(AssertSqlSafe(sql))
                    .bind(cluster.as_str())
                    .bind(json)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            /// Moves the WAL rows `condition` (on `$1` the cluster and `$2` the position)
            /// selects to `wal_deletions`, in one transaction; returns how many.
            async fn move_to_deletions(
                &self,
                condition: &str,
                cluster: &ClusterName,
                position: Option<SegmentPosition>,
            ) -> Result<u64> {
                let mut tx = self.pool.begin().await?;
                let copy = format!(
                    "INSERT INTO wal_deletions (cluster, name) \
                     SELECT cluster, name FROM wal_files WHERE {condition} ON CONFLICT DO NOTHING"
                );
                let delete = format!("DELETE FROM wal_files WHERE {condition}");
                let mut moved = 0;
                for sql in [copy, delete] {
                    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(cluster.as_str());
                    if let Some(p) = position {
                        q = q.bind(p.to_string());
                    }
                    moved = q.execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(moved)
            }

            fn report(row: &$row) -> Result<walgate_core::api::VerifyReport> {
                let json: String = row.try_get("report")?;
                serde_json::from_str(&json)
                    .map_err(|e| super::CatalogError::Corrupt(format!("verification report: {e}")))
            }

            fn stats(row: &$row) -> Result<ClusterStats> {
                Ok(ClusterStats {
                    wal_files: u64_col(row.try_get("wal_files")?),
                    wal_bytes: u64_col(row.try_get("wal_bytes")?),
                    last_wal: row.try_get::<Option<&str>, _>("last_wal")?.map(parse_segment).transpose()?,
                    last_archived_at: row.try_get("last_archived_at")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl Catalog for $catalog {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn cluster(&self, name: &ClusterName) -> Result<Option<ClusterRow>> {
                let sql = format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = $1");
                let row = sqlx::query(AssertSqlSafe(sql)).bind(name.as_str()).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::cluster_row).transpose()
            }

            async fn ensure_cluster(&self, name: &ClusterName, target: &TargetName) -> Result<ClusterRow> {
                sqlx::query(
                    "INSERT INTO clusters (name, created_at, target) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name.as_str())
                .bind(OffsetDateTime::now_utc())
                .bind(target.as_str())
                .execute(&self.pool)
                .await?;
                let sql = format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = $1");
                let row = sqlx::query(AssertSqlSafe(sql)).bind(name.as_str()).fetch_one(&self.pool).await?;
                Self::cluster_row(&row)
            }

            async fn pin_cluster(
                &self,
                name: &ClusterName,
                system_identifier: u64,
                segment_size: SegmentSize,
                pg_version: Option<u32>,
            ) -> Result<ClusterRow> {
                let sql = format!(
                    "UPDATE clusters SET \
                       system_identifier = COALESCE(system_identifier, $2), \
                       segment_size = COALESCE(segment_size, $3), \
                       pg_version = COALESCE(pg_version, $4) \
                     WHERE name = $1 RETURNING {CLUSTER_COLUMNS}"
                );
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(name.as_str())
                    .bind(system_identifier as i64)
                    .bind(segment_size.bytes() as i64)
                    .bind(pg_version.map(|v| v as i32))
                    .fetch_one(&self.pool)
                    .await?;
                Self::cluster_row(&row)
            }

            async fn set_target(&self, name: &ClusterName, target: &TargetName) -> Result<bool> {
                let moved = sqlx::query(
                    "UPDATE clusters SET target = $2 WHERE name = $1 AND (target = $2 OR ( \
                       NOT EXISTS (SELECT 1 FROM wal_files WHERE cluster = $1) \
                       AND NOT EXISTS (SELECT 1 FROM backups WHERE cluster = $1) \
                       AND NOT EXISTS (SELECT 1 FROM wal_deletions WHERE cluster = $1)))",
                )
                .bind(name.as_str())
                .bind(target.as_str())
                .execute(&self.pool)
                .await?;
                Ok(moved.rows_affected() == 1)
            }

            async fn clusters(&self) -> Result<Vec<(ClusterRow, ClusterStats)>> {
                let sql = format!(
                    "SELECT {CLUSTER_COLUMNS}, {STATS_COLUMNS} FROM clusters c \
                     LEFT JOIN wal_stats w ON w.cluster = c.name ORDER BY c.name"
                );
                let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
                rows.iter().map(|r| Ok((Self::cluster_row(r)?, Self::stats(r)?))).collect()
            }

            async fn cluster_stats(&self, name: &ClusterName) -> Result<ClusterStats> {
                let sql = format!(
                    "SELECT {STATS_COLUMNS} FROM (SELECT 1 AS one) o \
                     LEFT JOIN wal_stats w ON w.cluster = $1"
                );
                let row = sqlx::query(AssertSqlSafe(sql)).bind(name.as_str()).fetch_one(&self.pool).await?;
                Self::stats(&row)
            }

            async fn wal_volume(
                &self,
                cluster: &ClusterName,
                since: OffsetDateTime,
            ) -> Result<Vec<(time::Date, u64, u64)>> {
                let day = match $backend {
                    // Stored as text, in UTC: the date is its first ten characters.
                    "sqlite" => "substr(archived_at, 1, 10)",
                    _ => "to_char(archived_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
                };
                let sql = format!(
                    "SELECT {day} AS day, count(*) AS files, CAST(sum(stored_size) AS BIGINT) AS bytes \
                     FROM wal_files WHERE cluster = $1 AND archived_at >= $2 GROUP BY 1 ORDER BY 1"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(cluster.as_str())
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?;
                let format = time::macros::format_description!("[year]-[month]-[day]");
                rows.iter()
                    .map(|r| {
                        let day: String = r.try_get("day")?;
                        let day = time::Date::parse(&day, format).map_err(|e| {
                            super::CatalogError::Corrupt(format!("archive day `{day}`: {e}"))
                        })?;
                        Ok((day, u64_col(r.try_get("files")?), u64_col(r.try_get("bytes")?)))
                    })
                    .collect()
            }

            async fn backup_stats(
                &self,
                cluster: Option<&ClusterName>,
            ) -> Result<Vec<(ClusterName, BackupStats)>> {
                // $1 IS NULL: the whole fleet.
                let rows = sqlx::query(
                    "SELECT cluster, count(*) AS n, CAST(sum(stored_size) AS BIGINT) AS bytes, \
                       min(finished_at) AS oldest, max(finished_at) AS newest, \
                       (SELECT n.stored_size FROM backups n WHERE n.cluster = b.cluster \
                          AND n.status = 'complete' ORDER BY n.finished_at DESC LIMIT 1) AS newest_size, \
                       (SELECT n.started_at FROM backups n WHERE n.cluster = b.cluster \
                          AND n.status = 'complete' ORDER BY n.finished_at DESC LIMIT 1) AS newest_started \
                     FROM backups b WHERE status = 'complete' AND ($1 IS NULL OR cluster = $1) \
                     GROUP BY cluster",
                )
                .bind(cluster.map(ClusterName::as_str))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let newest: Option<OffsetDateTime> = r.try_get("newest")?;
                        let size = u64_col(r.try_get::<Option<i64>, _>("newest_size")?.unwrap_or(0));
                        let started: Option<OffsetDateTime> = r.try_get("newest_started")?;
                        Ok((
                            parse_cluster(r.try_get("cluster")?)?,
                            BackupStats {
                                complete: u64_col(r.try_get("n")?),
                                stored_bytes: u64_col(r.try_get("bytes")?),
                                newest: newest.map(|at| (at, size)),
                                newest_took: newest.zip(started).map(|(end, start)| end - start),
                                oldest: r.try_get("oldest")?,
                            },
                        ))
                    })
                    .collect()
            }

            async fn wal(&self, cluster: &ClusterName, name: &WalFileName) -> Result<Option<WalRow>> {
                let sql = format!("SELECT {WAL_COLUMNS} FROM wal_files WHERE cluster = $1 AND name = $2");
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(cluster.as_str())
                    .bind(name.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::wal_row).transpose()
            }

            async fn insert_wal(&self, cluster: &ClusterName, row: &WalRow) -> Result<Inserted> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "INSERT INTO wal_files \
                       (cluster, name, kind, timeline, size, stored_size, sha256, archived_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (cluster, name) DO NOTHING",
                )
                .bind(cluster.as_str())
                .bind(row.name.to_string())
                .bind(row.name.kind().as_str())
                .bind(i64::from(row.name.timeline().0))
                .bind(row.size as i64)
                .bind(row.stored_size as i64)
                .bind(row.sha256.to_string())
                .bind(row.archived_at)
                .execute(&mut *tx)
                .await?;
                // A statement of its own: on PostgreSQL it sees a retention run that moved
                // the name to its deletions while the insert waited for the old row (the
                // insert's own snapshot predates it).
                let deleting = sqlx::query(WAL_DELETING)
                    .bind(cluster.as_str())
                    .bind(row.name.to_string())
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if deleting {
                    tx.rollback().await?;
                    return Ok(Inserted::Deleting);
                }
                tx.commit().await?;
                if done.rows_affected() == 1 {
                    return Ok(Inserted::New);
                }
                match self.wal(cluster, &row.name).await? {
                    Some(existing) => Ok(Inserted::Existing(existing)),
                    // Expired and forgotten since: the next try stores it anew.
                    None => Ok(Inserted::Deleting),
                }
            }

            async fn list_wal(&self, cluster: &ClusterName, f: &WalFilter) -> Result<Vec<WalRow>> {
                let sql = format!(
                    "SELECT {WAL_COLUMNS} FROM wal_files WHERE cluster = $1 \
                       AND ($2 IS NULL OR timeline = $2) \
                       AND ($3 IS NULL OR name >= $3) \
                       AND ($4 IS NULL OR name <= $4) \
                       AND ($5 IS NULL OR name > $5) \
                     ORDER BY name LIMIT $6"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(cluster.as_str())
                    .bind(f.timeline.map(i64::from))
                    .bind(f.from.map(|n| n.to_string()))
                    .bind(f.to.map(|n| n.to_string()))
                    .bind(f.after.map(|n| n.to_string()))
                    .bind(i64::from(f.limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::wal_row).collect()
            }

            async fn insert_backup(&self, cluster: &ClusterName, b: &BackupRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO backups (cluster, id, status, label, method, from_standby, start_lsn, \
                       start_timeline, checkpoint_lsn, end_lsn, end_timeline, system_identifier, size, \
                       stored_size, sha256, has_manifest, started_at, finished_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                )
                .bind(cluster.as_str())
                .bind(&b.id)
                .bind(b.status.as_str())
                .bind(&b.label)
                .bind(&b.method)
                .bind(i64::from(b.from_standby))
                .bind(b.start_lsn.0 as i64)
                .bind(i64::from(b.start_timeline.0))
                .bind(b.checkpoint_lsn.0 as i64)
                .bind(b.end_lsn.map(|l| l.0 as i64))
                .bind(b.end_timeline.map(|t| i64::from(t.0)))
                .bind(b.system_identifier.map(|s| s as i64))
                .bind(b.size as i64)
                .bind(b.stored_size as i64)
                .bind(b.sha256_hex())
                .bind(i64::from(b.has_manifest))
                .bind(b.started_at)
                .bind(b.finished_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn update_backup(
                &self,
                cluster: &ClusterName,
                b: &BackupRow,
                from: BackupStatus,
            ) -> Result<bool> {
                let updated = sqlx::query(
                    "UPDATE backups SET status = $3, end_lsn = $4, end_timeline = $5, \
                       system_identifier = $6, size = $7, stored_size = $8, sha256 = $9, \
                       has_manifest = $10, finished_at = $11 \
                     WHERE cluster = $1 AND id = $2 AND status = $12",
                )
                .bind(cluster.as_str())
                .bind(&b.id)
                .bind(b.status.as_str())
                .bind(b.end_lsn.map(|l| l.0 as i64))
                .bind(b.end_timeline.map(|t| i64::from(t.0)))
                .bind(b.system_identifier.map(|s| s as i64))
                .bind(b.size as i64)
                .bind(b.stored_size as i64)
                .bind(b.sha256_hex())
                .bind(i64::from(b.has_manifest))
                .bind(b.finished_at)
                .bind(from.as_str())
                .execute(&self.pool)
                .await?;
                Ok(updated.rows_affected() == 1)
            }

            async fn delete_backup(&self, cluster: &ClusterName, id: &str) -> Result<()> {
                sqlx::query("DELETE FROM backups WHERE cluster = $1 AND id = $2")
                    .bind(cluster.as_str())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn beat_backup(&self, cluster: &ClusterName, id: &str, at: OffsetDateTime) -> Result<()> {
                sqlx::query("UPDATE backups SET heartbeat_at = $3 WHERE cluster = $1 AND id = $2")
                    .bind(cluster.as_str())
                    .bind(id)
                    .bind(at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn stale_uploads(&self, cluster: &ClusterName, before: OffsetDateTime) -> Result<Vec<String>> {
                let ids = sqlx::query_scalar(
                    "SELECT id FROM backups WHERE cluster = $1 AND status = 'uploading' \
                     AND COALESCE(heartbeat_at, started_at) < $2 ORDER BY id",
                )
                .bind(cluster.as_str())
                .bind(before)
                .fetch_all(&self.pool)
                .await?;
                Ok(ids)
            }

            async fn backup(&self, cluster: &ClusterName, id: &str) -> Result<Option<BackupRow>> {
                let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE cluster = $1 AND id = $2");
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(cluster.as_str())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::backup_row).transpose()
            }

            async fn backups(&self, cluster: &ClusterName) -> Result<Vec<BackupRow>> {
                let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE cluster = $1 ORDER BY id DESC");
                let rows = sqlx::query(AssertSqlSafe(sql)).bind(cluster.as_str()).fetch_all(&self.pool).await?;
                rows.iter().map(Self::backup_row).collect()
            }

            async fn set_retention(
                &self,
                cluster: &ClusterName,
                policy: Option<&walgate_core::api::RetentionPolicy>,
            ) -> Result<bool> {
                self.set_json("retention", cluster, policy).await
            }

            async fn set_thresholds(
                &self,
                cluster: &ClusterName,
                thresholds: Option<&walgate_core::api::StatusThresholds>,
            ) -> Result<bool> {
                self.set_json("thresholds", cluster, thresholds).await
            }

            async fn wal_before(&self, cluster: &ClusterName, position: SegmentPosition) -> Result<WalSpan> {
                let sql = format!(
                    "SELECT count(*) AS files, CAST(coalesce(sum(stored_size), 0) AS BIGINT) AS bytes, \
                       min(name) AS first, max(name) AS last FROM wal_files WHERE {EXPIRABLE}"
                );
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(cluster.as_str())
                    .bind(position.to_string())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(WalSpan {
                    files: u64_col(row.try_get("files")?),
                    bytes: u64_col(row.try_get("bytes")?),
                    first: row.try_get::<Option<&str>, _>("first")?.map(parse_name).transpose()?,
                    last: row.try_get::<Option<&str>, _>("last")?.map(parse_name).transpose()?,
                })
            }

            async fn expire_wal(&self, cluster: &ClusterName, position: SegmentPosition) -> Result<u64> {
                self.move_to_deletions(EXPIRABLE, cluster, Some(position)).await
            }

            async fn expire_all_wal(&self, cluster: &ClusterName) -> Result<u64> {
                self.move_to_deletions("cluster = $1", cluster, None).await
            }

            async fn delete_cluster(&self, cluster: &ClusterName) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let holds: i64 = sqlx::query_scalar(
                    "SELECT (SELECT count(*) FROM wal_files WHERE cluster = $1) \
                          + (SELECT count(*) FROM backups WHERE cluster = $1) \
                          + (SELECT count(*) FROM wal_deletions WHERE cluster = $1)",
                )
                .bind(cluster.as_str())
                .fetch_one(&mut *tx)
                .await?;
                if holds > 0 {
                    return Ok(false);
                }
                for table in ["verifications", "wal_stats"] {
                    sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE cluster = $1")))
                        .bind(cluster.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                let gone = sqlx::query("DELETE FROM clusters WHERE name = $1")
                    .bind(cluster.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(gone.rows_affected() == 1)
            }

            async fn wal_deletions(&self, cluster: &ClusterName, limit: u32) -> Result<Vec<WalFileName>> {
                let rows = sqlx::query(
                    "SELECT name FROM wal_deletions WHERE cluster = $1 ORDER BY name LIMIT $2",
                )
                .bind(cluster.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| parse_name(r.try_get("name")?)).collect()
            }

            async fn wal_deleting(&self, cluster: &ClusterName, name: &WalFileName) -> Result<bool> {
                let row = sqlx::query(WAL_DELETING)
                    .bind(cluster.as_str())
                    .bind(name.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn forget_wal_deletions(&self, cluster: &ClusterName, names: &[WalFileName]) -> Result<()> {
                // One statement per batch of names: retention forgets files a thousand at
                // a time, and a query per file would dominate a large run.
                for chunk in names.chunks(1000) {
                    let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
                    let sql = format!(
                        "DELETE FROM wal_deletions WHERE cluster = $1 AND name IN ({})",
                        placeholders.join(", ")
                    );
                    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(cluster.as_str());
                    for name in chunk {
                        query = query.bind(name.to_string());
                    }
                    query.execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn take_lease(&self, job: &str, holder: &str, now: i64, until: i64) -> Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO job_leases (job, holder, until) VALUES ($1, $2, $3) \
                     ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE job_leases.until < $4 OR job_leases.holder = excluded.holder",
                )
                .bind(job)
                .bind(holder)
                .bind(until)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn lease_until(&self, job: &str) -> Result<Option<i64>> {
                let row = sqlx::query("SELECT until FROM job_leases WHERE job = $1")
                    .bind(job)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("until")).transpose()?)
            }

            async fn record_verification(
                &self,
                cluster: &ClusterName,
                report: &walgate_core::api::VerifyReport,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO verifications (cluster, verified_at, ok, report) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (cluster) DO UPDATE SET verified_at = excluded.verified_at, \
                       ok = excluded.ok, report = excluded.report",
                )
                .bind(cluster.as_str())
                .bind(report.verified_at)
                .bind(i64::from(report.ok))
                .bind(serde_json::to_string(report).expect("reports serialize"))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn last_verification(
                &self,
                cluster: &ClusterName,
            ) -> Result<Option<walgate_core::api::VerifyReport>> {
                let row = sqlx::query("SELECT report FROM verifications WHERE cluster = $1")
                    .bind(cluster.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::report).transpose()
            }

            async fn verifications(&self) -> Result<Vec<walgate_core::api::VerifyReport>> {
                let rows = sqlx::query("SELECT report FROM verifications").fetch_all(&self.pool).await?;
                rows.iter().map(Self::report).collect()
            }

            async fn insert_token(&self, t: &TokenRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO tokens (id, clusters, role, description, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&t.id)
                .bind(t.scope.encode())
                .bind(t.role.as_str())
                .bind(&t.description)
                .bind(t.created_at)
                .bind(t.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
                let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1");
                let row = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::token_row).transpose()
            }

            async fn tokens(&self) -> Result<Vec<TokenRow>> {
                let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id");
                let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
                rows.iter().map(Self::token_row).collect()
            }

            async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

/// A cluster's row of `wal_stats` (kept by triggers), joined as `w`.
const STATS_COLUMNS: &str = "CAST(COALESCE(w.files, 0) AS BIGINT) AS wal_files, \
     CAST(COALESCE(w.bytes, 0) AS BIGINT) AS wal_bytes, \
     w.last_wal AS last_wal, w.last_archived_at AS last_archived_at";

sql_catalog!(SqliteCatalog, SqliteRow, "sqlite");
sql_catalog!(PostgresCatalog, PgRow, "postgres");
