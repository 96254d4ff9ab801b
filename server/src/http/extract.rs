//! Extractors that turn untrusted request parts into typed values before a handler runs:
//! the caller's token and the cluster and file names of the path.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use walgate_core::{ClusterName, WalFileName};

use super::error::ApiError;
use crate::AppState;
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
        Ok(state.auth.verify(token.trim()).await?)
    }
}

fn path_error(e: axum::extract::rejection::PathRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.body_text())
}

fn cluster_name(s: &str) -> Result<ClusterName, ApiError> {
    s.parse()
        .map_err(|e: walgate_core::cluster::ClusterNameError| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_cluster", e.to_string())
        })
}

/// `/v1/clusters/{cluster}`.
pub struct ClusterPath(pub ClusterName);

impl<S: Send + Sync> FromRequestParts<S> for ClusterPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(c) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(path_error)?;
        Ok(ClusterPath(cluster_name(&c)?))
    }
}

/// `/v1/clusters/{cluster}/wal/{file}`.
pub struct WalPath(pub ClusterName, pub WalFileName);

impl<S: Send + Sync> FromRequestParts<S> for WalPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((c, f)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(path_error)?;
        let file = f.parse().map_err(|e: walgate_core::WalNameError| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_name", e.to_string())
        })?;
        Ok(WalPath(cluster_name(&c)?, file))
    }
}
