//! Verification: can this cluster be restored? The WAL chain is checked from the catalog
//! (every kept backup to the newest segment on every timeline), and a scrub re-reads
//! every stored object and compares it with the checksum the catalog recorded when it was
//! stored. The latest report is kept per cluster.

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use walgate_core::api::VerifyReport;

use crate::Services;
use crate::archive::ArchiveError;
use crate::catalog::{BackupStatus, CatalogError, ClusterRow, Seen, WalFilter};
use crate::restore::{self, LoadError};
use crate::storage::layout;
use std::collections::BTreeSet;
use walgate_core::{ClusterName, SegmentName, SegmentSize, Timeline, WalFileKind, WalFileName};

/// Verifies `cluster` (and scrubs it when asked), records the report and returns it.
pub async fn verify(
    services: &Services,
    cluster: &ClusterRow,
    scrub: bool,
) -> Result<VerifyReport, LoadError> {
    // Read first: whatever changes while the archive is read shows as a change next time.
    let changes = services.catalog.changes(&cluster.name).await?;
    let archive = restore::load(services, cluster).await?;
    let chain_problems = restore::check_chain(&archive).problems;
    let forks: Vec<String> = restore::forks(&archive)
        .iter()
        .map(ToString::to_string)
        .collect();
    let (objects_checked, object_problems) = if scrub {
        scrub_objects(services, cluster).await?
    } else {
        (0, vec![])
    };
    let report = VerifyReport {
        cluster: cluster.name.to_string(),
        verified_at: now(),
        ok: chain_problems.is_empty() && object_problems.is_empty() && forks.is_empty(),
        chain_problems,
        forks,
        scrubbed: scrub,
        objects_checked,
        object_problems,
    };
    // A scrub's findings on the objects hold for when it ran: its report is not renewed,
    // and the next scheduled run replaces it.
    let seen = (!scrub).then(|| Seen {
        changes,
        newest: last_segment(&archive.files),
    });
    services
        .catalog
        .record_verification(&cluster.name, &report, seen.as_ref())
        .await?;
    if !report.ok {
        tracing::warn!(cluster = %cluster.name, chain = ?report.chain_problems, forks = ?report.forks, objects = ?report.object_problems, "verification found problems");
    }
    Ok(report)
}

/// The file whose name sorts last, if it is a segment: where the next run may go on
/// from. Anything else there (a history file of a timeline without segments yet, a
/// backup history file) makes the next run read the whole archive again.
fn last_segment(files: &BTreeSet<WalFileName>) -> Option<SegmentName> {
    match files.iter().max_by_key(|f| f.to_string())? {
        WalFileName::Segment(s) => Some(*s),
        _ => None,
    }
}

/// The most names an appended-only check reads; past that, the whole archive is read.
const APPENDED_MAX: u32 = 100_000;

/// Verifies `cluster` from its last verification (`seen`, when it was `ok`) by reading
/// only the files named after the newest segment it saw. That holds the verdict when the
/// only changes since are segments carrying that timeline on without a gap (and backup
/// history files): no file was deleted, none was added anywhere else, and no backup
/// changed, which the counters prove, read in the same statement as the names. The
/// chain was whole up to that segment and still is; no timeline or history file was
/// added, so no fork either. Anything else returns `None`, for a whole verification.
async fn verify_appended(
    services: &Services,
    cluster: &ClusterRow,
    seen: &Seen,
) -> Result<Option<VerifyReport>, CatalogError> {
    let Some(mut newest) = seen.newest else {
        return Ok(None);
    };
    let after = WalFileName::Segment(newest);
    let (changes, names) = services
        .catalog
        .appended(&cluster.name, &after, APPENDED_MAX)
        .await?;
    let before = &seen.changes;
    let only_appended = changes.wal_deleted == before.wal_deleted
        && changes.backups == before.backups
        && changes.wal_inserted.checked_sub(before.wal_inserted) == Some(names.len() as u64)
        && names.len() < APPENDED_MAX as usize;
    if !only_appended {
        return Ok(None);
    }
    let size = cluster.segment_size.unwrap_or(SegmentSize::DEFAULT);
    for name in &names {
        match *name {
            WalFileName::Segment(s)
                if s.timeline == newest.timeline
                    && s.segment_no(size) == newest.segment_no(size).map(|n| n + 1) =>
            {
                newest = s;
            }
            WalFileName::BackupHistory { segment, .. } if segment.timeline == newest.timeline => {}
            _ => return Ok(None),
        }
    }
    let report = VerifyReport::clean(cluster.name.as_str(), now());
    // The next run goes on from the newest segment, and so reads any backup history
    // file after it again: the counters then disagree, and it reads the whole archive.
    let seen = Seen {
        changes,
        newest: Some(newest),
    };
    services
        .catalog
        .record_verification(&cluster.name, &report, Some(&seen))
        .await?;
    Ok(Some(report))
}

