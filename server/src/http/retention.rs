//! `/v1/clusters/{c}/retention`: a cluster's policy, what a run would delete, and runs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::api::{ErrorBody, RetentionPlan, RetentionPolicy, Role};

use super::error::ApiError;
use super::extract::{ClusterPath, JsonBody, QueryParams};
use super::{AppState, cluster};
use crate::auth::Caller;
use crate::retention;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_policy, delete_policy))
        .routes(routes!(preview))
        .routes(routes!(run))
}

/// Set the cluster's own retention policy (admin); it replaces the fleet default.
#[utoipa::path(put, path = "/v1/clusters/{cluster}/retention", tag = "retention",
    params(("cluster" = String, Path)), request_body = RetentionPolicy,
    responses((status = 200, body = RetentionPlan, description = "what a run would now delete"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
    JsonBody(policy): JsonBody<RetentionPolicy>,
) -> Result<Json<RetentionPlan>, ApiError> {
    caller.require(&name, Role::Admin)?;
    if policy.keep_last == Some(0) || policy.window_days == Some(0) {
        return Err(ApiError::bad_request(
            "keep_last and window_days must be at least 1 (leave a rule out to not use it)",
        ));
    }
    if !state
        .services
        .catalog
        .set_retention(&name, Some(&policy))
        .await?
    {
        return Err(ApiError::not_found(format!("no cluster `{name}`")));
    }
    crate::retention::save_settings(&state.services, &name).await?;
    tracing::info!(cluster = %name, ?policy, "retention policy set");
    let row = cluster(&state, &name).await?;
    Ok(Json(retention::preview(&state.services, &row).await?))
}

/// Remove the cluster's own policy (admin): the fleet default applies again.
#[utoipa::path(delete, path = "/v1/clusters/{cluster}/retention", tag = "retention",
    params(("cluster" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_policy(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
) -> Result<StatusCode, ApiError> {
    caller.require(&name, Role::Admin)?;
    if !state.services.catalog.set_retention(&name, None).await? {
        return Err(ApiError::not_found(format!("no cluster `{name}`")));
    }
    crate::retention::save_settings(&state.services, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Exactly what a retention run would delete now: backups, the WAL range and bytes.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/retention/preview", tag = "retention",
    params(("cluster" = String, Path)),
    responses((status = 200, body = RetentionPlan), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
) -> Result<Json<RetentionPlan>, ApiError> {
    caller.require(&name, Role::Viewer)?;
    let row = cluster(&state, &name).await?;
    Ok(Json(retention::preview(&state.services, &row).await?))
}

#[derive(Deserialize, IntoParams)]
struct Confirm {
    /// Must be `true`: a run deletes data.
    confirm: Option<bool>,
}

/// Run retention now (admin), with `confirm=true`; answers what was deleted.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/retention/run", tag = "retention",
    params(("cluster" = String, Path), Confirm),
    responses((status = 200, body = RetentionPlan), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn run(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
    QueryParams(q): QueryParams<Confirm>,
) -> Result<Json<RetentionPlan>, ApiError> {
    caller.require(&name, Role::Admin)?;
    if q.confirm != Some(true) {
        return Err(ApiError::bad_request(
            "a retention run deletes backups and WAL: check GET …/retention/preview, then POST with ?confirm=true",
        ));
    }
    let row = cluster(&state, &name).await?;
    Ok(Json(retention::run(&state.services, &row).await?))
}
