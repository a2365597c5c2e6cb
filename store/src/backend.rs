//! What each database backend provides, and the logic they share: planning an append under
//! the tenant's head lock (versions, positions, the hash chain).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use tenantry_domain::{EventId, StreamId, TenantId};
use uuid::Uuid;

use crate::chain::{ChainLink, link_hash};
use crate::error::StoreError;
use crate::model::{AppendOutcome, ExpectedVersion, Head};

/// An event encrypted and ready to insert; position and hashes come under the lock.
#[derive(Debug)]
pub(crate) struct SealedEvent {
    pub(crate) event_id: EventId,
    pub(crate) stream: StreamId,
    pub(crate) event_type: String,
    pub(crate) schema_version: u16,
    pub(crate) payload: Vec<u8>,
    pub(crate) metadata: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct SealedBatch {
    pub(crate) expectations: Vec<(StreamId, ExpectedVersion)>,
    pub(crate) events: Vec<SealedEvent>,
    pub(crate) idempotency: Option<(String, [u8; 32])>,
    pub(crate) recorded_at: i64,
    pub(crate) quota: Option<crate::model::AppendQuota>,
    /// Bytes not counted to the tenant; see [`crate::model::AppendRequest::uncharged`].
    pub(crate) uncharged: bool,
    pub(crate) blobs: Vec<SealedBlob>,
    /// Person and conversation keys minted to seal this batch, stored in the same
    /// transaction as its events (only by a backend that [`Backend::stores_minted_keys`]).
    pub(crate) minted: Vec<MintedKey>,
}

/// A person's or conversation's data key minted for a batch: wrapped for storage, and the
/// key itself to cache once the batch is written.
pub(crate) struct MintedKey {
    pub(crate) subject: Uuid,
    pub(crate) wrapped: Vec<u8>,
    pub(crate) key: std::sync::Arc<crate::crypto::SubjectKey>,
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedKey").field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// A body to keep beside the log (sealed, with its plaintext size), or one to delete.
#[derive(Debug, Clone)]
pub(crate) struct SealedBlob {
    pub(crate) id: Uuid,
    /// `None`: delete the blob.
    pub(crate) sealed: Option<Vec<u8>>,
    pub(crate) size: i64,
}

/// Bytes of plaintext a sealed payload stands for: its length without nonce and tag.
pub(crate) fn stored_bytes(sealed: &[u8]) -> u64 {
    (sealed.len() as u64).saturating_sub(40)
}

impl SealedBatch {
    /// Each stream the batch touches, once, in first-seen order.
    pub(crate) fn streams(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (s, _) in &self.expectations {
            if !out.iter().any(|o| o == s.as_str()) {
                out.push(s.as_str().to_owned());
            }
        }
        out
    }
}

/// One row to insert, with everything the lock decided.
#[derive(Debug)]
pub(crate) struct PlannedRow {
    pub(crate) position: u64,
    pub(crate) stream_version: u64,
    pub(crate) prev_hash: [u8; 32],
    pub(crate) hash: [u8; 32],
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) rows: Vec<PlannedRow>,
    /// Final version of every stream that got events.
    pub(crate) streams: Vec<(String, u64)>,
    pub(crate) head: Head,
}

/// Check the expected versions and allocate positions, versions and hashes. Runs while the
/// tenant's head row is locked, so `head` and `versions` are current.
pub(crate) fn plan(
    tenant: TenantId,
    head: &Head,
    versions: &HashMap<String, u64>,
    batch: &SealedBatch,
) -> Result<Plan, StoreError> {
    for (stream, expected) in &batch.expectations {
        let actual = versions.get(stream.as_str()).copied().unwrap_or(0);
        if !expected.admits(actual) {
            return Err(StoreError::Conflict { stream: stream.clone(), expected: *expected, actual });
        }
    }
    let mut next_versions: Vec<(String, u64)> = batch
        .streams()
        .into_iter()
        .map(|s| {
            let v = versions.get(&s).copied().unwrap_or(0);
            (s, v)
        })
        .collect();
    let mut position = head.position;
    let mut prev = head.last_hash;
    let tenant_bytes = tenant.as_uuid().as_bytes();
    let mut rows = Vec::with_capacity(batch.events.len());
    for e in &batch.events {
        position += 1;
        let slot = next_versions.iter_mut().find(|(s, _)| s == e.stream.as_str()).map(|(_, v)| v);
        let Some(version) = slot else { unreachable!("every event's stream is in the expectations") };
        *version += 1;
        let hash = link_hash(
            &prev,
            &ChainLink {
                tenant_id: tenant_bytes,
                position,
                stream_id: e.stream.as_str(),
                stream_version: *version,
                event_id: e.event_id.as_uuid().as_bytes(),
                event_type: &e.event_type,
                schema_version: e.schema_version,
                recorded_at: batch.recorded_at,
                payload: &e.payload,
                metadata: &e.metadata,
            },
        );
        rows.push(PlannedRow { position, stream_version: *version, prev_hash: prev, hash });
        prev = hash;
    }
    // A stream listed only to check its version got no event and is not written.
    next_versions.retain(|(s, v)| versions.get(s).copied().unwrap_or(0) != *v);
    Ok(Plan { rows, streams: next_versions, head: Head { position, last_hash: prev } })
}

/// A tenant's head with the counters its limits are decided on.
#[derive(Debug, Clone)]
pub(crate) struct HeadState {
    pub(crate) head: Head,
    pub(crate) stored_bytes: i64,
    pub(crate) day: i64,
    pub(crate) day_calls: i64,
}

/// The counters an append leaves its tenant, and the limit that refuses it, if one does.
#[derive(Debug)]
pub(crate) struct Charge {
    pub(crate) stored_bytes: i64,
    pub(crate) day: i64,
    pub(crate) day_calls: i64,
    pub(crate) refusal: Option<StoreError>,
}

/// Count an append against its tenant's limits: its payload bytes (and `blob_bytes` of
/// bodies written or freed with it) toward `storage_bytes`, and one call of its day when it
/// is a command. An uncharged append (the audit record of a refused request) counts nothing
/// and is never refused: a refusal never spends its target's limits.
pub(crate) fn charge(state: &HeadState, batch: &SealedBatch, blob_bytes: i64) -> Charge {
    let quota = if batch.uncharged { None } else { batch.quota };
    let added = if batch.uncharged {
        0
    } else {
        batch.events.iter().map(|e| stored_bytes(&e.payload) as i64).sum::<i64>() + blob_bytes
    };
    let stored_bytes = state.stored_bytes + added;
    let (day, day_calls) = match quota {
        Some(q) if q.counts_as_call && q.day == state.day => (state.day, state.day_calls + 1),
        Some(q) if q.counts_as_call => (q.day, 1),
        _ => (state.day, state.day_calls),
    };
    let refusal = match quota {
        Some(q) if q.counts_as_call && day_calls > q.max_calls_per_day.min(i64::MAX as u64) as i64 => {
            Some(StoreError::QuotaExceeded { limit: "api_calls_per_day", max: q.max_calls_per_day })
        }
        Some(q) if added > 0 && stored_bytes > q.max_stored_bytes.min(i64::MAX as u64) as i64 => {
            Some(StoreError::QuotaExceeded { limit: "storage_bytes", max: q.max_stored_bytes })
        }
        _ => None,
    };
    Charge { stored_bytes, day, day_calls, refusal }
}

/// The tenants of a group commit, once each, in id order (the order their heads are locked in).
pub(crate) fn batch_tenants(requests: &[(TenantId, &SealedBatch)]) -> Vec<Uuid> {
    let mut tenants: Vec<Uuid> = requests.iter().map(|(t, _)| *t.as_uuid()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    tenants
}

/// What the appends of a group commit find stored, read under their tenants' head locks:
/// each tenant's head (none: a purged tenant), the versions of the streams they name, and
/// which of their event ids and idempotency keys are taken.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub(crate) heads: HashMap<TenantId, HeadState>,
    pub(crate) versions: HashMap<(TenantId, String), u64>,
    pub(crate) events: HashSet<(TenantId, EventId)>,
    pub(crate) keys: HashSet<(TenantId, String)>,
}

/// One event to insert, as its request decided it.
#[derive(Debug)]
pub(crate) struct DecidedEvent<'a> {
    pub(crate) tenant: TenantId,
    pub(crate) event: &'a SealedEvent,
    pub(crate) recorded_at: i64,
    pub(crate) row: PlannedRow,
}

