//! Restore drills. A runner (`walgate-client drill-runner`, on a machine with PostgreSQL
//! binaries) claims a cluster that is due, restores its newest backup or chain into
//! scratch space, recovers it to the end of the archive with archiving off, starts it,
//! checks it and reports. The gateway schedules, leases and records; it never runs
//! PostgreSQL itself, and nothing a drill reports changes what a restore chooses.

use std::time::Duration;

use time::OffsetDateTime;
use walgate_core::ClusterName;
use walgate_core::api::{DrillClaim, DrillHistory, DrillOutcome, DrillPolicy, DrillStatus};

use crate::Services;
use crate::catalog::{CatalogError, ClusterRow, DrillRow, LastDrill, RunnerRow, Scope};

/// How long a claim holds a cluster without news from its runner, which renews it
/// about every minute; a runner gone for this long has its drill failed.
pub const LEASE: Duration = Duration::from_secs(600);

/// How many drills a cluster's history shows.
pub const HISTORY: u32 = 100;

/// After a skipped drill (the runner could not try, crashed or went silent), how soon
/// the cluster is due again, at most.
pub const RETRY_SKIPPED: Duration = Duration::from_secs(3600);

/// Past its interval, how long a cluster may go without a successful drill before it
/// is `late` (and the alert fires).
pub const GRACE: Duration = Duration::from_secs(86_400);

/// The most a runner may claim to have binaries for, and the longest name or reason.
const MAX_MAJORS: usize = 32;
const MAX_NAME: usize = 128;
const MAX_REASON: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("no drill `{0}`")]
    NotFound(String),
    #[error(
        "drill `{0}` is not running any more (it was reported, or its lease ran out and it \
         was failed): nothing was recorded"
    )]
    NotRunning(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// The interval between a cluster's scheduled drills: its own, or the gateway's.
pub fn interval(services: &Services, cluster: &ClusterRow) -> Duration {
    cluster
        .drill_policy
        .as_ref()
        .and_then(|p| p.interval_hours)
        .map_or(services.settings.drill_interval, |h| {
            Duration::from_secs(u64::from(h) * 3600)
        })
}

/// A runner's name: what it is recorded under.
fn check_claim(claim: &DrillClaim) -> Result<(), DrillError> {
    let name_ok = !claim.runner.is_empty()
        && claim.runner.len() <= MAX_NAME
        && claim
            .runner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !name_ok {
        return Err(DrillError::Invalid(format!(
            "runner must be 1 to {MAX_NAME} characters of a-z, A-Z, 0-9, `.`, `_` and `-`"
        )));
    }
    if claim.majors.is_empty() || claim.majors.len() > MAX_MAJORS {
        return Err(DrillError::Invalid(format!(
            "majors must list 1 to {MAX_MAJORS} PostgreSQL major versions the runner has binaries for"
        )));
    }
    Ok(())
}

/// The clusters `claim`'s runner may drill now, most urgent first: those asked for
/// (oldest request first), then those due on schedule (longest undrilled first).
/// Records the runner's visit and fails drills whose runner went silent.
pub async fn due(
    services: &Services,
    scope: &Scope,
    claim: &DrillClaim,
) -> Result<Vec<ClusterRow>, DrillError> {
    check_claim(claim)?;
    let catalog = &services.catalog;
    let now = OffsetDateTime::now_utc();
    catalog
        .record_runner(&RunnerRow {
            name: claim.runner.clone(),
            majors: claim.majors.clone(),
            first_seen: now,
            last_seen: now,
        })
        .await?;
    expire(services, now).await?;
    let tried: std::collections::HashMap<_, _> = catalog
        .last_drills(LastDrill::Any)
        .await?
        .into_iter()
        .map(|d| (d.cluster, (d.status, d.started_at)))
        .collect();
    let backed_up: std::collections::HashSet<ClusterName> = catalog
        .backup_stats(None)
        .await?
        .into_iter()
        .filter(|(_, b)| b.complete > 0)
        .map(|(c, _)| c)
        .collect();
    let mut due: Vec<(OffsetDateTime, ClusterRow)> = catalog
        .clusters()
        .await?
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| scope.covers(&c.name) && backed_up.contains(&c.name))
        .filter(|c| c.pg_version.is_some_and(|v| claim.majors.contains(&v)))
        .filter_map(|c| {
            let last = tried.get(&c.name);
            if last.is_some_and(|(s, _)| *s == DrillStatus::Running) {
                return None;
            }
            // Asked for: before anything scheduled, oldest request first.
            if let Some(asked) = c.drill_requested_at {
                return Some((asked - time::Duration::days(100 * 366), c));
            }
            let every = interval(services, &c);
            if every.is_zero() {
                return None;
            }
            let next = last.map_or(OffsetDateTime::UNIX_EPOCH, |(status, at)| {
                let wait = match status {
                    DrillStatus::Skipped => every.min(RETRY_SKIPPED),
                    _ => every,
                };
                *at + wait
            });
            (next <= now).then_some((next, c))
        })
        .collect();
    due.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
    Ok(due.into_iter().map(|(_, c)| c).collect())
}

