//! The read side of tenantry: the projector runtime and the read models fed by it.
//!
//! # Layout
//! - [`runtime`]: the [`Projector`] trait and [`Projections`]: catch-up, live running,
//!   read-your-writes, rebuild, status.
//! - [`models`]: directory, conversations, quotas, billing usage, audit log and documents
//!   (the knowledge base and its search index), each a
//!   projector and its queries.
//! - [`platform`]: the platform's own keys (bootstrap, partner admins).
//! - [`db`]: the read database (`Any` driver over the store's database).
//! - [`error`]: the read side's typed errors.

pub mod db;
pub mod error;
pub mod models;
pub mod platform;
pub mod purges;
pub mod runtime;

use std::sync::Arc;

pub use db::ReadDb;
pub use error::ProjectionError;
pub use models::billing::PriceTable;
pub use runtime::{Progress, Projections, Projector, ProjectorStatus, Silent};
use tenantry_store::EventStore;

/// Every read model of tenantry over `store`, priced with `prices`.
pub fn standard(store: &EventStore, prices: PriceTable) -> Vec<Arc<dyn Projector>> {
    vec![
        Arc::new(models::directory::Directory { store: store.clone() }),
        Arc::new(models::conversations::Conversations { store: store.clone() }),
        Arc::new(models::quotas::Quotas),
        Arc::new(models::billing::Billing { prices: prices.clone() }),
        Arc::new(models::analytics::Analytics::new(prices)),
        Arc::new(models::audit::AuditLog),
        Arc::new(models::documents::Documents { store: store.clone() }),
        Arc::new(models::webhooks::Webhooks),
    ]
}

/// Open the read side over the store's database at `url`.
pub async fn open(store: EventStore, url: &str, prices: PriceTable) -> Result<Projections, ProjectionError> {
    open_as(store, url, prices, &tenantry_store::PgRoles::default()).await
}

/// [`open`], working on PostgreSQL as `roles`.
pub async fn open_as(
    store: EventStore,
    url: &str,
    prices: PriceTable,
    roles: &tenantry_store::PgRoles,
) -> Result<Projections, ProjectionError> {
    let db = ReadDb::connect_as(url, 8, roles).await?;
    let projectors = standard(&store, prices);
    Ok(Projections::new(store, db, projectors))
}
