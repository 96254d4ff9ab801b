//! The object layout: the one place that turns typed names into object keys.
//!
//! ```text
//! clusters/<cluster>/wal/<wal file name>.zst     one archived WAL file, zstd-compressed
//! clusters/<cluster>/backups/<id>/base.tar.zst   a base backup's tar stream, zstd
//! clusters/<cluster>/backups/<id>/backup_manifest  its manifest, as PostgreSQL wrote it
//! clusters/<cluster>/backups/<id>/backup.json      its metadata, written last (the sentinel)
//! clusters/<cluster>/settings.json               its own retention policy and thresholds
//! probes/<uuid>                                  short-lived readiness probes
//! ```
//!
//! Keys carry the cluster and the file name PostgreSQL used, so the catalog can be
//! rebuilt by listing `clusters/`.

use object_store::path::Path;
use walgate_core::{ClusterName, WalFileName};

pub fn wal_key(cluster: &ClusterName, name: &WalFileName) -> Path {
    Path::from(format!("clusters/{cluster}/wal/{name}.zst"))
}

/// The objects of one backup, in the order they are written.
pub struct BackupKeys {
    pub data: Path,
    pub manifest: Path,
    pub sentinel: Path,
}

impl BackupKeys {
    /// Sentinel first: a backup never looks complete without its data.
    pub fn in_deletion_order(&self) -> [&Path; 3] {
        [&self.sentinel, &self.manifest, &self.data]
    }
}

pub fn backup_keys(cluster: &ClusterName, id: &str) -> BackupKeys {
    let prefix = format!("clusters/{cluster}/backups/{id}");
    BackupKeys {
        data: Path::from(format!("{prefix}/base.tar.zst")),
        manifest: Path::from(format!("{prefix}/backup_manifest")),
        sentinel: Path::from(format!("{prefix}/backup.json")),
    }
}

/// A copy of the cluster's own settings, for a catalog rebuilt from the store.
pub fn settings_key(cluster: &ClusterName) -> Path {
    Path::from(format!("clusters/{cluster}/settings.json"))
}

pub fn probe_key(id: &str) -> Path {
    Path::from(format!("probes/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_cluster_and_file() {
        let c: ClusterName = "main".parse().unwrap();
        let n: WalFileName = "000000010000000000000003".parse().unwrap();
        assert_eq!(
            wal_key(&c, &n).as_ref(),
            "clusters/main/wal/000000010000000000000003.zst"
        );
    }
}
