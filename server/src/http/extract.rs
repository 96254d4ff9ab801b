//! Extractors that turn untrusted request parts into typed values before a handler runs:
//! the caller's token and the cluster and file names of the path.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use walgate_core::api::ErrorCode;
use walgate_core::{ClusterName, WalFileName};

use super::AppState;
use super::error::ApiError;
use crate::auth::{AuthError, Caller};

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or(AuthError::Missing)?;
        Ok(state.services.auth.verify(token.trim()).await?)
    }
}

/// The path's named parameters.
async fn params(parts: &mut Parts) -> Result<HashMap<String, String>, ApiError> {
    let Path(map) = Path::<HashMap<String, String>>::from_request_parts(parts, &())
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadPath, e.body_text()))?;
    Ok(map)
}

fn param<'a>(map: &'a HashMap<String, String>, name: &str) -> &'a str {
    map.get(name).map(String::as_str).unwrap_or_default()
}

fn cluster_name(map: &HashMap<String, String>) -> Result<ClusterName, ApiError> {
    param(map, "cluster")
        .parse()
        .map_err(|e: walgate_core::names::ClusterNameError| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadCluster,
                e.to_string(),
            )
        })
}

/// `/v1/clusters/{cluster}…`.
pub struct ClusterPath(pub ClusterName);

impl<S: Send + Sync> FromRequestParts<S> for ClusterPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(ClusterPath(cluster_name(&params(parts).await?)?))
    }
}

/// `/v1/clusters/{cluster}/wal/{file}`.
pub struct WalPath(pub ClusterName, pub WalFileName);

impl<S: Send + Sync> FromRequestParts<S> for WalPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let map = params(parts).await?;
        let file = param(&map, "file")
            .parse()
            .map_err(|e: walgate_core::WalNameError| {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadName, e.to_string())
            })?;
        Ok(WalPath(cluster_name(&map)?, file))
    }
}

/// `/v1/clusters/{cluster}/backups/{id}…`: a backup id, or `latest`.
pub struct BackupPath(pub ClusterName, pub String);

impl<S: Send + Sync> FromRequestParts<S> for BackupPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let map = params(parts).await?;
        let id = backup_id(param(&map, "id"))?;
        Ok(BackupPath(cluster_name(&map)?, id))
    }
}

/// A backup id (or `latest`) as a request names it: its shape is checked before any
/// lookup.
pub fn backup_id(id: &str) -> Result<String, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadId,
            format!(
                "`{}` is not a backup id (or `latest`)",
                id.chars().take(80).collect::<String>()
            ),
        ));
    }
    Ok(id.to_owned())
}

/// A JSON request body; a malformed one gets the gateway's JSON error like any other
/// bad request, not axum's plain-text rejection.
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// An optional JSON body: none when the request has no body (`Content-Length: 0`) or
/// says nothing of one (no `Content-Type`).
impl<T: serde::de::DeserializeOwned> axum::extract::OptionalFromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        let h = req.headers();
        let empty = h.get(header::CONTENT_LENGTH).is_some_and(|v| v == "0");
        if empty || !h.contains_key(header::CONTENT_TYPE) {
            return Ok(None);
        }
        <Self as axum::extract::FromRequest<AppState>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// The query string as `T`; a bad one is a JSON `400` like every other error.
pub struct QueryParams<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}
