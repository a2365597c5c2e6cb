//! What goes into the store and what comes out.

use std::fmt;

use chrono::{DateTime, Utc};
use tenantry_domain::codec::{self, Encoded};
use tenantry_domain::{Event, EventId, Metadata, StreamId, TenantId};

use crate::error::StoreError;

/// Largest encoded payload an event may carry.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Most events one append may carry.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// The stream version an append expects; a wrong one is a [`StoreError::Conflict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the version.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version (its last event's version).
    Exact(u64),
}

impl ExpectedVersion {
    /// The version a stream folded from `events` events expects next.
    pub fn after(events: u64) -> Self {
        if events == 0 { Self::NoStream } else { Self::Exact(events) }
    }

    pub(crate) fn admits(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(v) => v == actual,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// An event to append, already encoded by the domain codec.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: EventId,
    pub event_type: String,
    pub schema_version: u16,
    pub payload: Vec<u8>,
    /// The event itself when it carries a person's data ([`tenantry_domain::Personal`]): the
    /// store seals those values with that person's key, then encodes it again.
    pub personal: Option<Box<Event>>,
}

impl NewEvent {
    /// Encode a domain event at its current schema version.
    pub fn new(event_id: EventId, event: &Event) -> Result<Self, StoreError> {
        let Encoded { event_type, schema_version, payload } =
            codec::encode(event).map_err(StoreError::Encode)?;
        let personal = event.has_personal_text().then(|| Box::new(event.clone()));
        Ok(Self { event_id, event_type: event_type.to_owned(), schema_version, payload, personal })
    }

    /// An already encoded payload, e.g. of an older schema version. It must decode: the store
    /// never accepts bytes it could not read back. Stored as given: personal values in it are
    /// not sealed per person (imports of recorded history, fixtures).
    pub fn encoded(
        event_id: EventId,
        event_type: &str,
        schema_version: u16,
        payload: Vec<u8>,
    ) -> Result<Self, StoreError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(StoreError::PayloadTooLarge { size: payload.len(), max: MAX_PAYLOAD_BYTES });
        }
        codec::decode(event_type, schema_version, &payload).map_err(StoreError::Encode)?;
        Ok(Self { event_id, event_type: event_type.to_owned(), schema_version, payload, personal: None })
    }
}

/// Events for one stream, with the version that stream must be at.
#[derive(Debug, Clone)]
pub struct StreamWrite {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// One atomic append: every write lands, or none does.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub writes: Vec<StreamWrite>,
    /// Retrying with the same key and the same content returns the first result and writes
    /// nothing; the same key with other content is [`StoreError::IdempotencyMismatch`].
    pub idempotency_key: Option<String>,
    /// The recording time to store instead of now: for imports and replays of recorded
    /// history (golden logs, audit replay), never for live commands.
    pub recorded_at: Option<DateTime<Utc>>,
    /// The metadata to store instead of the context's: for replays of recorded history
    /// only, like `recorded_at`.
    pub metadata: Option<Metadata>,
    /// Limits decided under the tenant's head lock, with the append: exact however many
    /// appends race. `None` checks none (platform work, recorded history).
    pub quota: Option<AppendQuota>,
    /// Stored without counting its bytes to the tenant (and checking no limit): the audit
    /// record of a refused request, which must not spend its target's limits.
    pub uncharged: bool,
    /// Bodies kept beside the log (knowledge-base documents), written or deleted in the
    /// append's transaction: a body is stored exactly when its event is.
    pub blobs: Vec<BlobWrite>,
}

/// Largest body kept beside the log.
pub const MAX_BLOB_BYTES: usize = 16 * 1024 * 1024;

/// A body kept beside the log, sealed with the tenant's key, keyed by tenant and id. Its
/// plaintext bytes count toward the tenant's stored bytes while it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobWrite {
    Put { id: uuid::Uuid, body: Vec<u8> },
    Delete { id: uuid::Uuid },
}

/// The tenant's limits an append must stay within, checked and counted atomically with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendQuota {
    /// Most bytes of event payload the tenant may store (plaintext size).
    pub max_stored_bytes: u64,
    /// Most appends counted as API calls in one UTC day.
    pub max_calls_per_day: u64,
    /// The UTC day (days since 1970-01-01) the append counts in.
    pub day: i64,
    /// Whether this append is an API call (a command), or only stores bytes.
    pub counts_as_call: bool,
}

impl AppendQuota {
    /// The form the PostgreSQL head trigger reads.
    pub(crate) fn setting(&self) -> String {
        format!(
            "{},{},{},{}",
            self.max_stored_bytes.min(i64::MAX as u64),
            self.max_calls_per_day.min(i64::MAX as u64),
            self.day,
            u8::from(self.counts_as_call)
        )
    }
}

impl AppendRequest {
    pub fn to_stream(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            writes: vec![StreamWrite { stream, expected, events }],
            idempotency_key: None,
            recorded_at: None,
            metadata: None,
            quota: None,
            uncharged: false,
            blobs: Vec::new(),
        }
    }

    /// Also write to another stream in the same transaction.
    pub fn and(mut self, stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        self.writes.push(StreamWrite { stream, expected, events });
        self
    }

    /// Also require `stream` to stand at `expected`, writing nothing to it: for a stream the
    /// command's decision was taken on but that gets no event (the tenant's directory, say).
    /// When it moved meanwhile the append is a [`StoreError::Conflict`] on it.
    pub fn checking(self, stream: StreamId, expected: ExpectedVersion) -> Self {
        self.and(stream, expected, Vec::new())
    }

    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn recorded_at(mut self, at: DateTime<Utc>) -> Self {
        self.recorded_at = Some(at);
        self
    }

    pub fn with_quota(mut self, quota: AppendQuota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Stored without counting toward the tenant's stored bytes or calls, and checked
    /// against no limit.
    pub fn uncharged(mut self) -> Self {
        self.uncharged = true;
        self.quota = None;
        self
    }

    /// Also write or delete a body kept beside the log, in the same transaction.
    pub fn with_blob(mut self, blob: BlobWrite) -> Self {
        self.blobs.push(blob);
        self
    }

    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    pub fn event_count(&self) -> usize {
        self.writes.iter().map(|w| w.events.len()).sum()
    }
}

/// What an append wrote: the tenant positions of its first and last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub first_position: u64,
    pub last_position: u64,
    /// True when this was a retry: nothing was written, the first result is returned.
    pub deduplicated: bool,
    /// The recording time of the events written (Unix milliseconds); 0 for a retry.
    pub recorded_at: i64,
}

/// The head of a tenant's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub position: u64,
    pub last_hash: [u8; 32],
}

/// An event as read back: decrypted, decoded and upcast.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub tenant_id: TenantId,
    pub position: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: EventId,
    pub event_type: String,
    /// The version it was stored with; `event` is always the current shape.
    pub schema_version: u16,
    pub recorded_at: DateTime<Utc>,
    pub event: Event,
    pub metadata: Metadata,
    /// Size of the decrypted payload: what the event costs the tenant's storage quota.
    pub payload_bytes: u64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// A stored event as it lies in the database: its payload still sealed with the tenant's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub position: u64,
    pub stream_id: String,
    pub event_id: EventId,
    pub event_type: String,
    /// Nonce and XChaCha20-Poly1305 ciphertext.
    pub payload: Vec<u8>,
}
