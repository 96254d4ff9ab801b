//! Base backup uploads at once, per cluster and overall, so that backups cannot crowd
//! out WAL archiving: past a limit an upload is refused at once (429 or 503 with
//! Retry-After), never queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use walgate_core::ClusterName;

/// How many backup uploads may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    pub per_cluster: usize,
    pub overall: usize,
}

/// Why an upload cannot start now.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Busy {
    #[error("cluster `{0}` already uploads {1} backup(s), its limit")]
    Cluster(ClusterName, usize),
    #[error("the gateway already receives {0} backups, its limit")]
    Gateway(usize),
}

/// The uploads running now.
#[derive(Clone)]
pub struct Uploads {
    limits: UploadLimits,
    running: Arc<Mutex<HashMap<ClusterName, usize>>>,
}

/// One running upload; dropping it frees its place.
pub struct Slot {
    uploads: Uploads,
    cluster: ClusterName,
}

impl Uploads {
    pub fn new(limits: UploadLimits) -> Self {
        Uploads {
            limits,
            running: Default::default(),
        }
    }

    /// How many uploads are running.
    pub fn running(&self) -> usize {
        self.running
            .lock()
            .expect("no panics hold this lock")
            .values()
            .sum()
    }

    /// Takes a place for an upload of `cluster`, or says which limit is reached.
    pub fn start(&self, cluster: &ClusterName) -> Result<Slot, Busy> {
        let mut running = self.running.lock().expect("no panics hold this lock");
        let total: usize = running.values().sum();
        let mine = running.get(cluster).copied().unwrap_or(0);
        if mine >= self.limits.per_cluster {
            return Err(Busy::Cluster(cluster.clone(), mine));
        }
        if total >= self.limits.overall {
            return Err(Busy::Gateway(total));
        }
        *running.entry(cluster.clone()).or_default() += 1;
        Ok(Slot {
            uploads: self.clone(),
            cluster: cluster.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self
            .uploads
            .running
            .lock()
            .expect("no panics hold this lock");
        if let Some(n) = running.get_mut(&self.cluster) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.cluster);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_per_cluster_and_overall_and_freed_on_drop() {
        let uploads = Uploads::new(UploadLimits {
            per_cluster: 1,
            overall: 2,
        });
        let (a, b, c): (ClusterName, ClusterName, ClusterName) = (
            "a".parse().unwrap(),
            "b".parse().unwrap(),
            "c".parse().unwrap(),
        );
        let first = uploads.start(&a).unwrap();
        assert_eq!(uploads.start(&a).err(), Some(Busy::Cluster(a.clone(), 1)));
        let _second = uploads.start(&b).unwrap();
        assert_eq!(uploads.start(&c).err(), Some(Busy::Gateway(2)));
        drop(first);
        assert!(uploads.start(&a).is_ok());
    }
}
