//! The HTTP API. Each resource module exposes its routes; [`app`] assembles them, and
//! registering a route through `utoipa-axum` also documents it in [`openapi`].

mod backups;
mod clusters;
mod dashboard;
mod encoding;
pub mod error;
mod extract;
pub mod forwarded;
mod health;
mod metrics;
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

use crate::AppState;

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

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(wal::router())
        .merge(backups::router())
        .merge(restore::router())
        .merge(clusters::router())
        .merge(tokens::router())
        .merge(retention::router())
        .merge(verify::router())
        .merge(health::router())
        .merge(metrics::router())
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
    doc
}
