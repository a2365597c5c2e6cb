//! Query routes: GET only, served from the read models. Each accepts
//! `Tenantry-Min-Position` and waits (at most 5 s) for its read model to reach it.

use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::error::ApiError;
use tenantry_projections::models::MAX_PAGE;

pub mod conversations;
pub mod directory;
pub mod export;
pub mod partners;
pub mod reports;

/// Page parameters shared by list routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page; the first page when absent.
    pub cursor: Option<String>,
    /// Items per page: 1 to 200, 50 when absent.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

impl PageParams {
    /// The page size asked for: 50 when absent, `bad_request` outside 1 to 200.
    pub fn limit(&self) -> Result<u32, ApiError> {
        page_limit(self.limit)
    }

    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}

/// 50 when absent, `bad_request` on `limit` outside 1 to 200.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest {
            detail: format!("limit must be between 1 and {MAX_PAGE}"),
            field: Some("limit".into()),
        }),
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(directory::router())
        .merge(conversations::router())
        .merge(reports::router())
        .merge(export::router())
        .merge(partners::router())
}
