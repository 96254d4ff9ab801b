//! The fleet at a glance: each cluster's archive, backups and verification, and whether
//! it is `ok`, `late` or `failing` against the status thresholds. `/v1/clusters` and
//! `/metrics` both read it, so people and automation see the same state.

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;
use walgate_core::ClusterName;
use walgate_core::api::{DrillStatus, VerifyReport};

use crate::Services;
use crate::catalog::{BackupStats, CatalogError, ClusterRow, ClusterStats, DrillRow, LastDrill};

/// When a cluster counts as late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// No WAL archived for this long: late (four times as long: failing).
    pub archive_lag: Duration,
    /// No complete backup newer than this: late.
    pub backup_age: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            archive_lag: Duration::from_secs(3600),
            backup_age: Duration::from_secs(26 * 3600),
        }
    }
}

/// A cluster's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing archived yet.
    New,
    Ok,
    /// Archiving or backups are behind the thresholds.
    Late,
    /// It cannot be restored as promised: verification found problems, no backup at
    /// all, or archiving stopped long ago.
    Failing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Ok => "ok",
            Status::Late => "late",
            Status::Failing => "failing",
        }
    }

    pub const ALL: [Status; 4] = [Status::New, Status::Ok, Status::Late, Status::Failing];
}

/// A duration the way the status reasons say it: `45 s`, `12 min`, `30 h`, `3 days`.
fn words(d: Duration) -> String {
    match d.as_secs() {
        s @ 0..120 => format!("{s} s"),
        s @ 120..7200 => format!("{} min", s / 60),
        s @ 7200..259_200 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// One cluster's state, from the catalog.
pub struct ClusterState {
    pub cluster: ClusterRow,
    pub stats: ClusterStats,
    /// Its complete backups.
    pub backups: BackupStats,
    pub verified: Option<Verified>,
    /// Objects retention failed to delete: how many, and since when.
    pub undeleted: Option<(u64, OffsetDateTime)>,
    pub drills: Drills,
}

/// What restore drills say of a cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drills {
    /// The newest drill that ended `ok` or `failed`.
    pub last: Option<DrillRow>,
    /// The newest successful one.
    pub last_ok: Option<DrillRow>,
    /// From when a successful drill is expected every so often: once a runner has been
    /// seen and the cluster has a backup. `None`: not expected (no runner, or no
    /// scheduled drills).
    pub expected: Option<(OffsetDateTime, Duration)>,
}

impl Drills {
    /// Why the drills make the cluster `failing` or `late`, if they do.
    fn judge(&self, now: OffsetDateTime, failing: &mut Vec<String>, late: &mut Vec<String>) {
        if let Some(d) = self
            .last
            .as_ref()
            .filter(|d| d.status == DrillStatus::Failed)
        {
            let why = d.outcome.reason.as_deref().unwrap_or("no reason given");
            failing.push(format!("the last restore drill failed: {why}"));
        }
        let Some((since, every)) = self.expected else {
            return;
        };
        let proven = self.last_ok.as_ref().and_then(|d| d.finished_at);
        if now > proven.unwrap_or(since) + every + crate::drill::GRACE {
            late.push(match proven {
                Some(at) => format!(
                    "no successful restore drill for {}",
                    words((now - at).unsigned_abs())
                ),
                None => "never proven restorable by a restore drill".to_owned(),
            });
        }
    }
}

/// What the last verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub at: OffsetDateTime,
    pub ok: bool,
    /// Problems of every kind, forks included.
    pub problems: usize,
    /// The forks, in words.
    pub forks: Vec<String>,
}

