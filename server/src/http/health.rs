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
    /// Each storage target's write/read/delete probe: `ok` or what failed.
    targets: BTreeMap<String, String>,
}

/// Readiness: the catalog answers, the object store can write, read and delete, and the
/// gateway is not shutting down (it turns unready first, so load balancers drain it).
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state.draining.load(std::sync::atomic::Ordering::Relaxed);
    let catalog = match state.services.catalog.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: catalog");
            format!("{} catalog unreachable", state.services.catalog.backend())
        }
    };
    let probes = state.services.storage.iter().map(|store| async move {
        let outcome = match store.probe(false).await {
            Ok(()) => "ok".to_owned(),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: storage");
                e.to_string()
            }
        };
        (store.target().to_string(), outcome)
    });
    let targets: BTreeMap<String, String> = futures_util::future::join_all(probes)
        .await
        .into_iter()
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
        }),
    )
        .into_response()
}
