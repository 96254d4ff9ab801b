//! Prometheus metrics: request counts and latencies, WAL traffic per cluster, and each
//! cluster's archive and backup state read from the catalog at scrape time (so every
//! replica reports the same fleet state).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use crate::Services;
use crate::fleet::{ClusterState, Status};

/// Upper bounds of the request latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What one WAL push or fetch did, for the per-cluster counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalOp {
    Push,
    Fetch,
}

/// How many recent errors are kept per cluster.
const RECENT_ERRORS: usize = 20;

/// The most clusters the per-cluster counters and error lists hold. A token scoped to
/// every cluster may name clusters that do not exist; past this the cluster whose
/// newest error is oldest makes room, and WAL counters of clusters not yet counted are
/// no longer kept (the route counters still count every request).
const MAX_CLUSTERS: usize = 20_000;

/// A request about a cluster that failed, as the dashboard lists it.
#[derive(Debug, Clone)]
pub struct RecentError {
    pub at: OffsetDateTime,
    /// Method and route, e.g. `PUT /v1/clusters/{cluster}/wal/{file}`.
    pub request: String,
    pub status: u16,
    pub error: walgate_core::api::ErrorBody,
}

#[derive(Default)]
struct Counters {
    /// Newest last, at most [`RECENT_ERRORS`] per cluster.
    errors: BTreeMap<String, std::collections::VecDeque<RecentError>>,
    /// (route, method, status) → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    /// (cluster, operation, ok) → (requests, bytes).
    wal: BTreeMap<(String, WalOp, bool), (u64, u64)>,
}

/// The gateway's own counters, since it started.
#[derive(Default)]
pub struct Metrics(Mutex<Counters>);

impl Metrics {
    /// Records one request.
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let mut c = self.0.lock().expect("no panics hold this lock");
        *c.requests
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        let h = c.latency.entry(route.to_owned()).or_default();
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Records one WAL push or fetch of `bytes` (as sent on the wire).
    pub fn wal(&self, cluster: &str, op: WalOp, ok: bool, bytes: u64) {
        let mut c = self.0.lock().expect("no panics hold this lock");
        let key = (cluster.to_owned(), op, ok);
        if c.wal.len() >= 4 * MAX_CLUSTERS && !c.wal.contains_key(&key) {
            return;
        }
        let e = c.wal.entry(key).or_default();
        e.0 += 1;
        e.1 += bytes;
    }

    /// Records a failed request about `cluster`.
    pub fn error(
        &self,
        cluster: &str,
        request: String,
        status: u16,
        error: &walgate_core::api::ErrorBody,
    ) {
        let mut c = self.0.lock().expect("no panics hold this lock");
        if c.errors.len() >= MAX_CLUSTERS && !c.errors.contains_key(cluster) {
            let stalest = c
                .errors
                .iter()
                .min_by_key(|(_, recent)| recent.back().map(|e| e.at))
                .map(|(name, _)| name.clone());
            if let Some(name) = stalest {
                c.errors.remove(&name);
            }
        }
        let recent = c.errors.entry(cluster.to_owned()).or_default();
        if recent.len() == RECENT_ERRORS {
            recent.pop_front();
        }
        recent.push_back(RecentError {
            at: OffsetDateTime::now_utc(),
            request,
            status,
            error: error.clone(),
        });
    }

