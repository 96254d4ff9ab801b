//! The HTTP API. Each resource module exposes its routes; [`app`] assembles them, and
//! registering a route through `utoipa-axum` also documents it in [`openapi`].

mod backups;
mod clusters;
mod dashboard;
mod drills;
mod encoding;
pub mod error;
mod extract;
pub mod forwarded;
mod health;
mod metrics;
pub mod pace;
pub(crate) mod restore;
mod retention;
mod tokens;
mod verify;
mod wal;

use axum::Router;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio_util::sync::CancellationToken;

use crate::Services;

/// What every request handler shares: the services, and what only HTTP needs.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// Whether the gateway serves HTTPS itself.
    pub tls: bool,
    /// Reverse proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Arc<forwarded::TrustedProxies>,
    /// Cancelled when shutdown's deadline passes: backup uploads still running end as
    /// cut uploads, which clean up after themselves.
    pub cut_uploads: CancellationToken,
    /// Set on SIGTERM: `/readyz` answers 503 while requests in flight finish.
    pub draining: Arc<AtomicBool>,
    /// The latest readiness probe, reused for a few seconds.
    pub probed: health::ProbeCache,
}

impl AppState {
    pub fn new(services: Services) -> anyhow::Result<Self> {
        let settings = &services.settings;
        Ok(AppState {
            tls: settings.tls()?.is_some(),
            trusted_proxies: Arc::new(forwarded::TrustedProxies(settings.trusted_proxies.clone())),
            cut_uploads: Default::default(),
            draining: Default::default(),
            probed: Default::default(),
            services,
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "walgate", description = "HTTP backup gateway for PostgreSQL"),
    modifiers(&BearerAuth),
    tags(
        (name = "wal", description = "Archive and fetch WAL files"),
        (name = "backups", description = "Base backups"),
        (name = "clusters", description = "The fleet"),
        (name = "tokens", description = "API tokens"),
        (name = "retention", description = "Retention policies and runs"),
        (name = "drills", description = "Restore drills: restores proven by starting PostgreSQL"),
        (name = "probes", description = "Health and readiness"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The syntax of the cluster and WAL file names in paths, from the parsers' own patterns.
fn describe_name(param: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ObjectBuilder, RefOr, Type};
    let (pattern, description) = match param.name.as_str() {
        "cluster" => (
            walgate_core::ClusterName::PATTERN,
            "The cluster's name: 1 to 63 characters of a-z, 0-9, `_` and `-`",
        ),
        "file" => (
            walgate_core::WalFileName::PATTERN,
            "A WAL file name as PostgreSQL passes it (`%f`): a segment, a `.partial` \
             segment, a timeline history or a backup history file",
        ),
        _ => return,
    };
    if param.parameter_in != ParameterIn::Path {
        return;
    }
    param.description = Some(description.to_owned());
    param.schema = Some(RefOr::T(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .into(),
    ));
}

/// The answers every route that takes a token can give, documented once: a missing or
/// refused token, a token without the role or the cluster, and the catalog or object
/// store failing (retry later).
fn document_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Content, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    )))),
                )
                .build(),
        )
    };
    let common = [
        (
            "401",
            "No token, or one that is invalid, expired or revoked",
        ),
        (
            "403",
            "The token lacks the role, or is not scoped to the cluster",
        ),
        ("500", "The gateway failed; nothing was acknowledged"),
        (
            "503",
            "The catalog or object store is unavailable; retry after `Retry-After`",
        ),
    ];
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.head,
        ];
        for op in ops.into_iter().flatten() {
            for param in op.parameters.iter_mut().flatten() {
                if let utoipa::openapi::RefOr::T(param) = param {
                    describe_name(param);
                }
            }
            if op.security.is_none() {
                continue;
            }
            let takes_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if takes_input {
                op.responses
                    .responses
                    .entry("400".to_owned())
                    .or_insert_with(|| {
                        error("A malformed cluster or file name, query parameter or body")
                    });
            }
            for (status, description) in common {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description));
            }
        }
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(wal::router())
        .merge(backups::router())
        .merge(restore::router())
        .merge(clusters::router())
        .merge(tokens::router())
        .merge(retention::router())
        .merge(verify::router())
        .merge(drills::router())
        .merge(health::router())
        .merge(metrics::router())
}

/// The cluster named in a path, or a 404.
async fn cluster(
    state: &AppState,
    name: &walgate_core::ClusterName,
) -> Result<crate::catalog::ClusterRow, error::ApiError> {
    state
        .services
        .catalog
        .cluster(name)
        .await?
        .ok_or_else(|| error::ApiError::not_found(format!("no cluster `{name}`")))
}

/// The whole application, testable without a socket.
pub fn app(state: AppState) -> Router {
    let router = routes()
        .split_for_parts()
        .0
        .merge(dashboard::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pace::pace,
        ));
    let doc = std::sync::Arc::new(openapi());
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
                let client = request
                    .extensions()
                    .get::<forwarded::Origin>()
                    .and_then(|o| o.client);
                // The path only: queries are not logged.
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    client = ?client,
                )
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forwarded::origin,
        ))
        .with_state(state)
}

/// The OpenAPI document of [`app`]; `openapi/openapi.json` is this, pretty-printed.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document_common_errors(&mut doc);
    doc
}
