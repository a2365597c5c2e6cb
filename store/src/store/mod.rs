//! [`EventStore`]: the one entry point to a tenant's log, over either backend.

use std::path::Path;
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use sha2::{Digest, Sha256};
use tenantry_domain::{Event, EventId, Metadata, Personal, StreamId, TenantContext, TenantId, UserId, codec};
use tokio::sync::broadcast;

use crate::backend::{
    Attempt, Backend, KeyBackend, MintedKey, RawEvent, SealedBatch, SealedBlob, SealedEvent, StoredKey,
    to_hash,
};
use crate::chain::{ChainLink, ChainReport, GENESIS, link_hash};
use crate::commit::{Committer, GroupCommit};
use crate::crypto::{DataKey, KeyVault, MasterKey, Part, SubjectKey};
use crate::error::StoreError;
use crate::model::*;
use crate::postgres::Postgres;
use crate::sqlite::Sqlite;

mod lifecycle;
mod read;
mod values;

pub use values::SEALED_VALUE_PREFIX;

pub use lifecycle::Rewrapped;

/// Rows per page when reading a log.
pub const READ_PAGE: u32 = 2_000;

/// The database behind a store, for the read side to write its models next to the log.
#[derive(Debug, Clone)]
pub enum Database {
    /// `turn`: this process's turn at writing the file, taken by every writer of it.
    Sqlite {
        write: sqlx::SqlitePool,
        read: sqlx::SqlitePool,
        turn: crate::WriteTurn,
    },
    Postgres(sqlx::PgPool),
}

/// A committed append, announced to in-process subscribers (projectors) at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub tenant_id: TenantId,
    pub position: u64,
}

/// What one append of this process wrote, still sealed with the tenant's key, in position
/// order: the broker relay publishes it without reading the log back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCommit {
    pub tenant_id: TenantId,
    pub events: Vec<SealedRecord>,
}

/// The per-tenant event store.
///
/// Every call takes the [`TenantContext`] first and touches only that tenant's rows.
#[derive(Clone)]
pub struct EventStore {
    backend: Arc<dyn Backend>,
    /// Where the data keys are: the event database itself, or a key store apart from it
    /// ([`EventStore::with_key_store`]).
    keys: Arc<dyn KeyBackend>,
    keys_apart: bool,
    vault: Arc<KeyVault>,
    database: Database,
    committed: broadcast::Sender<Committed>,
    sealed: broadcast::Sender<Arc<SealedCommit>>,
    /// Appends go through it (group commit) unless [`EventStore::with_group_commit`] took it.
    committer: Option<Arc<Committer>>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore").field("database", &self.database).finish_non_exhaustive()
    }
}

