//! What a use case can fail with, typed so the HTTP adapter maps each case to a status.

use tenantry_domain::Rejection;
use tenantry_projections::ProjectionError;
use tenantry_store::StoreError;

use crate::commands::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The domain refused the command.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// The streams kept changing under the command.
    #[error("the tenant is too busy to decide this command; retry")]
    Contended,
}

impl From<CommandError> for AppError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Rejected(r) => Self::Rejected(r),
            CommandError::Store(s) => Self::Store(s),
            CommandError::Contended => Self::Contended,
        }
    }
}
