//! The catalog over sqlx, written once for both backends.
//!
//! SQLite and PostgreSQL run the same statements ([`queries`]) and decode the same
//! records ([`records`]); a [`Backend`] supplies its name and the statements that
//! differ. Connection setup and migrations, which differ too, live in `sqlite.rs` and
//! `postgres.rs`.
//!
//! Durability: every write that an ack depends on is one statement or one transaction,
//! committed before the call returns; on SQLite the connection runs with
//! `synchronous=FULL` (see `sqlite.rs`).

use sqlx::error::BoxDynError;
use sqlx::{
    Arguments, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type, query,
    query_as, query_as_with, query_scalar, query_with,
};
use time::OffsetDateTime;
use walgate_core::api::{self, RetentionPolicy, StatusThresholds, VerifyReport};
use walgate_core::{ClusterName, SegmentPosition, SegmentSize, TargetName, WalFileName};

use super::records::{
    AppendedRecord, BackupRecord, BackupStatsRecord, ChangesRecord, ClusterRecord,
    ClusterStatsRecord, DeletionFailureRecord, DeletionStatsRecord, DrillRecord, PositionRecord,
    ReportRecord, RunnerRecord, StaleRecord, StatsRecord, TokenRecord, VolumeRecord, WalRecord,
    WalSpanRecord, outcome_json, parse_name, report_json, settings,
};
use super::{
    BackupRow, BackupStats, BackupStatus, Catalog, Changes, ClusterRow, ClusterStats, DrillRow,
    Inserted, LastDrill, Result, RunnerRow, Seen, Stale, TokenRow, WalFilter, WalRow, WalSpan,
    queries,
};

/// What the two backends do differently in the shared code.
pub trait Backend: Database {
    /// For logs and `/readyz`.
    const BACKEND: &'static str;
    /// [`Catalog::wal_volume`]'s statement: the date of a timestamp differs.
    const WAL_VOLUME: &'static str;

    /// How many rows a statement changed (sqlx has no trait for it).
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

/// A catalog on a pool of `DB` connections.
pub struct SqlCatalog<DB: Database> {
    pub(super) pool: Pool<DB>,
}

/// The arguments of the statements on expirable WAL ([`queries::WAL_BEFORE`],
/// [`queries::EXPIRE_WAL`]): the cluster, and the position as the text each name's
/// position is compared with.
fn expirable<DB>(
    cluster: &ClusterName,
    position: SegmentPosition,
) -> Result<DB::Arguments, BoxDynError>
where
    DB: Database,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
{
    let mut args = DB::Arguments::default();
    args.add(cluster.as_str())?;
    args.add(position.to_string())?;
    Ok(args)
}

/// Sets (`None`: clears) the cluster's JSON settings column that `sql` updates; false
/// if no such cluster.
async fn set_setting<DB>(
    pool: &Pool<DB>,
    sql: &'static str,
    cluster: &ClusterName,
    json: Option<String>,
) -> Result<bool>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB> + Type<DB>,
{
    let done = query(sql)
        .bind(cluster.as_str())
        .bind(json)
        .execute(pool)
        .await?;
    Ok(DB::rows_affected(&done) == 1)
}

#[async_trait::async_trait]
impl<DB> Catalog for SqlCatalog<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'r> String: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Encode<'r, DB> + Type<DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Encode<'r, DB> + Type<DB>,
    for<'r> Option<i32>: Encode<'r, DB> + Type<DB>,
    for<'r> OffsetDateTime: Encode<'r, DB> + Type<DB>,
    for<'r> Option<OffsetDateTime>: Encode<'r, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (String, Option<OffsetDateTime>): FromRow<'r, DB::Row>,
    for<'r> (Option<OffsetDateTime>,): FromRow<'r, DB::Row>,
    for<'r> ClusterRecord: FromRow<'r, DB::Row>,
    for<'r> StatsRecord: FromRow<'r, DB::Row>,
    for<'r> ClusterStatsRecord: FromRow<'r, DB::Row>,
    for<'r> BackupStatsRecord: FromRow<'r, DB::Row>,
    for<'r> WalRecord: FromRow<'r, DB::Row>,
    for<'r> WalSpanRecord: FromRow<'r, DB::Row>,
    for<'r> PositionRecord: FromRow<'r, DB::Row>,
    for<'r> VolumeRecord: FromRow<'r, DB::Row>,
    for<'r> BackupRecord: FromRow<'r, DB::Row>,
    for<'r> TokenRecord: FromRow<'r, DB::Row>,
    for<'r> DeletionFailureRecord: FromRow<'r, DB::Row>,
    for<'r> DeletionStatsRecord: FromRow<'r, DB::Row>,
    for<'r> DrillRecord: FromRow<'r, DB::Row>,
    for<'r> RunnerRecord: FromRow<'r, DB::Row>,
    for<'r> ReportRecord: FromRow<'r, DB::Row>,
    for<'r> StaleRecord: FromRow<'r, DB::Row>,
    for<'r> AppendedRecord: FromRow<'r, DB::Row>,
    for<'r> ChangesRecord: FromRow<'r, DB::Row>,
{
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    async fn ping(&self) -> Result<()> {
        query(queries::PING).execute(&self.pool).await?;
        Ok(())
    }

    async fn cluster(&self, name: &ClusterName) -> Result<Option<ClusterRow>> {
        let found: Option<ClusterRecord> = query_as(queries::CLUSTER)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        found.map(TryInto::try_into).transpose()
    }

    async fn ensure_cluster(&self, name: &ClusterName, target: &TargetName) -> Result<ClusterRow> {
        query(queries::ENSURE_CLUSTER)
            .bind(name.as_str())
            .bind(OffsetDateTime::now_utc())
            .bind(target.as_str())
            .execute(&self.pool)
            .await?;
        let row: ClusterRecord = query_as(queries::CLUSTER)
            .bind(name.as_str())
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    async fn set_target(&self, name: &ClusterName, target: &TargetName) -> Result<bool> {
        let moved = query(queries::SET_TARGET)
            .bind(name.as_str())
            .bind(target.as_str())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&moved) == 1)
    }