/// What a scheduled run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Clusters unchanged since their last verification: its findings were renewed.
    pub unchanged: u64,
    /// Clusters verified from their last run, reading only the files appended since.
    pub appended: u64,
    /// Clusters whose whole archive was read.
    pub whole: u64,
    /// Clusters whose verification failed to run (logged; the next run retries).
    pub failed: u64,
}

/// One scheduled run over the fleet. Its catalog work grows with what changed since
/// the last run, not with the archive: one statement renews every unchanged cluster's
/// report, clusters that only received new segments have those read, and only the rest
/// (retention ran, a backup finished, a timeline switched, a segment arrived out of
/// order, or a problem was found last time) are read whole.
pub async fn sweep(services: &Services) -> Result<Sweep, CatalogError> {
    let mut sweep = Sweep {
        unchanged: services.catalog.refresh_verifications(now()).await?,
        ..Sweep::default()
    };
    for stale in services.catalog.stale_verifications().await? {
        let run = async {
            let Some(cluster) = services.catalog.cluster(&stale.cluster).await? else {
                return Ok(None);
            };
            if let Some(seen) = stale.seen.as_ref().filter(|_| stale.ok)
                && verify_appended(services, &cluster, seen).await?.is_some()
            {
                return Ok(Some(true));
            }
            verify(services, &cluster, false).await.map(|_| Some(false))
        };
        match run.await {
            Ok(Some(true)) => sweep.appended += 1,
            Ok(Some(false)) => sweep.whole += 1,
            Ok(None) => {}
            Err::<_, LoadError>(e) => {
                sweep.failed += 1;
                tracing::error!(cluster = %stale.cluster, error = %e, "scheduled verification failed; the next run retries");
            }
        }
    }
    Ok(sweep)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
}

/// Verification brought forward for clusters whose archive just changed shape, so that a
/// fork is reported (and the cluster shows `failing`) soon, not at the next scheduled
/// run: after a history file arrives, or a segment on a timeline below the newest this
/// gateway has seen for the cluster (an old primary, or a drill's parent). Each run reads
/// the cluster's whole WAL list, so a cluster is verified this way at most once per
/// `SOON_GAP`; what arrives in between is looked at by the run after the gap.
#[derive(Clone, Default)]
pub struct Soon {
    inner: std::sync::Arc<std::sync::Mutex<SoonState>>,
}

#[derive(Default)]
struct SoonState {
    /// The newest timeline seen per cluster since start.
    newest: std::collections::HashMap<ClusterName, Timeline>,
    /// Clusters with a run queued.
    pending: std::collections::HashSet<ClusterName>,
    /// When each cluster's last run brought forward started.
    last_run: std::collections::HashMap<ClusterName, std::time::Instant>,
}

/// How long a queued run waits, so that a burst of arrivals costs one.
const SOON_DELAY: std::time::Duration = std::time::Duration::from_secs(2);
/// The least time between two runs brought forward for one cluster.
const SOON_GAP: std::time::Duration = std::time::Duration::from_secs(300);

impl Soon {
    /// Notes that `file` was stored for `cluster`, and queues a verification if it may
    /// have made or shown a fork.
    pub fn stored(&self, services: &Services, cluster: &ClusterName, file: &WalFileName) {
        let timeline = file.timeline();
        let delay = {
            let mut s = self.inner.lock().expect("verify queue");
            let below = match s.newest.get_mut(cluster) {
                Some(newest) => {
                    let below = timeline < *newest;
                    *newest = (*newest).max(timeline);
                    below
                }
                None => {
                    s.newest.insert(cluster.clone(), timeline);
                    false
                }
            };
            if !(below || file.kind() == WalFileKind::History) || s.pending.contains(cluster) {
                return;
            }
            s.pending.insert(cluster.clone());
            let gap_ends = s.last_run.get(cluster).map(|at| *at + SOON_GAP);
            gap_ends.map_or(SOON_DELAY, |end| {
                end.saturating_duration_since(std::time::Instant::now())
                    .max(SOON_DELAY)
            })
        };
        let (soon, services, cluster) = (self.clone(), services.clone(), cluster.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            {
                let mut s = soon.inner.lock().expect("verify queue");
                s.pending.remove(&cluster);
                s.last_run
                    .insert(cluster.clone(), std::time::Instant::now());
            }
            let run = async {
                match services.catalog.cluster(&cluster).await? {
                    Some(row) => verify(&services, &row, false).await.map(drop),
                    None => Ok(()),
                }
            };
            if let Err(e) = run.await {
                tracing::warn!(%cluster, error = %e, "verification after a timeline change failed");
            }
        });
    }
}

