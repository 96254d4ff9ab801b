//! Retention: which backups and WAL a policy keeps, decided from the catalog alone (the
//! bucket is never listed), and deleted crash-safely.
//!
//! Backups are kept by the newest-N rule, the recovery-window rule, or both (a backup
//! either keeps stays), never fewer than `min_backups`. WAL is expired below the start
//! segment of the oldest backup kept or still uploading, on every timeline: any WAL a
//! kept backup can replay, on its own timeline or one branching later, lies at or after
//! its start. History files are never expired; they are a few hundred bytes each.
//!
//! Deletion order: a backup is marked `deleting` before its objects go (no plan picks
//! it), and WAL rows move to `wal_deletions` in one transaction before their objects go.
//! A run that dies half-way leaves marks that the next run finishes first. An object the
//! store refuses to delete is recorded with the store's answer and retried by later
//! runs; the run goes on with the others.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use object_store::path::Path;
use time::OffsetDateTime;
use walgate_core::api::{
    DeletionFailure, ExpiredBackup, LockedBackup, RetentionPlan, RetentionPolicy,
};
use walgate_core::{ClusterName, SegmentPosition, SegmentSize};

use crate::backup::{self, BackupError};
use crate::catalog::{BackupRow, BackupStatus, CatalogError, ClusterRow};
use crate::storage::lock::{self, LockEnd, locked_at};
use crate::storage::{StorageError, Store, layout};
use crate::{Services, restore};

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Load(#[from] restore::LoadError),
    #[error(
        "{0} object(s) could not be deleted (the cluster's retention preview lists them with \
         the store's answers); fix the cause and repeat, or let retention retry them"
    )]
    Undeleted(usize),
    #[error(
        "the cluster's objects are locked {0} (write-once target): the cluster can be deleted once every lock has ended"
    )]
    Locked(LockEnd),
}

/// The backups a policy keeps and deletes, and the WAL position below which WAL goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    pub keep: Vec<&'a BackupRow>,
    pub delete: Vec<&'a BackupRow>,
    /// Set when any WAL may go.
    pub wal_before: Option<SegmentPosition>,
    /// Why nothing is deleted although the policy would delete.
    pub paused: Option<String>,
    /// Backups the policy expires but whose objects are still locked: kept, with their
    /// WAL, until a run after their locks end.
    pub locked: Vec<&'a BackupRow>,
}

