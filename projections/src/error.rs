//! The read side's errors.

use tenantry_domain::TenantId;
use tenantry_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The projector cannot go past this event of this tenant.
    #[error("projector {projector} stalled on tenant {tenant} at position {position}: {reason}")]
    Stalled { projector: String, tenant: TenantId, position: u64, reason: String },
    /// Read-your-writes: the projection did not reach the position in time.
    #[error("projection {projector} reached position {reached} of tenant {tenant}, not {wanted}, in time")]
    NotCaughtUp { projector: String, tenant: TenantId, wanted: u64, reached: u64 },
    #[error("no projection named `{0}`")]
    UnknownProjection(String),
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("stored read-model value is malformed: {0}")]
    Malformed(String),
}
