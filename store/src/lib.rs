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
//! - `commit`: group commit, many appends in one transaction ([`GroupCommit`]).
//! - `backend`, `sqlite`, `postgres`: the database backends behind one internal trait.
//! - [`pool_options`]: how the server's PostgreSQL pools hand out connections.

mod backend;
pub mod chain;
mod commit;
pub mod crypto;
pub mod error;
pub mod export;
pub mod idempotency;
mod known;
pub mod model;
mod pool;
mod postgres;
mod sqlite;
mod sqlite_log;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use commit::{CommitStats, GroupCommit};
pub use crypto::{KeyWrapper, LocalKeyWrapper, MasterKey};
pub use error::StoreError;
pub use model::{
    AppendOutcome, AppendQuota, AppendRequest, BlobWrite, ExpectedVersion, Head, NewEvent, RecordedEvent,
    SealedRecord, StreamWrite,
};
pub use pool::pool_options;
pub use sqlite::{SQLITE_WRITER_PRAGMAS, WriteTurn, sqlite_write_turn};
pub use sqlite_log::{Checkpointer, sqlite_checkpointer};
pub use store::SEALED_VALUE_PREFIX;
pub use store::{Committed, Database, EventStore, Rewrapped, SealedCommit};

/// The PostgreSQL roles the server works as (created by migration 0024 where the migrating
/// role may): `tenant` for one tenant's reads and appends, under row-level security (not the
/// tables' owner, no BYPASSRLS); `platform` for platform-wide work (BYPASSRLS). The login
/// role runs the migrations and must be a member of both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgRoles {
    pub tenant: String,
    pub platform: String,
}

impl Default for PgRoles {
    fn default() -> Self {
        Self { tenant: "tenantry_app".into(), platform: "tenantry_platform".into() }
    }
}

impl PgRoles {
    /// The tenant role, quoted for SQL.
    pub fn tenant_ident(&self) -> Result<String, StoreError> {
        ident(&self.tenant)
    }

    /// The platform role, quoted for SQL.
    pub fn platform_ident(&self) -> Result<String, StoreError> {
        ident(&self.platform)
    }
}

/// A role name as an SQL identifier; names are letters, digits and underscores only.
fn ident(name: &str) -> Result<String, StoreError> {
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { Ok(format!("\"{name}\"")) } else { Err(StoreError::InvalidRole(format!("{name:?}"))) }
}