impl ClusterState {
    /// The status at `now` against the cluster's own thresholds, or the gateway's
    /// (`fleet`) where it has none, and why it is not `ok`.
    pub fn status(&self, fleet: &Thresholds, now: OffsetDateTime) -> (Status, Vec<String>) {
        let own = self.cluster.thresholds.clone().unwrap_or_default();
        let secs = |s: Option<u64>, default| s.map(Duration::from_secs).unwrap_or(default);
        let t = &Thresholds {
            archive_lag: secs(own.archive_lag_seconds, fleet.archive_lag),
            backup_age: secs(own.backup_age_seconds, fleet.backup_age),
        };
        let Some(last_wal) = self.stats.last_archived_at else {
            return (Status::New, vec!["no WAL archived yet".into()]);
        };
        let age = |at: OffsetDateTime| (now - at).unsigned_abs();
        let mut failing = vec![];
        let mut late = vec![];
        if let Some(v) = self.verified.as_ref().filter(|v| !v.ok) {
            failing.extend(v.forks.iter().cloned());
            let others = v.problems - v.forks.len();
            if others > 0 {
                failing.push(format!("the last verification found {others} problem(s)"));
            }
        }
        let wal_age = age(last_wal);
        if wal_age > t.archive_lag.saturating_mul(4) {
            failing.push(format!("no WAL archived for {}", words(wal_age)));
        } else if wal_age > t.archive_lag {
            late.push(format!("no WAL archived for {}", words(wal_age)));
        }
        match self.backups.newest {
            None if age(self.cluster.created_at) > t.backup_age => {
                failing.push("no complete base backup".into());
            }
            None => late.push("no complete base backup yet".into()),
            Some((at, _)) if age(at) > t.backup_age => {
                late.push(format!("the newest backup finished {} ago", words(age(at))))
            }
            Some(_) => {}
        }
        self.drills.judge(now, &mut failing, &mut late);
        if !failing.is_empty() {
            failing.extend(late);
            (Status::Failing, failing)
        } else if !late.is_empty() {
            (Status::Late, late)
        } else {
            (Status::Ok, vec![])
        }
    }

    /// Bytes stored for this cluster: WAL and complete backups.
    pub fn storage_bytes(&self) -> u64 {
        self.stats.wal_bytes + self.backups.stored_bytes
    }
}