/// Applies `policy` to `backups` (newest first) at `now`. Only backups the chain check
/// finds replayable count towards `keep_last`, `min_backups` and the window's base: an
/// archiver can upload labels for WAL that does not exist, and those must not push a
/// restorable backup out. Backups that do not count stay while newer than the oldest
/// kept one, and nothing is deleted while a gap stops replay from any backup: a gap is
/// an incident (or forged WAL) that an operator must see before history goes.
///
/// Chains (a full backup and the incrementals taken on it) are kept or deleted whole:
/// `keep_last` and `min_backups` count chains, the window keeps the chain of the backup
/// its first moment restores from, and a chain stays whole while any link is locked or
/// an upload builds on it.
pub fn decide<'a>(
    policy: &RetentionPolicy,
    backups: &'a [BackupRow],
    chain: &restore::Chain,
    segment_size: SegmentSize,
    now: OffsetDateTime,
) -> Decision<'a> {
    let complete: Vec<&BackupRow> = backups
        .iter()
        .filter(|b| b.status == BackupStatus::Complete)
        .collect();
    let keep_all = |paused| Decision {
        keep: complete.clone(),
        delete: vec![],
        wal_before: None,
        paused,
        locked: vec![],
    };
    // No complete backup yet: the WAL is all there is, even below an upload's start.
    if policy.keep_last.is_none() && policy.window_days.is_none() || complete.is_empty() {
        return keep_all(None);
    }
    if !chain.broken.is_empty() {
        let broken: Vec<&str> = chain.broken.iter().map(String::as_str).collect();
        return keep_all(Some(format!(
            "backup {} cannot be restored (WAL is missing after it, or a link of its chain): \
             nothing is deleted until that is resolved (see the cluster's verification; \
             delete the backups before a gap, or a chain without its link, once you accept \
             it)",
            broken.join(", ")
        )));
    }
    // Chains are kept or expire as a whole, so the rules apply to each chain's root:
    // its full backup (or, for a chain missing a link, its oldest backup left).
    let position: HashMap<&str, usize> = complete
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id.as_str(), i))
        .collect();
    let chains = backup::Chains::new(backups);
    let root: Vec<usize> = complete
        .iter()
        .map(|b| {
            let ids = chains.ids(b);
            ids.iter()
                .find_map(|id| position.get(id.as_str()).copied())
                .expect("a backup is in its own chain")
        })
        .collect();
    // Positions in `complete` of the full backups that count, newest first: replayable
    // ones. Only a full backup starts a chain.
    let counted: Vec<usize> = (0..complete.len())
        .filter(|&i| complete[i].parent.is_none())
        .filter(|&i| chain.replayable.contains(&complete[i].id))
        .collect();
    let counted_set: HashSet<usize> = counted.iter().copied().collect();
    // The newest replayable backup, of any kind, that finished before the window
    // opened: restores to the window's first moments start from it, so its chain
    // stays. A window reaching past the calendar's start (u32 days can), or with no
    // such backup, keeps everything.
    let window_base = policy.window_days.map(|days| {
        now.checked_sub(time::Duration::days(i64::from(days)))
            .and_then(|opens| {
                (0..complete.len()).find(|&i| {
                    counted_set.contains(&root[i])
                        && chain.replayable.contains(&complete[i].id)
                        && complete[i].finished_at.is_some_and(|t| t <= opens)
                })
            })
            .map_or(complete.len(), |i| root[i])
    });
    let by_count = policy.min_backups.max(policy.keep_last.unwrap_or(0)).max(1) as usize;
    // The oldest chain kept by count; with fewer replayable than that, all stay.
    let oldest_counted = counted.get(by_count - 1).copied().unwrap_or(complete.len());
    let kept = |root: usize| root <= oldest_counted || window_base.is_some_and(|base| root <= base);
    // A chain with any link still locked stays whole: deleting its unlocked links
    // would leave the locked ones unrestorable.
    let locked_chain: HashSet<usize> = (0..complete.len())
        .filter(|&i| locked_at(complete[i].retain_until, now))
        .map(|i| root[i])
        .collect();
    // So does one that a running upload builds on.
    let building: HashSet<usize> = backups
        .iter()
        .filter(|b| b.status == BackupStatus::Uploading)
        .filter_map(|b| b.parent.as_deref().and_then(|p| position.get(p)))
        .map(|&i| root[i])
        .collect();
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    let mut locked = Vec::new();
    for (i, b) in complete.iter().enumerate() {
        if kept(root[i]) || building.contains(&root[i]) {
            keep.push(*b);
        } else if locked_chain.contains(&root[i]) {
            if locked_at(b.retain_until, now) {
                locked.push(*b);
            }
            keep.push(*b);
        } else {
            delete.push(*b);
        }
    }
    // Uploading backups will need their WAL too.
    let needed = keep.iter().copied().chain(
        backups
            .iter()
            .filter(|b| b.status == BackupStatus::Uploading),
    );
    let wal_before = needed
        .map(|b| SegmentPosition::of_lsn(b.start_lsn, segment_size))
        .min();
    Decision {
        keep,
        delete,
        wal_before,
        paused: None,
        locked,
    }
}

/// The policy that applies to `cluster`, and where it comes from.
fn policy_of(
    cluster: &ClusterRow,
    fleet: Option<&RetentionPolicy>,
) -> (RetentionPolicy, &'static str) {
    match (&cluster.retention, fleet) {
        (Some(own), _) => (own.clone(), "cluster"),
        (None, Some(fleet)) => (fleet.clone(), "fleet"),
        (None, None) => (RetentionPolicy::default(), "none"),
    }
}

