//! `Idempotency-Key` on every POST, PATCH and DELETE: the first answer to a key is kept (24
//! hours, scoped by tenant and credential) and replayed to every retry with the same method,
//! target and body, which then writes nothing; the same key with another request is 422
//! `idempotency_key_reused`. Racing duplicates agree on one runner through the record's
//! primary key; the others wait for its answer. A 5xx or a 429 is not kept: a retry runs
//! again.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tenantry_domain::TenantId;
use tenantry_store::idempotency::{Begun, IdempotencyKey, IdempotencyRecords, StoredAnswer};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on an answer that is a replay.
pub const REPLAYED: &str = "idempotent-replayed";

/// Headers of an answer that are kept and replayed with it.
const KEPT_HEADERS: [&str; 4] = ["content-type", "location", "tenantry-position", "retry-after"];

/// How long a duplicate waits for the request that runs its key.
const WAIT: Duration = Duration::from_secs(10);

/// The records and when this process last deleted expired ones.
#[derive(Debug)]
pub struct Idempotency {
    records: IdempotencyRecords,
    last_sweep: AtomicI64,
}

impl Idempotency {
    pub fn new(records: IdempotencyRecords) -> Self {
        Self { records, last_sweep: AtomicI64::new(0) }
    }

    pub fn records(&self) -> &IdempotencyRecords {
        &self.records
    }

    /// Expired records go at most once a minute per process.
    async fn sweep(&self, now: i64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now - last > 60_000
            && self.last_sweep.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            && let Err(e) = self.records.expire(now).await
        {
            tracing::warn!(error = %e, "could not delete expired idempotency keys");
        }
    }
}

/// A key: 1 to 255 visible ASCII characters.
fn key_of(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(v) = request.headers().get(HEADER) else { return Ok(None) };
    let ok = (1..=255).contains(&v.len()) && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
    match v.to_str() {
        Ok(key) if ok => Ok(Some(key.to_owned())),
        _ => Err(ApiError::BadRequest {
            detail: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            field: Some("Idempotency-Key".into()),
        }),
    }
}

/// Middleware, inside authentication: the caller is known.
pub async fn replay(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::POST | Method::PATCH | Method::DELETE) {
        return next.run(request).await;
    }
    let key = match key_of(&request) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(request).await,
        Err(e) => return e.into_response(),
    };
    // Without a credential the handler answers 401; nothing to keep.
    let Some(caller) = request.extensions().get::<Caller>().cloned() else { return next.run(request).await };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, super::body_limit(parts.uri.path())).await {
        Ok(bytes) => bytes,
        Err(e) if crate::server::timed_out(&e) => return ApiError::RequestTimeout.into_response(),
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update(b" ");
    hash.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
    hash.update(b"\n");
    hash.update(&bytes);
    let fingerprint: [u8; 32] = hash.finalize().into();
    let scope = IdempotencyKey {
        tenant: caller.tenant.unwrap_or(TenantId::PLATFORM),
        credential: caller.key.map_or_else(|| caller.actor.to_string(), |k| k.to_string()),
        key,
    };
    let records = state.idempotency.records();
    let started = tokio::time::Instant::now();
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        state.idempotency.sweep(now).await;
        let begun = match records.begin(&scope, &fingerprint, now).await {
            Ok(begun) => begun,
            Err(e) => return ApiError::from(e).into_response(),
        };
        match begun {
            Begun::Run => break,
            Begun::Replay(answer) => return replayed(answer),
            Begun::Reused => {
                return ApiError::IdempotencyKeyReused {
                    detail: "this Idempotency-Key was used for another request".into(),
                    field: Some("Idempotency-Key".into()),
                }
                .into_response();
            }
            Begun::Running if started.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(25)).await,
            Begun::Running => {
                return ApiError::Conflict {
                    detail: "a request with this Idempotency-Key is still running; retry later".into(),
                    field: Some("Idempotency-Key".into()),
                }
                .into_response();
            }
        }
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        if let Err(e) = records.abandon(&scope).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        let _ = records.abandon(&scope).await;
        return ApiError::Unavailable("the answer could not be read; retry".into()).into_response();
    };
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let v = parts.headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), v.to_owned()))
        })
        .collect();
    let answer = StoredAnswer { status: status.as_u16(), headers, body: body.to_vec() };
    if let Err(e) = records.finish(&scope, &answer).await {
        tracing::warn!(error = %e, "could not keep the answer of an idempotency key");
    }
    Response::from_parts(parts, Body::from(body))
}

fn replayed(answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
