//! The read models, each a projector and the queries over its rows.

pub mod audit;
pub mod billing;
pub mod conversations;
pub mod directory;
pub mod quotas;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::ProjectionError;

pub(crate) fn text(row: &AnyRow, col: &str) -> Result<String, ProjectionError> {
    Ok(row.try_get(col)?)
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>, ProjectionError> {
    Ok(row.try_get(col)?)
}

pub(crate) fn int(row: &AnyRow, col: &str) -> Result<i64, ProjectionError> {
    Ok(row.try_get(col)?)
}

pub(crate) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>, ProjectionError> {
    Ok(row.try_get(col)?)
}

/// Page sizes are bounded whatever the caller asks.
pub(crate) fn page_size(limit: u32) -> i64 {
    i64::from(limit.clamp(1, 500))
}
