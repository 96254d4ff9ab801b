//! Probes: `/healthz` (the process answers) and `/readyz` (catalog and storage work).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    ready: bool,
    /// Shutting down: finishing requests in flight, taking no new work.
    draining: bool,
    catalog: String,
    /// `ok`, or which storage targets failed.
    storage: String,
    /// Each storage target's write/read/delete probe: `ok`, or what failed (`failed`
    /// alone unless the request carries a valid token: store errors name buckets and
    /// endpoints).
    targets: BTreeMap<String, String>,
    /// Write-once targets' S3 Object Lock, e.g. `compliance, 30 days, set on each
    /// object`; targets without one are absent.
    object_lock: BTreeMap<String, String>,
}

/// How long one probe's outcome is reused. `/readyz` needs no token, and each probe
/// writes, reads and deletes an object in every store: callers share one probe at a
/// time and reuse it for this long.
const PROBE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The outcome of one probe of the catalog and the stores.
#[derive(Clone)]
pub struct Probed {
    at: std::time::Instant,
    catalog: String,
    /// Each target's error, if its probe failed.
    targets: BTreeMap<String, Option<String>>,
}

/// The latest probe, shared by readiness requests.
pub type ProbeCache = std::sync::Arc<tokio::sync::Mutex<Option<Probed>>>;

async fn probe(state: &AppState) -> Probed {
    let mut cached = state.probed.lock().await;
    if let Some(p) = cached.as_ref().filter(|p| p.at.elapsed() < PROBE_TTL) {
        return p.clone();
    }
    let catalog = match state.services.catalog.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: catalog");
            format!("{} catalog unreachable", state.services.catalog.backend())
        }
    };
    let probes = state.services.storage.iter().map(|store| async move {
        let outcome = store.probe(false).await.err().map(|e| {
            tracing::warn!(error = %e, "readiness: storage");
            e.to_string()
        });
        (store.target().to_string(), outcome)
    });
    let targets = futures_util::future::join_all(probes)
        .await
        .into_iter()
        .collect();
    let probed = Probed {
        at: std::time::Instant::now(),
        catalog,
        targets,
    };
    *cached = Some(probed.clone());
    probed
}

/// Readiness: the catalog answers, the object store can write, read and delete, and the
/// gateway is not shutting down (it turns unready first, so load balancers drain it).
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(
    State(state): State<AppState>,
    caller: Result<crate::auth::Caller, super::error::ApiError>,
) -> Response {
    let draining = state.draining.load(std::sync::atomic::Ordering::Relaxed);
    let probed = probe(&state).await;
    let details = caller.is_ok();
    let targets: BTreeMap<String, String> = probed
        .targets
        .into_iter()
        .map(|(name, error)| {
            let outcome = match error {
                None => "ok".to_owned(),
                Some(e) if details => e,
                Some(_) => "failed".to_owned(),
            };
            (name, outcome)
        })
        .collect();
    let failed: Vec<&str> = targets
        .iter()
        .filter(|(_, outcome)| *outcome != "ok")
        .map(|(name, _)| name.as_str())
        .collect();
    let storage = if failed.is_empty() {
        "ok".to_owned()
    } else {
        format!("failed: {}", failed.join(", "))
    };
    let catalog = probed.catalog;
    let ready = catalog == "ok" && storage == "ok" && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            draining,
            catalog,
            storage,
            targets,
            object_lock: state
                .services
                .storage
                .iter()
                .filter_map(|s| Some((s.target().to_string(), s.object_lock()?)))
                .collect(),
        }),
    )
        .into_response()
}
