//! Rebuilding the catalog from the object store alone, so that losing the catalog
//! database loses no backups.
//!
//! Every WAL object is named by its cluster and file name and holds the file itself (its
//! size and checksum are recomputed, a segment's page header pins the cluster's identity),
//! and every complete backup has a self-describing sentinel, written last. Rows already in
//! the catalog are left alone, so a rebuild can run on a partial catalog. A cluster's own
//! retention policy and thresholds are copied to the store whenever they change (so that
//! a rebuilt catalog does not let the fleet's default retention delete backups the
//! cluster's own policy kept). Tokens are not in the store: issue new ones afterwards.
//! Each target is read in turn; a cluster is registered on the target its objects are
//! found on.

use anyhow::Context as _;
use futures_util::StreamExt;
use time::OffsetDateTime;
use walgate_core::api::Backup;
use walgate_core::{ClusterName, LongPageHeader, Lsn, Timeline, WalFileName};

use crate::Services;
use crate::catalog::{Algorithm, BackupRow, BackupStatus, WalRow};
use crate::retention::OwnSettings;
use crate::storage::lock::Hold;
use crate::storage::{Listed, Store, layout};

/// What a rebuild found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Rebuilt {
    pub wal_files: u64,
    pub backups: u64,
    /// Clusters whose own settings were restored.
    pub settings: u64,
    /// Objects that could not be read back into the catalog, and why.
    pub problems: Vec<String>,
}

/// Reads every object under `clusters/` on every target into the catalog.
pub async fn rebuild(services: &Services) -> anyhow::Result<Rebuilt> {
    let mut found = Rebuilt::default();
    for store in services.storage.iter() {
        rebuild_target(services, store, &mut found).await?;
    }
    Ok(found)
}

async fn rebuild_target(
    services: &Services,
    store: &Store,
    found: &mut Rebuilt,
) -> anyhow::Result<()> {
    // Objects' locks are recorded from the bucket's: know it first.
    store.check_lock().await?;
    let mut listing = store.list("clusters");
    while let Some(object) = listing.next().await {
        let object = object.with_context(|| format!("list storage target `{}`", store.target()))?;
        let key = object.key.to_string();
        let parts: Vec<&str> = key.split('/').collect();
        let outcome = match parts[..] {
            ["clusters", cluster, "wal", file] => {
                wal(services, store, cluster, file, &object).await
            }
            ["clusters", cluster, "backups", _, "backup.json"] => {
                backup(services, store, cluster, &object).await
            }
            ["clusters", cluster, "settings.json"] => settings(services, store, cluster).await,
            _ => Ok(Found::Nothing),
        };
        match outcome {
            Ok(Found::Wal) => found.wal_files += 1,
            Ok(Found::Backup) => found.backups += 1,
            Ok(Found::Settings) => found.settings += 1,
            Ok(Found::Nothing) => {}
            Err(e) => found
                .problems
                .push(format!("{key} on target `{}`: {e:#}", store.target())),
        }
    }
    Ok(())
}

/// Registers `cluster` on the target `store` belongs to; a cluster already on another
/// target keeps it, and these objects stay out of the catalog.
async fn register(services: &Services, store: &Store, cluster: &ClusterName) -> anyhow::Result<()> {
    let row = services
        .catalog
        .ensure_cluster(cluster, store.target())
        .await?;
    anyhow::ensure!(
        &row.target == store.target(),
        "cluster `{cluster}` is stored on target `{}`; objects on two targets are not merged",
        row.target
    );
    Ok(())
}

enum Found {
    Wal,
    Backup,
    Settings,
    Nothing,
}

