//! Command routes: POST, PATCH, DELETE. Each handler extracts the caller, path and body,
//! turns the body into a domain command, runs it and answers with the position written.

use utoipa_axum::router::OpenApiRouter;

use super::AppState;

pub mod agents;
pub mod api_keys;
pub mod conversations;
pub mod directory;
pub mod partners;
pub mod tenants;
pub mod usage;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(tenants::router())
        .merge(api_keys::router())
        .merge(agents::router())
        .merge(directory::router())
        .merge(conversations::router())
        .merge(usage::router())
        .merge(partners::router())
}
