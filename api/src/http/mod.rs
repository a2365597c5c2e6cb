//! The axum routers. Commands and queries live apart and are merged here.

use axum::Router;
use axum::routing::get;
use tenantry_projections::Projections;
use tenantry_store::EventStore;

pub mod health;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: EventStore,
    pub projections: Projections,
}

pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(health::healthz)).with_state(state)
}
