//! `/v1/clusters/{cluster}/wal`: archive, fetch and list WAL files.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::WalFileName;
use walgate_core::api::{ErrorBody, Role, WalFile, WalList};

use super::AppState;
use super::encoding::{content_encoding, stored_response};
use super::error::ApiError;
use super::extract::{ClusterPath, QueryParams, WalPath};
use crate::archive::{self, Upload};
use crate::auth::Caller;
use crate::catalog::{WalFilter, WalRow};
use crate::storage::layout;
use crate::stream::Encoding;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_wal, get_wal, head_wal))
        .routes(routes!(list_wal))
        // WAL bodies are bounded by the cluster's segment size, checked while streaming.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// Archive one WAL file.
///
/// The body is the file as PostgreSQL wrote it, raw (`curl -T %p`) or zstd-compressed
/// with `Content-Encoding: zstd` (levels 1 to 19: a window of at most 8 MiB). The answer
/// comes only after the file is durable.
#[utoipa::path(put, path = "/v1/clusters/{cluster}/wal/{file}", tag = "wal",
    params(("cluster" = String, Path), ("file" = String, Path, description = "WAL file name")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = WalFile),
        (status = 200, description = "Already stored with identical content", body = WalFile),
        (status = 400, description = "Bad name or content", body = ErrorBody),
        (status = 409, description = "Stored with different content, or another database system", body = ErrorBody),
        (status = 408, description = "The body stopped arriving for WALGATE_WAL_IDLE_TIMEOUT; nothing was stored", body = ErrorBody),
        (status = 413, description = "Larger than the cluster's segment size (or, as zstd, than any such file compresses to)", body = ErrorBody),
        (status = 503, description = "The object store failed, retention is deleting an earlier copy of the file, or the upload waited WALGATE_WAL_IDLE_TIMEOUT for the gateway's WAL memory; see Retry-After", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn put_wal(
    State(state): State<AppState>,
    caller: Caller,
    WalPath(cluster, name): WalPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(&cluster, Role::Archiver)?;
    let encoding = content_encoding(&headers, &[Encoding::Identity, Encoding::Zstd])?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let upload = Upload {
        cluster: &cluster,
        name,
        encoding,
        declared_len: declared,
        idle_timeout: state.services.settings.wal_idle_timeout,
    };
    let body = body.into_data_stream();
    let done = archive::push(&state.services, upload, body).await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    if done.created {
        tracing::info!(%cluster, file = %name, size = done.row.size, stored = done.row.stored_size, "archived");
    }
    Ok((status, Json(done.row.to_api())).into_response())
}

async fn find(
    state: &AppState,
    cluster: &walgate_core::ClusterName,
    name: &WalFileName,
) -> Result<WalRow, ApiError> {
    state
        .services
        .catalog
        .wal(cluster, name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("{name} is not archived for cluster `{cluster}`"))
        })
}

fn file_headers(row: &WalRow) -> [(header::HeaderName, HeaderValue); 2] {
    let digest = row.digest.to_string();
    [
        (
            header::ETAG,
            HeaderValue::from_str(&format!("\"{digest}\"")).expect("a valid header"),
        ),
        (
            header::HeaderName::from_static("x-walgate-digest"),
            HeaderValue::from_str(&digest).expect("a valid header"),
        ),
    ]
}

/// Fetch one WAL file.
///
/// Sent raw, or as stored (zstd, `Content-Encoding: zstd`) when the request has
/// `Accept-Encoding: zstd`. `404` means the file is not archived, and only that.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/wal/{file}", tag = "wal",
    params(("cluster" = String, Path), ("file" = String, Path)),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "Not archived", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn get_wal(
    State(state): State<AppState>,
    caller: Caller,
    WalPath(cluster, name): WalPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(&cluster, Role::Restorer)?;
    let row = find(&state, &cluster, &name).await?;
    let registered = state.services.catalog.cluster(&cluster).await?;
    let store = state
        .services
        .storage
        .of(registered.as_ref().map(|c| &c.target))?;
    let stored = store.get(&layout::wal_key(&cluster, &name)).await?;
    let mut response = stored_response(
        stored,
        &headers,
        row.size,
        row.stored_size,
        "application/octet-stream",
    );
    response.headers_mut().extend(file_headers(&row));
    Ok(response)
}

/// Is this WAL file archived.
#[utoipa::path(head, path = "/v1/clusters/{cluster}/wal/{file}", tag = "wal",
    params(("cluster" = String, Path), ("file" = String, Path)),
    responses((status = 200, description = "Archived"), (status = 404, description = "Not archived")),
    security(("bearer" = [])))]
async fn head_wal(
    State(state): State<AppState>,
    caller: Caller,
    WalPath(cluster, name): WalPath,
) -> Result<Response, ApiError> {
    caller.require(&cluster, Role::Viewer)?;
    let row = find(&state, &cluster, &name).await?;
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, row.size.into());
    response.headers_mut().extend(file_headers(&row));
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this timeline.
    timeline: Option<u32>,
    /// First file name to include.
    from: Option<String>,
    /// Last file name to include.
    to: Option<String>,
    /// Continue after this file name (from `next_after`).
    after: Option<String>,
    /// Page size, 1 to 10000 (default 1000).
    limit: Option<u32>,
}

fn optional_name(field: &str, v: Option<String>) -> Result<Option<WalFileName>, ApiError> {
    v.map(|s| {
        s.parse()
            .map_err(|e: walgate_core::WalNameError| ApiError::bad_request(format!("{field}: {e}")))
    })
    .transpose()
}

/// List archived WAL files in name order.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/wal", tag = "wal",
    params(("cluster" = String, Path), ListQuery),
    responses((status = 200, body = WalList), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_wal(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(cluster): ClusterPath,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<WalList>, ApiError> {
    caller.require(&cluster, Role::Viewer)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let filter = WalFilter {
        timeline: q.timeline,
        from: optional_name("from", q.from)?,
        to: optional_name("to", q.to)?,
        after: optional_name("after", q.after)?,
        limit,
    };
    let rows = state.services.catalog.list_wal(&cluster, &filter).await?;
    let next_after = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.name.to_string()))
        .flatten();
    Ok(Json(WalList {
        files: rows.iter().map(WalRow::to_api).collect(),
        next_after,
    }))
}
