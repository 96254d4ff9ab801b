//! `/v1/clusters`: the fleet and one cluster's identity and archive status.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::SegmentSize;
use walgate_core::api::{Cluster, ErrorBody, ErrorCode, Role};

use super::AppState;
use super::error::ApiError;
use super::extract::{ClusterPath, JsonBody, QueryParams};
use crate::auth::Caller;
use crate::fleet::{self, ClusterState};
use walgate_core::TargetName;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clusters))
        .routes(routes!(get_cluster, put_cluster, delete_cluster))
}

pub(super) fn to_api(state: &AppState, c: ClusterState) -> Cluster {
    let (status, reasons) = c.status(
        &state.services.settings.thresholds(),
        time::OffsetDateTime::now_utc(),
    );
    judged_to_api(&c, status, reasons)
}

/// A cluster as the API shows it, judged `status` for `reasons`.
fn judged_to_api(c: &ClusterState, status: fleet::Status, reasons: Vec<String>) -> Cluster {
    Cluster {
        status: status.as_str().to_owned(),
        status_reasons: reasons,
        thresholds: c.cluster.thresholds.clone(),
        backups: c.backups.complete,
        last_backup_at: c.backups.newest.map(|(at, _)| at),
        last_backup_stored_bytes: c.backups.newest.map(|(_, bytes)| bytes),
        recovery_window_start: c.backups.oldest,
        storage_bytes: c.storage_bytes(),
        last_verified_at: c.verified.as_ref().map(|v| v.at),
        verify_problems: c.verified.as_ref().map(|v| v.problems as u64),
        last_ok_drill: c.drills.last_ok.as_ref().map(|d| d.to_api()),
        last_drill: c.drills.last.as_ref().map(|d| d.to_api()),
        name: c.cluster.name.to_string(),
        system_identifier: c.cluster.system_identifier.map(|s| s.to_string()),
        segment_size: c.cluster.segment_size.map(SegmentSize::bytes),
        pg_version: c.cluster.pg_version,
        created_at: c.cluster.created_at,
        target: c.cluster.target.to_string(),
        wal_files: c.stats.wal_files,
        wal_bytes: c.stats.wal_bytes,
        last_wal: c.stats.last_wal.map(|s| s.to_string()),
        last_archived_at: c.stats.last_archived_at,
    }
}

/// One cluster as the API shows it.
async fn one(state: &AppState, name: &walgate_core::ClusterName) -> Result<Cluster, ApiError> {
    let found = fleet::load_one(&state.services, name).await?;
    found.map(|c| to_api(state, c)).ok_or_else(|| {
        ApiError::not_found(format!(
            "no cluster `{name}`: it is registered by its first WAL push or by an admin"
        ))
    })
}

/// Which clusters to list, in what order: the API's and the dashboard's fleet table.
#[derive(Debug, Default, Clone, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct FleetQuery {
    /// Only clusters in this state: `new`, `ok`, `late` or `failing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only clusters whose name contains this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Order by `state` (the default: failing first), `name`, `last_wal`,
    /// `last_backup`, `backup_size`, `window`, `storage` or `verified`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Reverse the order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub desc: bool,
    /// At most this many clusters (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Skip this many first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The sort keys [`FleetQuery::sort`] takes.
pub(super) const SORT_KEYS: [&str; 8] = [
    "state",
    "name",
    "last_wal",
    "last_backup",
    "backup_size",
    "window",
    "storage",
    "verified",
];

/// Failing first: the order operators read a fleet in.
fn severity(status: fleet::Status) -> u8 {
    match status {
        fleet::Status::Failing => 0,
        fleet::Status::Late => 1,
        fleet::Status::New => 2,
        fleet::Status::Ok => 3,
    }
}

/// One page of the fleet.
pub(super) struct FleetPage {
    pub clusters: Vec<Cluster>,
    /// How many matched before `limit` and `offset` were applied.
    pub matched: usize,
    /// How many of those `search` matched are in each state, in [`fleet::Status::ALL`]
    /// order (before the `status` filter).
    pub by_status: [usize; 4],
}

