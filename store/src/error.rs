//! The store's errors: typed to the edge, never database text for a client.

use tenantry_domain::{CodecError, EventId, StreamId, TenantId};

use crate::model::ExpectedVersion;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream was not at the version the append expected.
    #[error("stream `{stream}` is at version {actual}, the append expected {expected}")]
    Conflict { stream: StreamId, expected: ExpectedVersion, actual: u64 },
    /// Another append stored a key for a person or conversation this append minted one for
    /// first: nothing was written, and the same request sealed again uses the stored key.
    #[error("another append stored the data key of subject {subject} first; decide again")]
    KeyRace { subject: uuid::Uuid },
    /// The idempotency key was used before for a different request.
    #[error("idempotency key `{key}` was already used for a different request")]
    IdempotencyMismatch { key: String },
    /// Some, not all, of the batch's event ids are already stored.
    #[error("event {event_id} is already stored by another append")]
    DuplicateEvent { event_id: EventId },
    #[error("an append needs at least one event")]
    EmptyBatch,
    #[error("a batch holds at most {max} events, this one {len}")]
    BatchTooLarge { len: usize, max: usize },
    #[error("payload is {size} bytes; the limit is {max}")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("idempotency key must be 1 to 200 bytes")]
    InvalidIdempotencyKey,
    /// An event could not be encoded, or a stored one decoded.
    #[error("tenant {tenant}, position {position}: {source}")]
    Codec { tenant: TenantId, position: u64, source: CodecError },
    #[error(transparent)]
    Encode(CodecError),
    /// The tenant's data key was destroyed: its events can never be read again.
    #[error("the data key of tenant {tenant} was destroyed")]
    KeyDestroyed { tenant: TenantId },
    /// The tenant has a log but the key store holds no key for it: the store was opened with
    /// another key store than the one its keys are in. No new key is made (it would seal new
    /// events under a key the old ones do not open).
    #[error(
        "tenant {tenant} has events but the key store holds no key for it (is --key-store the right one?)"
    )]
    KeyMissing { tenant: TenantId },
    /// A ciphertext did not authenticate: it was altered, moved, or sealed by another key.
    #[error("tenant {tenant}, position {position}: ciphertext does not authenticate (altered or moved)")]
    Tampered { tenant: TenantId, position: u64 },
    /// The wrapped data key did not unwrap with the master key.
    #[error("the data key of tenant {tenant} does not unwrap with this master key")]
    WrongMasterKey { tenant: TenantId },
    /// The hash chain does not hold at this position.
    #[error("tenant {tenant}: hash chain broken at position {position}: {reason}")]
    ChainBroken { tenant: TenantId, position: u64, reason: String },
    /// The append would take the tenant past a limit checked with it; nothing was written.
    #[error("limit {limit} reached ({max})")]
    QuotaExceeded { limit: &'static str, max: u64 },
    /// The tenant has no log: never created, or purged.
    #[error("tenant {tenant} has no events")]
    UnknownTenant { tenant: TenantId },
    #[error("invalid master key: {0}")]
    MasterKey(String),
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A PostgreSQL role name that is not letters, digits and underscores.
    #[error("invalid role name {0}")]
    InvalidRole(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite log's writer.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// Whether retrying the same call could succeed (conflicts and transient faults).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::KeyRace { .. })
    }
}

/// Which limit the database refused an append for, with its maximum.
pub(crate) fn quota_exceeded(err: &sqlx::Error) -> Option<StoreError> {
    let message = err.as_database_error()?.message().to_owned();
    let rest = message.strip_prefix("tenantry: quota ")?;
    let (limit, max) = rest.split_once(' ')?;
    let limit = match limit {
        "storage_bytes" => "storage_bytes",
        "api_calls_per_day" => "api_calls_per_day",
        _ => return None,
    };
    Some(StoreError::QuotaExceeded { limit, max: max.trim().parse().ok()? })
}

/// What the database says when refusing to re-create the head of a tenant whose key is
/// destroyed (the `tenant_heads_refuse_shredded` trigger of both backends).
const SHREDDED: &str = "tenantry: tenant key destroyed";

/// Whether the database refused to re-create the head of a tenant whose key is destroyed.
pub(crate) fn shredded(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|db| db.message().contains(SHREDDED))
}

/// [`shredded`], from the SQLite log's writer.
pub(crate) fn sqlite_shredded(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(_, Some(message)) if message.contains(SHREDDED))
}

/// Which unique constraint an insert hit, if any.
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<String> {
    let db = err.as_database_error()?;
    if !db.is_unique_violation() {
        return None;
    }
    // PostgreSQL names the constraint; SQLite only says it in the message.
    Some(db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned()))
}