/// Every cluster `visible` lets the caller see, in three queries however large the
/// fleet (WAL totals come from a table the catalog keeps by trigger).
pub async fn load(
    services: &Services,
    visible: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<ClusterState>, CatalogError> {
    let mut backups: HashMap<_, _> = services
        .catalog
        .backup_stats(None)
        .await?
        .into_iter()
        .collect();
    let mut undeleted: HashMap<_, _> = services
        .catalog
        .deletion_failure_stats()
        .await?
        .into_iter()
        .map(|(cluster, n, since)| (cluster, (n, since)))
        .collect();
    let mut verified: HashMap<_, _> = services
        .catalog
        .verifications()
        .await?
        .into_iter()
        .map(|r| (r.cluster.clone(), r))
        .collect();
    let by_cluster = |rows: Vec<DrillRow>| -> HashMap<ClusterName, DrillRow> {
        rows.into_iter().map(|d| (d.cluster.clone(), d)).collect()
    };
    let mut last = by_cluster(services.catalog.last_drills(LastDrill::Judged).await?);
    let mut last_ok = by_cluster(services.catalog.last_drills(LastDrill::Ok).await?);
    let runners_since = runners_since(services).await?;
    Ok(services
        .catalog
        .clusters()
        .await?
        .into_iter()
        .filter(|(c, _)| visible(c.name.as_str()))
        .map(|(cluster, stats)| {
            let b = backups.remove(&cluster.name).unwrap_or_default();
            let v = verified.remove(cluster.name.as_str());
            let u = undeleted.remove(&cluster.name);
            let d = drills(
                services,
                &cluster,
                &b,
                runners_since,
                last.remove(&cluster.name),
                last_ok.remove(&cluster.name),
            );
            ClusterState::new(cluster, stats, b, v, u, d)
        })
        .collect())
}

/// When the first drill runner was seen, if any was.
async fn runners_since(services: &Services) -> Result<Option<OffsetDateTime>, CatalogError> {
    Ok(services
        .catalog
        .runners()
        .await?
        .iter()
        .map(|r| r.first_seen)
        .min())
}

fn drills(
    services: &Services,
    cluster: &ClusterRow,
    backups: &BackupStats,
    runners_since: Option<OffsetDateTime>,
    last: Option<DrillRow>,
    last_ok: Option<DrillRow>,
) -> Drills {
    let every = crate::drill::interval(services, cluster);
    let expected = match (runners_since, backups.oldest) {
        (Some(runners), Some(backup)) if !every.is_zero() => Some((runners.max(backup), every)),
        _ => None,
    };
    Drills {
        last,
        last_ok,
        expected,
    }
}

/// One cluster, without reading the rest of the fleet.
pub async fn load_one(
    services: &Services,
    name: &ClusterName,
) -> Result<Option<ClusterState>, CatalogError> {
    let Some(cluster) = services.catalog.cluster(name).await? else {
        return Ok(None);
    };
    let stats = services.catalog.cluster_stats(name).await?;
    let backups = services.catalog.backup_stats(Some(name)).await?.pop();
    let verified = services.catalog.last_verification(name).await?;
    let failures = services.catalog.deletion_failures(name).await?;
    let undeleted = failures
        .iter()
        .map(|f| f.first_failed_at)
        .min()
        .map(|since| (failures.len() as u64, since));
    let backups = backups.map(|(_, b)| b).unwrap_or_default();
    let crate::drill::Recent { last, last_ok, .. } = crate::drill::recent(services, name).await?;
    let runners = runners_since(services).await?;
    let drills = drills(services, &cluster, &backups, runners, last, last_ok);
    Ok(Some(ClusterState::new(
        cluster, stats, backups, verified, undeleted, drills,
    )))
}

impl ClusterState {
    fn new(
        cluster: ClusterRow,
        stats: ClusterStats,
        backups: BackupStats,
        verified: Option<VerifyReport>,
        undeleted: Option<(u64, OffsetDateTime)>,
        drills: Drills,
    ) -> Self {
        ClusterState {
            undeleted,
            drills,
            backups,
            cluster,
            stats,
            verified: verified.map(|r| Verified {
                at: r.verified_at,
                ok: r.ok,
                problems: r.chain_problems.len() + r.object_problems.len() + r.forks.len(),
                forks: r.forks,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(
        created_h: i64,
        wal_min: Option<i64>,
        backup_h: Option<i64>,
        verified_ok: Option<bool>,
    ) -> ClusterState {
        let now = OffsetDateTime::now_utc();
        ClusterState {
            undeleted: None,
            cluster: ClusterRow {
                name: "c".parse().unwrap(),
                system_identifier: None,
                segment_size: None,
                pg_version: None,
                created_at: now - time::Duration::hours(created_h),
                retention: None,
                target: walgate_core::TargetName::default_name(),
                thresholds: None,
                drill_policy: None,
                drill_requested_at: None,
            },
            drills: Drills::default(),
            stats: ClusterStats {
                last_archived_at: wal_min.map(|m| now - time::Duration::minutes(m)),
                ..Default::default()
            },
            backups: BackupStats {
                complete: u64::from(backup_h.is_some()),
                newest: backup_h.map(|h| (now - time::Duration::hours(h), 1)),
                ..Default::default()
            },
            verified: verified_ok.map(|ok| Verified {
                at: now,
                ok,
                problems: usize::from(!ok),
                forks: vec![],
            }),
        }
    }

    #[test]
    fn statuses_follow_the_thresholds() {
        let t = Thresholds::default();
        let now = OffsetDateTime::now_utc();
        let status = |s: ClusterState| s.status(&t, now).0;
        assert_eq!(status(state(1, None, None, None)), Status::New);
        assert_eq!(status(state(48, Some(5), Some(2), Some(true))), Status::Ok);
        assert_eq!(status(state(48, Some(90), Some(2), None)), Status::Late);
        assert_eq!(status(state(48, Some(5), Some(30), None)), Status::Late);
        assert_eq!(status(state(2, Some(5), None, None)), Status::Late);
        assert_eq!(status(state(48, Some(300), Some(2), None)), Status::Failing);
        assert_eq!(status(state(48, Some(5), None, None)), Status::Failing);
        let (s, why) = state(48, Some(5), Some(2), Some(false)).status(&t, now);
        assert_eq!(s, Status::Failing);
        assert!(why[0].contains("verification found 1 problem"), "{why:?}");
    }
}