/// The clusters `caller` may see that match `q`, in its order.
pub(super) async fn fleet_page(
    state: &AppState,
    caller: &Caller,
    q: &FleetQuery,
) -> Result<FleetPage, ApiError> {
    if let Some(s) = &q.status
        && !fleet::Status::ALL.iter().any(|a| a.as_str() == s)
    {
        return Err(ApiError::bad_request(format!(
            "status `{s}` is not one of new, ok, late, failing"
        )));
    }
    let sort = q.sort.as_deref().unwrap_or("state");
    if !SORT_KEYS.contains(&sort) {
        return Err(ApiError::bad_request(format!(
            "sort `{sort}` is not one of {}",
            SORT_KEYS.join(", ")
        )));
    }
    let visible = |name: &str| {
        q.search.as_ref().is_none_or(|s| name.contains(s.as_str()))
            && name.parse().is_ok_and(|n| caller.scope.covers(&n))
    };
    let now = time::OffsetDateTime::now_utc();
    let thresholds = state.services.settings.thresholds();
    let mut by_status = [0; 4];
    let list: Vec<(ClusterState, fleet::Status, Vec<String>)> =
        fleet::load(&state.services, &visible)
            .await?
            .into_iter()
            .map(|c| {
                let (status, reasons) = c.status(&thresholds, now);
                let i = fleet::Status::ALL.iter().position(|s| *s == status);
                by_status[i.expect("statuses come from Status")] += 1;
                (c, status, reasons)
            })
            .filter(|(_, status, _)| q.status.as_ref().is_none_or(|s| status.as_str() == s))
            .collect();
    // The fleet is sorted by reference and only the page is converted: at 10,000
    // clusters, moving whole entries about was a tenth of the request.
    let mut order: Vec<&(ClusterState, fleet::Status, Vec<String>)> = list.iter().collect();
    order.sort_by(|(a, a_status, _), (b, b_status, _)| {
        let newest = |c: &ClusterState| c.backups.newest;
        let by = match sort {
            "name" => std::cmp::Ordering::Equal,
            "last_wal" => a.stats.last_archived_at.cmp(&b.stats.last_archived_at),
            "last_backup" => newest(a).map(|n| n.0).cmp(&newest(b).map(|n| n.0)),
            "backup_size" => newest(a).map(|n| n.1).cmp(&newest(b).map(|n| n.1)),
            "window" => a.backups.oldest.cmp(&b.backups.oldest),
            "storage" => a.storage_bytes().cmp(&b.storage_bytes()),
            "verified" => {
                let at = |c: &ClusterState| c.verified.as_ref().map(|v| v.at);
                at(a).cmp(&at(b))
            }
            _ => severity(*a_status).cmp(&severity(*b_status)),
        };
        by.then_with(|| a.cluster.name.cmp(&b.cluster.name))
    });
    if q.desc {
        order.reverse();
    }
    let matched = order.len();
    let clusters = order
        .into_iter()
        .skip(q.offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|(c, status, reasons)| judged_to_api(c, *status, reasons.clone()))
        .collect();
    Ok(FleetPage {
        clusters,
        matched,
        by_status,
    })
}

