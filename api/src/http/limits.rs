//! Per-tenant request limits enforced in the API: requests per minute (a token bucket) and
//! concurrent requests (a semaphore). Each tenant has its own bucket and semaphore, so one
//! tenant's flood is refused without slowing another's requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tenantry_domain::{LimitName, TenantContext, TenantId};
use tenantry_projections::models::directory;
use tokio::sync::Semaphore;

use super::AppState;
use super::error::ApiError;

/// How long a tenant's limits are cached before they are read again.
const LIMITS_TTL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
struct TenantGate {
    per_minute: u64,
    concurrent: u64,
    read_at: Instant,
    bucket: Bucket,
    running: Arc<Semaphore>,
}

/// The gates of every tenant seen by this process.
#[derive(Debug, Default, Clone)]
pub struct Gates {
    // Guards only the map; never held across an await.
    inner: Arc<Mutex<HashMap<TenantId, TenantGate>>>,
}

fn tenant_in_path(path: &str) -> Option<TenantId> {
    path.strip_prefix("/v1/tenants/")?.split('/').next()?.parse().ok()
}

impl Gates {
    async fn limits(state: &AppState, tenant: TenantId) -> Option<(u64, u64)> {
        let ctx = TenantContext::system(tenant);
        let row = directory::tenant(&ctx, state.projections.db()).await.ok()??;
        let limits = row.effective_limits(&state.plans);
        Some((limits.requests_per_minute, limits.max_concurrent_requests))
    }

    /// Take a token and a slot for `tenant`, or say which limit stops the request.
    fn admit(
        &self,
        tenant: TenantId,
        fresh: Option<(u64, u64)>,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
        let Ok(mut gates) = self.inner.lock() else { return Ok(None) };
        let now = Instant::now();
        let gate = match (gates.get_mut(&tenant), fresh) {
            (Some(g), Some((rpm, conc))) => {
                if g.concurrent != conc {
                    g.running = Arc::new(Semaphore::new(conc as usize));
                }
                g.per_minute = rpm;
                g.concurrent = conc;
                g.read_at = now;
                g
            }
            (Some(g), None) => g,
            (None, Some((rpm, conc))) => gates.entry(tenant).or_insert(TenantGate {
                per_minute: rpm,
                concurrent: conc,
                read_at: now,
                bucket: Bucket { tokens: rpm as f64, last: now },
                running: Arc::new(Semaphore::new(conc as usize)),
            }),
            // Unknown tenant: the route answers for itself (404 or 403).
            (None, None) => return Ok(None),
        };
        let rate = gate.per_minute as f64 / 60.0;
        gate.bucket.tokens = (gate.bucket.tokens + now.duration_since(gate.bucket.last).as_secs_f64() * rate)
            .min(gate.per_minute as f64);
        gate.bucket.last = now;
        if gate.bucket.tokens < 1.0 {
            let wait = if rate > 0.0 { ((1.0 - gate.bucket.tokens) / rate).ceil() as u64 } else { 60 };
            return Err(ApiError::LimitReached {
                limit: LimitName::RequestsPerMinute,
                max: gate.per_minute,
                retry_after: Some(wait.max(1)),
            });
        }
        let permit = gate.running.clone().try_acquire_owned().map_err(|_| ApiError::LimitReached {
            limit: LimitName::MaxConcurrentRequests,
            max: gate.concurrent,
            retry_after: Some(1),
        })?;
        gate.bucket.tokens -= 1.0;
        Ok(Some(permit))
    }

    fn stale(&self, tenant: TenantId) -> bool {
        self.inner
            .lock()
            .map(|g| g.get(&tenant).is_none_or(|g| g.read_at.elapsed() > LIMITS_TTL))
            .unwrap_or(true)
    }
}

/// Middleware: refuse a tenant's request past its limits with 429 and `Retry-After`.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(tenant) = tenant_in_path(request.uri().path()) else { return next.run(request).await };
    let fresh = if state.gates.stale(tenant) { Gates::limits(&state, tenant).await } else { None };
    match state.gates.admit(tenant, fresh) {
        // The permit is held until the response is produced.
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(e) => e.into_response(),
    }
}
