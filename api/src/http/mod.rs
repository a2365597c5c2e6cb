//! The axum routers. Commands (POST, PATCH, DELETE) and queries (GET) live apart in
//! `commands/` and `queries/` and are merged here; `serve --role` can serve one side alone.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tenantry_domain::{PlanCatalog, TenantContext};
use tenantry_projections::Projections;
use tenantry_store::EventStore;
use utoipa_axum::router::OpenApiRouter;

use tenantry_app::keys::KeyHasher;
use tenantry_app::{Commands, Written};

pub mod access;
pub mod analytics;
pub mod auth;
pub mod coalesce;
pub mod commands;
pub mod credentials;
pub mod documents;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod key_cache;
pub mod last_used;
pub mod limits;
pub mod me;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod operators;
pub mod prices;
pub mod projections;
pub mod queries;
pub mod runtime;
pub mod scopes;
pub mod webhooks;

use error::ApiError;
use extract::MinPosition;

/// Largest request body a route accepts, but for adding a document.
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest request body of `POST …/documents`: a document holds up to 10 MiB of text, which
/// JSON escaping makes longer.
pub const MAX_DOCUMENT_REQUEST: usize = 24 * 1024 * 1024;

/// The largest request body `path` accepts.
pub(crate) fn body_limit(path: &str) -> usize {
    if path.starts_with("/v1/tenants/") && path.ends_with("/documents") {
        MAX_DOCUMENT_REQUEST
    } else {
        MAX_BODY
    }
}

/// Refuse a body over the route's limit: at once when its length is declared, else when a
/// handler reads past it (413 either way).
async fn limit_body(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let limit = body_limit(request.uri().path());
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    next.run(request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)))).await
}
/// How long a query waits for `Tenantry-Min-Position`.
pub const MIN_POSITION_WAIT: Duration = Duration::from_secs(5);

/// What every handler can reach; cloned for every extractor of every request, so one
/// reference count, not one per part.
#[derive(Debug, Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(std::sync::Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    pub store: EventStore,
    pub projections: Projections,
    pub commands: Commands,
    pub keys: KeyHasher,
    pub plans: PlanCatalog,
    pub gates: limits::Gates,
    /// Tenant keys as last read, in use while changes to them are heard.
    pub key_cache: key_cache::KeyCache,
    pub purger: crate::compliance::Purger,
    /// Refused requests, coalesced before they are audited.
    pub denials: coalesce::Coalescer,
    /// Reads of a tenant's data by the platform or a partner, coalesced before they are
    /// audited.
    pub reads: coalesce::Coalescer,
    /// First answers to `Idempotency-Key`s.
    pub idempotency: idempotency::Idempotency,
    /// The identity providers whose tokens are taken, when configured.
    pub oidc: Option<oidc::Oidc>,
    /// When keys were last used, written at most once a minute each.
    pub last_used: last_used::LastUsed,
    /// Agents' runtime configurations as last built from the read models.
    pub runtime: runtime::RuntimeCache,
    /// Webhook deliveries (the dispatcher, and manual redeliveries).
    pub webhooks: crate::webhooks::Dispatcher,
    /// The currency of the price table.
    pub currency: String,
    /// The key of the console's session cookies (derived from the master key, so every
    /// process of a deployment reads the others' sessions).
    pub cookie_key: axum_extra::extract::cookie::Key,
}

/// Which routers a process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ServeRole {
    #[default]
    All,
    Commands,
    Queries,
}

/// The OpenAPI 3.1 description of every route: generated from the handlers' annotations and
/// completed by [`openapi::document`].
pub fn openapi() -> serde_json::Value {
    openapi::document(routes(ServeRole::All).split_for_parts().1)
}

fn routes(role: ServeRole) -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::with_openapi(
        utoipa::openapi::OpenApiBuilder::new()
            .info(
                utoipa::openapi::InfoBuilder::new()
                    .title("tenantry")
                    .version(env!("CARGO_PKG_VERSION"))
                    .build(),
            )
            .build(),
    );
    if role != ServeRole::Queries {
        api = api
            .merge(commands::router())
            .merge(operators::commands())
            .merge(credentials::commands())
            .merge(documents::commands())
            .merge(prices::router())
            .merge(webhooks::commands())
            .merge(projections::commands());
    }
    if role != ServeRole::Commands {
        api = api
            .merge(queries::router())
            .merge(me::router())
            .merge(operators::queries())
            .merge(credentials::queries())
            .merge(documents::queries())
            .merge(events::router())
            .merge(analytics::router())
            .merge(webhooks::queries())
            .merge(runtime::router())
            .merge(projections::queries());
    }
    api
}