    /// The cluster's recent errors on this gateway, newest first.
    pub fn recent_errors(&self, cluster: &str) -> Vec<RecentError> {
        let c = self.0.lock().expect("no panics hold this lock");
        c.errors
            .get(cluster)
            .map(|e| e.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    fn render_counters(&self, out: &mut String, visible: &(dyn Fn(&str) -> bool + Sync)) {
        let c = self.0.lock().expect("no panics hold this lock");
        header(
            out,
            "walgate_http_requests_total",
            "counter",
            "HTTP requests by route, method and status.",
        );
        for ((route, method, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "walgate_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        header(
            out,
            "walgate_http_request_duration_seconds",
            "histogram",
            "HTTP request latency by route.",
        );
        for (route, h) in &c.latency {
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "walgate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "walgate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "walgate_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "walgate_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        for (name, op, help) in [
            ("walgate_wal_pushes", WalOp::Push, "WAL files pushed"),
            ("walgate_wal_fetches", WalOp::Fetch, "WAL files fetched"),
        ] {
            header(
                out,
                &format!("{name}_total"),
                "counter",
                &format!("{help}, by cluster and result."),
            );
            for ((cluster, _, ok), (n, _)) in
                c.wal.iter().filter(|(k, _)| k.1 == op && visible(&k.0))
            {
                let result = if *ok { "ok" } else { "error" };
                let _ = writeln!(
                    out,
                    "{name}_total{{cluster=\"{cluster}\",result=\"{result}\"}} {n}"
                );
            }
            header(
                out,
                &format!("{name}_bytes_total"),
                "counter",
                &format!("Bytes of {help} on the wire, by cluster."),
            );
            for ((cluster, _, _), (_, bytes)) in c
                .wal
                .iter()
                .filter(|(k, _)| k.1 == op && k.2 && visible(&k.0))
            {
                let _ = writeln!(out, "{name}_bytes_total{{cluster=\"{cluster}\"}} {bytes}");
            }
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The whole exposition for the clusters `visible` lets the caller see.
pub async fn render(services: &Services, visible: &(dyn Fn(&str) -> bool + Sync)) -> String {
    let mut out = String::new();
    header(&mut out, "walgate_up", "gauge", "The gateway answers.");
    let _ = writeln!(out, "walgate_up 1");
    header(
        &mut out,
        "walgate_build_info",
        "gauge",
        "The gateway's version.",
    );
    let _ = writeln!(
        out,
        "walgate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    header(
        &mut out,
        "walgate_wal_uploads_waiting",
        "gauge",
        "WAL uploads waiting for memory to be received in (WALGATE_WAL_MEMORY).",
    );
    let _ = writeln!(
        out,
        "walgate_wal_uploads_waiting {}",
        services.limits.wal_memory.waiting()
    );
    // Without the catalog the fleet's state is unknown, but the gateway's own counters
    // still are: report those, and that the catalog is down.
    let fleet = crate::fleet::load(services, visible).await;
    header(
        &mut out,
        "walgate_catalog_up",
        "gauge",
        "The catalog answered this scrape's queries.",
    );
    let _ = writeln!(out, "walgate_catalog_up {}", u8::from(fleet.is_ok()));
    match fleet {
        Ok(fleet) => render_fleet(&mut out, services, &fleet),
        Err(e) => tracing::warn!(error = %e, "metrics: the catalog failed"),
    }
    services.metrics.render_counters(&mut out, visible);
    out
}

/// Each cluster's state, and storage per target.
fn render_fleet(out: &mut String, services: &Services, fleet: &[ClusterState]) {
    let now = OffsetDateTime::now_utc();
    let age = |t: OffsetDateTime| (now - t).as_seconds_f64().max(0.0);
    type Gauge = fn(&ClusterState, &dyn Fn(OffsetDateTime) -> f64) -> Option<f64>;
    let gauges: [(&str, &str, Gauge); 18] = [
        ("walgate_wal_files", "WAL files archived.", |f, _| {
            Some(f.stats.wal_files as f64)
        }),
        (
            "walgate_wal_stored_bytes",
            "Bytes of archived WAL in the object store.",
            |f, _| Some(f.stats.wal_bytes as f64),
        ),
        (
            "walgate_wal_last_archived_timestamp_seconds",
            "When the newest WAL file was archived.",
            |f, _| f.stats.last_archived_at.map(|t| t.unix_timestamp() as f64),
        ),
        (
            "walgate_wal_seconds_since_last_archive",
            "Seconds since a WAL file was last archived.",
            |f, age| f.stats.last_archived_at.map(age),
        ),
        ("walgate_backups", "Complete base backups.", |f, _| {
            Some(f.backups.complete as f64)
        }),
        (
            "walgate_backup_stored_bytes",
            "Bytes of complete backups in the object store.",
            |f, _| Some(f.backups.stored_bytes as f64),
        ),
        (
            "walgate_backup_seconds_since_last_complete",
            "Seconds since the newest complete backup finished.",
            |f, age| f.backups.newest.map(|(t, _)| age(t)),
        ),
        (
            "walgate_backup_last_stored_bytes",
            "Stored bytes of the newest complete backup.",
            |f, _| f.backups.newest.map(|(_, b)| b as f64),
        ),
        (
            "walgate_backup_last_duration_seconds",
            "How long the newest complete backup took, start to finish.",
            |f, _| f.backups.newest_took.map(|d| d.as_seconds_f64()),
        ),
        (
            "walgate_recovery_window_start_timestamp_seconds",
            "The oldest point a restore can reach: the oldest complete backup's end.",
            |f, _| f.backups.oldest.map(|t| t.unix_timestamp() as f64),
        ),
        (
            "walgate_verify_problems",
            "Problems the last verification found (absent if never verified).",
            |f, _| f.verified.as_ref().map(|v| v.problems as f64),
        ),
        (
            "walgate_timeline_forks",
            "Timelines the last verification found still receiving WAL after a child timeline branched from them (absent if never verified).",
            |f, _| f.verified.as_ref().map(|v| v.forks.len() as f64),
        ),
        (
            "walgate_deletions_failing",
            "Objects retention failed to delete, retried by every run (absent if none).",
            |f, _| f.undeleted.map(|(n, _)| n as f64),
        ),
        (
            "walgate_deletions_failing_since_timestamp_seconds",
            "When the oldest of the failing deletions first failed (absent if none).",
            |f, _| f.undeleted.map(|(_, t)| t.unix_timestamp() as f64),
        ),
        (
            "walgate_drill_last_success_timestamp_seconds",
            "When the newest successful restore drill finished; 0 if none has yet while drills are expected (absent if they are not).",
            |f, _| match (&f.drills.last_ok, f.drills.expected) {
                (Some(d), _) => d.finished_at.map(|t| t.unix_timestamp() as f64),
                (None, Some(_)) => Some(0.0),
                (None, None) => None,
            },
        ),
        (
            "walgate_drill_expected_within_seconds",
            "How long a cluster may go without a successful drill before it is late: its drill interval plus a day (absent if drills are not expected).",
            |f, _| {
                f.drills
                    .expected
                    .map(|(_, every)| (every + crate::drill::GRACE).as_secs_f64())
            },
        ),
        (
            "walgate_drill_last_failed",
            "1 if the newest drill that ended `ok` or `failed` failed (absent if none has).",
            |f, _| {
                f.drills.last.as_ref().map(|d| {
                    f64::from(u8::from(d.status == walgate_core::api::DrillStatus::Failed))
                })
            },
        ),
        (
            "walgate_drill_last_success_duration_seconds",
            "How long the newest successful drill took to restore and replay: the measured recovery time.",
            |f, _| {
                f.drills.last_ok.as_ref().map(|d| {
                    d.outcome.restore_seconds.unwrap_or(0.0)
                        + d.outcome.replay_seconds.unwrap_or(0.0)
                })
            },
        ),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        for f in fleet {
            if let Some(v) = value(f, &age) {
                let _ = writeln!(out, "{name}{{cluster=\"{}\"}} {v}", f.cluster.name);
            }
        }
    }
    header(
        out,
        "walgate_verify_timestamp_seconds",
        "gauge",
        "When the cluster was last verified.",
    );
    for f in fleet {
        if let Some(v) = &f.verified {
            let _ = writeln!(
                out,
                "walgate_verify_timestamp_seconds{{cluster=\"{}\"}} {}",
                f.cluster.name,
                v.at.unix_timestamp()
            );
        }
    }
    header(
        out,
        "walgate_cluster_status",
        "gauge",
        "1 for the cluster's status (new, ok, late, failing) against the thresholds, 0 for the others.",
    );
    for f in fleet {
        let (now_status, _) = f.status(&services.settings.thresholds(), now);
        for status in Status::ALL {
            let _ = writeln!(
                out,
                "walgate_cluster_status{{cluster=\"{}\",status=\"{}\"}} {}",
                f.cluster.name,
                status.as_str(),
                u8::from(status == now_status)
            );
        }
    }
    header(
        out,
        "walgate_storage_bytes",
        "gauge",
        "Bytes stored (WAL and complete backups) per storage target, of the clusters shown.",
    );
    let mut per_target: BTreeMap<&str, u64> = services
        .storage
        .iter()
        .map(|s| (s.target().as_str(), 0))
        .collect();
    for f in fleet {
        *per_target.entry(f.cluster.target.as_str()).or_default() += f.storage_bytes();
    }
    for (target, bytes) in per_target {
        let _ = writeln!(out, "walgate_storage_bytes{{target=\"{target}\"}} {bytes}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walgate_core::api::{ErrorBody, ErrorCode};

    #[test]
    fn invented_cluster_names_cannot_grow_the_counters_without_bound() {
        let m = Metrics::default();
        let body = ErrorBody {
            error: ErrorCode::NotFound,
            message: "no cluster".into(),
        };
        for n in 0..MAX_CLUSTERS + 50 {
            let name = format!("invented-{n}");
            m.error(&name, "GET /v1/clusters/{cluster}".into(), 404, &body);
            m.wal(&name, WalOp::Fetch, false, 0);
        }
        let c = m.0.lock().unwrap();
        assert_eq!(c.errors.len(), MAX_CLUSTERS);
        assert_eq!(c.wal.len(), MAX_CLUSTERS + 50);
        // The newest are kept; the stalest made room.
        assert!(
            c.errors
                .contains_key(&format!("invented-{}", MAX_CLUSTERS + 49))
        );
        drop(c);
        for n in 0..4 * MAX_CLUSTERS {
            m.wal(&format!("more-{n}"), WalOp::Push, true, 1);
        }
        assert_eq!(m.0.lock().unwrap().wal.len(), 4 * MAX_CLUSTERS);
    }
}
