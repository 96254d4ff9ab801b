//! `/v1/tokens`: what a token may do.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::api::{ErrorBody, TokenInfo};

use super::error::ApiError;
use crate::AppState;
use crate::auth::Caller;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(token_self))
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
        .catalog
        .token(&caller.token_id)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    Ok(Json(row.to_api()))
}