impl EventStore {
    /// Open a store from a url: `sqlite://PATH` (created if missing) or `postgres://…`.
    /// Migrations run before this returns.
    pub async fn open(url: &str, master: &MasterKey) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url, master, 32).await
        } else if url.starts_with("sqlite:") {
            let backend = Sqlite::open_url(url).await?;
            Ok(Self::with_sqlite(backend, master))
        } else {
            Err(StoreError::UnsupportedUrl(url.chars().take(40).collect()))
        }
    }

    pub async fn open_sqlite(path: &Path, master: &MasterKey) -> Result<Self, StoreError> {
        Ok(Self::with_sqlite(Sqlite::open(path).await?, master))
    }

    pub async fn open_postgres(
        url: &str,
        master: &MasterKey,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        Self::open_postgres_as(url, master, max_connections, &crate::PgRoles::default()).await
    }

    /// [`EventStore::open_postgres`], working as `roles` (see [`crate::PgRoles`]).
    pub async fn open_postgres_as(
        url: &str,
        master: &MasterKey,
        max_connections: u32,
        roles: &crate::PgRoles,
    ) -> Result<Self, StoreError> {
        let backend = Postgres::connect(url, max_connections, roles).await?;
        let database = Database::Postgres(backend.pool.clone());
        Ok(Self::new(backend, database, master, GroupCommit::default()))
    }

    fn with_sqlite(backend: Sqlite, master: &MasterKey) -> Self {
        let database = Database::Sqlite {
            write: backend.write.clone(),
            read: backend.read.clone(),
            turn: backend.turn(),
        };
        // One writer connection: one commit at a time, the next batch gathering meanwhile.
        Self::new(backend, database, master, GroupCommit { max_in_flight: 1, ..GroupCommit::default() })
    }

    fn new<B: Backend + KeyBackend + 'static>(
        backend: B,
        database: Database,
        master: &MasterKey,
        group: GroupCommit,
    ) -> Self {
        let (committed, _) = broadcast::channel(4096);
        let (sealed, _) = broadcast::channel(4096);
        let wrapper = Arc::new(crate::crypto::LocalKeyWrapper::new(master));
        let backend = Arc::new(backend);
        Self {
            committer: Some(Arc::new(Committer::new(backend.clone(), group))),
            backend: backend.clone(),
            keys: backend,
            keys_apart: false,
            vault: Arc::new(KeyVault::new(wrapper)),
            database,
            committed,
            sealed,
        }
    }

    /// The same store with its data keys in a key store apart from the event database:
    /// `sqlite://PATH` (a file of its own, `secure_delete` on) or `postgres://…` (another
    /// database). A backup of the event database then holds no key. Keys still in the event
    /// database (a store made before key stores) move over first: copied, then deleted there
    /// and the deleted rows scrubbed; interrupted, the next open carries on.
    pub async fn with_key_store(self, url: &str) -> Result<Self, StoreError> {
        let keys: Arc<dyn KeyBackend> = if url.starts_with("postgres://") || url.starts_with("postgresql://")
        {
            Arc::new(Postgres::connect_keys(url).await?)
        } else if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            Arc::new(Sqlite::open_keys(Path::new(path.split('?').next().unwrap_or(path))).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(url.chars().take(40).collect()));
        };
        let held_here = self.keys.export_keys().await?;
        if held_here.iter().any(|row| row.wrapped.is_some() || row.subject.is_some()) {
            keys.import_keys(&held_here).await?;
            let moved = self.keys.drop_wrapped_keys().await?;
            self.backend.scrub().await?;
            tracing::info!(keys = moved, "moved the data keys from the event database to the key store");
        }
        Ok(Self { keys, keys_apart: true, ..self })
    }

    /// After a key is destroyed in a key store apart: its bytes scrubbed from the files.
    /// (In the event database they go with the purge's scrub.)
    async fn scrub_destroyed_keys(&self) -> Result<(), StoreError> {
        if self.keys_apart {
            self.keys.scrub_keys().await?;
        }
        Ok(())
    }

    /// Whether data keys are kept apart from the event database.
    pub fn keys_apart(&self) -> bool {
        self.keys_apart
    }

    /// The same store with its appends grouped into commits as `group` says (see
    /// [`GroupCommit`]); `None`: each append its own transaction.
    pub fn with_group_commit(self, group: Option<GroupCommit>) -> Self {
        let committer = group.map(|g| Arc::new(Committer::new(self.backend.clone(), g)));
        Self { committer, ..self }
    }

    /// How appends are grouped now; `None` when each is its own transaction.
    pub fn group_commit(&self) -> Option<GroupCommit> {
        self.committer.as_ref().map(|c| c.settings)
    }

    /// What the group commit did so far; `None` when appends are not grouped.
    pub fn commit_stats(&self) -> Option<crate::CommitStats> {
        self.committer.as_ref().map(|c| c.stats())
    }

    /// The same store with data keys wrapped by `wrapper` (a key management service) instead
    /// of the local master key. Keys wrapped before by another wrapper do not unwrap.
    pub fn with_key_wrapper(self, wrapper: Arc<dyn crate::crypto::KeyWrapper>) -> Self {
        Self { vault: Arc::new(KeyVault::new(wrapper)), ..self }
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The kept answers of HTTP idempotency keys, in this store's database.
    pub fn idempotency(&self) -> crate::idempotency::IdempotencyRecords {
        crate::idempotency::IdempotencyRecords::new(self.database.clone())
    }

    /// Tell every process (on PostgreSQL, channel `tenantry_auth`, the one the key triggers
    /// of migration 0012 use) that the tenant's keys or users changed, without waiting for a
    /// read model to write it. SQLite serves one process: nothing to tell.
    pub async fn announce_key_change(&self, tenant: TenantId) -> Result<(), StoreError> {
        if let Database::Postgres(pool) = &self.database {
            sqlx::query("SELECT pg_notify('tenantry_auth', $1)")
                .bind(tenant.to_string())
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Announce a commit made elsewhere (another process, seen through a broker) to this
    /// process's subscribers, as if it were local: projectors wake for it.
    pub fn announce(&self, committed: Committed) {
        let _ = self.committed.send(committed);
    }

    /// Appends committed by this process, as they happen. A lagging receiver should treat
    /// `Lagged` as "look at every tenant".
    pub fn subscribe(&self) -> broadcast::Receiver<Committed> {
        self.committed.subscribe()
    }

    /// The sealed events of every append this process commits, as it commits them. Commits
    /// of one tenant may arrive out of order when they raced, and a receiver that lags loses
    /// some: a consumer checks positions and reads the log for whatever it did not get.
    pub fn subscribe_sealed(&self) -> broadcast::Receiver<Arc<SealedCommit>> {
        self.sealed.subscribe()
    }

    async fn key(&self, tenant: TenantId, create: bool) -> Result<Arc<DataKey>, StoreError> {
        if let Some(key) = self.vault.cached(tenant) {
            return Ok(key);
        }
        match self.keys.load_key(tenant).await? {
            StoredKey::Wrapped(wrapped) => self.vault.unwrap(tenant, &wrapped).await,
            StoredKey::Destroyed => Err(StoreError::KeyDestroyed { tenant }),
            StoredKey::Missing if create => {
                // A tenant with a log always has a key (stored before its first event): none
                // here, read again after seeing the log, means the wrong key store.
                if self.keys_apart && self.backend.head(tenant).await?.is_some() {
                    return self.key_written_meanwhile(tenant).await;
                }
                self.keys.insert_key(tenant, &self.vault.new_wrapped(tenant).await?).await?;
                // Load again: a concurrent first append may have stored its key first.
                match self.keys.load_key(tenant).await? {
                    StoredKey::Wrapped(wrapped) => self.vault.unwrap(tenant, &wrapped).await,
                    _ => Err(StoreError::KeyDestroyed { tenant }),
                }
            }
            StoredKey::Missing if self.keys_apart && self.backend.head(tenant).await?.is_some() => {
                self.key_written_meanwhile(tenant).await
            }
            StoredKey::Missing => Err(StoreError::KeyDestroyed { tenant }),
        }
    }

    /// The key of a tenant whose log was seen after its key was not: a first append racing
    /// this one stored it in between, or (none still) the key store is the wrong one.
    async fn key_written_meanwhile(&self, tenant: TenantId) -> Result<Arc<DataKey>, StoreError> {
        match self.keys.load_key(tenant).await? {
            StoredKey::Wrapped(wrapped) => self.vault.unwrap(tenant, &wrapped).await,
            StoredKey::Destroyed => Err(StoreError::KeyDestroyed { tenant }),
            StoredKey::Missing => Err(StoreError::KeyMissing { tenant }),
        }
    }

    /// The data key of one person (or conversation) of the tenant: `None` when it was
    /// destroyed (the person was erased), or when it does not exist and `missing` makes none.
    /// Never minted again once destroyed.
    async fn subject_key(
        &self,
        tenant: TenantId,
        subject: uuid::Uuid,
        missing: Missing<'_>,
    ) -> Result<Option<Arc<SubjectKey>>, StoreError> {
        if let Some(key) = self.vault.cached_subject(tenant, subject) {
            return Ok(Some(key));
        }
        match (self.keys.load_subject_key(tenant, subject).await?, missing) {
            (StoredKey::Wrapped(wrapped), _) => {
                self.vault.unwrap_subject(tenant, subject, &wrapped).await.map(Some)
            }
            (StoredKey::Destroyed, _) | (StoredKey::Missing, Missing::None) => Ok(None),
            (StoredKey::Missing, Missing::StoreNow) => {
                let (wrapped, _) = self.vault.mint_subject(tenant, subject).await?;
                self.keys.insert_subject_key(tenant, subject, &wrapped).await?;
                // Load again: a concurrent first use may have stored its key first.
                match self.keys.load_subject_key(tenant, subject).await? {
                    StoredKey::Wrapped(wrapped) => {
                        self.vault.unwrap_subject(tenant, subject, &wrapped).await.map(Some)
                    }
                    _ => Ok(None),
                }
            }
            (StoredKey::Missing, Missing::WithAppend(minted)) => {
                let (wrapped, key) = self.vault.mint_subject(tenant, subject).await?;
                minted.push(MintedKey { subject, wrapped, key: key.clone() });
                Ok(Some(key))
            }
        }
    }

    /// The key to seal a person's or conversation's values with: `None` when it was destroyed.
    /// One that does not exist yet is minted: stored with the append in `minted` where the
    /// backend does that (one commit for both), else stored now.
    async fn sealing_key(
        &self,
        tenant: TenantId,
        subject: uuid::Uuid,
        minted: &mut Vec<MintedKey>,
    ) -> Result<Option<Arc<SubjectKey>>, StoreError> {
        if let Some(m) = minted.iter().find(|m| m.subject == subject) {
            return Ok(Some(m.key.clone()));
        }
        let missing = if self.keys_apart || !self.backend.stores_minted_keys() {
            Missing::StoreNow
        } else {
            Missing::WithAppend(minted)
        };
        self.subject_key(tenant, subject, missing).await
    }

    /// Seal each personal value of `event` with its keys (its person's, then its
    /// conversation's) and encode the event. A value whose key is destroyed (the person
    /// erased, the conversation deleted) is not kept at all.
    async fn seal_personal(
        &self,
        tenant: TenantId,
        mut event: Event,
        minted: &mut Vec<MintedKey>,
    ) -> Result<Vec<u8>, StoreError> {
        for (sealers, value) in event.personal_mut() {
            if let Personal::Text(text) = value {
                let mut sealed = Some(text.as_bytes().to_vec());
                for subject in layers(&sealers, true) {
                    sealed = match (sealed, self.sealing_key(tenant, subject, minted).await?) {
                        (Some(bytes), Some(key)) => Some(key.seal(&bytes)),
                        _ => None,
                    };
                }
                *value = sealed.map_or(Personal::Erased, Personal::Sealed);
            }
        }
        Ok(codec::encode(&event).map_err(StoreError::Encode)?.payload)
    }

    /// Open the sealed personal values of decoded events: the text, or `Erased` when a key
    /// that sealed it is destroyed.
    async fn open_personal(&self, tenant: TenantId, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        for e in events {
            // Another process erased this person or deleted this conversation: drop any key
            // this one still holds.
            match &e.event {
                Event::UserErased(erased) => self.vault.forget_subject(tenant, *erased.user_id.as_uuid()),
                Event::ConversationDeleted(d) => {
                    self.vault.forget_subject(tenant, *d.conversation_id.as_uuid())
                }
                _ => {}
            }
            let position = e.position;
            let conversation_sealed = codec::conversation_sealed(&e.event_type, e.schema_version);
            for (sealers, value) in e.event.personal_mut() {
                if let Personal::Sealed(sealed) = value {
                    let mut opened = Some(std::mem::take(sealed));
                    // Outermost first.
                    for subject in layers(&sealers, conversation_sealed).into_iter().rev() {
                        opened = match (opened, self.subject_key(tenant, subject, Missing::None).await?) {
                            (Some(bytes), Some(key)) => {
                                Some(key.open(&bytes).ok_or(StoreError::Tampered { tenant, position })?)
                            }
                            _ => None,
                        };
                    }
                    *value = match opened {
                        Some(bytes) => Personal::Text(
                            String::from_utf8(bytes)
                                .map_err(|_| StoreError::Tampered { tenant, position })?,
                        ),
                        None => Personal::Erased,
                    };
                }
            }
        }
        Ok(())
    }

    /// Delete a conversation's content: destroy its data key, so its titles and messages
    /// read as `[erased]` from now on, in every copy of the log.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id, conversation_id = %conversation), err)]
    pub async fn shred_conversation(
        &self,
        ctx: &TenantContext,
        conversation: tenantry_domain::ConversationId,
    ) -> Result<(), StoreError> {
        self.keys.destroy_subject_key(ctx.tenant_id, *conversation.as_uuid()).await?;
        self.vault.forget_subject(ctx.tenant_id, *conversation.as_uuid());
        self.scrub_destroyed_keys().await
    }

    /// Erase one person of the tenant: destroy their data key, so every personal value sealed
    /// with it (emails, titles, what they wrote) reads as `[erased]` from now on, in every
    /// copy of the log. The events, their positions and the hash chain stay as they were.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id, user_id = %user), err)]
    pub async fn erase_subject(&self, ctx: &TenantContext, user: UserId) -> Result<(), StoreError> {
        self.keys.destroy_subject_key(ctx.tenant_id, *user.as_uuid()).await?;
        self.vault.forget_subject(ctx.tenant_id, *user.as_uuid());
        self.scrub_destroyed_keys().await
    }

    /// Append events atomically to one or more streams of the context's tenant.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id), err)]
    pub async fn append(
        &self,
        ctx: &TenantContext,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        let tenant = ctx.tenant_id;
        let (batch, ids) = self.seal(ctx, request).await?;
        let batch = Arc::new(batch);
        // Bodies kept beside the log are written by a transaction of their own.
        let grouped = match &self.committer {
            Some(committer) if batch.blobs.is_empty() => committer.append(tenant, batch.clone()).await,
            _ => None,
        };
        let attempt = match grouped {
            Some(attempt) => attempt,
            None => self.backend.append(tenant, &batch).await,
        };
        self.settle(tenant, &batch, &ids, attempt).await
    }

    /// Several appends, of this context's tenant or others, in one transaction with one commit
    /// (imports, and tests that need appends in one batch): each keeps its own outcome, in
    /// order, as if appended one after the other. Appends with bodies kept beside the log are
    /// written by transactions of their own, after the others.
    pub async fn append_together(
        &self,
        requests: Vec<(TenantContext, AppendRequest)>,
    ) -> Vec<Result<AppendOutcome, StoreError>> {
        let mut sealed = Vec::with_capacity(requests.len());
        for (ctx, request) in requests {
            sealed.push(
                self.seal(&ctx, request).await.map(|(batch, ids)| (ctx.tenant_id, Arc::new(batch), ids)),
            );
        }
        let together: Vec<(TenantId, Arc<SealedBatch>)> = sealed
            .iter()
            .flatten()
            .filter(|(_, batch, _)| batch.blobs.is_empty())
            .map(|(tenant, batch, _)| (*tenant, batch.clone()))
            .collect();
        let mut attempts =
            crate::commit::append_many_or_each(self.backend.as_ref(), &together).await.into_iter();
        let mut out = Vec::with_capacity(sealed.len());
        for entry in sealed {
            out.push(match entry {
                Err(e) => Err(e),
                Ok((tenant, batch, ids)) => {
                    // One answer per request appended together; a body's append goes alone.
                    let together = if batch.blobs.is_empty() { attempts.next() } else { None };
                    let attempt = match together {
                        Some(attempt) => attempt,
                        None => self.backend.append(tenant, &batch).await,
                    };
                    self.settle(tenant, &batch, &ids, attempt).await
                }
            });
        }
        out
    }

    /// Check an append request and seal it with its keys, ready for the backend; with the ids
    /// of its events.
    async fn seal(
        &self,
        ctx: &TenantContext,
        request: AppendRequest,
    ) -> Result<(SealedBatch, Vec<EventId>), StoreError> {
        let tenant = ctx.tenant_id;
        let count = request.event_count();
        if count == 0 {
            return Err(StoreError::EmptyBatch);
        }
        if count > MAX_BATCH_EVENTS {
            return Err(StoreError::BatchTooLarge { len: count, max: MAX_BATCH_EVENTS });
        }
        if let Some(key) = &request.idempotency_key
            && (key.is_empty() || key.len() > 200)
        {
            return Err(StoreError::InvalidIdempotencyKey);
        }
        for event in request.writes.iter().flat_map(|w| &w.events) {
            if event.payload.len() > MAX_PAYLOAD_BYTES {
                return Err(StoreError::PayloadTooLarge {
                    size: event.payload.len(),
                    max: MAX_PAYLOAD_BYTES,
                });
            }
            // The store never accepts bytes it could not read back.
            codec::decode(&event.event_type, event.schema_version, &event.payload)
                .map_err(StoreError::Encode)?;
        }
        if let Some(body) = request.blobs.iter().find_map(|b| match b {
            BlobWrite::Put { body, .. } if body.len() > MAX_BLOB_BYTES => Some(body),
            _ => None,
        }) {
            return Err(StoreError::PayloadTooLarge { size: body.len(), max: MAX_BLOB_BYTES });
        }
        let key = self.key(tenant, true).await?;
        let blobs = request
            .blobs
            .iter()
            .map(|b| match b {
                BlobWrite::Put { id, body } => {
                    SealedBlob { id: *id, sealed: Some(key.seal_blob(*id, body)), size: body.len() as i64 }
                }
                BlobWrite::Delete { id } => SealedBlob { id: *id, sealed: None, size: 0 },
            })
            .collect();
        let metadata = match &request.metadata {
            Some(recorded) => codec::to_bytes(recorded),
            None => codec::to_bytes(&Metadata::from_context(ctx)),
        }
        .map_err(StoreError::Encode)?;
        let request_hash = request.idempotency_key.as_ref().map(|_| content_hash(&request));
        let mut events = Vec::with_capacity(count);
        let mut expectations = Vec::with_capacity(request.writes.len());
        let mut ids = Vec::with_capacity(count);
        let mut minted = Vec::new();
        for write in request.writes {
            expectations.push((write.stream.clone(), write.expected));
            for e in write.events {
                ids.push(e.event_id);
                // Sealed per person after the idempotency hash was taken over the plain
                // payload: a retry hashes the same, whatever nonces sealing draws.
                let payload = match e.personal {
                    Some(event) => self.seal_personal(tenant, *event, &mut minted).await?,
                    None => e.payload,
                };
                events.push(SealedEvent {
                    payload: key.seal(&write.stream, e.event_id, Part::Payload, &payload),
                    metadata: key.seal(&write.stream, e.event_id, Part::Metadata, &metadata),
                    event_id: e.event_id,
                    stream: write.stream.clone(),
                    event_type: e.event_type,
                    schema_version: e.schema_version,
                });
            }
        }
        let batch = SealedBatch {
            expectations,
            events,
            idempotency: request.idempotency_key.clone().zip(request_hash),
            recorded_at: request.recorded_at.unwrap_or_else(chrono::Utc::now).timestamp_millis(),
            quota: request.quota,
            uncharged: request.uncharged,
            blobs,
            minted,
        };
        Ok((batch, ids))
    }

    /// What an append attempt means for its caller: a retry answered with its first result, a
    /// refusal, or a commit announced to this process's subscribers.
    async fn settle(
        &self,
        tenant: TenantId,
        batch: &SealedBatch,
        ids: &[EventId],
        attempt: Result<Attempt, StoreError>,
    ) -> Result<AppendOutcome, StoreError> {
        let attempt = match attempt {
            // A retry arrives after its first attempt moved the stream on: the conflict is
            // only real when the request was not already stored.
            Err(conflict @ StoreError::Conflict { .. }) => {
                return match self.replayed(tenant, batch, ids).await {
                    Ok(outcome) => Ok(outcome),
                    Err(_) => Err(conflict),
                };
            }
            // A retry of a request stored before answers its first result, even once the
            // limit it counted against is used up (the limit is checked before the key).
            Err(limit @ StoreError::QuotaExceeded { .. }) if batch.idempotency.is_some() => {
                return match self.replayed_key(tenant, batch).await {
                    Ok(outcome) => Ok(outcome),
                    Err(_) => Err(limit),
                };
            }
            // A purged tenant's head may not be re-created (a trigger refuses it), even by a
            // process that still holds the old key in memory.
            Err(StoreError::Database(e)) if crate::error::shredded(&e) => {
                self.vault.forget(tenant);
                return Err(StoreError::KeyDestroyed { tenant });
            }
            Err(destroyed @ StoreError::KeyDestroyed { .. }) => {
                self.vault.forget(tenant);
                return Err(destroyed);
            }
            other => other?,
        };
        let outcome = match attempt {
            Attempt::Written(outcome) => {
                // Stored with the events: from now on this process seals with them.
                batch.minted.iter().for_each(|m| self.vault.remember_subject(&m.key));
                // No receiver is fine: nobody is projecting or relaying in this process.
                if self.sealed.receiver_count() > 0 {
                    let events = batch
                        .events
                        .iter()
                        .zip(outcome.first_position..)
                        .map(|(e, position)| SealedRecord {
                            position,
                            stream_id: e.stream.as_str().to_owned(),
                            event_id: e.event_id,
                            event_type: e.event_type.clone(),
                            payload: e.payload.clone(),
                        })
                        .collect();
                    let _ = self.sealed.send(Arc::new(SealedCommit { tenant_id: tenant, events }));
                }
                let _ = self.committed.send(Committed { tenant_id: tenant, position: outcome.last_position });
                outcome
            }
            Attempt::DuplicateKey => self.replayed_key(tenant, batch).await?,
            Attempt::DuplicateEvent => self.replayed(tenant, batch, ids).await?,
        };
        Ok(outcome)
    }

    /// A body kept beside the log (see [`BlobWrite`]), opened: `None` when there is none (never
    /// stored, or deleted), or when the tenant's key is destroyed.
    pub async fn read_blob(
        &self,
        ctx: &TenantContext,
        id: uuid::Uuid,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(sealed) = self.backend.read_blob(ctx.tenant_id, id).await? else { return Ok(None) };
        let key = match self.key(ctx.tenant_id, false).await {
            Ok(key) => key,
            Err(StoreError::KeyDestroyed { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        key.open_blob(id, &sealed)
            .map(Some)
            .ok_or(StoreError::Tampered { tenant: ctx.tenant_id, position: 0 })
    }

    /// The first result of a request stored before: by idempotency key when it has one,
    /// else by its event ids.
    async fn replayed(
        &self,
        tenant: TenantId,
        batch: &SealedBatch,
        ids: &[EventId],
    ) -> Result<AppendOutcome, StoreError> {
        if batch.idempotency.is_some() {
            match self.replayed_key(tenant, batch).await {
                Err(StoreError::IdempotencyMismatch { .. }) => {}
                result => return result,
            }
        }
        self.replayed_events(tenant, ids).await
    }

    /// The first result of a retried idempotency key, or why the retry differs.
    async fn replayed_key(&self, tenant: TenantId, batch: &SealedBatch) -> Result<AppendOutcome, StoreError> {
        let Some((key, hash)) = &batch.idempotency else {
            return Err(StoreError::InvalidIdempotencyKey);
        };
        match self.backend.find_idempotency(tenant, key).await? {
            Some(stored) if stored.request_hash == hash[..] => Ok(AppendOutcome {
                first_position: stored.first_position,
                last_position: stored.last_position,
                deduplicated: true,
                recorded_at: 0,
            }),
            Some(_) => Err(StoreError::IdempotencyMismatch { key: key.clone() }),
            None => Err(StoreError::InvalidIdempotencyKey),
        }
    }

    /// A retry of the same event ids returns where they were stored; a batch that only
    /// partly repeats stored ids is refused.
    async fn replayed_events(&self, tenant: TenantId, ids: &[EventId]) -> Result<AppendOutcome, StoreError> {
        let positions = self.backend.find_events(tenant, ids).await?;
        let (Some(first), Some(last)) = (positions.iter().min(), positions.iter().max()) else {
            return Err(StoreError::DuplicateEvent { event_id: ids[0] });
        };
        if positions.len() != ids.len() || last - first + 1 != ids.len() as u64 {
            // Name an id of the batch that is already stored.
            for id in ids {
                if !self.backend.find_events(tenant, &[*id]).await?.is_empty() {
                    return Err(StoreError::DuplicateEvent { event_id: *id });
                }
            }
            return Err(StoreError::DuplicateEvent { event_id: ids[0] });
        }
        Ok(AppendOutcome { first_position: *first, last_position: *last, deduplicated: true, recorded_at: 0 })
    }
}

/// What [`EventStore::subject_key`] does about a key that does not exist yet.
enum Missing<'a> {
    /// Nothing: there is none (a read).
    None,
    /// Mint it and store it at once, on its own.
    StoreNow,
    /// Mint it for the append being sealed, which stores it with its events.
    WithAppend(&'a mut Vec<MintedKey>),
}

/// The keys that seal a personal value, innermost first: its person's, then (for values
/// stored since conversations had keys) its conversation's.
fn layers(sealers: &tenantry_domain::event::Sealers, conversation_sealed: bool) -> Vec<uuid::Uuid> {
    let person = sealers.person.map(|u| *u.as_uuid());
    let conversation = sealers.conversation.filter(|_| conversation_sealed).map(|c| *c.as_uuid());
    person.into_iter().chain(conversation).collect()
}

/// What an idempotency key stands for: the streams, expectations and plaintext payloads, not
/// the event ids (a client retrying a command may mint new ones).
fn content_hash(request: &AppendRequest) -> [u8; 32] {
    let mut h = Sha256::new();
    for w in &request.writes {
        h.update((w.stream.as_str().len() as u64).to_be_bytes());
        h.update(w.stream.as_str());
        h.update(w.expected.to_string());
        for e in &w.events {
            h.update((e.event_type.len() as u64).to_be_bytes());
            h.update(&e.event_type);
            h.update(e.schema_version.to_be_bytes());
            h.update((e.payload.len() as u64).to_be_bytes());
            h.update(&e.payload);
        }
    }
    h.finalize().into()
}
