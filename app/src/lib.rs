//! tenantry's application layer: every use case of the product, and the one path every
//! write takes (fold the streams, decide in `domain`, append at the versions decided on,
//! decide again on a conflict). No HTTP and no SQL here: the HTTP adapter and the command
//! line call these functions and map their results; queries go to the projections' read
//! models.
//!
//! # Layout
//! - [`commands`]: [`Commands`], the command runner with its cache of folded stream states.
//! - [`tenants`]: use cases that span more than one command (a tenant with its slug, the
//!   erasure of a person).
//! - [`partners`]: partners and their keys on the platform's log.
//! - [`retention`]: the sweep that deletes conversations past a tenant's retention.
//! - [`keys`]: [`keys::KeyHasher`], the keyed hash of API key secrets.
//! - [`error`]: [`AppError`], typed to the edge.

pub mod commands;
pub mod error;
pub mod keys;
pub mod partners;
pub mod purge;
pub mod retention;
pub mod tenants;

pub use commands::{BudgetStanding, CommandError, Commands, Written};
pub use error::AppError;
