//! The dashboard: HTML pages the gateway renders for people, from the same fleet state
//! as `/v1/clusters` and `/metrics`. A token entered once on the login page is kept in
//! an HttpOnly, SameSite=Strict cookie; the pages only read, and the JSON API never
//! accepts the cookie, so another site's page cannot act through it. Styles, scripts
//! and the API explorer are compiled into the binary: nothing is fetched from elsewhere.

mod chart;
mod pages;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use time::OffsetDateTime;
use walgate_core::api::Role;

use super::clusters::{FleetQuery, fleet_page, to_api};
use super::error::ApiError;
use super::extract::ClusterPath;
use super::forwarded::Origin;
use super::restore::{PlanQuery, build as build_plan};
use crate::auth::{AuthError, Caller};
use crate::http::AppState;
use crate::{drill, fleet, jobs, restore, retention, verify};

/// The cookie that holds the visitor's token.
const COOKIE: &str = "walgate_session";
/// How long the browser keeps it (the token's own expiry still applies).
const SESSION_SECONDS: u32 = 12 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(fleet_view))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/clusters/{cluster}", get(cluster_view))
        .route("/clusters/{cluster}/drill", post(request_drill))
        .route("/api", get(explorer))
        .route("/assets/{file}", get(asset))
}

/// A signed-in visitor: the session cookie's token, verified like a bearer token.
struct Visitor(Caller);

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || {
            let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
            Redirect::to(&format!("/login?{query}")).into_response()
        };
        let Some(token) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        match state.services.auth.verify(token).await {
            Ok(caller) => Ok(Visitor(caller)),
            Err(AuthError::Catalog(e)) => Err(error_page(AuthError::Catalog(e).into())),
            // Expired or revoked since the login: ask again.
            Err(_) => Err(to_login()),
        }
    }
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A page with the headers every dashboard page carries: scripts and styles from the
/// gateway only, never framed, never cached.
fn page(status: StatusCode, body: maud::Markup) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn error_page(e: ApiError) -> Response {
    page(e.status, pages::error(&e))
}

fn bad_query(e: QueryRejection) -> Response {
    error_page(ApiError::bad_request(e.body_text()))
}

async fn fleet_view(
    State(state): State<AppState>,
    Visitor(caller): Visitor,
    q: Result<Query<FleetQuery>, QueryRejection>,
) -> Result<Response, Response> {
    let Query(mut q) = q.map_err(bad_query)?;
    // A page of the fleet at a time: a table of ten thousand rows is no one's view.
    q.limit = Some(
        q.limit
            .unwrap_or(pages::FLEET_PAGE)
            .clamp(1, pages::FLEET_PAGE_MAX),
    );
    let fleet = fleet_page(&state, &caller, &q).await.map_err(error_page)?;
    Ok(page(StatusCode::OK, pages::fleet(&caller, &q, &fleet)))
}

#[derive(Debug, Default, Deserialize)]
struct ClusterQuery {
    /// The restore helper's target: `YYYY-MM-DDTHH:MM[:SS]` in UTC, or empty for the
    /// end of the archive.
    restore_at: Option<String>,
}

async fn cluster_view(
    State(state): State<AppState>,
    Visitor(caller): Visitor,
    ClusterPath(name): ClusterPath,
    q: Result<Query<ClusterQuery>, QueryRejection>,
    Extension(origin): Extension<Origin>,
) -> Result<Response, Response> {
    let Query(q) = q.map_err(bad_query)?;
    let view = async {
        caller.require(&name, Role::Viewer)?;
        let found = fleet::load_one(&state.services, &name).await?;
        let state_now = found.ok_or_else(|| ApiError::not_found(format!("no cluster `{name}`")))?;
        let row = state_now.cluster.clone();
        let now = OffsetDateTime::now_utc();
        let archive = restore::load(&state.services, &row).await?;
        let restore = match &q.restore_at {
            None => None,
            Some(at) => {
                let plan_query = PlanQuery {
                    target_time: restore_time(at),
                    ..Default::default()
                };
                Some((
                    at.clone(),
                    build_plan(&archive, &origin, &name, &plan_query),
                ))
            }
        };
        Ok::<_, ApiError>(pages::ClusterView {
            summary: to_api(&state, state_now),
            backups: archive.backups.clone(),
            volume: state
                .services
                .catalog
                .wal_volume(&name, now - time::Duration::days(pages::CHART_DAYS))
                .await?,
            timelines: restore::timelines(&archive),
            chain_problems: restore::check_chain(&archive).problems,
            forks: restore::forks(&archive)
                .iter()
                .map(ToString::to_string)
                .collect(),
            fork_note: restore::default_timeline(&archive).1,
            retention: retention::preview(&state.services, &row).await?,
            object_lock: state
                .services
                .storage
                .get(&row.target)
                .ok()
                .and_then(|s| s.object_lock()),
            next_retention: jobs::next_run(
                &state.services,
                retention::LEASE,
                state.services.settings.retention_interval,
            )
            .await?,
            verification: state.services.catalog.last_verification(&name).await?,
            next_verify: jobs::next_run(
                &state.services,
                verify::LEASE,
                state.services.settings.verify_interval,
            )
            .await?,
            errors: state.services.metrics.recent_errors(name.as_str()),
            drills: drill::history(&state.services, &row).await?,
            restore,
            now,
        })
    };
    let view = view.await.map_err(error_page)?;
    Ok(page(StatusCode::OK, pages::cluster(&caller, &view)))
}

