//! `GET /metrics` in Prometheus text: requests and their latency by route and status,
//! events appended, projection lag per projector, and the group commit's commits and appends.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use super::error::ApiError;

/// The process-wide recorder, installed once.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("tenantry_http_request_duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
                )
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Middleware: count every request and time it, by matched route (never the raw path,
/// which holds tenant ids).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("tenantry_http_requests_total", &labels).increment(1);
    metrics::histogram!("tenantry_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let handle =
        handle().ok_or_else(|| ApiError::internal(super::error::Bug("metrics recorder unavailable")))?;
    for s in state.projections.status().await? {
        let labels = [("projector", s.projector.clone())];
        metrics::gauge!("tenantry_projection_lag_events", &labels).set(s.lag_events as f64);
        metrics::gauge!("tenantry_projection_tenants_behind", &labels).set(s.tenants_behind as f64);
        metrics::gauge!("tenantry_projection_stalled_tenants", &labels).set(s.stalled.len() as f64);
    }
    if let Some(stats) = state.store.commit_stats() {
        metrics::gauge!("tenantry_group_commits").set(stats.commits as f64);
        metrics::gauge!("tenantry_group_commit_appends").set(stats.appends as f64);
        metrics::gauge!("tenantry_group_commit_largest_batch").set(stats.largest as f64);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response())
}