/// A stream the written requests appended to: its version before the group commit (0: a new
/// stream) and as the last of them left it.
#[derive(Debug)]
pub(crate) struct WrittenStream {
    pub(crate) tenant: TenantId,
    pub(crate) stream: String,
    pub(crate) was: u64,
    pub(crate) version: u64,
}

/// A head the written requests moved: its position before the group commit, and its state as
/// the last of them left it.
#[derive(Debug)]
pub(crate) struct WrittenHead {
    pub(crate) tenant: TenantId,
    pub(crate) was: u64,
    pub(crate) state: HeadState,
}

/// A group commit decided: each request's outcome, in order, and every row the written ones
/// leave (the streams and heads as the last of them left them).
#[derive(Debug, Default)]
pub(crate) struct Decided<'a> {
    pub(crate) outcomes: Vec<Result<Attempt, StoreError>>,
    pub(crate) events: Vec<DecidedEvent<'a>>,
    pub(crate) streams: Vec<WrittenStream>,
    pub(crate) heads: Vec<WrittenHead>,
    /// Idempotency keys: tenant, key, request hash, first and last position.
    pub(crate) keys: Vec<(TenantId, &'a str, &'a [u8; 32], u64, u64)>,
}

/// Decide the appends of a group commit in order, each against what the ones before it left:
/// a purged tenant, a version conflict, a stored event id, a limit or a stored idempotency key
/// refuses that request alone, before anything of it is written (the order
/// `tenantry_append` decides in); two appends to one stream are checked and chained in turn.
/// `blob_bytes`: bytes of bodies written (or freed) before in the transaction, counted with
/// the request that carries bodies.
pub(crate) fn decide<'a>(
    requests: &[(TenantId, &'a SealedBatch)],
    mut found: Found,
    blob_bytes: i64,
) -> Decided<'a> {
    let mut out = Decided::default();
    // What the written requests touched, in first-written order, with their versions and
    // positions before the batch; their final ones are in `found` once every request is
    // decided.
    let mut streams: Vec<((TenantId, String), u64)> = Vec::new();
    let mut heads: Vec<(TenantId, u64)> = Vec::new();
    let (mut streams_seen, mut heads_seen) = (HashSet::new(), HashSet::new());
    for &(tenant, batch) in requests {
        let Some(state) = found.heads.get(&tenant) else {
            out.outcomes.push(Err(StoreError::KeyDestroyed { tenant }));
            continue;
        };
        let versions: HashMap<String, u64> = batch
            .streams()
            .into_iter()
            .filter_map(|s| {
                let v = found.versions.get(&(tenant, s.clone())).copied()?;
                Some((s, v))
            })
            .collect();
        let plan = match plan(tenant, &state.head, &versions, batch) {
            Ok(plan) => plan,
            Err(refused) => {
                out.outcomes.push(Err(refused));
                continue;
            }
        };
        if batch.events.iter().any(|e| found.events.contains(&(tenant, e.event_id))) {
            out.outcomes.push(Ok(Attempt::DuplicateEvent));
            continue;
        }
        let charge = charge(state, batch, if batch.blobs.is_empty() { 0 } else { blob_bytes });
        if let Some(refused) = charge.refusal {
            out.outcomes.push(Err(refused));
            continue;
        }
        if let Some((key, _)) = &batch.idempotency
            && found.keys.contains(&(tenant, key.clone()))
        {
            out.outcomes.push(Ok(Attempt::DuplicateKey));
            continue;
        }
        let outcome = AppendOutcome {
            first_position: state.head.position + 1,
            last_position: plan.head.position,
            deduplicated: false,
            recorded_at: batch.recorded_at,
        };
        if heads_seen.insert(tenant) {
            heads.push((tenant, state.head.position));
        }
        found.heads.insert(
            tenant,
            HeadState {
                head: plan.head,
                stored_bytes: charge.stored_bytes,
                day: charge.day,
                day_calls: charge.day_calls,
            },
        );
        for (stream, version) in plan.streams {
            let key = (tenant, stream);
            if streams_seen.insert(key.clone()) {
                streams.push((key.clone(), found.versions.get(&key).copied().unwrap_or(0)));
            }
            found.versions.insert(key, version);
        }
        for (event, row) in batch.events.iter().zip(plan.rows) {
            found.events.insert((tenant, event.event_id));
            out.events.push(DecidedEvent { tenant, event, recorded_at: batch.recorded_at, row });
        }
        if let Some((key, hash)) = &batch.idempotency {
            found.keys.insert((tenant, key.clone()));
            out.keys.push((tenant, key, hash, outcome.first_position, outcome.last_position));
        }
        out.outcomes.push(Ok(Attempt::Written(outcome)));
    }
    out.streams = streams
        .into_iter()
        .filter_map(|((tenant, stream), was)| {
            let version = found.versions.get(&(tenant, stream.clone())).copied()?;
            Some(WrittenStream { tenant, stream, was, version })
        })
        .collect();
    out.heads = heads
        .into_iter()
        .filter_map(|(tenant, was)| {
            found.heads.remove(&tenant).map(|state| WrittenHead { tenant, was, state })
        })
        .collect();
    out
}