/// What a run would delete now.
pub async fn preview(
    services: &Services,
    cluster: &ClusterRow,
) -> Result<RetentionPlan, RetentionError> {
    let (policy, source) = policy_of(cluster, services.settings.retention().as_ref());
    let archive = restore::load(services, cluster).await?;
    let chain = restore::check_chain(&archive);
    let d = decide(
        &policy,
        &archive.backups,
        &chain,
        archive.segment_size,
        OffsetDateTime::now_utc(),
    );
    let span = match &d.wal_before {
        Some(position) => {
            services
                .catalog
                .wal_before(&cluster.name, *position)
                .await?
        }
        None => Default::default(),
    };
    let (failing_deletions, failures) = failures(services, &cluster.name).await?;
    let delete_backups: Vec<ExpiredBackup> = d
        .delete
        .iter()
        .map(|b| ExpiredBackup {
            id: b.id.clone(),
            stored_size: b.stored_size,
        })
        .collect();
    Ok(RetentionPlan {
        cluster: cluster.name.to_string(),
        policy,
        policy_source: source.to_owned(),
        keep: d.keep.iter().map(|b| b.id.clone()).collect(),
        delete_bytes: span.bytes + delete_backups.iter().map(|b| b.stored_size).sum::<u64>(),
        delete_backups,
        wal_before: d.wal_before,
        delete_wal_files: span.files,
        first_wal: span.first.map(|n| n.to_string()),
        last_wal: span.last.map(|n| n.to_string()),
        paused: d.paused,
        failing_deletions,
        failures,
        locked: d
            .locked
            .iter()
            .map(|b| LockedBackup {
                id: b.id.clone(),
                retain_until: b.retain_until,
            })
            .collect(),
    })
}

/// Finishes deletions an earlier run left half-done, then deletes what the policy
/// expires now; returns what it deleted, and what it could not.
pub async fn run(
    services: &Services,
    cluster: &ClusterRow,
) -> Result<RetentionPlan, RetentionError> {
    let store = services.storage.get(&cluster.target)?;
    let mut deleter = Deleter::new(services, store, &cluster.name).await?;
    deleter.finish().await?;
    let mut plan = preview(services, cluster).await?;
    // The store has the last word on locks: the catalog may know less (rebuilt, or the
    // period changed since). What it says goes into the catalog, and the policy is
    // applied again, so a backup found locked keeps its WAL too.
    let mut learned = false;
    for b in &plan.delete_backups {
        let sentinel = layout::backup_keys(&cluster.name, &b.id).sentinel;
        let now = OffsetDateTime::now_utc();
        let until = match store.hold(&sentinel).await?.and_then(|h| h.keeps(now)) {
            Some(LockEnd::At(until)) => until,
            // Looked at again a day later.
            Some(LockEnd::LegalHold) => now + lock::CLOCK_SKEW + time::Duration::days(1),
            None => continue,
        };
        tracing::info!(cluster = %cluster.name, backup = %b.id, %until, "retention: the store holds a lock the catalog did not know");
        let catalog = services.catalog.as_ref();
        catalog.set_backup_lock(&cluster.name, &b.id, until).await?;
        learned = true;
    }
    if learned {
        plan = preview(services, cluster).await?;
    }
    if let Some(why) = &plan.paused {
        tracing::warn!(cluster = %cluster.name, %why, "retention: no backup deleted");
    }
    let mut deleted = HashSet::new();
    for b in &plan.delete_backups {
        let marked = backup::mark_deleting(services.catalog.as_ref(), &cluster.name, &b.id).await;
        match &marked {
            Err(BackupError::Locked { end, .. }) => {
                // Its upload completed, locked, since the plan was made.
                tracing::info!(cluster = %cluster.name, backup = %b.id, %end, "retention: expired but locked, kept");
                continue;
            }
            Err(BackupError::HasDependants { dependants, .. }) => {
                // An incremental on it started since the plan was made.
                tracing::info!(cluster = %cluster.name, backup = %b.id, ?dependants, "retention: expired but incrementals build on it, kept");
                continue;
            }
            _ => {}
        }
        marked?;
        if deleter.backup(&b.id, None).await? {
            tracing::info!(cluster = %cluster.name, backup = %b.id, "retention: backup deleted");
            deleted.insert(b.id.clone());
        }
    }
    // The answer says what went, not what the policy hoped.
    let (gone, stayed): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.delete_backups)
        .into_iter()
        .partition(|b| deleted.contains(&b.id));
    plan.delete_bytes -= stayed.iter().map(|b| b.stored_size).sum::<u64>();
    plan.delete_backups = gone;
    if let Some(position) = &plan.wal_before {
        let moved = services
            .catalog
            .expire_wal(&cluster.name, *position)
            .await?;
        deleter.wal().await?;
        if moved > 0 {
            tracing::info!(cluster = %cluster.name, files = moved, before = %position, "retention: WAL expired");
        }
    }
    (plan.failing_deletions, plan.failures) = failures(services, &cluster.name).await?;
    Ok(plan)
}

