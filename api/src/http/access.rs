//! One access line per request (request id, route template, status, latency, tenant), the
//! `X-Request-Id` it was given or one made for it, echoed on the response; internal errors
//! are logged here with their cause, client errors at INFO.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tenantry_domain::TenantId;

use super::error::InternalCause;

/// The header a request id travels in.
pub const REQUEST_ID: &str = "x-request-id";

/// The tenant a request was charged to, for the access line.
#[derive(Debug, Clone, Copy)]
pub struct ChargedTenant(pub TenantId);

/// A request id given by the client is kept when it is short, visible ASCII.
fn given_id(request: &Request) -> Option<HeaderValue> {
    let v = request.headers().get(REQUEST_ID)?;
    let ok = (1..=128).contains(&v.len()) && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
    ok.then(|| v.clone())
}

pub async fn log(mut request: Request, next: Next) -> Response {
    let id = given_id(&request).unwrap_or_else(|| {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).unwrap_or(HeaderValue::from_static("-"))
    });
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let method = request.method().clone();
    let started = Instant::now();
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        request.id = %id.to_str().unwrap_or("-"),
        tenant.id = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    let tenant = response.extensions().get::<ChargedTenant>().map(|t| t.0.to_string()).unwrap_or_default();
    let request_id = id.to_str().unwrap_or("-").to_owned();
    span.record("tenant.id", tenant.as_str());
    span.record("http.response.status_code", status);
    let trace_id = crate::telemetry::current_trace_id(&span).unwrap_or_default();
    match response.extensions().get::<InternalCause>() {
        Some(InternalCause(cause)) => {
            tracing::error!(%request_id, %method, route, status, latency_ms, tenant, trace_id, error = %cause, "request failed");
        }
        None => tracing::info!(%request_id, %method, route, status, latency_ms, tenant, trace_id, "request"),
    }
    response.headers_mut().insert(REQUEST_ID, id);
    response
}