/// The restore helper's time: zoned text (RFC 3339, or PostgreSQL's as `select now()`
/// prints it) as typed; else a `datetime-local` input's, which has no zone (the page
/// says it is UTC) and no seconds when they are zero.
fn restore_time(at: &str) -> Option<String> {
    let at = at.trim();
    if at.is_empty() {
        return None;
    }
    if walgate_core::timestamp::parse(at).is_ok() {
        return Some(at.to_owned());
    }
    Some(if at.len() == 16 {
        format!("{at}:00Z")
    } else {
        format!("{at}Z")
    })
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Where to go after signing in: a path on this gateway, never another site. Only
/// visible ASCII: browsers drop tabs and line breaks from a URL, so `/<TAB>/evil.example`
/// would reach them as `//evil.example`.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/",
    }
}

async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    page(
        StatusCode::OK,
        pages::login(local_path(q.next.as_deref()), None),
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Whether a form post comes from this gateway's own pages: another site's form must not
/// sign a visitor in with the attacker's token, nor out. Browsers say so in
/// `Sec-Fetch-Site`; older ones only name the page's origin in `Origin`, whose host must
/// be the one the request was sent to (or the public URL's). `Origin: null` (a page that
/// sends no referrer, or a sandboxed frame) proves nothing. Clients that send neither
/// header are no browsers.
fn same_site(headers: &HeaderMap, origin: &Origin) -> bool {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = value(HeaderName::from_static("sec-fetch-site")) {
        return site == "same-origin" || site == "none";
    }
    match value(header::ORIGIN) {
        None => true,
        Some("null") => false,
        Some(from) => {
            let host = from.split_once("://").map(|(_, host)| host);
            host.is_some_and(|h| {
                Some(h) == value(header::HOST) || Some(h) == origin.host.as_deref()
            })
        }
    }
}

fn cross_site() -> Response {
    tracing::warn!("cross-site dashboard form post refused");
    error_page(ApiError::new(
        StatusCode::FORBIDDEN,
        walgate_core::api::ErrorCode::Forbidden,
        "this form was sent from another site: sign in and out from the gateway's own pages",
    ))
}

async fn login(
    State(state): State<AppState>,
    Extension(origin): Extension<Origin>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_site(&headers, &origin) {
        return cross_site();
    }
    let next = local_path(form.next.as_deref());
    let token = form.token.trim();
    match state.services.auth.verify(token).await {
        Ok(caller) => {
            tracing::info!(token = %caller.token_id, role = caller.role.as_str(), "dashboard login");
            let secure = if origin.scheme == "https" {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{secure}"
            );
            let mut response = Redirect::to(next).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Err(AuthError::Catalog(e)) => error_page(AuthError::Catalog(e).into()),
        Err(e) => {
            tracing::info!(reason = %e, "dashboard login refused");
            page(
                StatusCode::UNAUTHORIZED,
                pages::login(next, Some(&e.to_string())),
            )
        }
    }
}

/// The cluster page's "Drill now" (admin): the next free runner takes it.
async fn request_drill(
    State(state): State<AppState>,
    Visitor(caller): Visitor,
    ClusterPath(name): ClusterPath,
    Extension(origin): Extension<Origin>,
    headers: HeaderMap,
) -> Response {
    if !same_site(&headers, &origin) {
        return cross_site();
    }
    let asked = async {
        caller.require(&name, Role::Admin)?;
        if !drill::request(&state.services, &name).await? {
            return Err(ApiError::not_found(format!("no cluster `{name}`")));
        }
        tracing::info!(cluster = %name, by = %caller.token_id, "restore drill asked for on the dashboard");
        Ok::<_, ApiError>(())
    };
    match asked.await {
        Ok(()) => Redirect::to(&format!("/clusters/{name}#drills")).into_response(),
        Err(e) => error_page(e),
    }
}

async fn logout(Extension(origin): Extension<Origin>, headers: HeaderMap) -> Response {
    if !same_site(&headers, &origin) {
        return cross_site();
    }
    let mut response = Redirect::to("/login").into_response();
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear).expect("a plain cookie"),
    );
    response
}

/// The API explorer: a page that reads `/openapi.json` and sends requests with the
/// token typed into it. It needs no session: the API takes bearer tokens only.
async fn explorer() -> Response {
    page(StatusCode::OK, pages::explorer())
}

/// The embedded static files, by name.
const ASSETS: [(&str, &str, &str); 4] = [
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "explorer.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/explorer.js"),
    ),
    (
        "time.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/time.js"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => error_page(ApiError::not_found(format!("no asset `{file}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_only_returns_to_paths_on_this_gateway() {
        assert_eq!(local_path(Some("/clusters/main?x=1")), "/clusters/main?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil",
            "x",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example",
            "/\u{7f}/evil.example",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; walgate_session=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn restore_times_are_utc_unless_they_say_otherwise() {
        let t = restore_time;
        assert_eq!(t(""), None);
        assert_eq!(
            t("2026-11-27T06:45").as_deref(),
            Some("2026-11-27T06:45:00Z")
        );
        for zoned in [
            "2026-11-27T06:45:10+01:00",
            "2026-11-27T06:45:10-05:00",
            "2026-11-27 06:45:10.123456+00",
        ] {
            assert_eq!(t(zoned).as_deref(), Some(zoned));
        }
    }
}
