//! The tenant's own log for its own systems, without a broker: `GET …/events?after=&limit=`
//! (a page of decoded events) and `GET …/events/stream` (Server-Sent Events, resumable with
//! `Last-Event-ID`). Tenant admins only; secrets are left out as in an export.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_domain::TenantContext;
use tenantry_store::export::public_event;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Administering;
use super::error::ApiError;
use super::extract::AppQuery;

/// Most events one page (or one read of the stream) holds.
pub const MAX_EVENTS: u32 = 500;
/// How often a stream looks for commits made by other processes when nothing woke it.
const POLL: Duration = Duration::from_secs(1);
/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Events after this position (0, the start, when absent).
    #[param(minimum = 0)]
    pub after: Option<u64>,
    /// Events per page: 1 to 500, 100 when absent.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events)).routes(routes!(stream_events))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/events", tag = "events", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "`items` in position order, and `next_after`: the position to ask after next (`null` when this page reached the head)"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn list_events(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppQuery(params): AppQuery<EventParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_EVENTS).contains(&limit) {
        return Err(ApiError::BadRequest {
            detail: format!("limit must be between 1 and {MAX_EVENTS}"),
            field: Some("limit".into()),
        });
    }
    let page = state.store.read_log_page(&ctx, params.after.unwrap_or(0), limit).await?;
    let next_after = (page.len() == limit as usize).then(|| page.last().map(|e| e.position)).flatten();
    let items: Vec<Value> = page.iter().map(public_event).collect();
    Ok(Json(json!({ "items": items, "next_after": next_after })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/events/stream", tag = "events", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("last-event-id" = Option<String>, Header, description = "the position of the last event received: the stream carries on after it")), responses((status = 200, description = "Server-Sent Events: `id` is the position, `event` the type, `data` the event as `GET …/events` shows it", content_type = "text/event-stream"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn stream_events(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    headers: HeaderMap,
    AppQuery(params): AppQuery<EventParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
            ApiError::BadRequest {
                detail: "Last-Event-ID must be a position (a whole number)".into(),
                field: Some("last-event-id".into()),
            }
        })?),
    };
    let after = resume.or(params.after).unwrap_or(0);
    Ok(Sse::new(follow(state, ctx, after)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The tenant's events after `after`, then each new one as it is committed: woken by this
/// process's commits, and looking every [`POLL`] for those of other processes. Ends when the
/// log can no longer be read (the tenant purged).
fn follow(
    state: AppState,
    ctx: TenantContext,
    after: u64,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let commits = state.store.subscribe();
    futures::stream::unfold(
        (state, ctx, after, commits, Vec::new()),
        |(state, ctx, mut after, mut commits, mut queue)| async move {
            loop {
                if let Some(e) = queue.pop() {
                    return Some((Ok(e), (state, ctx, after, commits, queue)));
                }
                let page = match state.store.read_log_page(&ctx, after, MAX_EVENTS).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(tenant = %ctx.tenant_id, error = %e, "event stream stopped");
                        return None;
                    }
                };
                if let Some(last) = page.last() {
                    after = last.position;
                    // Popped from the end: reversed, so they leave in position order.
                    queue = page
                        .iter()
                        .rev()
                        .map(|e| {
                            SseEvent::default()
                                .id(e.position.to_string())
                                .event(e.event_type.clone())
                                .data(public_event(e).to_string())
                        })
                        .collect();
                    continue;
                }
                // Caught up: wait for a commit of this tenant here, or the poll.
                let tenant = ctx.tenant_id;
                let _ = tokio::time::timeout(POLL, async {
                    loop {
                        match commits.recv().await {
                            Ok(c) if c.tenant_id == tenant => break,
                            Ok(_) => continue,
                            // Missed some: look at the log.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                futures::future::pending::<()>().await;
                            }
                        }
                    }
                })
                .await;
            }
        },
    )
}