pub fn router(state: AppState, role: ServeRole, connections: crate::settings::ConnectionSettings) -> Router {
    metrics::handle();
    let (api, doc) = routes(role).split_for_parts();
    let doc = std::sync::Arc::new(openapi::document(doc));
    let app = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .merge(api)
        // Unknown routes and methods answer in the same problem form as every other error.
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let cookie_key = state.cookie_key.clone();
    let api = app
        .layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::replay))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::enforce))
        .route_layer(axum::middleware::from_fn(metrics::track))
        // The limit is the route's (see `body_limit`), not the extractors' default.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(limit_body))
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::server::body_deadline(Duration::from_secs(connections.body_read_timeout), request, next)
        }))
        .with_state(state);
    // The console calls the API with every layer above, as a request from outside would.
    Router::new()
        .nest("/console", crate::console::router(api.clone(), cookie_key))
        .merge(api)
        .layer(axum::middleware::from_fn(access::log))
}

/// A command's answer: the status, `{"id": …, "position": …}` and `Tenantry-Position`.
pub(crate) fn written(
    status: StatusCode,
    id: Option<String>,
    written: Written,
    extra: serde_json::Value,
) -> Response {
    let mut body = json!({ "position": written.position });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    if let (Some(obj), serde_json::Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    answer(status, body, written.position, None)
}

/// A write's answer: `body` with `Tenantry-Position` and, for an object, its `Location`.
pub(crate) fn answer(
    status: StatusCode,
    body: impl serde::Serialize,
    position: u64,
    location: Option<String>,
) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert("tenantry-position", HeaderValue::from(position));
    if let Some(Ok(location)) = location.map(HeaderValue::try_from) {
        headers.insert(axum::http::header::LOCATION, location);
    }
    response
}

/// A write's answer with the object as `GET location` shows it: `status` (201 for a create,
/// 200 for a change) once `projector` has the write, with `Location` and `Tenantry-Position`;
/// `extra` fields (a secret shown once) join the object. When the read model has not caught
/// up within [`MIN_POSITION_WAIT`] the write stands and the answer is 202 with `{"id"}`.
pub(crate) async fn object<T, Fut>(
    state: &AppState,
    ctx: &TenantContext,
    projector: &str,
    (status, out, location): (StatusCode, Written, String),
    id: String,
    read: impl FnOnce() -> Fut,
    extra: serde_json::Value,
) -> Result<Response, ApiError>
where
    T: serde::Serialize,
    Fut: Future<Output = Result<Option<T>, tenantry_projections::ProjectionError>>,
{
    let waited = state.projections.wait_for(projector, ctx.tenant_id, out.position, MIN_POSITION_WAIT).await;
    let (status, mut body) = match waited {
        Ok(()) => (status, json!(read().await?.ok_or(ApiError::NotFound)?)),
        Err(
            tenantry_projections::ProjectionError::NotCaughtUp { .. }
            | tenantry_projections::ProjectionError::Stalled { .. },
        ) => (StatusCode::ACCEPTED, json!({ "id": id })),
        Err(e) => return Err(e.into()),
    };
    if let (Some(obj), serde_json::Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    Ok(answer(status, body, out.position, Some(location)))
}

/// Read-your-writes: wait (bounded) until `projector` has the position the caller asked for.
pub(crate) async fn caught_up(
    state: &AppState,
    projector: &str,
    ctx: &TenantContext,
    min: MinPosition,
) -> Result<(), ApiError> {
    if let Some(position) = min.0 {
        state.projections.wait_for(projector, ctx.tenant_id, position, MIN_POSITION_WAIT).await?;
    }
    Ok(())
}

/// After a command that retires keys (a revocation, a user removed or erased, a suspension):
/// this process refuses them at once (authentication asks the command side, see
/// [`tenantry_app::Commands::retired`]), drops what it cached of the tenant's keys, and tells
/// the other processes, which drop theirs and read the tenant's stream on. Then it waits
/// (bounded) for authentication's read model, but does not fail when that is behind or
/// stalled: the retirement already holds.
pub(crate) async fn keys_retired(
    state: &AppState,
    ctx: &TenantContext,
    position: u64,
) -> Result<(), ApiError> {
    state.key_cache.forget_tenant(ctx.tenant_id);
    state.store.announce_key_change(ctx.tenant_id).await?;
    settled(state, ctx, tenantry_projections::models::directory::NAME, position).await?;
    state.key_cache.forget_tenant(ctx.tenant_id);
    Ok(())
}

/// After a write whose effect holds already: wait (bounded) for `projector` to show it, so
/// the next read agrees, but do not fail when it is behind or stalled.
pub(crate) async fn settled(
    state: &AppState,
    ctx: &TenantContext,
    projector: &str,
    position: u64,
) -> Result<(), ApiError> {
    match state.projections.wait_for(projector, ctx.tenant_id, position, MIN_POSITION_WAIT).await {
        Ok(())
        | Err(
            tenantry_projections::ProjectionError::NotCaughtUp { .. }
            | tenantry_projections::ProjectionError::Stalled { .. },
        ) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
