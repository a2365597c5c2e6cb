//! tenantry's event store: one ordered, gap-free log per tenant, streams with optimistic
//! concurrency inside it, idempotent atomic appends, per-tenant encryption and a hash chain,
//! over embedded SQLite or PostgreSQL.
//!
//! # Layout
//! - [`store`]: [`EventStore`], the entry point: append, read, verify, destroy a key.
//! - [`model`]: append requests, expected versions, recorded events.
//! - [`crypto`]: the master key; tenant data keys are wrapped by it (crypto-shredding).
//! - [`chain`]: the hash chain and its verification report.
//! - [`export`]: verifiable JSON Lines exports of a tenant's log and their offline check.
//! - [`error`]: the store's typed errors.
//! - `backend`, `sqlite`, `postgres`: the database backends behind one internal trait.

mod backend;
pub mod chain;
pub mod crypto;
pub mod error;
pub mod export;
pub mod idempotency;
pub mod model;
mod postgres;
mod sqlite;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use crypto::{KeyWrapper, LocalKeyWrapper, MasterKey};
pub use error::StoreError;
pub use model::{
    AppendOutcome, AppendQuota, AppendRequest, BlobWrite, ExpectedVersion, Head, NewEvent, RecordedEvent,
    SealedRecord, StreamWrite,
};
pub use store::SEALED_VALUE_PREFIX;
pub use store::{Committed, Database, EventStore, Rewrapped, SealedCommit};