/// Ends the running drills whose runner stopped renewing their lease: skipped, since
/// the runner failed, not the archive.
async fn expire(services: &Services, now: OffsetDateTime) -> Result<(), DrillError> {
    let outcome = DrillOutcome {
        reason: Some(format!(
            "the runner stopped reporting: no word from it for {} minutes (it crashed, \
             lost its connection, or was stopped)",
            LEASE.as_secs() / 60
        )),
        ..Default::default()
    };
    let expired = services.catalog.expire_drills(now, &outcome).await?;
    if expired > 0 {
        tracing::warn!(expired, "ended the drills whose runner went silent");
    }
    Ok(())
}

/// Records a drill of `cluster` by `runner` as running; `None` if one already is.
pub async fn start(
    services: &Services,
    cluster: &ClusterName,
    runner: &str,
) -> Result<Option<DrillRow>, DrillError> {
    let now = OffsetDateTime::now_utc();
    let row = DrillRow {
        id: uuid::Uuid::new_v4().simple().to_string(),
        cluster: cluster.clone(),
        runner: runner.to_owned(),
        status: DrillStatus::Running,
        started_at: now,
        lease_until: now + LEASE,
        finished_at: None,
        outcome: DrillOutcome::default(),
    };
    Ok(services.catalog.start_drill(&row).await?.then_some(row))
}

/// The drill `id`, if `scope` covers its cluster.
pub async fn get(services: &Services, scope: &Scope, id: &str) -> Result<DrillRow, DrillError> {
    services
        .catalog
        .drill(id)
        .await?
        .filter(|d| scope.covers(&d.cluster))
        .ok_or_else(|| DrillError::NotFound(id.to_owned()))
}

/// Extends a running drill's lease.
pub async fn renew(services: &Services, drill: &DrillRow) -> Result<(), DrillError> {
    let until = OffsetDateTime::now_utc() + LEASE;
    if !services.catalog.renew_drill(&drill.id, until).await? {
        return Err(DrillError::NotRunning(drill.id.clone()));
    }
    Ok(())
}

/// Records how a running drill ended. Every value the runner reports is checked: the
/// record feeds the fleet's state and its alerts.
pub async fn finish(
    services: &Services,
    drill: &DrillRow,
    status: DrillStatus,
    outcome: DrillOutcome,
) -> Result<(), DrillError> {
    check_outcome(status, &outcome)?;
    let now = OffsetDateTime::now_utc();
    if !services
        .catalog
        .finish_drill(&drill.id, status, now, &outcome)
        .await?
    {
        return Err(DrillError::NotRunning(drill.id.clone()));
    }
    match status {
        DrillStatus::Ok => {
            tracing::info!(cluster = %drill.cluster, drill = %drill.id, lsn = ?outcome.lsn, "restore drill succeeded")
        }
        _ => {
            tracing::warn!(cluster = %drill.cluster, drill = %drill.id, status = status.as_str(), reason = ?outcome.reason, "restore drill did not succeed")
        }
    }
    Ok(())
}

fn check_outcome(status: DrillStatus, o: &DrillOutcome) -> Result<(), DrillError> {
    let bad = |m: &str| Err(DrillError::Invalid(m.to_owned()));
    if status == DrillStatus::Running {
        return bad("a drill ends `ok`, `failed` or `skipped`");
    }
    if let Some(lsn) = &o.lsn
        && lsn.parse::<walgate_core::Lsn>().is_err()
    {
        return bad("lsn must be an LSN like 0/16B3748");
    }
    let seconds_ok = |s: Option<f64>| s.is_none_or(|s| s.is_finite() && (0.0..=1e9).contains(&s));
    if !seconds_ok(o.restore_seconds) || !seconds_ok(o.replay_seconds) {
        return bad("restore_seconds and replay_seconds must be between 0 and 1e9");
    }
    if o.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
        return bad("reason must be at most 4096 bytes");
    }
    if o.backup.as_ref().is_some_and(|b| b.len() > MAX_NAME) {
        return bad("backup must be a backup id");
    }
    if status == DrillStatus::Ok && o.lsn.is_none() {
        return bad("a successful drill reports the LSN it reached");
    }
    if status != DrillStatus::Ok && o.reason.as_deref().is_none_or(str::is_empty) {
        return bad("a drill that did not succeed says why (reason)");
    }
    Ok(())
}

/// Ends the drills a runner left running on the clusters `scope` covers (it started
/// again, so they will never end) as skipped: the runner failed, not the archive.
pub async fn abandon(services: &Services, scope: &Scope, runner: &str) -> Result<u64, DrillError> {
    check_claim(&DrillClaim {
        runner: runner.to_owned(),
        majors: vec![0],
    })?;
    let outcome = DrillOutcome {
        reason: Some(format!(
            "runner `{runner}` started again while this drill ran (it crashed or was killed)"
        )),
        ..Default::default()
    };
    // A running drill is its cluster's newest: none starts while one runs.
    let mut ended = 0;
    for d in services.catalog.last_drills(LastDrill::Any).await? {
        let left = d.status == DrillStatus::Running && d.runner == runner;
        if left
            && scope.covers(&d.cluster)
            && services
                .catalog
                .finish_drill(
                    &d.id,
                    DrillStatus::Skipped,
                    OffsetDateTime::now_utc(),
                    &outcome,
                )
                .await?
        {
            ended += 1;
        }
    }
    Ok(ended)
}