/// Restores a cluster's own settings, unless the catalog already has some of its own. A
/// copy without any (its own were removed) registers the cluster and restores nothing.
async fn settings(services: &Services, store: &Store, cluster: &str) -> anyhow::Result<Found> {
    let cluster: ClusterName = cluster.parse()?;
    let key = layout::settings_key(&cluster);
    let own: OwnSettings =
        serde_json::from_slice(&store.get_all(&key).await?).context("cluster settings")?;
    register(services, store, &cluster).await?;
    if own.retention.is_none() && own.thresholds.is_none() {
        return Ok(Found::Nothing);
    }
    let row = services
        .catalog
        .cluster(&cluster)
        .await?
        .context("registered just now")?;
    if row.retention.is_some() || row.thresholds.is_some() {
        return Ok(Found::Nothing);
    }
    if let Some(policy) = &own.retention {
        services
            .catalog
            .set_retention(&cluster, Some(policy))
            .await?;
    }
    match &own.thresholds {
        Some(t) if t.check().is_err() => {
            tracing::warn!(%cluster, thresholds = ?t, "thresholds out of range in the cluster's settings.json: the gateway's apply");
        }
        Some(t) => {
            services.catalog.set_thresholds(&cluster, Some(t)).await?;
        }
        None => {}
    }
    Ok(Found::Settings)
}

async fn wal(
    services: &Services,
    store: &Store,
    cluster: &str,
    file: &str,
    object: &Listed,
) -> anyhow::Result<Found> {
    let cluster: ClusterName = cluster.parse()?;
    let Some(name) = file.strip_suffix(".zst") else {
        return Ok(Found::Nothing); // a staging file or a stranger
    };
    let name: WalFileName = name.parse()?;
    let stored = crate::archive::read_stored(store, &object.key, Algorithm::CURRENT).await?;
    register(services, store, &cluster).await?;
    if name.wal_segment().is_some() {
        let h = LongPageHeader::parse(&stored.head).context("page header")?;
        services
            .catalog
            .pin_cluster(
                &cluster,
                h.system_identifier,
                h.segment_size,
                Some(h.pg_version),
            )
            .await?;
    }
    let row = WalRow {
        name,
        size: stored.size,
        stored_size: stored.stored_size,
        digest: stored.digest,
        archived_at: object.modified,
        retain_until: lock_end(store, object).await?,
    };
    services.catalog.insert_wal(&cluster, &row).await?;
    Ok(Found::Wal)
}

/// When `object`'s lock ends, as the store has it (a period configured now may differ
/// from the one it was written under).
async fn lock_end(store: &Store, object: &Listed) -> anyhow::Result<Option<OffsetDateTime>> {
    Ok(match store.hold(&object.key).await? {
        Some(Hold::Until(until)) => Some(until),
        // Kept until lifted: recorded as locked for the period from now.
        Some(Hold::LegalHold) => store.locked_until(),
        _ => None,
    })
}

async fn backup(
    services: &Services,
    store: &Store,
    cluster: &str,
    object: &Listed,
) -> anyhow::Result<Found> {
    let cluster: ClusterName = cluster.parse()?;
    let sentinel: Backup =
        serde_json::from_slice(&store.get_all(&object.key).await?).context("backup sentinel")?;
    if sentinel.status != BackupStatus::Complete.as_str() {
        return Ok(Found::Nothing);
    }
    register(services, store, &cluster).await?;
    if services
        .catalog
        .backup(&cluster, &sentinel.id)
        .await?
        .is_some()
    {
        return Ok(Found::Backup);
    }
    let lsn = |s: &str| s.parse::<Lsn>().map_err(|e| anyhow::anyhow!("{e}"));
    let row = BackupRow {
        id: sentinel.id.clone(),
        status: BackupStatus::Complete,
        label: sentinel.label,
        method: sentinel.method,
        from_standby: sentinel.from_standby,
        start_lsn: lsn(&sentinel.start_lsn)?,
        start_timeline: Timeline(sentinel.start_timeline),
        checkpoint_lsn: lsn(&sentinel.checkpoint_lsn)?,
        end_lsn: sentinel.end_lsn.as_deref().map(lsn).transpose()?,
        end_timeline: sentinel.end_timeline.map(Timeline),
        system_identifier: sentinel.system_identifier.map(|s| s.parse()).transpose()?,
        size: sentinel.size,
        stored_size: sentinel.stored_size,
        sha256: Some(sentinel.sha256.parse().context("backup sentinel sha256")?),
        has_manifest: sentinel.has_manifest,
        started_at: sentinel.started_at,
        finished_at: sentinel.finished_at,
        retain_until: lock_end(store, object).await?,
        parent: sentinel.parent,
    };
    services.catalog.insert_backup(&cluster, &row).await?;
    Ok(Found::Backup)
}
