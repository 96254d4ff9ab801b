//! Scheduled work over the whole fleet (retention, verification): each job runs on one
//! gateway replica at a time, the one holding its lease in the catalog.

use std::time::Duration;

use time::OffsetDateTime;

use crate::Services;
use crate::catalog::{CatalogError, ClusterRow};

/// A job's turns: one every `interval`, on the replica holding its lease.
pub struct Turns {
    job: &'static str,
    holder: String,
    interval: Duration,
    tick: tokio::time::Interval,
}

impl Turns {
    pub fn new(job: &'static str, interval: Duration) -> Self {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Turns {
            job,
            holder: uuid::Uuid::new_v4().simple().to_string(),
            interval,
            tick,
        }
    }

    /// Waits for the next turn this replica holds the lease for.
    pub async fn next(&mut self, services: &Services) {
        let job = self.job;
        loop {
            self.tick.tick().await;
            let now = OffsetDateTime::now_utc().unix_timestamp();
            // Held for two intervals: a replica that dies lets another take over.
            let until = now + 2 * self.interval.as_secs().max(1) as i64;
            match services
                .catalog
                .take_lease(job, &self.holder, now, until)
                .await
            {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(job, error = %e, "cannot take the lease"),
            }
        }
    }
}

/// Runs `job` for every cluster every `interval`, on one replica at a time ([`Turns`]).
/// A failure for one cluster is logged and the next run retries it. Runs for the life
/// of the server.
pub async fn every_cluster<E: std::fmt::Display>(
    services: Services,
    job: &'static str,
    interval: Duration,
    run: impl AsyncFn(&Services, &ClusterRow) -> Result<(), E>,
) {
    let mut turns = Turns::new(job, interval);
    loop {
        turns.next(&services).await;
        let clusters = match services.catalog.clusters().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(job, error = %e, "cannot list clusters");
                continue;
            }
        };
        let count = clusters.len();
        for (cluster, _) in clusters {
            if let Err(e) = run(&services, &cluster).await {
                tracing::error!(job, cluster = %cluster.name, error = %e, "scheduled run failed; the next one retries");
            }
        }
        tracing::info!(job, clusters = count, "{job}: scheduled run done");
    }
}

/// When `job`'s next run starts, about: one interval after the holder of its lease (on
/// whichever replica) last took it; `None` when it is not scheduled.
pub async fn next_run(
    services: &Services,
    job: &str,
    interval: Duration,
) -> Result<Option<OffsetDateTime>, CatalogError> {
    if interval.is_zero() {
        return Ok(None);
    }
    let now = OffsetDateTime::now_utc();
    let next = match services.catalog.lease_until(job).await? {
        Some(until) => OffsetDateTime::from_unix_timestamp(until)
            .map_or(now, |u| u - interval)
            .max(now),
        // Never taken: the first run starts with the gateway.
        None => now,
    };
    Ok(Some(next))
}