/// Deletes everything of a cluster, then the cluster itself: every backup (marked
/// `deleting` first, so no restore picks one), every WAL file, history files included,
/// and its catalog rows. Each step is resumable like retention's: after a crash, the
/// next purge or retention run finishes it. Returns what was deleted, or `None` when
/// the cluster received new WAL or a backup meanwhile and so still exists.
pub async fn purge(
    services: &Services,
    cluster: &ClusterRow,
) -> Result<Option<(usize, u64)>, RetentionError> {
    let store = services.storage.get(&cluster.target)?;
    let name = &cluster.name;
    // Nothing goes while anything is locked: by the catalog, or by the store for the
    // objects it may know better (the backups' sentinels, the settings copy).
    let now = OffsetDateTime::now_utc();
    let lock_ends = services.catalog.lock_ends(name).await?;
    if let Some(until) = lock_ends.filter(|_| locked_at(lock_ends, now)) {
        return Err(RetentionError::Locked(LockEnd::At(until)));
    }
    let backups = services.catalog.backups(name).await?;
    let keys = backups
        .iter()
        .map(|b| layout::backup_keys(name, &b.id).sentinel)
        .chain([layout::settings_key(name)]);
    for key in keys {
        if let Some(end) = store.hold(&key).await?.and_then(|h| h.keeps(now)) {
            return Err(RetentionError::Locked(end));
        }
    }
    let mut deleter = Deleter::new(services, store, name).await?;
    deleter.finish().await?;
    for b in &backups {
        backup::mark_deleting(services.catalog.as_ref(), name, &b.id).await?;
        deleter.backup(&b.id, b.retain_until).await?;
    }
    let wal = services.catalog.expire_all_wal(name).await?;
    deleter.wal().await?;
    if let Some(end) = deleter.locked {
        return Err(RetentionError::Locked(end));
    }
    if deleter.failed > 0 {
        return Err(RetentionError::Undeleted(deleter.failed));
    }
    store.delete(&layout::settings_key(name)).await?;
    if !services.catalog.delete_cluster(name).await? {
        return Ok(None);
    }
    Ok(Some((backups.len(), wal)))
}

/// How many objects failed to delete, and the oldest hundred, for a plan.
async fn failures(
    services: &Services,
    cluster: &ClusterName,
) -> Result<(u64, Vec<DeletionFailure>), RetentionError> {
    let mut all = services.catalog.deletion_failures(cluster).await?;
    let total = all.len() as u64;
    all.truncate(100);
    Ok((total, all))
}

/// A cluster's own settings, as copied to its store for `walgate catalog rebuild`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct OwnSettings {
    pub retention: Option<RetentionPolicy>,
    pub thresholds: Option<walgate_core::api::StatusThresholds>,
}

/// Copies `cluster`'s own settings, as the catalog has them now, to its store; called
/// after each change to them. Without the copy, a catalog rebuilt from the store would
/// apply the fleet's default policy, which may delete what the cluster's own kept.
pub async fn save_settings(
    services: &Services,
    cluster: &ClusterName,
) -> Result<(), RetentionError> {
    let Some(now) = services.catalog.cluster(cluster).await? else {
        return Ok(()); // deleted meanwhile, with its copy
    };
    let own = OwnSettings {
        retention: now.retention.clone(),
        thresholds: now.thresholds.clone(),
    };
    let json = serde_json::to_vec_pretty(&own).expect("settings serialize");
    let store = services.storage.get(&now.target)?;
    store
        .replace(&layout::settings_key(&now.name), json.into())
        .await?;
    Ok(())
}

/// After this many deletions in a row fail, a run gives up on the cluster: the store is
/// down or refuses everything, and trying every object would only lengthen the list.
const FAILURES_IN_A_ROW: usize = 10;

/// One run's deletions in one cluster. A delete that fails is recorded with the store's
/// answer and passed over: later runs retry it, and it never holds up the rest.
struct Deleter<'a> {
    services: &'a Services,
    store: &'a Store,
    cluster: &'a ClusterName,
    /// Objects earlier runs failed to delete, forgotten as they go.
    failing: HashSet<String>,
    /// Objects that failed in this run: not tried again before the next.
    failed_now: HashSet<String>,
    /// Deletions that failed in this run.
    failed: usize,
    in_a_row: usize,
    /// How long the last object passed over for its lock stays locked.
    locked: Option<LockEnd>,
}

