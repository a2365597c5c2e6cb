//! Request limits enforced in the API: requests per minute (a token bucket) and concurrent
//! requests (a semaphore), charged **after authentication** to the credential's own bucket:
//! a tenant key to its tenant (whatever tenant the path names), each operator key and each
//! partner to buckets of their own, and a request without a valid credential to its source
//! address. So nobody can spend another tenant's limits, and one flood is refused without
//! slowing anyone else.
//!
//! A tenant key of a suspended tenant is refused here too (403): a suspended tenant is closed
//! to its own keys and open to operators.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tenantry_domain::{LimitName, LimitOverrides, PartnerId, Role, TenantContext, TenantId};
use tenantry_projections::models::directory;
use tokio::sync::Semaphore;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;

/// How long a tenant's limits are cached before they are read again.
const LIMITS_TTL: Duration = Duration::from_secs(10);

/// Buckets kept before the map starts afresh (a bound on memory, not an LRU).
const MAX_GATES: usize = 100_000;

/// Limits of the buckets that are not a tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherLimits {
    /// Each operator key, and each partner.
    pub platform_per_minute: u64,
    pub platform_concurrent: u64,
    /// Requests without a valid credential, per source address.
    pub anonymous_per_minute: u64,
    pub anonymous_concurrent: u64,
}

impl Default for OtherLimits {
    fn default() -> Self {
        Self {
            platform_per_minute: 6_000,
            platform_concurrent: 64,
            anonymous_per_minute: 120,
            anonymous_concurrent: 8,
        }
    }
}

/// Whose bucket a request is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Charged {
    Tenant(TenantId),
    Partner(PartnerId),
    Operator(String),
    Address(String),
}

#[derive(Debug)]
struct Gate {
    per_minute: u64,
    concurrent: u64,
    read_at: Instant,
    suspended: bool,
    tokens: f64,
    last: Instant,
    running: Arc<Semaphore>,
}

impl Gate {
    fn new(per_minute: u64, concurrent: u64, now: Instant) -> Self {
        let concurrent = concurrent.clamp(1, LimitOverrides::MAX_CONCURRENT);
        Self {
            per_minute,
            concurrent,
            read_at: now,
            suspended: false,
            tokens: per_minute as f64,
            last: now,
            // Bounded above, so `Semaphore::new` cannot panic whatever a limit says.
            running: Arc::new(Semaphore::new(concurrent as usize)),
        }
    }

    fn set(&mut self, per_minute: u64, concurrent: u64, suspended: bool, now: Instant) {
        let concurrent = concurrent.clamp(1, LimitOverrides::MAX_CONCURRENT);
        if self.concurrent != concurrent {
            self.running = Arc::new(Semaphore::new(concurrent as usize));
        }
        self.per_minute = per_minute;
        self.concurrent = concurrent;
        self.suspended = suspended;
        self.read_at = now;
    }

    /// Take a token and a slot, or say which limit stops the request.
    fn admit(&mut self, now: Instant) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let rate = self.per_minute as f64 / 60.0;
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(self.per_minute as f64);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = if rate > 0.0 { ((1.0 - self.tokens) / rate).ceil() as u64 } else { 60 };
            return Err(ApiError::LimitReached {
                limit: LimitName::RequestsPerMinute,
                max: self.per_minute,
                retry_after: Some(wait.clamp(1, 60)),
            });
        }
        let permit = self.running.clone().try_acquire_owned().map_err(|_| ApiError::LimitReached {
            limit: LimitName::MaxConcurrentRequests,
            max: self.concurrent,
            retry_after: Some(1),
        })?;
        self.tokens -= 1.0;
        Ok(permit)
    }
}

/// The buckets of every credential, tenant and address seen by this process.
#[derive(Debug, Default, Clone)]
pub struct Gates {
    // Guards only the map; never held across an await.
    inner: Arc<Mutex<HashMap<Charged, Gate>>>,
    other: OtherLimits,
}

impl Gates {
    pub fn new(other: OtherLimits) -> Self {
        Self { inner: Default::default(), other }
    }

