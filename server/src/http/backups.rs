//! `/v1/clusters/{cluster}/backups`: upload, list, fetch and delete base backups.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::ClusterName;
use walgate_core::api::{Backup, ErrorBody, Role};

use super::AppState;
use super::encoding::{accepts_zstd, content_encoding, stored_response};
use super::error::ApiError;
use super::extract::{BackupPath, ClusterPath, QueryParams, backup_id};
use crate::auth::Caller;
use crate::backup;
use crate::catalog::BackupRow;
use crate::storage::layout;
use crate::stream::Encoding;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_backup, put_backup, list_backups))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(get_archive))
        .routes(routes!(get_manifest))
        // A backup is as large as the database; it streams to the object store.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

async fn api_form(
    state: &AppState,
    cluster: &ClusterName,
    row: &BackupRow,
) -> Result<Backup, ApiError> {
    let size = state
        .services
        .catalog
        .cluster(cluster)
        .await?
        .and_then(|c| c.segment_size);
    let backups = state.services.catalog.backups(cluster).await?;
    Ok(backup::to_api(
        cluster,
        row,
        &backup::Chains::new(&backups),
        size,
    ))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UploadQuery {
    /// For an incremental backup: the id of the backup whose manifest it was taken
    /// against. Without it, the complete backup that started where the label's
    /// `INCREMENTAL FROM` lines say is the parent.
    parent: Option<String>,
}

/// Upload a base backup.
///
/// The body is one tar stream as `pg_basebackup -D - -Ft -X fetch` writes it, plain or
/// with `Content-Encoding: zstd` or `gzip`. The answer comes once it is durable. An
/// incremental backup (`pg_basebackup --incremental`) is stored tied to its parent, a
/// complete backup of the cluster; `409 no_parent` when there is none.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/backups", tag = "backups",
    params(("cluster" = String, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/x-tar"),
    responses(
        (status = 201, body = Backup),
        (status = 400, description = "Not a base backup, or a cut upload", body = ErrorBody),
        (status = 409, description = "A backup of another database system, an incremental without a complete parent, or one deleted while it was uploading", body = ErrorBody),
        (status = 429, description = "The cluster's concurrent upload limit is reached; see Retry-After", body = ErrorBody),
        (status = 503, description = "The gateway's concurrent upload limit is reached; see Retry-After", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn post_backup(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(cluster): ClusterPath,
    QueryParams(q): QueryParams<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(&cluster, Role::Archiver)?;
    let parent = q.parent.as_deref().map(backup_id).transpose()?;
    let encoding = content_encoding(
        &headers,
        &[Encoding::Identity, Encoding::Zstd, Encoding::Gzip],
    )?;
    let slot = state.services.limits.uploads.start(&cluster)?;
    // Run to the end even if the client goes away: a cut upload must be cleaned up,
    // and dropping this future half-way would skip that.
    let registered = state.services.catalog.cluster(&cluster).await?;
    let (catalog, store, level, name) = (
        state.services.catalog.clone(),
        state
            .services
            .storage
            .of(registered.as_ref().map(|c| &c.target))?
            .clone(),
        state.services.settings.zstd_level,
        cluster.clone(),
    );
    let body = state
        .services
        .limits
        .bandwidth
        .throttle(&cluster, body.into_data_stream())
        .take_until(Box::pin(state.cut_uploads.clone().cancelled_owned()));
    let manifests = state.services.limits.manifest_memory.clone();
    let row = tokio::spawn(async move {
        let _slot = slot;
        let upload = backup::Upload {
            level,
            encoding,
            manifests,
        };
        backup::push(catalog.as_ref(), &store, &name, upload, parent, body).await
    })
    .await
    .expect("backup upload task panicked")?;
    tracing::info!(%cluster, backup = %row.id, size = row.size, stored = row.stored_size, "backup stored");
    Ok((
        StatusCode::CREATED,
        Json(api_form(&state, &cluster, &row).await?),
    )
        .into_response())
}

/// Upload a base backup with PUT, as `curl -T -` sends it; the same as POST.
#[utoipa::path(put, path = "/v1/clusters/{cluster}/backups", tag = "backups",
    params(("cluster" = String, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/x-tar"),
    responses((status = 201, body = Backup), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_backup(
    state: State<AppState>,
    caller: Caller,
    cluster: ClusterPath,
    query: QueryParams<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    post_backup(state, caller, cluster, query, headers, body).await
}

/// List backups, newest first.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/backups", tag = "backups",
    params(("cluster" = String, Path)),
    responses((status = 200, body = Vec<Backup>)), security(("bearer" = [])))]
async fn list_backups(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(cluster): ClusterPath,
) -> Result<Json<Vec<Backup>>, ApiError> {
    caller.require(&cluster, Role::Viewer)?;
    let size = state
        .services
        .catalog
        .cluster(&cluster)
        .await?
        .and_then(|c| c.segment_size);
    let rows = state.services.catalog.backups(&cluster).await?;
    let chains = backup::Chains::new(&rows);
    Ok(Json(
        rows.iter()
            .map(|b| backup::to_api(&cluster, b, &chains, size))
            .collect(),
    ))
}

/// One backup's metadata; `latest` is the newest complete one.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/backups/{id}", tag = "backups",
    params(("cluster" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Backup), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_backup(
    State(state): State<AppState>,
    caller: Caller,
    BackupPath(cluster, id): BackupPath,
) -> Result<Json<Backup>, ApiError> {
    caller.require(&cluster, Role::Viewer)?;
    let row = backup::find(state.services.catalog.as_ref(), &cluster, &id).await?;
    Ok(Json(api_form(&state, &cluster, &row).await?))
}

/// The backup as a tar stream (`| tar -x -C $PGDATA`); zstd as stored with
/// `Accept-Encoding: zstd`.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/backups/{id}/archive", tag = "backups",
    params(("cluster" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, content_type = "application/x-tar", body = Vec<u8>),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn get_archive(
    State(state): State<AppState>,
    caller: Caller,
    BackupPath(cluster, id): BackupPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(&cluster, Role::Restorer)?;
    let row = backup::find(state.services.catalog.as_ref(), &cluster, &id).await?;
    let stored = open_object(&state, &cluster, &row, |keys| keys.data).await?;
    let response = stored_response(
        stored,
        &headers,
        row.size,
        row.stored_size,
        "application/x-tar",
    );
    // Paced as sent: the limit is on the wire, compressed or not.
    let mut response = response.map(|body| {
        Body::from_stream(
            state
                .services
                .limits
                .bandwidth
                .throttle(&cluster, body.into_data_stream()),
        )
    });
    // The hash is of the stored object: it describes the body only when sent as stored.
    if accepts_zstd(&headers) {
        let sha = HeaderValue::from_str(&row.sha256_hex()).expect("hex is a valid header");
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-walgate-sha256"), sha);
    }
    Ok(response)
}

/// Opens one of a complete backup's stored objects.
async fn open_object(
    state: &AppState,
    cluster: &ClusterName,
    row: &BackupRow,
    object: impl FnOnce(layout::BackupKeys) -> object_store::path::Path,
) -> Result<BoxStream<'static, Result<bytes::Bytes, crate::storage::StorageError>>, ApiError> {
    if row.status != crate::catalog::BackupStatus::Complete {
        return Err(ApiError::not_found(format!(
            "backup {} is {}, not complete",
            row.id,
            row.status.as_str()
        )));
    }
    let registered = state.services.catalog.cluster(cluster).await?;
    let key = object(layout::backup_keys(cluster, &row.id));
    Ok(state
        .services
        .storage
        .of(registered.as_ref().map(|c| &c.target))?
        .get(&key)
        .await?)
}

/// The backup's `backup_manifest`, for `pg_basebackup --incremental=FILE`: an
/// incremental taken against it is stored tied to it. `latest` is the newest complete
/// backup.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/backups/{id}/manifest", tag = "backups",
    params(("cluster" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, content_type = "application/json", body = Object, description = "The backup_manifest as PostgreSQL wrote it"),
        (status = 404, description = "No such backup, or one stored without a manifest", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn get_manifest(
    State(state): State<AppState>,
    caller: Caller,
    BackupPath(cluster, id): BackupPath,
) -> Result<Response, ApiError> {
    caller.require(&cluster, Role::Restorer)?;
    let row = backup::find(state.services.catalog.as_ref(), &cluster, &id).await?;
    if row.status == crate::catalog::BackupStatus::Complete && !row.has_manifest {
        return Err(ApiError::not_found(format!(
            "backup {} was stored without a backup_manifest (pg_basebackup --no-manifest): take a full backup to build incrementals on",
            row.id
        )));
    }
    // Refuses a backup that is not complete.
    let stored = open_object(&state, &cluster, &row, |keys| keys.manifest).await?;
    let mut response = Body::from_stream(stored).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::HeaderName::from_static("x-walgate-backup"),
        HeaderValue::from_str(&row.id).expect("ids are header-safe"),
    );
    Ok(response)
}

/// Delete a backup (admin).
///
/// `409` when incremental backups were taken against it (the answer names them), or
/// when it is locked on a write-once target.
#[utoipa::path(delete, path = "/v1/clusters/{cluster}/backups/{id}", tag = "backups",
    params(("cluster" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_backup(
    State(state): State<AppState>,
    caller: Caller,
    BackupPath(cluster, id): BackupPath,
) -> Result<StatusCode, ApiError> {
    caller.require(&cluster, Role::Admin)?;
    let registered = state.services.catalog.cluster(&cluster).await?;
    let store = state
        .services
        .storage
        .of(registered.as_ref().map(|c| &c.target))?;
    backup::delete(state.services.catalog.as_ref(), store, &cluster, &id).await?;
    tracing::info!(%cluster, backup = %id, "backup deleted");
    Ok(StatusCode::NO_CONTENT)
}