impl<'a> Deleter<'a> {
    async fn new(
        services: &'a Services,
        store: &'a Store,
        cluster: &'a ClusterName,
    ) -> Result<Self, RetentionError> {
        let failing = services.catalog.deletion_failures(cluster).await?;
        Ok(Deleter {
            services,
            store,
            cluster,
            failing: failing.into_iter().map(|f| f.object).collect(),
            failed_now: HashSet::new(),
            failed: 0,
            in_a_row: 0,
            locked: None,
        })
    }

    /// Completes what crashed gateways left: uploads that stopped beating, backups
    /// marked `deleting`, and WAL files waiting in `wal_deletions`.
    async fn finish(&mut self) -> Result<(), RetentionError> {
        let catalog = self.services.catalog.as_ref();
        let silent_since = OffsetDateTime::now_utc() - backup::STALE_UPLOAD;
        for id in catalog.stale_uploads(self.cluster, silent_since).await? {
            if self.backup(&id, None).await? {
                tracing::info!(cluster = %self.cluster, backup = %id, "retention: removed an upload whose gateway died");
            }
        }
        for b in catalog.backups(self.cluster).await? {
            if b.status == BackupStatus::Deleting && self.backup(&b.id, b.retain_until).await? {
                tracing::info!(cluster = %self.cluster, backup = %b.id, "retention: finished deleting backup");
            }
        }
        self.wal().await
    }

    /// Deletes a backup that no plan picks (`deleting`, or an upload given up): its
    /// objects, sentinel first, then its row; false if an object stays. One locked
    /// `retain_until` by the catalog waits without a request.
    async fn backup(
        &mut self,
        id: &str,
        retain_until: Option<OffsetDateTime>,
    ) -> Result<bool, RetentionError> {
        if let Some(until) = retain_until
            && locked_at(retain_until, OffsetDateTime::now_utc())
        {
            self.locked = Some(LockEnd::At(until));
            return Ok(false);
        }
        for key in layout::backup_keys(self.cluster, id).in_deletion_order() {
            if !self.object(key).await? {
                return Ok(false);
            }
        }
        self.services
            .catalog
            .delete_backup(self.cluster, id)
            .await?;
        Ok(true)
    }

    /// Deletes the objects of WAL files waiting in `wal_deletions`, a batch at a time,
    /// forgetting those that went.
    async fn wal(&mut self) -> Result<(), RetentionError> {
        let catalog = self.services.catalog.as_ref();
        let mut after = None;
        loop {
            let batch = catalog
                .wal_deletions(self.cluster, after.as_ref(), 1000)
                .await?;
            let Some((last, _)) = batch.last().cloned() else {
                return Ok(());
            };
            let now = OffsetDateTime::now_utc();
            let mut gone = Vec::with_capacity(batch.len());
            let mut stopped = None;
            for (name, retain_until) in batch {
                // Still locked: it waits here for a later run, and no request goes out.
                if let Some(until) = retain_until.filter(|_| locked_at(retain_until, now)) {
                    self.locked = Some(LockEnd::At(until));
                    continue;
                }
                match self.object(&layout::wal_key(self.cluster, &name)).await {
                    Ok(true) => gone.push(name),
                    Ok(false) => {}
                    Err(e) => {
                        stopped = Some(e);
                        break;
                    }
                }
            }
            catalog.forget_wal_deletions(self.cluster, &gone).await?;
            if let Some(e) = stopped {
                return Err(e);
            }
            after = Some(last);
        }
    }

    /// Deletes `key`; false if it stays: still locked (it waits for a later run), or
    /// refused by the store (recorded for the next run).
    async fn object(&mut self, key: &Path) -> Result<bool, RetentionError> {
        if self.failed_now.contains(key.as_ref()) {
            return Ok(false);
        }
        let catalog = self.services.catalog.as_ref();
        let error = match self.store.delete(key).await {
            Err(StorageError::Locked { end, .. }) => {
                tracing::info!(cluster = %self.cluster, object = %key, %end, "retention: locked, deleted by a later run");
                self.locked = Some(end);
                return Ok(false);
            }
            Ok(()) => {
                self.in_a_row = 0;
                if self.failing.remove(key.as_ref()) {
                    catalog
                        .forget_deletion_failure(self.cluster, key.as_ref())
                        .await?;
                }
                return Ok(true);
            }
            Err(e) => e,
        };
        tracing::warn!(cluster = %self.cluster, object = %key, %error, "retention: cannot delete; later runs retry");
        let now = OffsetDateTime::now_utc();
        catalog
            .record_deletion_failure(self.cluster, key.as_ref(), &error.to_string(), now)
            .await?;
        self.failing.insert(key.to_string());
        self.failed_now.insert(key.to_string());
        self.failed += 1;
        self.in_a_row += 1;
        if self.in_a_row >= FAILURES_IN_A_ROW {
            return Err(error.into());
        }
        Ok(false)
    }
}