    async fn pin_cluster(
        &self,
        name: &ClusterName,
        system_identifier: u64,
        segment_size: SegmentSize,
        pg_version: Option<u32>,
    ) -> Result<ClusterRow> {
        let row: ClusterRecord = query_as(queries::PIN_CLUSTER)
            .bind(name.as_str())
            .bind(system_identifier as i64)
            .bind(segment_size.bytes() as i64)
            .bind(pg_version.map(|v| v as i32))
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    async fn clusters(&self) -> Result<Vec<(ClusterRow, ClusterStats)>> {
        let rows: Vec<ClusterStatsRecord> =
            query_as(queries::CLUSTERS).fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn cluster_stats(&self, name: &ClusterName) -> Result<ClusterStats> {
        let row: StatsRecord = query_as(queries::CLUSTER_STATS)
            .bind(name.as_str())
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    async fn backup_stats(
        &self,
        cluster: Option<&ClusterName>,
    ) -> Result<Vec<(ClusterName, BackupStats)>> {
        let rows: Vec<BackupStatsRecord> = query_as(queries::BACKUP_STATS)
            .bind(cluster.map(ClusterName::as_str))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn wal(&self, cluster: &ClusterName, name: &WalFileName) -> Result<Option<WalRow>> {
        let found: Option<WalRecord> = query_as(queries::WAL)
            .bind(cluster.as_str())
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        found.map(TryInto::try_into).transpose()
    }

    async fn insert_wal(&self, cluster: &ClusterName, row: &WalRow) -> Result<Inserted> {
        let mut tx = self.pool.begin().await?;
        let done = query(queries::INSERT_WAL)
            .bind(cluster.as_str())
            .bind(row.name.to_string())
            .bind(row.name.kind().as_str())
            .bind(i64::from(row.name.timeline().0))
            .bind(row.size as i64)
            .bind(row.stored_size as i64)
            .bind(row.digest.to_string())
            .bind(row.archived_at)
            .bind(row.retain_until)
            .execute(&mut *tx)
            .await?;
        // A statement of its own: on PostgreSQL it sees a retention run that moved the
        // name to its deletions while the insert waited for the old row (the insert's
        // own snapshot predates it).
        let deleting = query(queries::WAL_DELETING)
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
        if DB::rows_affected(&done) == 1 {
            return Ok(Inserted::New);
        }
        match self.wal(cluster, &row.name).await? {
            Some(existing) => Ok(Inserted::Existing(existing)),
            // Expired and forgotten since: the next try stores it anew.
            None => Ok(Inserted::Deleting),
        }
    }

    async fn list_wal(&self, cluster: &ClusterName, f: &WalFilter) -> Result<Vec<WalRow>> {
        let rows: Vec<WalRecord> = query_as(queries::LIST_WAL)
            .bind(cluster.as_str())
            .bind(f.timeline.map(i64::from))
            .bind(f.from.map(|n| n.to_string()))
            .bind(f.to.map(|n| n.to_string()))
            .bind(f.after.map(|n| n.to_string()))
            .bind(i64::from(f.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn wal_volume(
        &self,
        cluster: &ClusterName,
        since: OffsetDateTime,
    ) -> Result<Vec<(time::Date, u64, u64)>> {
        let rows: Vec<VolumeRecord> = query_as(DB::WAL_VOLUME)
            .bind(cluster.as_str())
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn insert_backup(&self, cluster: &ClusterName, b: &BackupRow) -> Result<()> {
        query(queries::INSERT_BACKUP)
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
            .bind(b.retain_until)
            .bind(b.parent.as_deref())
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
        let updated = query(queries::UPDATE_BACKUP)
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
            .bind(b.retain_until)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&updated) == 1)
    }

    async fn delete_backup(&self, cluster: &ClusterName, id: &str) -> Result<()> {
        query(queries::DELETE_BACKUP)
            .bind(cluster.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn beat_backup(&self, cluster: &ClusterName, id: &str, at: OffsetDateTime) -> Result<()> {
        query(queries::BEAT_BACKUP)
            .bind(cluster.as_str())
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn stale_uploads(
        &self,
        cluster: &ClusterName,
        before: OffsetDateTime,
    ) -> Result<Vec<String>> {
        let ids = query_scalar(queries::STALE_UPLOADS)
            .bind(cluster.as_str())
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids)
    }

    async fn backup(&self, cluster: &ClusterName, id: &str) -> Result<Option<BackupRow>> {
        let found: Option<BackupRecord> = query_as(queries::BACKUP)
            .bind(cluster.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        found.map(TryInto::try_into).transpose()
    }

    async fn backups(&self, cluster: &ClusterName) -> Result<Vec<BackupRow>> {
        let rows: Vec<BackupRecord> = query_as(queries::BACKUPS)
            .bind(cluster.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn set_retention(
        &self,
        cluster: &ClusterName,
        policy: Option<&RetentionPolicy>,
    ) -> Result<bool> {
        set_setting(
            &self.pool,
            queries::SET_RETENTION,
            cluster,
            settings(policy),
        )
        .await
    }

    async fn set_thresholds(
        &self,
        cluster: &ClusterName,
        thresholds: Option<&StatusThresholds>,
    ) -> Result<bool> {
        set_setting(
            &self.pool,
            queries::SET_THRESHOLDS,
            cluster,
            settings(thresholds),
        )
        .await
    }

    async fn newest_position(&self, cluster: &ClusterName) -> Result<Option<SegmentPosition>> {
        let newest: PositionRecord = query_as(queries::NEWEST_POSITION)
            .bind(cluster.as_str())
            .fetch_one(&self.pool)
            .await?;
        // A history file alone gives `.history`, no position.
        Ok(newest.position.and_then(|p| p.parse().ok()))
    }

    async fn wal_before(
        &self,
        cluster: &ClusterName,
        position: SegmentPosition,
    ) -> Result<WalSpan> {
        let args = expirable(cluster, position).map_err(sqlx::Error::Encode)?;
        let row: WalSpanRecord = query_as_with(queries::WAL_BEFORE, args)
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    async fn expire_wal(&self, cluster: &ClusterName, position: SegmentPosition) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut moved = 0;
        for sql in queries::EXPIRE_WAL {
            let args = expirable(cluster, position).map_err(sqlx::Error::Encode)?;
            let done = query_with(sql, args).execute(&mut *tx).await?;
            moved = DB::rows_affected(&done);
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn expire_all_wal(&self, cluster: &ClusterName) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut moved = 0;
        for sql in queries::EXPIRE_ALL_WAL {
            let done = query(sql).bind(cluster.as_str()).execute(&mut *tx).await?;
            moved = DB::rows_affected(&done);
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn delete_cluster(&self, cluster: &ClusterName) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let holds: i64 = query_scalar(queries::CLUSTER_HOLDS)
            .bind(cluster.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if holds > 0 {
            return Ok(false);
        }
        for sql in queries::DELETE_CLUSTER_ROWS {
            query(sql).bind(cluster.as_str()).execute(&mut *tx).await?;
        }
        let gone = query(queries::DELETE_CLUSTER)
            .bind(cluster.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&gone) == 1)
    }

    async fn wal_deletions(
        &self,
        cluster: &ClusterName,
        after: Option<&WalFileName>,
        limit: u32,
    ) -> Result<Vec<(WalFileName, Option<OffsetDateTime>)>> {
        let rows: Vec<(String, Option<OffsetDateTime>)> = query_as(queries::WAL_DELETIONS)
            .bind(cluster.as_str())
            .bind(after.map(|n| n.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(n, until)| Ok((parse_name(&n)?, until)))
            .collect()
    }

    async fn set_backup_lock(
        &self,
        cluster: &ClusterName,
        id: &str,
        until: OffsetDateTime,
    ) -> Result<()> {
        query(queries::SET_BACKUP_LOCK)
            .bind(cluster.as_str())
            .bind(id)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn lock_ends(&self, cluster: &ClusterName) -> Result<Option<OffsetDateTime>> {
        let mut latest = None;
        for sql in queries::LOCK_ENDS {
            let until: Option<OffsetDateTime> = query_scalar(sql)
                .bind(cluster.as_str())
                .fetch_one(&self.pool)
                .await?;
            latest = latest.max(until);
        }
        Ok(latest)
    }

    async fn wal_deleting(&self, cluster: &ClusterName, name: &WalFileName) -> Result<bool> {
        let row = query(queries::WAL_DELETING)
            .bind(cluster.as_str())
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn forget_wal_deletions(
        &self,
        cluster: &ClusterName,
        names: &[WalFileName],
    ) -> Result<()> {
        // One statement per batch of names: retention forgets files a thousand at a
        // time, and a query per file would dominate a large run.
        for chunk in names.chunks(1000) {
            let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "{}{})",
                queries::FORGET_WAL_DELETIONS,
                placeholders.join(", ")
            );
            let mut forget = query(sqlx::AssertSqlSafe(sql)).bind(cluster.as_str());
            for name in chunk {
                forget = forget.bind(name.to_string());
            }
            forget.execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn record_deletion_failure(
        &self,
        cluster: &ClusterName,
        object: &str,
        error: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        query(queries::RECORD_DELETION_FAILURE)
            .bind(cluster.as_str())
            .bind(object)
            .bind(error)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn forget_deletion_failure(&self, cluster: &ClusterName, object: &str) -> Result<()> {
        query(queries::FORGET_DELETION_FAILURE)
            .bind(cluster.as_str())
            .bind(object)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn deletion_failures(&self, cluster: &ClusterName) -> Result<Vec<api::DeletionFailure>> {
        let rows: Vec<DeletionFailureRecord> = query_as(queries::DELETION_FAILURES)
            .bind(cluster.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn deletion_failure_stats(&self) -> Result<Vec<(ClusterName, u64, OffsetDateTime)>> {
        let rows: Vec<DeletionStatsRecord> = query_as(queries::DELETION_FAILURE_STATS)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn take_lease(&self, job: &str, holder: &str, now: i64, until: i64) -> Result<bool> {
        let done = query(queries::TAKE_LEASE)
            .bind(job)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn lease_until(&self, job: &str) -> Result<Option<i64>> {
        let until = query_scalar(queries::LEASE_UNTIL)
            .bind(job)
            .fetch_optional(&self.pool)
            .await?;
        Ok(until)
    }

    async fn record_verification(
        &self,
        cluster: &ClusterName,
        report: &VerifyReport,
        seen: Option<&Seen>,
    ) -> Result<()> {
        let counter = |c: fn(&Changes) -> u64| seen.map(|s| c(&s.changes) as i64);
        query(queries::RECORD_VERIFICATION)
            .bind(cluster.as_str())
            .bind(report.verified_at)
            .bind(i64::from(report.ok))
            .bind(report_json(report))
            .bind(counter(|c| c.wal_inserted))
            .bind(counter(|c| c.wal_deleted))
            .bind(counter(|c| c.backups))
            .bind(seen.and_then(|s| s.newest).map(|s| s.to_string()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn last_verification(&self, cluster: &ClusterName) -> Result<Option<VerifyReport>> {
        let found: Option<ReportRecord> = query_as(queries::LAST_VERIFICATION)
            .bind(cluster.as_str())
            .fetch_optional(&self.pool)
            .await?;
        found.map(TryInto::try_into).transpose()
    }

    async fn verifications(&self) -> Result<Vec<VerifyReport>> {
        let rows: Vec<ReportRecord> = query_as(queries::VERIFICATIONS)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn changes(&self, cluster: &ClusterName) -> Result<Changes> {
        let row: ChangesRecord = query_as(queries::CHANGES)
            .bind(cluster.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok((&row).into())
    }

    async fn appended(
        &self,
        cluster: &ClusterName,
        after: &WalFileName,
        limit: u32,
    ) -> Result<(Changes, Vec<WalFileName>)> {
        let rows: Vec<AppendedRecord> = query_as(queries::APPENDED)
            .bind(cluster.as_str())
            .bind(after.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            // `limit` 0: the counters alone.
            return Ok((self.changes(cluster).await?, vec![]));
        };
        let changes = (&first.changes).into();
        let mut names = Vec::with_capacity(rows.len());
        for row in &rows {
            names.extend(row.name()?);
        }
        Ok((changes, names))
    }

    async fn refresh_verifications(&self, at: OffsetDateTime) -> Result<u64> {
        let done = query(queries::REFRESH_VERIFICATIONS)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn stale_verifications(&self) -> Result<Vec<Stale>> {
        let rows: Vec<StaleRecord> = query_as(queries::STALE_VERIFICATIONS)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn insert_token(&self, t: &TokenRow) -> Result<()> {
        query(queries::INSERT_TOKEN)
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
        let found: Option<TokenRecord> = query_as(queries::TOKEN)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        found.map(TryInto::try_into).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let rows: Vec<TokenRecord> = query_as(queries::TOKENS).fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<bool> {
        let done = query(queries::REVOKE_TOKEN)
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn set_drill_policy(
        &self,
        cluster: &ClusterName,
        policy: Option<&api::DrillPolicy>,
    ) -> Result<bool> {
        set_setting(
            &self.pool,
            queries::SET_DRILL_POLICY,
            cluster,
            settings(policy),
        )
        .await
    }

    async fn request_drill(&self, cluster: &ClusterName, at: OffsetDateTime) -> Result<bool> {
        let done = query(queries::REQUEST_DRILL)
            .bind(cluster.as_str())
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn expire_drills(&self, now: OffsetDateTime, outcome: &api::DrillOutcome) -> Result<u64> {
        let done = query(queries::EXPIRE_DRILLS)
            .bind(now)
            .bind(outcome_json(outcome))
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn start_drill(&self, d: &DrillRow) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = query(queries::START_DRILL)
            .bind(&d.id)
            .bind(d.cluster.as_str())
            .bind(&d.runner)
            .bind(d.started_at)
            .bind(d.lease_until)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&done) != 1 {
            return Ok(false);
        }
        query(queries::ANSWER_DRILL_REQUEST)
            .bind(d.cluster.as_str())
            .bind(d.started_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn renew_drill(&self, id: &str, until: OffsetDateTime) -> Result<bool> {
        let done = query(queries::RENEW_DRILL)
            .bind(id)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn finish_drill(
        &self,
        id: &str,
        status: api::DrillStatus,
        at: OffsetDateTime,
        outcome: &api::DrillOutcome,
    ) -> Result<bool> {
        let done = query(queries::FINISH_DRILL)
            .bind(id)
            .bind(status.as_str())
            .bind(at)
            .bind(outcome_json(outcome))
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn drill(&self, id: &str) -> Result<Option<DrillRow>> {
        let found: Option<DrillRecord> = query_as(queries::DRILL)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        found.map(TryInto::try_into).transpose()
    }

    async fn drills(&self, cluster: &ClusterName, limit: u32) -> Result<Vec<DrillRow>> {
        let rows: Vec<DrillRecord> = query_as(queries::DRILLS)
            .bind(cluster.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn last_drills(&self, which: LastDrill) -> Result<Vec<DrillRow>> {
        let [a, b, c, d] = which.statuses();
        let rows: Vec<DrillRecord> = query_as(queries::LAST_DRILLS)
            .bind(a)
            .bind(b)
            .bind(c)
            .bind(d)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn record_runner(&self, r: &RunnerRow) -> Result<()> {
        query(queries::RECORD_RUNNER)
            .bind(&r.name)
            .bind(serde_json::to_string(&r.majors).expect("numbers serialize"))
            // The first contact's time is kept by the statement itself.
            .bind(r.last_seen)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn runners(&self) -> Result<Vec<RunnerRow>> {
        let rows: Vec<RunnerRecord> = query_as(queries::RUNNERS).fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}