/// The lease that lets one gateway replica run scheduled verification at a time.
pub const LEASE: &str = "verify";

/// Verifies every cluster's WAL chain (no scrub) every `interval`, on one replica at a
/// time.
pub async fn schedule(services: Services, interval: std::time::Duration) {
    let mut turns = crate::jobs::Turns::new(LEASE, interval);
    loop {
        turns.next(&services).await;
        let started = std::time::Instant::now();
        match sweep(&services).await {
            Ok(s) => tracing::info!(
                job = LEASE,
                unchanged = s.unchanged,
                appended = s.appended,
                whole = s.whole,
                failed = s.failed,
                ms = started.elapsed().as_millis() as u64,
                "verify: scheduled run done"
            ),
            Err(e) => tracing::warn!(job = LEASE, error = %e, "verify: scheduled run failed"),
        }
    }
}

/// Re-reads every WAL object (decoded, against the content hash) and every complete
/// backup (as stored, against the stored object's hash).
async fn scrub_objects(
    services: &Services,
    cluster: &ClusterRow,
) -> Result<(u64, Vec<String>), LoadError> {
    let name = &cluster.name;
    let store = services
        .storage
        .get(&cluster.target)
        .map_err(ArchiveError::from)?;
    let mut checked = 0;
    let mut problems = vec![];
    let mut filter = WalFilter {
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = services.catalog.list_wal(name, &filter).await?;
        filter.after = page.last().map(|r| r.name);
        for row in &page {
            checked += 1;
            let key = layout::wal_key(name, &row.name);
            match crate::archive::read_stored(store, &key, row.digest.algorithm()).await {
                Ok(stored) if stored.digest == row.digest => {}
                Ok(stored) => problems.push(format!(
                    "{}: content digest {} differs from the catalog's {}",
                    row.name, stored.digest, row.digest
                )),
                Err(e) => problems.push(format!("{}: {e}", row.name)),
            }
        }
        if page.len() < filter.limit as usize {
            break;
        }
    }
    let backups = services.catalog.backups(name).await?;
    let mut damaged = std::collections::BTreeSet::new();
    for b in &backups {
        if b.status != BackupStatus::Complete {
            continue;
        }
        let before = problems.len();
        checked += 1;
        let key = layout::backup_keys(name, &b.id).data;
        let mut sha = Sha256::new();
        let read = async {
            let mut stream = store.get(&key).await?;
            while let Some(chunk) = stream.next().await {
                sha.update(&chunk?);
            }
            Ok::<_, crate::storage::StorageError>(())
        };
        match read.await {
            Ok(()) => {
                let got = crate::catalog::Sha256::from(sha.finalize());
                if b.sha256 != Some(got) {
                    problems.push(format!(
                        "backup {}: stored object sha256 {got} differs from the catalog's {}",
                        b.id,
                        b.sha256_hex()
                    ));
                }
            }
            Err(e) => problems.push(format!("backup {}: {e}", b.id)),
        }
        if problems.len() > before {
            damaged.insert(b.id.as_str());
        }
    }
    // A damaged link breaks every restore built on it.
    let chains = crate::backup::Chains::new(&backups);
    for b in backups
        .iter()
        .filter(|b| b.status == BackupStatus::Complete)
    {
        let ids = chains.ids(b);
        if let Some(bad) = ids[..ids.len() - 1]
            .iter()
            .find(|id| damaged.contains(id.as_str()))
        {
            problems.push(format!(
                "backup {}: its chain holds damaged backup {bad}, so it cannot be restored",
                b.id
            ));
        }
    }
    Ok((checked, problems))
}