/// The lease that lets one gateway replica run retention at a time.
pub const LEASE: &str = "retention";

/// Runs retention for every cluster every `interval`, on one replica at a time.
pub async fn schedule(services: Services, interval: Duration) {
    crate::jobs::every_cluster(services, LEASE, interval, async |services, cluster| {
        run(services, cluster).await.map(drop)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use walgate_core::{Lsn, Timeline};

    const DAY: Duration = Duration::from_secs(86_400);

    /// A complete backup that started at segment `segno` and finished `age_days` ago.
    fn backup(id: &str, segno: u64, age_days: u64, now: OffsetDateTime) -> BackupRow {
        let mut b = BackupRow::positioned(
            id,
            Timeline(1),
            Lsn(segno * (16 << 20) + 40),
            Lsn((segno + 1) * (16 << 20)),
            now - DAY * age_days as u32,
        );
        b.stored_size = 10;
        b
    }

    fn position(text: &str) -> Option<SegmentPosition> {
        Some(text.parse().unwrap())
    }

    /// [`decide`] with 16 MiB segments.
    fn decided<'a>(
        policy: &RetentionPolicy,
        backups: &'a [BackupRow],
        chain: &restore::Chain,
        now: OffsetDateTime,
    ) -> Decision<'a> {
        decide(policy, backups, chain, SegmentSize::DEFAULT, now)
    }

    /// A chain check that finds every backup replayable.
    fn replayable(backups: &[BackupRow]) -> restore::Chain {
        restore::Chain {
            replayable: backups.iter().map(|b| b.id.clone()).collect(),
            ..Default::default()
        }
    }

    fn ids(list: &[&BackupRow]) -> Vec<String> {
        list.iter().map(|b| b.id.clone()).collect()
    }

    /// Five daily backups, newest first: d0 (today, segment 0x140) … d4 (4 days ago).
    fn history(now: OffsetDateTime) -> Vec<BackupRow> {
        (0..5)
            .map(|age| backup(&format!("d{age}"), 0x140 - age * 0x10, age, now))
            .collect()
    }

    fn policy(keep_last: Option<u32>, window_days: Option<u32>, min: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last,
            window_days,
            min_backups: min,
        }
    }

    #[test]
    fn keep_last_keeps_the_newest_and_expires_wal_below_the_oldest_kept() {
        let now = OffsetDateTime::now_utc();
        let backups = history(now);
        let d = decided(
            &policy(Some(2), None, 1),
            &backups,
            &replayable(&backups),
            now,
        );
        assert_eq!(ids(&d.keep), ["d0", "d1"]);
        assert_eq!(ids(&d.delete), ["d2", "d3", "d4"]);
        // d1 starts in segment 0x130.
        assert_eq!(d.wal_before, position("0000000100000030"));
    }

    #[test]
    fn expired_backups_still_locked_stay_with_their_wal_until_their_lock_ends() {
        let now = OffsetDateTime::now_utc();
        let mut backups = history(now);
        // d3 is locked for another day; d4's lock ended within the allowance for clock
        // skew; d2's ended long ago.
        backups[3].retain_until = Some(now + DAY);
        backups[4].retain_until = Some(now - lock::CLOCK_SKEW / 2);
        backups[2].retain_until = Some(now - DAY);
        let d = decided(
            &policy(Some(2), None, 1),
            &backups,
            &replayable(&backups),
            now,
        );
        assert_eq!(ids(&d.keep), ["d0", "d1", "d3", "d4"]);
        assert_eq!(ids(&d.locked), ["d3", "d4"]);
        assert_eq!(ids(&d.delete), ["d2"]);
        // d4 starts in segment 0x100: its WAL stays.
        assert_eq!(d.wal_before, position("0000000100000000"));
        // Two days on, every lock has ended.
        let later = decided(
            &policy(Some(2), None, 1),
            &backups,
            &replayable(&backups),
            now + DAY * 2,
        );
        assert_eq!(ids(&later.delete), ["d2", "d3", "d4"]);
    }

    #[test]
    fn a_window_keeps_the_backup_that_covers_its_first_moment() {
        let now = OffsetDateTime::now_utc();
        let backups = history(now);
        // Two days: d0 and d1 finished inside; d2 (2 days ago) is the base for its start.
        let d = decided(
            &policy(None, Some(2), 1),
            &backups,
            &replayable(&backups),
            now,
        );
        assert_eq!(ids(&d.keep), ["d0", "d1", "d2"]);
        assert_eq!(d.wal_before, position("0000000100000020"));
        // Both rules: a backup either keeps stays.
        let d = decided(
            &policy(Some(4), Some(1), 1),
            &backups,
            &replayable(&backups),
            now,
        );
        assert_eq!(ids(&d.keep), ["d0", "d1", "d2", "d3"]);
        // A window longer than the history keeps everything.
        let d = decided(
            &policy(None, Some(30), 1),
            &backups,
            &replayable(&backups),
            now,
        );
        assert!(d.delete.is_empty());
        assert_eq!(d.wal_before, position("0000000100000000"));
        // One reaching past the calendar's start, too (it used to panic).
        let d = decided(
            &policy(None, Some(u32::MAX), 1),
            &backups,
            &replayable(&backups),
            now,
        );
        assert!(d.delete.is_empty());
    }

    #[test]
    fn never_below_the_minimum_and_nothing_without_rules() {
        let now = OffsetDateTime::now_utc();
        let backups = history(now);
        let d = decided(
            &policy(Some(1), None, 3),
            &backups,
            &replayable(&backups),
            now,
        );
        assert_eq!(ids(&d.keep), ["d0", "d1", "d2"]);
        let d = decided(&policy(None, None, 1), &backups, &replayable(&backups), now);
        assert!(d.delete.is_empty() && d.wal_before.is_none());
        let d = decided(&policy(Some(1), None, 1), &[], &replayable(&[]), now);
        assert!(d.wal_before.is_none(), "no backup: the WAL is all there is");
    }

    #[test]
    fn uploading_and_deleting_backups_are_not_counted_but_uploads_keep_their_wal() {
        let now = OffsetDateTime::now_utc();
        let mut backups = history(now);
        backups[0].status = BackupStatus::Deleting;
        let mut uploading = backup("up", 0x100, 0, now);
        uploading.status = BackupStatus::Uploading;
        backups.insert(0, uploading);
        let d = decided(
            &policy(Some(1), None, 1),
            &backups,
            &replayable(&backups),
            now,
        );
        assert_eq!(ids(&d.keep), ["d1"]);
        assert_eq!(ids(&d.delete), ["d2", "d3", "d4"]);
        assert_eq!(d.wal_before, position("0000000100000000"));
        // An upload and no complete backup: no WAL goes, not even below its start.
        let only_upload = [backups.remove(0)];
        let d = decided(
            &policy(Some(1), None, 1),
            &only_upload,
            &replayable(&only_upload),
            now,
        );
        assert_eq!((d.keep.len(), d.wal_before), (0, None));
    }

    #[test]
    fn positions_follow_the_segment_size() {
        let now = OffsetDateTime::now_utc();
        let size = SegmentSize::new(1 << 30).unwrap();
        let mut b = backup("b", 0, 0, now);
        b.start_lsn = Lsn(5 << 30); // segment 5: log 1, segment 1 with four per log id
        let backups = [b];
        let d = decide(
            &policy(Some(1), None, 1),
            &backups,
            &replayable(&backups),
            size,
            now,
        );
        assert_eq!(d.wal_before, position("0000000100000001"));
    }

    #[test]
    fn only_replayable_backups_count_and_a_gap_pauses_deletion() {
        let now = OffsetDateTime::now_utc();
        // Two forged labels far past the archive, newest, with no WAL behind them.
        let mut backups = history(now);
        backups.insert(0, backup("fake2", 0x9000_0000, 0, now));
        backups.insert(0, backup("fake1", 0x9000_0001, 0, now));
        let mut chain = replayable(&backups);
        chain.replayable.remove("fake1");
        chain.replayable.remove("fake2");
        let d = decided(&policy(Some(2), None, 1), &backups, &chain, now);
        assert_eq!(ids(&d.keep), ["fake1", "fake2", "d0", "d1"]);
        assert_eq!(ids(&d.delete), ["d2", "d3", "d4"]);
        assert_eq!(d.wal_before, position("0000000100000030"));
        // Fewer replayable backups than the policy keeps: nothing goes.
        chain.replayable.remove("d1");
        chain.replayable.remove("d2");
        chain.replayable.remove("d3");
        chain.replayable.remove("d4");
        let d = decided(&policy(Some(2), None, 1), &backups, &chain, now);
        assert!(d.delete.is_empty(), "{:?}", ids(&d.delete));
        // The window's base must be replayable too: d2 is not, so d3 is the base.
        let mut chain = replayable(&backups);
        chain.replayable.remove("d2");
        let d = decided(&policy(None, Some(2), 1), &backups, &chain, now);
        assert_eq!(ids(&d.delete), ["d4"]);
        // A gap that stops replay from any backup pauses deletion, and says why.
        chain.broken.insert("d3".into());
        let d = decided(&policy(Some(1), None, 1), &backups, &chain, now);
        assert!(d.delete.is_empty() && d.wal_before.is_none());
        assert!(d.paused.unwrap().contains("backup d3 cannot be restored"));
    }

    /// Two chains, newest first: i2 on i1 on f1 (ages 0 to 2 days), i0 on f0 (3 and 4).
    fn chains(now: OffsetDateTime) -> Vec<BackupRow> {
        let links = [
            ("i2", Some("i1")),
            ("i1", Some("f1")),
            ("f1", None),
            ("i0", Some("f0")),
            ("f0", None),
        ];
        links
            .iter()
            .enumerate()
            .map(|(age, (id, parent))| {
                let mut b = backup(id, 0x140 - age as u64 * 0x10, age as u64, now);
                b.parent = parent.map(str::to_owned);
                b
            })
            .collect()
    }

    #[test]
    fn chains_are_counted_kept_and_expired_whole() {
        let now = OffsetDateTime::now_utc();
        let backups = chains(now);
        let all = replayable(&backups);
        // keep_last counts chains, not backups.
        let d = decided(&policy(Some(1), None, 1), &backups, &all, now);
        assert_eq!(ids(&d.keep), ["i2", "i1", "f1"]);
        assert_eq!(ids(&d.delete), ["i0", "f0"]);
        assert_eq!(d.wal_before, position("0000000100000020"));
        let d = decided(&policy(Some(2), None, 1), &backups, &all, now);
        assert!(d.delete.is_empty());
        // The window keeps the chain of the backup its first moment restores from:
        // opened 3 days ago, that is i0, so f0 stays too.
        let d = decided(&policy(None, Some(3), 1), &backups, &all, now);
        assert!(d.delete.is_empty(), "{:?}", ids(&d.delete));
        let d = decided(&policy(None, Some(2), 1), &backups, &all, now);
        assert_eq!(ids(&d.delete), ["i0", "f0"]);
        // A chain whose full backup is not replayable does not count.
        let mut chain = all.clone();
        chain.replayable.remove("f1");
        let d = decided(&policy(Some(1), None, 1), &backups, &chain, now);
        assert!(d.delete.is_empty(), "{:?}", ids(&d.delete));
    }

    #[test]
    fn a_chain_stays_whole_while_a_link_is_locked_or_an_upload_builds_on_it() {
        let now = OffsetDateTime::now_utc();
        let keep_last_1 = |backups: &[BackupRow]| {
            let d = decided(
                &policy(Some(1), None, 1),
                backups,
                &replayable(backups),
                now,
            );
            assert!(d.delete.is_empty(), "{:?}", ids(&d.delete));
            (ids(&d.locked), d.wal_before)
        };
        let mut backups = chains(now);
        backups[3].retain_until = Some(now + DAY); // i0, not f0
        let (locked, wal_before) = keep_last_1(&backups);
        assert_eq!(locked, ["i0"]);
        assert_eq!(wal_before, position("0000000100000000"));

        let mut backups = chains(now);
        let mut upload = backup("u", 0x150, 0, now);
        upload.status = BackupStatus::Uploading;
        upload.parent = Some("i0".into());
        backups.insert(0, upload);
        keep_last_1(&backups);
    }
}
