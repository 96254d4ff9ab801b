//! `/v1/tokens`: issue, list and revoke tokens (admin), and what a token may do.
//!
//! An admin manages only tokens within its own scope: an admin of cluster `main` can
//! issue and revoke tokens for `main`, not for other clusters or for `*`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::api::{ErrorBody, ErrorCode, Role, TokenInfo};

use super::AppState;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::auth::Caller;
use crate::catalog::Scope;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token_self))
        .routes(routes!(issue_token, list_tokens))
        .routes(routes!(revoke_token))
}

/// The calling token: its clusters, role and expiry. Any valid token may ask; clients use
/// it to check their configuration.
#[utoipa::path(get, path = "/v1/tokens/self", tag = "tokens",
    responses((status = 200, body = TokenInfo), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn token_self(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TokenInfo>, ApiError> {
    let row = state
        .services
        .catalog
        .token(&caller.token_id)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    Ok(Json(row.to_api()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IssueToken {
    /// Cluster names, or `["*"]` for every cluster.
    clusters: Vec<String>,
    role: Role,
    /// Lifetime in seconds, up to ten years; absent: the token does not expire (revoke it
    /// instead).
    expires_in_seconds: Option<u64>,
    /// Free text, e.g. the host it is for.
    description: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct IssuedToken {
    /// The bearer token. It is shown only in this answer.
    token: String,
    info: TokenInfo,
}

/// Issue a token (admin) for clusters within the caller's own scope.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = IssueToken,
    responses((status = 201, body = IssuedToken), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn issue_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<IssueToken>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    caller.require_role(Role::Admin)?;
    if req.clusters.is_empty() {
        return Err(ApiError::bad_request(
            "clusters must name at least one cluster, or \"*\"",
        ));
    }
    let scope: Scope = req
        .clusters
        .join(",")
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("clusters: {e}")))?;
    within(&caller, &scope)?;
    let (row, token) = state
        .services
        .auth
        .issue(
            scope,
            req.role,
            req.expires_in_seconds.map(std::time::Duration::from_secs),
            req.description,
        )
        .await?;
    tracing::info!(id = %row.id, by = %caller.token_id, role = row.role.as_str(), "token issued");
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            token,
            info: row.to_api(),
        }),
    ))
}

/// The tokens within the caller's scope (admin); never the tokens themselves.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenInfo>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    caller.require_role(Role::Admin)?;
    let tokens = state.services.catalog.tokens().await?;
    Ok(Json(
        tokens
            .iter()
            .filter(|t| caller.scope.includes(&t.scope))
            .map(|t| t.to_api())
            .collect(),
    ))
}

/// Revoke a token (admin); it stops working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_role(Role::Admin)?;
    // Another scope's token answers as an unknown one does: which ids exist, and their
    // scopes, are not for this caller to learn.
    let _row = state
        .services
        .catalog
        .token(&id)
        .await?
        .filter(|row| caller.scope.includes(&row.scope))
        .ok_or_else(|| {
            ApiError::not_found(format!("no token `{id}` within this token's clusters"))
        })?;
    state
        .services
        .catalog
        .revoke_token(&id, time::OffsetDateTime::now_utc())
        .await?;
    tracing::info!(%id, by = %caller.token_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses to manage a token reaching beyond the caller's own clusters.
fn within(caller: &Caller, scope: &Scope) -> Result<(), ApiError> {
    if caller.scope.includes(scope) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!(
                "this token covers `{}` and cannot manage a token for `{}`",
                caller.scope.encode(),
                scope.encode()
            ),
        ))
    }
}
