//! Probes: `/healthz` (the process answers) and `/readyz` (catalog and storage work).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

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
    storage: String,
}

/// Readiness: the catalog answers, the object store can write, read and delete, and the
/// gateway is not shutting down (it turns unready first, so load balancers drain it).
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state.draining.load(std::sync::atomic::Ordering::Relaxed);
    let catalog = match state.catalog.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: catalog");
            format!("{} catalog unreachable", state.catalog.backend())
        }
    };
    let storage = match state.store.probe().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: storage");
            "object store probe failed (see gateway log)".to_owned()
        }
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
        }),
    )
        .into_response()
}
