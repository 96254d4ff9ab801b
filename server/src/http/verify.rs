//! `/v1/clusters/{c}/verify`: check that a cluster can be restored.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::api::{ErrorBody, Role, VerifyReport};

use super::AppState;
use super::error::ApiError;
use super::extract::{ClusterPath, QueryParams};
use crate::auth::Caller;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify))
        .routes(routes!(last_verification))
}

#[derive(Deserialize, IntoParams)]
struct VerifyQuery {
    /// Also re-read every stored object and check it against its checksum (admin; reads
    /// the whole archive).
    scrub: Option<bool>,
}

/// Verify the cluster's WAL chain (and with `scrub=true` its stored objects) now; the
/// report is also kept as the cluster's last verification. `422` when a stored history
/// file cannot be read as one.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/verify", tag = "clusters",
    params(("cluster" = String, Path), VerifyQuery),
    responses((status = 200, body = VerifyReport), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
    QueryParams(q): QueryParams<VerifyQuery>,
) -> Result<Json<VerifyReport>, ApiError> {
    let scrub = q.scrub == Some(true);
    caller.require(&name, if scrub { Role::Admin } else { Role::Viewer })?;
    let row = state
        .services
        .catalog
        .cluster(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no cluster `{name}`")))?;
    Ok(Json(
        crate::verify::verify(&state.services, &row, scrub).await?,
    ))
}

/// The cluster's last verification report.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/verification", tag = "clusters",
    params(("cluster" = String, Path)),
    responses((status = 200, body = VerifyReport), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn last_verification(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
) -> Result<Json<VerifyReport>, ApiError> {
    caller.require(&name, Role::Viewer)?;
    let report = state
        .services
        .catalog
        .last_verification(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("cluster `{name}` has not been verified")))?;
    Ok(Json(report))
}
