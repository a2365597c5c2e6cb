//! Query routes: GET only, served from the read models. Each accepts
//! `Tenantry-Min-Position` and waits (at most 5 s) for its read model to reach it.

use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;

pub mod conversations;
pub mod directory;
pub mod export;
pub mod reports;

/// Page parameters shared by list routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    pub cursor: Option<String>,
    /// At most 500; 50 when absent.
    pub limit: Option<u32>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(directory::router())
        .merge(conversations::router())
        .merge(reports::router())
        .merge(export::router())
}
