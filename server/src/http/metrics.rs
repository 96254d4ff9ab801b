//! `/metrics`: Prometheus exposition, for a viewer token (scrape with `bearer_token`);
//! the token's scope decides which clusters appear.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::api::Role;

use super::AppState;
use super::error::{ApiError, ErrorNote, OtherCluster};
use crate::auth::Caller;
use crate::metrics::WalOp;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics: per cluster, WAL and backup state and ages, recovery window,
/// verification results, WAL traffic; request counts and latencies.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, content_type = "text/plain", body = String)), security(("bearer" = [])))]
async fn metrics(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_role(Role::Viewer)?;
    let visible = |c: &str| c.parse().is_ok_and(|c| caller.scope.covers(&c));
    let text = crate::metrics::render(&state.services, &visible).await;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Counts every routed request, and WAL pushes and fetches per cluster.
pub async fn track(
    State(state): State<AppState>,
    route: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = route.map_or_else(|| "unmatched".to_owned(), |r| r.as_str().to_owned());
    let method = req.method().clone();
    let sent = content_length(req.headers());
    let cluster = route
        .starts_with("/v1/clusters/{cluster}")
        .then(|| req.uri().path().split('/').nth(3).map(str::to_owned))
        .flatten();
    let response = next.run(req).await;
    let status = response.status();
    state
        .services
        .metrics
        .request(&route, method.as_str(), status.as_u16(), started.elapsed());
    // Unauthenticated callers, and tokens for other clusters, say nothing about the
    // cluster they name (see `OtherCluster`); the route counters keep them. A token of
    // this cluster refused for its role is a misconfigured host worth seeing.
    let refused =
        status == StatusCode::UNAUTHORIZED || response.extensions().get::<OtherCluster>().is_some();
    let Some(cluster) =
        cluster.filter(|c| !refused && c.parse::<walgate_core::ClusterName>().is_ok())
    else {
        return response;
    };
    let wal = route == "/v1/clusters/{cluster}/wal/{file}";
    if wal {
        let ok = status.is_success();
        match method {
            Method::PUT => state.services.metrics.wal(&cluster, WalOp::Push, ok, sent),
            Method::GET => {
                let got = content_length(response.headers());
                state.services.metrics.wal(&cluster, WalOp::Fetch, ok, got)
            }
            _ => {}
        }
    }
    // A restore asking for a file past the end of the archive is not an error.
    let expected = wal && status == StatusCode::NOT_FOUND;
    if let Some(ErrorNote(body)) = response.extensions().get::<ErrorNote>()
        && !expected
    {
        let what = format!("{method} {route}");
        state
            .services
            .metrics
            .error(&cluster, what, status.as_u16(), body);
    }
    response
}

fn content_length(headers: &axum::http::HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}