/// The clusters this token may see, filtered and sorted; `X-Total-Count` says how many
/// matched before `limit` and `offset`.
#[utoipa::path(get, path = "/v1/clusters", tag = "clusters", params(FleetQuery),
    responses(
        (status = 200, body = Vec<Cluster>,
            headers(("X-Total-Count" = u64, description = "Clusters that matched the filters"))),
        (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_clusters(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<FleetQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page = fleet_page(&state, &caller, &q).await?;
    Ok((
        [("x-total-count", page.matched.to_string())],
        Json(page.clusters),
    ))
}

/// One cluster.
#[utoipa::path(get, path = "/v1/clusters/{cluster}", tag = "clusters",
    params(("cluster" = String, Path)),
    responses((status = 200, body = Cluster), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
) -> Result<Json<Cluster>, ApiError> {
    caller.require(&name, Role::Viewer)?;
    Ok(Json(one(&state, &name).await?))
}

/// Identity to pin when registering a cluster ahead of its first push.
#[derive(Debug, Default, Deserialize, ToSchema)]
struct RegisterCluster {
    /// The database system identifier (`pg_controldata`), decimal.
    system_identifier: Option<String>,
    /// WAL segment size in bytes (default 16 MiB).
    segment_size: Option<u64>,
    /// The storage target for its objects (default: the gateway's default target). Can
    /// change only while the cluster has no objects: they never mix targets.
    target: Option<String>,
    /// Its own status thresholds (`{}` goes back to the gateway's).
    thresholds: Option<walgate_core::api::StatusThresholds>,
}

/// Register a cluster (admin), or assign its storage target. Identity fields already
/// pinned must match.
#[utoipa::path(put, path = "/v1/clusters/{cluster}", tag = "clusters",
    params(("cluster" = String, Path)), request_body = RegisterCluster,
    responses((status = 200, body = Cluster), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn put_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
    body: Option<JsonBody<RegisterCluster>>,
) -> Result<Json<Cluster>, ApiError> {
    caller.require(&name, Role::Admin)?;
    let req = body.map(|JsonBody(b)| b).unwrap_or_default();
    let sysid = req
        .system_identifier
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ApiError::bad_request("system_identifier must be a decimal 64-bit number")
            })
        })
        .transpose()?;
    let size = match req.segment_size {
        None => SegmentSize::DEFAULT,
        Some(b) => SegmentSize::new(b).ok_or_else(|| {
            ApiError::bad_request("segment_size must be a power of two from 1 MiB to 1 GiB")
        })?,
    };
    let target = match req.target {
        None => None,
        Some(t) => {
            let t: TargetName = t.parse().map_err(ApiError::bad_request)?;
            if state.services.storage.get(&t).is_err() {
                let known: Vec<&str> = state
                    .services
                    .storage
                    .iter()
                    .map(|s| s.target().as_str())
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "no storage target `{t}` is configured (configured: {})",
                    known.join(", ")
                )));
            }
            Some(t)
        }
    };
    let registered = state
        .services
        .catalog
        .ensure_cluster(
            &name,
            target
                .as_ref()
                .unwrap_or(state.services.storage.default_target()),
        )
        .await?;
    if let Some(t) = &target
        && !state.services.catalog.set_target(&name, t).await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "cluster `{name}` already has objects on storage target `{}`; a cluster's objects never mix targets",
                registered.target
            ),
        ));
    }
    if let Some(t) = &req.thresholds {
        t.check()
            .map_err(|e| ApiError::bad_request(format!("thresholds: {e}")))?;
        let own = (t != &Default::default()).then_some(t);
        state.services.catalog.set_thresholds(&name, own).await?;
        crate::retention::save_settings(&state.services, &name).await?;
    }
    if let Some(id) = sysid {
        let row = state
            .services
            .catalog
            .pin_cluster(&name, id, size, None)
            .await?;
        if row.system_identifier != Some(id) || row.segment_size != Some(size) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                format!(
                    "cluster `{name}` is already pinned to another system identifier or segment size"
                ),
            ));
        }
    }
    Ok(Json(one(&state, &name).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ConfirmDelete {
    /// The cluster's name again: deleting it removes every backup and WAL file.
    confirm: Option<String>,
}

/// Delete a cluster (admin) with every backup and WAL file it has; `confirm` must repeat
/// its name. Stop its archiving and backups first: a push during the deletion leaves
/// the cluster in place (`409`), and the request can be repeated.
#[utoipa::path(delete, path = "/v1/clusters/{cluster}", tag = "clusters",
    params(("cluster" = String, Path), ConfirmDelete),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(name): ClusterPath,
    QueryParams(q): QueryParams<ConfirmDelete>,
) -> Result<StatusCode, ApiError> {
    caller.require(&name, Role::Admin)?;
    if q.confirm.as_deref() != Some(name.as_str()) {
        return Err(ApiError::bad_request(format!(
            "deleting cluster `{name}` deletes all its backups and WAL for good: repeat its name with ?confirm={name}"
        )));
    }
    let row = state
        .services
        .catalog
        .cluster(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no cluster `{name}`")))?;
    match crate::retention::purge(&state.services, &row).await? {
        Some((backups, wal_files)) => {
            tracing::warn!(cluster = %name, by = %caller.token_id, backups, wal_files, "cluster deleted with all its backups and WAL");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "cluster `{name}` received WAL or a backup while it was being deleted: stop its archive_command and backups, then repeat the request"
            ),
        )),
    }
}