/// A stored event, still encrypted.
#[derive(Debug, Clone)]
pub(crate) struct RawEvent {
    pub(crate) position: u64,
    pub(crate) stream_id: String,
    pub(crate) stream_version: u64,
    pub(crate) event_id: EventId,
    pub(crate) event_type: String,
    pub(crate) schema_version: u16,
    pub(crate) recorded_at: i64,
    pub(crate) payload: Vec<u8>,
    pub(crate) metadata: Vec<u8>,
    pub(crate) prev_hash: Vec<u8>,
    pub(crate) hash: Vec<u8>,
}

/// The stored state of a tenant's data key.
#[derive(Debug)]
pub(crate) enum StoredKey {
    Missing,
    Wrapped(Vec<u8>),
    Destroyed,
}

impl StoredKey {
    /// From a `wrapped_key` column read by key: no row, a key, or NULL once destroyed.
    pub(crate) fn from_row(row: Option<(Option<Vec<u8>>,)>) -> Self {
        match row {
            None => Self::Missing,
            Some((Some(k),)) => Self::Wrapped(k),
            Some((None,)) => Self::Destroyed,
        }
    }
}

/// How an append attempt ended.
#[derive(Debug)]
pub(crate) enum Attempt {
    Written(AppendOutcome),
    /// An event id of the batch is already stored; nothing was written.
    DuplicateEvent,
    /// The idempotency key is already stored; nothing was written.
    DuplicateKey,
}