/// Asks for a drill of the cluster as soon as a runner is free.
pub async fn request(services: &Services, cluster: &ClusterName) -> Result<bool, DrillError> {
    Ok(services
        .catalog
        .request_drill(cluster, OffsetDateTime::now_utc())
        .await?)
}

/// Sets the cluster's own drill policy (`None`: the gateway's applies).
pub async fn set_policy(
    services: &Services,
    cluster: &ClusterName,
    policy: Option<&DrillPolicy>,
) -> Result<bool, DrillError> {
    if let Some(p) = policy {
        p.check().map_err(DrillError::Invalid)?;
    }
    Ok(services.catalog.set_drill_policy(cluster, policy).await?)
}

/// A cluster's newest drills, and of all its drills the newest to end `ok` or `failed`
/// and the newest to end `ok`.
pub struct Recent {
    pub drills: Vec<DrillRow>,
    pub last: Option<DrillRow>,
    pub last_ok: Option<DrillRow>,
}

pub async fn recent(services: &Services, cluster: &ClusterName) -> Result<Recent, CatalogError> {
    let drills = services.catalog.drills(cluster, HISTORY).await?;
    let newest = |which: LastDrill, rows: &[DrillRow]| {
        rows.iter()
            .find(|d| match which {
                LastDrill::Ok => d.status == DrillStatus::Ok,
                _ => matches!(d.status, DrillStatus::Ok | DrillStatus::Failed),
            })
            .cloned()
    };
    let mut found = [LastDrill::Judged, LastDrill::Ok].map(|w| newest(w, &drills));
    for (which, slot) in [LastDrill::Judged, LastDrill::Ok]
        .into_iter()
        .zip(&mut found)
    {
        if slot.is_none() {
            // Older than the history kept at hand.
            *slot = services
                .catalog
                .last_drills(which)
                .await?
                .into_iter()
                .find(|d| &d.cluster == cluster);
        }
    }
    let [last, last_ok] = found;
    Ok(Recent {
        drills,
        last,
        last_ok,
    })
}

/// A cluster's drill policy and history.
pub async fn history(
    services: &Services,
    cluster: &ClusterRow,
) -> Result<DrillHistory, DrillError> {
    let Recent {
        drills, last_ok, ..
    } = recent(services, &cluster.name).await?;
    Ok(DrillHistory {
        cluster: cluster.name.to_string(),
        interval_hours: (interval(services, cluster).as_secs() / 3600) as u32,
        check: cluster.drill_policy.as_ref().and_then(|p| p.check.clone()),
        requested_at: cluster.drill_requested_at,
        last_ok: last_ok.map(|d| d.to_api()),
        drills: drills.iter().map(DrillRow::to_api).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_checked_before_they_are_recorded() {
        let ok = DrillOutcome {
            lsn: Some("0/3000060".into()),
            restore_seconds: Some(1.5),
            replay_seconds: Some(0.2),
            ..Default::default()
        };
        assert!(check_outcome(DrillStatus::Ok, &ok).is_ok());
        let failed = DrillOutcome {
            reason: Some("segment 000000010000000000000005 is missing".into()),
            ..Default::default()
        };
        assert!(check_outcome(DrillStatus::Failed, &failed).is_ok());
        for (status, bad) in [
            (DrillStatus::Running, ok.clone()),
            (DrillStatus::Ok, DrillOutcome::default()),
            (DrillStatus::Failed, DrillOutcome::default()),
            (
                DrillStatus::Ok,
                DrillOutcome {
                    lsn: Some("garbage".into()),
                    ..ok.clone()
                },
            ),
            (
                DrillStatus::Ok,
                DrillOutcome {
                    replay_seconds: Some(f64::NAN),
                    ..ok.clone()
                },
            ),
            (
                DrillStatus::Ok,
                DrillOutcome {
                    restore_seconds: Some(-1.0),
                    ..ok.clone()
                },
            ),
            (
                DrillStatus::Failed,
                DrillOutcome {
                    reason: Some("x".repeat(MAX_REASON + 1)),
                    ..Default::default()
                },
            ),
        ] {
            assert!(check_outcome(status, &bad).is_err(), "{status:?} {bad:?}");
        }
    }

    #[test]
    fn runner_names_and_majors_are_checked() {
        let claim = |runner: &str, majors: Vec<u32>| DrillClaim {
            runner: runner.into(),
            majors,
        };
        assert!(check_claim(&claim("db-drill.example_1", vec![15, 18])).is_ok());
        for bad in [
            claim("", vec![15]),
            claim("a b", vec![15]),
            claim("a/../b", vec![15]),
            claim(&"a".repeat(MAX_NAME + 1), vec![15]),
            claim("a", vec![]),
            claim("a", vec![15; MAX_MAJORS + 1]),
        ] {
            assert!(check_claim(&bad).is_err(), "{}", bad.runner);
        }
    }
}
