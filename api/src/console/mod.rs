//! The console at `/console`: server-rendered pages for the platform's operators, partner
//! admins and tenant admins, served by the same binary.
//!
//! The console holds no rights of its own. A session is the credential its user signed in
//! with (a key or an identity provider's token), kept in an encrypted, HttpOnly,
//! SameSite=Strict cookie that expires; every page is rendered from answers of the JSON API
//! called in-process with that credential, and every form becomes one API request. So a page
//! shows exactly what the credential could read with curl, and refusals (403, 404, 409, 422)
//! are the API's own.
//!
//! # Layout
//! - [`session`]: sign-in and sign-out, the session cookie, CSRF tokens.
//! - [`client`]: calls of the JSON API on behalf of a session.
//! - [`views`]: the page frame, tables, forms, quota bars, error pages.
//! - [`charts`]: SVG charts drawn on the server.
//! - [`platform`]: operators' and partner admins' pages (tenants, partners, operators, read
//!   models).
//! - [`tenant`]: a tenant's pages (overview, agents, tools, users, keys, conversations, audit,
//!   settings, export, dangerous actions).

pub mod charts;
pub mod client;
pub mod platform;
pub mod session;
pub mod tenant;
pub mod views;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::cookie::Key;

pub use client::Api;
pub use session::Session;

/// What the console's handlers share: the JSON API to call, and the cookie key.
#[derive(Clone, Debug)]
pub struct ConsoleState {
    pub api: Api,
    pub key: Key,
}

impl FromRef<ConsoleState> for Key {
    fn from_ref(state: &ConsoleState) -> Self {
        state.key.clone()
    }
}

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, to be nested at `/console`. `api` is the JSON API router with all
/// its layers (authentication, limits, idempotency).
pub fn router(api: axum::Router, key: Key) -> Router {
    let state = ConsoleState { api: Api::new(api), key };
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/home") }))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .merge(session::router())
        .merge(platform::router())
        .merge(tenant::router())
        .fallback(|session: Option<Session>| async move {
            views::problem_page(session.as_ref(), axum::http::StatusCode::NOT_FOUND, "No such page.")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), problems))
        .with_state(state)
        .layer(axum::middleware::from_fn(security_headers))
}

/// A refusal from any handler, drawn as a page with the session's navigation (so a 403 page
/// still offers the way home and the sign-out).
async fn problems(
    session: Option<Session>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    match response.extensions().get::<client::Failure>() {
        Some(failure) => views::problem_page(session.as_ref(), failure.status, &failure.explained()),
        None => response,
    }
}

async fn security_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", include_str!("assets/console.css"))
}

async fn js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", include_str!("assets/console.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        body,
    )
        .into_response()
}