/// A stored idempotency key.
#[derive(Debug)]
pub(crate) struct StoredIdempotency {
    pub(crate) request_hash: Vec<u8>,
    pub(crate) first_position: u64,
    pub(crate) last_position: u64,
}

/// One stored key row, as [`KeyBackend::export_keys`] reads it: a tenant's (`subject: None`) or
/// a person's or conversation's; `wrapped: None` once destroyed.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub(crate) tenant: Uuid,
    pub(crate) subject: Option<Uuid>,
    pub(crate) wrapped: Option<Vec<u8>>,
}

/// Key rows from the two key tables' columns.
pub(crate) fn key_rows(
    tenants: Vec<(Uuid, Option<Vec<u8>>)>,
    subjects: Vec<(Uuid, Uuid, Option<Vec<u8>>)>,
) -> Vec<KeyRow> {
    let tenants = tenants.into_iter().map(|(tenant, wrapped)| KeyRow { tenant, subject: None, wrapped });
    let subjects = subjects.into_iter().map(|(tenant, subject, wrapped)| KeyRow {
        tenant,
        subject: Some(subject),
        wrapped,
    });
    tenants.chain(subjects).collect()
}

/// Where data keys are kept: the event database itself, or a key store apart from it.
#[async_trait]
pub(crate) trait KeyBackend: Send + Sync {
    async fn load_key(&self, tenant: TenantId) -> Result<StoredKey, StoreError>;
    /// Store a wrapped key unless one exists already (a concurrent first append won).
    async fn insert_key(&self, tenant: TenantId, wrapped: &[u8]) -> Result<(), StoreError>;
    async fn destroy_key(&self, tenant: TenantId) -> Result<(), StoreError>;
    async fn load_subject_key(&self, tenant: TenantId, subject: Uuid) -> Result<StoredKey, StoreError>;
    /// Store a wrapped key of a person unless one exists (or was destroyed) already.
    async fn insert_subject_key(
        &self,
        tenant: TenantId,
        subject: Uuid,
        wrapped: &[u8],
    ) -> Result<(), StoreError>;
    async fn destroy_subject_key(&self, tenant: TenantId, subject: Uuid) -> Result<(), StoreError>;
    /// Wrapped tenant keys (not destroyed) after `after`, in tenant order.
    async fn tenant_keys_after(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError>;
    /// Wrapped person keys (not destroyed) after `after`, in (tenant, person) order.
    async fn subject_keys_after(
        &self,
        after: Option<(Uuid, Uuid)>,
        limit: u32,
    ) -> Result<Vec<(Uuid, Uuid, Vec<u8>)>, StoreError>;
    /// Replace a wrapped key (`subject`: a person's) if it is still `old`; whether it was.
    async fn rewrap(
        &self,
        tenant: Uuid,
        subject: Option<Uuid>,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;
    /// Delete the keys of the tenant's persons and conversations (its own key is destroyed
    /// with [`KeyBackend::destroy_key`]).
    async fn delete_subject_keys(&self, tenant: TenantId) -> Result<(), StoreError>;
    /// Make destroyed keys unrecoverable from the files (SQLite: zeroed pages, WAL
    /// checkpointed and truncated; PostgreSQL: the key tables vacuumed).
    async fn scrub_keys(&self) -> Result<(), StoreError>;
    /// Every key row, destroyed ones included.
    async fn export_keys(&self) -> Result<Vec<KeyRow>, StoreError>;
    /// Rows copied in from elsewhere; a row already here is kept.
    async fn import_keys(&self, rows: &[KeyRow]) -> Result<(), StoreError>;
    /// Forget the keys held here once a key store apart holds them: wrapped keys are deleted;
    /// a destroyed tenant's row stays (it refuses appends to a purged tenant). Returns the
    /// rows deleted.
    async fn drop_wrapped_keys(&self) -> Result<u64, StoreError>;
}

/// The database operations behind an [`crate::EventStore`].
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Delete the tenant's events, streams, idempotency keys and head under its head lock,
    /// and keep its key row destroyed. Returns the events deleted.
    async fn purge_log(&self, tenant: TenantId) -> Result<u64, StoreError>;
    /// Make deleted rows unrecoverable from the database files where the backend can
    /// (SQLite: checkpoint and truncate the WAL; deleted pages are zeroed by
    /// `secure_delete`).
    async fn scrub(&self) -> Result<(), StoreError>;
    async fn append(&self, tenant: TenantId, batch: &Arc<SealedBatch>) -> Result<Attempt, StoreError>;
    /// Whether an append stores the keys minted for it ([`SealedBatch::minted`]) in its own
    /// transaction: a request whose minted key lost a race to another is refused with
    /// [`StoreError::KeyRace`] and nothing of it is written. Otherwise a key is stored on its
    /// own when minted, before the append.
    fn stores_minted_keys(&self) -> bool {
        false
    }
    /// Several appends, of any tenants, in one transaction and one commit (the group commit).
    /// Each request's outcome, in order, is its own: a conflict, a duplicate, or a limit
    /// refuses that request alone and leaves nothing of it written. `Err` when the
    /// transaction as a whole failed. Requests carry no bodies ([`SealedBatch::blobs`]).
    async fn append_many(
        &self,
        requests: &[(TenantId, Arc<SealedBatch>)],
    ) -> Result<Vec<Result<Attempt, StoreError>>, StoreError>;
    /// Positions of the stored events with these ids.
    async fn find_events(&self, tenant: TenantId, ids: &[EventId]) -> Result<Vec<u64>, StoreError>;
    /// A body kept beside the log, still sealed.
    async fn read_blob(&self, tenant: TenantId, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;
    async fn find_idempotency(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> Result<Option<StoredIdempotency>, StoreError>;
    async fn read_log(&self, tenant: TenantId, after: u64, limit: u32) -> Result<Vec<RawEvent>, StoreError>;
    /// [`Backend::read_log`] for several tenants, in their order; one round trip where the
    /// backend can.
    async fn read_logs(
        &self,
        from: &[(TenantId, u64)],
        limit: u32,
    ) -> Result<Vec<Vec<RawEvent>>, StoreError> {
        let mut pages = Vec::with_capacity(from.len());
        for (tenant, after) in from {
            pages.push(self.read_log(*tenant, *after, limit).await?);
        }
        Ok(pages)
    }
    async fn read_stream(
        &self,
        tenant: TenantId,
        stream: &str,
        after_version: u64,
        limit: u32,
    ) -> Result<Vec<RawEvent>, StoreError>;
    async fn head(&self, tenant: TenantId) -> Result<Option<Head>, StoreError>;
    async fn stream_version(&self, tenant: TenantId, stream: &str) -> Result<u64, StoreError>;
    /// Tenants with a log, in id order, after `after`.
    async fn tenant_heads(
        &self,
        after: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<(TenantId, u64)>, StoreError>;
}

pub(crate) fn to_hash(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if bytes.len() == 32 {
        out.copy_from_slice(bytes);
    }
    out
}
