//! Restore drills: a cluster's policy, history and on-demand drills
//! (`/v1/clusters/{c}/drills`), and what runners call (`/v1/drills/…`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::api::{
    Drill, DrillAssignment, DrillClaim, DrillHistory, DrillOutcome, DrillPolicy, DrillReport,
    DrillStatus, ErrorBody, ErrorCode, Role,
};

use super::error::ApiError;
use super::extract::{ClusterPath, JsonBody, QueryParams};
use super::forwarded::Origin;
use super::restore::PlanQuery;
use super::{AppState, cluster};
use crate::auth::Caller;
use crate::drill;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history, request))
        .routes(routes!(put_policy, delete_policy))
        .routes(routes!(claim))
        .routes(routes!(abandon))
        .routes(routes!(renew))
        .routes(routes!(report))
}

/// The cluster's drill policy as it applies, and its newest drills first.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/drills", tag = "drills",
    params(("cluster" = String, Path)),
    responses((status = 200, body = DrillHistory), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
) -> Result<Json<DrillHistory>, ApiError> {
    caller.require(&name, Role::Viewer)?;
    let row = cluster(&state, &name).await?;
    Ok(Json(drill::history(&state.services, &row).await?))
}

/// Ask for a drill of the cluster now (admin): the next free runner takes it, before
/// any scheduled one.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/drills", tag = "drills",
    params(("cluster" = String, Path)),
    responses((status = 202, body = DrillHistory), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn request(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
) -> Result<(StatusCode, Json<DrillHistory>), ApiError> {
    caller.require(&name, Role::Admin)?;
    if !drill::request(&state.services, &name).await? {
        return Err(ApiError::not_found(format!("no cluster `{name}`")));
    }
    tracing::info!(cluster = %name, by = %caller.token_id, "restore drill asked for");
    let row = cluster(&state, &name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(drill::history(&state.services, &row).await?),
    ))
}

/// Set the cluster's drill policy (admin): its interval and its check query.
#[utoipa::path(put, path = "/v1/clusters/{cluster}/drills/policy", tag = "drills",
    params(("cluster" = String, Path)), request_body = DrillPolicy,
    responses((status = 200, body = DrillHistory), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
    JsonBody(policy): JsonBody<DrillPolicy>,
) -> Result<Json<DrillHistory>, ApiError> {
    caller.require(&name, Role::Admin)?;
    if !drill::set_policy(&state.services, &name, Some(&policy)).await? {
        return Err(ApiError::not_found(format!("no cluster `{name}`")));
    }
    tracing::info!(cluster = %name, interval_hours = ?policy.interval_hours, check = policy.check.is_some(), "drill policy set");
    let row = cluster(&state, &name).await?;
    Ok(Json(drill::history(&state.services, &row).await?))
}

/// Remove the cluster's drill policy (admin): the gateway's interval applies again,
/// with no check query.
#[utoipa::path(delete, path = "/v1/clusters/{cluster}/drills/policy", tag = "drills",
    params(("cluster" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_policy(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
) -> Result<StatusCode, ApiError> {
    caller.require(&name, Role::Admin)?;
    if !drill::set_policy(&state.services, &name, None).await? {
        return Err(ApiError::not_found(format!("no cluster `{name}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Take the most urgent drill this runner can run (driller): `204` when none is due.
///
/// The answer holds the restore plan to the end of the archive on the live timeline.
/// A cluster whose archive cannot be planned (a gap before its newest backup is
/// consistent) is recorded as a failed drill at once, and the next one is taken.
#[utoipa::path(post, path = "/v1/drills/claim", tag = "drills", request_body = DrillClaim,
    responses((status = 200, body = DrillAssignment), (status = 204, description = "no drill is due"),
        (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Extension(origin): Extension<Origin>,
    JsonBody(claim): JsonBody<DrillClaim>,
) -> Result<Response, ApiError> {
    caller.require_role(Role::Driller)?;
    let services = &state.services;
    for row in drill::due(services, &caller.scope, &claim).await? {
        let archive = crate::restore::load(services, &row).await?;
        let plan = super::restore::build(&archive, &origin, &row.name, &PlanQuery::default());
        if let Err(e) = &plan
            && e.code != ErrorCode::NotReachable
        {
            return Err(plan.unwrap_err());
        }
        let Some(started) = drill::start(services, &row.name, &claim.runner).await? else {
            continue;
        };
        match plan {
            Ok(plan) => {
                tracing::info!(cluster = %row.name, drill = %started.id, runner = %claim.runner, "restore drill claimed");
                return Ok(Json(DrillAssignment {
                    drill: started.id,
                    cluster: row.name.to_string(),
                    pg_version: row.pg_version.unwrap_or_default(),
                    segment_size: archive.segment_size.bytes(),
                    lease_seconds: drill::LEASE.as_secs(),
                    check: row.drill_policy.and_then(|p| p.check),
                    plan,
                })
                .into_response());
            }
            Err(e) => {
                let outcome = DrillOutcome {
                    reason: Some(format!("the archive cannot be restored: {}", e.message)),
                    ..Default::default()
                };
                drill::finish(services, &started, DrillStatus::Failed, outcome).await?;
            }
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, IntoParams)]
struct RunnerQuery {
    /// The runner's name, as it claims drills.
    runner: String,
}

#[derive(Serialize, ToSchema)]
struct Abandoned {
    /// Drills of the runner that were running, now ended as skipped.
    abandoned: u64,
}

/// A runner starting (driller): the drills it left running, on the clusters the token
/// covers, end as skipped, since it will never report them.
#[utoipa::path(post, path = "/v1/drills/abandon", tag = "drills", params(RunnerQuery),
    responses((status = 200, body = Abandoned), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn abandon(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<RunnerQuery>,
) -> Result<Json<Abandoned>, ApiError> {
    caller.require_role(Role::Driller)?;
    let abandoned = drill::abandon(&state.services, &caller.scope, &q.runner).await?;
    if abandoned > 0 {
        tracing::warn!(runner = %q.runner, abandoned, "runner restarted: ended the drills it left running");
    }
    Ok(Json(Abandoned { abandoned }))
}

/// Renew a running drill's lease (driller); `409` once it is not running.
#[utoipa::path(post, path = "/v1/drills/{id}/lease", tag = "drills",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn renew(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_role(Role::Driller)?;
    let d = drill::get(&state.services, &caller.scope, &id).await?;
    drill::renew(&state.services, &d).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Report how a drill ended (driller); `409` once it is not running.
#[utoipa::path(post, path = "/v1/drills/{id}/result", tag = "drills",
    params(("id" = String, Path)), request_body = DrillReport,
    responses((status = 200, body = Drill), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(report): JsonBody<DrillReport>,
) -> Result<Json<Drill>, ApiError> {
    caller.require_role(Role::Driller)?;
    let services = &state.services;
    let d = drill::get(services, &caller.scope, &id).await?;
    drill::finish(services, &d, report.status, report.outcome).await?;
    let d = drill::get(services, &caller.scope, &id).await?;
    Ok(Json(d.to_api()))
}