    /// The map, even after a panic elsewhere poisoned the lock: a gate holds no invariant a
    /// panic could break halfway, so limiting never switches off.
    fn map(&self) -> MutexGuard<'_, HashMap<Charged, Gate>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forget what is cached of a tenant (after it was suspended or resumed here).
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.map().remove(&Charged::Tenant(tenant));
    }

    fn stale(&self, tenant: TenantId) -> bool {
        self.map().get(&Charged::Tenant(tenant)).is_none_or(|g| g.read_at.elapsed() > LIMITS_TTL)
    }

    fn admit(
        &self,
        who: Charged,
        fresh: Option<(u64, u64, bool)>,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let now = Instant::now();
        let mut map = self.map();
        if map.len() >= MAX_GATES && !map.contains_key(&who) {
            map.clear();
        }
        let (per_minute, concurrent) = match &who {
            Charged::Tenant(_) => fresh.map_or((u64::MAX, LimitOverrides::MAX_CONCURRENT), |f| (f.0, f.1)),
            Charged::Partner(_) | Charged::Operator(_) => {
                (self.other.platform_per_minute, self.other.platform_concurrent)
            }
            Charged::Address(_) => (self.other.anonymous_per_minute, self.other.anonymous_concurrent),
        };
        let gate = map.entry(who).or_insert_with(|| Gate::new(per_minute, concurrent, now));
        if let Some((rpm, conc, suspended)) = fresh {
            gate.set(rpm, conc, suspended, now);
        }
        if gate.suspended {
            return Err(ApiError::Forbidden("tenant is suspended".into()));
        }
        gate.admit(now)
    }
}

/// A tenant's request limits and whether it is suspended, from the directory.
async fn tenant_limits(state: &AppState, tenant: TenantId) -> Result<Option<(u64, u64, bool)>, ApiError> {
    let db = state.projections.db();
    let Some(row) = directory::tenant(&TenantContext::system(tenant), db).await? else { return Ok(None) };
    // A tenant below others has the limits it inherits from them unless it sets its own.
    let limits = directory::effective_of(db, &row, &state.plans).await?.limits;
    Ok(Some((
        limits.requests_per_minute,
        limits.max_concurrent_requests,
        row.status == tenantry_domain::event::TenantStatus::Suspended,
    )))
}

/// Routes that answer without a credential and cost nothing: never limited.
fn unmetered(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

/// Middleware: authenticate once, charge the credential's bucket (or the source address's),
/// and refuse past a limit with 429 and `Retry-After`. The caller is handed on to the
/// handlers in the request's extensions, so they do not authenticate again.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if unmetered(request.uri().path()) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => Some(caller),
        Err(ApiError::Unauthorized) => None,
        Err(other) => return other.into_response(),
    };
    let charged = match &caller {
        Some(Caller { tenant: Some(t), .. }) => Charged::Tenant(*t),
        Some(Caller { role: Role::PartnerAdmin, partner: Some(p), .. }) => Charged::Partner(*p),
        Some(c) => Charged::Operator(c.actor.to_string()),
        None => Charged::Address(super::auth::source_ip(&parts).unwrap_or_default()),
    };
    let fresh = match &charged {
        Charged::Tenant(t) if state.gates.stale(*t) => match tenant_limits(&state, *t).await {
            Ok(fresh) => fresh,
            Err(e) => return e.into_response(),
        },
        _ => None,
    };
    let tenant = match &charged {
        Charged::Tenant(t) => Some(*t),
        _ => None,
    };
    match state.gates.admit(charged, fresh) {
        Ok(permit) => {
            if let Some(caller) = caller {
                parts.extensions.insert(caller);
            }
            let mut response = next.run(Request::from_parts(parts, body)).await;
            if let Some(tenant) = tenant {
                response.extensions_mut().insert(super::access::ChargedTenant(tenant));
            }
            // The slot is held until the response is produced.
            drop(permit);
            response
        }
        Err(e) => e.into_response(),
    }
}
