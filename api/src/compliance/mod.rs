//! Compliance work on whole tenants: purge (GDPR erasure). Exports live in the store
//! ([`tenantry_store::export`]).

pub mod purge;

pub use purge::{PurgeError, PurgeReport, PurgeStep, Purger};
