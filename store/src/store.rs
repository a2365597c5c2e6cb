//! [`EventStore`]: the one entry point to a tenant's log, over either backend.

use std::path::Path;
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use sha2::{Digest, Sha256};
use tenantry_domain::{Event, EventId, Metadata, Personal, StreamId, TenantContext, TenantId, UserId, codec};
use tokio::sync::broadcast;

use crate::backend::{Attempt, Backend, RawEvent, SealedBatch, SealedEvent, StoredKey, to_hash};
use crate::chain::{ChainLink, ChainReport, GENESIS, link_hash};
use crate::crypto::{DataKey, KeyVault, MasterKey, Part, SubjectKey};
use crate::error::StoreError;
use crate::model::*;
use crate::postgres::Postgres;
use crate::sqlite::Sqlite;

/// Rows per page when reading a log.
pub const READ_PAGE: u32 = 2_000;

/// The database behind a store, for the read side to write its models next to the log.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite { write: sqlx::SqlitePool, read: sqlx::SqlitePool },
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
    vault: Arc<KeyVault>,
    database: Database,
    committed: broadcast::Sender<Committed>,
    sealed: broadcast::Sender<Arc<SealedCommit>>,
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
        let backend = Postgres::connect(url, max_connections).await?;
        let database = Database::Postgres(backend.pool.clone());
        Ok(Self::new(Arc::new(backend), database, master))
    }

    fn with_sqlite(backend: Sqlite, master: &MasterKey) -> Self {
        let database = Database::Sqlite { write: backend.write.clone(), read: backend.read.clone() };
        Self::new(Arc::new(backend), database, master)
    }

    fn new(backend: Arc<dyn Backend>, database: Database, master: &MasterKey) -> Self {
        let (committed, _) = broadcast::channel(4096);
        let (sealed, _) = broadcast::channel(4096);
        Self { backend, vault: Arc::new(KeyVault::new(master)), database, committed, sealed }
    }

    pub fn database(&self) -> &Database {
        &self.database
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
        match self.backend.load_key(tenant).await? {
            StoredKey::Wrapped(wrapped) => self.vault.unwrap(tenant, &wrapped),
            StoredKey::Destroyed => Err(StoreError::KeyDestroyed { tenant }),
            StoredKey::Missing if create => {
                self.backend.insert_key(tenant, &self.vault.new_wrapped(tenant)).await?;
                // Load again: a concurrent first append may have stored its key first.
                match self.backend.load_key(tenant).await? {
                    StoredKey::Wrapped(wrapped) => self.vault.unwrap(tenant, &wrapped),
                    _ => Err(StoreError::KeyDestroyed { tenant }),
                }
            }
            StoredKey::Missing => Err(StoreError::KeyDestroyed { tenant }),
        }
    }

    /// The data key of one person of the tenant: `None` when it was destroyed (the person was
    /// erased), or when it does not exist and `create` is false. Never minted again once
    /// destroyed.
    async fn subject_key(
        &self,
        tenant: TenantId,
        subject: uuid::Uuid,
        create: bool,
    ) -> Result<Option<Arc<SubjectKey>>, StoreError> {
        if let Some(key) = self.vault.cached_subject(tenant, subject) {
            return Ok(Some(key));
        }
        match self.backend.load_subject_key(tenant, subject).await? {
            StoredKey::Wrapped(wrapped) => self.vault.unwrap_subject(tenant, subject, &wrapped).map(Some),
            StoredKey::Destroyed => Ok(None),
            StoredKey::Missing if create => {
                let wrapped = self.vault.new_wrapped_subject(tenant, subject);
                self.backend.insert_subject_key(tenant, subject, &wrapped).await?;
                // Load again: a concurrent first use may have stored its key first.
                match self.backend.load_subject_key(tenant, subject).await? {
                    StoredKey::Wrapped(wrapped) => {
                        self.vault.unwrap_subject(tenant, subject, &wrapped).map(Some)
                    }
                    _ => Ok(None),
                }
            }
            StoredKey::Missing => Ok(None),
        }
    }

    /// Seal each personal value of `event` with its person's key and encode the event. The
    /// value of a person already erased is not kept at all.
    async fn seal_personal(&self, tenant: TenantId, mut event: Event) -> Result<Vec<u8>, StoreError> {
        for (subject, value) in event.personal_mut() {
            if let Personal::Text(text) = value {
                *value = match self.subject_key(tenant, *subject.as_uuid(), true).await? {
                    Some(key) => Personal::Sealed(key.seal(text)),
                    None => Personal::Erased,
                };
            }
        }
        Ok(codec::encode(&event).map_err(StoreError::Encode)?.payload)
    }

    /// Open the sealed personal values of decoded events: the text, or `Erased` when the
    /// person's key is destroyed.
    async fn open_personal(&self, tenant: TenantId, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        for e in events {
            if let Event::UserErased(erased) = &e.event {
                // Another process erased this person: drop any key this one still holds.
                self.vault.forget_subject(tenant, *erased.user_id.as_uuid());
            }
            let position = e.position;
            for (subject, value) in e.event.personal_mut() {
                if let Personal::Sealed(sealed) = value {
                    *value = match self.subject_key(tenant, *subject.as_uuid(), false).await? {
                        Some(key) => {
                            Personal::Text(key.open(sealed).ok_or(StoreError::Tampered { tenant, position })?)
                        }
                        None => Personal::Erased,
                    };
                }
            }
        }
        Ok(())
    }

    /// Erase one person of the tenant: destroy their data key, so every personal value sealed
    /// with it (emails, titles, what they wrote) reads as `[erased]` from now on, in every
    /// copy of the log. The events, their positions and the hash chain stay as they were.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id, user_id = %user), err)]
    pub async fn erase_subject(&self, ctx: &TenantContext, user: UserId) -> Result<(), StoreError> {
        self.backend.destroy_subject_key(ctx.tenant_id, *user.as_uuid()).await?;
        self.vault.forget_subject(ctx.tenant_id, *user.as_uuid());
        Ok(())
    }

    /// Append events atomically to one or more streams of the context's tenant.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id), err)]
    pub async fn append(
        &self,
        ctx: &TenantContext,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
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
        let key = self.key(tenant, true).await?;
        let metadata = match &request.metadata {
            Some(recorded) => codec::to_bytes(recorded),
            None => codec::to_bytes(&Metadata::from_context(ctx)),
        }
        .map_err(StoreError::Encode)?;
        let request_hash = request.idempotency_key.as_ref().map(|_| content_hash(&request));
        let mut events = Vec::with_capacity(count);
        let mut expectations = Vec::with_capacity(request.writes.len());
        let mut ids = Vec::with_capacity(count);
        for write in request.writes {
            expectations.push((write.stream.clone(), write.expected));
            for e in write.events {
                ids.push(e.event_id);
                // Sealed per person after the idempotency hash was taken over the plain
                // payload: a retry hashes the same, whatever nonces sealing draws.
                let payload = match e.personal {
                    Some(event) => self.seal_personal(tenant, *event).await?,
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
        };
        let attempt = match self.backend.append(tenant, &batch).await {
            // A retry arrives after its first attempt moved the stream on: the conflict is
            // only real when the request was not already stored.
            Err(conflict @ StoreError::Conflict { .. }) => {
                return match self.replayed(tenant, &batch, &ids).await {
                    Ok(outcome) => Ok(outcome),
                    Err(_) => Err(conflict),
                };
            }
            // A retry of a request stored before answers its first result, even once the
            // limit it counted against is used up (the limit is checked before the key).
            Err(limit @ StoreError::QuotaExceeded { .. }) if batch.idempotency.is_some() => {
                return match self.replayed_key(tenant, &batch).await {
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
            other => other?,
        };
        let outcome = match attempt {
            Attempt::Written(outcome) => {
                // No receiver is fine: nobody is projecting or relaying in this process.
                if self.sealed.receiver_count() > 0 {
                    let events = batch
                        .events
                        .into_iter()
                        .zip(outcome.first_position..)
                        .map(|(e, position)| SealedRecord {
                            position,
                            stream_id: e.stream.as_str().to_owned(),
                            event_id: e.event_id,
                            event_type: e.event_type,
                            payload: e.payload,
                        })
                        .collect();
                    let _ = self.sealed.send(Arc::new(SealedCommit { tenant_id: tenant, events }));
                }
                let _ = self.committed.send(Committed { tenant_id: tenant, position: outcome.last_position });
                outcome
            }
            Attempt::DuplicateKey => self.replayed_key(tenant, &batch).await?,
            Attempt::DuplicateEvent => self.replayed(tenant, &batch, &ids).await?,
        };
        Ok(outcome)
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
        Ok(AppendOutcome { first_position: *first, last_position: *last, deduplicated: true })
    }

    fn decode(&self, tenant: TenantId, key: &DataKey, raw: RawEvent) -> Result<RecordedEvent, StoreError> {
        let codec_err = |source| StoreError::Codec { tenant, position: raw.position, source };
        let payload = key.open(&raw.stream_id, raw.event_id, Part::Payload, &raw.payload, raw.position)?;
        let metadata = key.open(&raw.stream_id, raw.event_id, Part::Metadata, &raw.metadata, raw.position)?;
        let event: Event = codec::decode(&raw.event_type, raw.schema_version, &payload).map_err(codec_err)?;
        let payload_bytes = payload.len() as u64;
        let metadata: Metadata = postcard::from_bytes(&metadata).map_err(|e| {
            codec_err(codec::CodecError::Malformed {
                event_type: "metadata".into(),
                version: 1,
                reason: e.to_string(),
            })
        })?;
        Ok(RecordedEvent {
            tenant_id: tenant,
            position: raw.position,
            stream_id: raw.stream_id,
            stream_version: raw.stream_version,
            event_id: raw.event_id,
            event_type: raw.event_type,
            schema_version: raw.schema_version,
            recorded_at: chrono::DateTime::from_timestamp_millis(raw.recorded_at).unwrap_or_default(),
            event,
            metadata,
            payload_bytes,
            prev_hash: to_hash(&raw.prev_hash),
            hash: to_hash(&raw.hash),
        })
    }

    async fn decode_page(
        &self,
        tenant: TenantId,
        page: Vec<RawEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.key(tenant, false).await?;
        let mut events =
            page.into_iter().map(|raw| self.decode(tenant, &key, raw)).collect::<Result<Vec<_>, _>>()?;
        self.open_personal(tenant, &mut events).await?;
        Ok(events)
    }

    /// Up to `limit` events of the tenant's log after `after`, in position order.
    pub async fn read_log_page(
        &self,
        ctx: &TenantContext,
        after: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let page = self.backend.read_log(ctx.tenant_id, after, limit).await?;
        self.decode_page(ctx.tenant_id, page).await
    }

    /// [`EventStore::read_log_page`] for several tenants at once, in one round trip on
    /// PostgreSQL: for each `(context, after)` its page, or why that tenant's page could not
    /// be read (a destroyed key, an undecodable event); the outer error is the database's.
    pub async fn read_log_pages(
        &self,
        from: &[(TenantContext, u64)],
        limit: u32,
    ) -> Result<Vec<Result<Vec<RecordedEvent>, StoreError>>, StoreError> {
        let ids: Vec<(TenantId, u64)> = from.iter().map(|(ctx, after)| (ctx.tenant_id, *after)).collect();
        let pages = self.backend.read_logs(&ids, limit).await?;
        let mut out = Vec::with_capacity(pages.len());
        for ((tenant, _), page) in ids.into_iter().zip(pages) {
            out.push(self.decode_page(tenant, page).await);
        }
        Ok(out)
    }

    /// Up to `limit` stored events after `after`, still encrypted: for relaying to a broker,
    /// which never sees plaintext.
    pub async fn read_sealed_page(
        &self,
        ctx: &TenantContext,
        after: u64,
        limit: u32,
    ) -> Result<Vec<SealedRecord>, StoreError> {
        Ok(self
            .backend
            .read_log(ctx.tenant_id, after, limit)
            .await?
            .into_iter()
            .map(|raw| SealedRecord {
                position: raw.position,
                stream_id: raw.stream_id,
                event_id: raw.event_id,
                event_type: raw.event_type,
                payload: raw.payload,
            })
            .collect())
    }

    /// The tenant's log after `after`, page by page: memory stays flat however long it is.
    /// The next page is fetched while the current one is decrypted and decoded.
    pub fn read_log(
        &self,
        ctx: &TenantContext,
        after: u64,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + 'static {
        let backend = self.backend.clone();
        let tenant = ctx.tenant_id;
        self.paged(
            tenant,
            after,
            |e| e.position,
            move |after| {
                let backend = backend.clone();
                async move { backend.read_log(tenant, after, READ_PAGE).await }
            },
        )
    }

    /// One stream's events after `after_version`, page by page.
    pub fn read_stream(
        &self,
        ctx: &TenantContext,
        stream: &StreamId,
        after_version: u64,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + 'static {
        let backend = self.backend.clone();
        let tenant = ctx.tenant_id;
        let stream: Arc<str> = stream.as_str().into();
        self.paged(
            tenant,
            after_version,
            |e| e.stream_version,
            move |after| {
                let (backend, stream) = (backend.clone(), stream.clone());
                async move { backend.read_stream(tenant, &stream, after, READ_PAGE).await }
            },
        )
    }

    /// Decoded events over raw pages fetched by `fetch(after)`, keyed by `key_of`; each page
    /// is decoded while the next one is fetched, and the stream ends on an empty page.
    fn paged<F, Fut>(
        &self,
        tenant: TenantId,
        start: u64,
        key_of: fn(&RawEvent) -> u64,
        fetch: F,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + 'static
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<RawEvent>, StoreError>> + Send + 'static,
    {
        enum Next {
            Start(u64),
            Pending(tokio::task::JoinHandle<Result<Vec<RawEvent>, StoreError>>),
        }
        let store = self.clone();
        let fetch = Arc::new(fetch);
        stream::try_unfold(Next::Start(start), move |next| {
            let (store, fetch) = (store.clone(), fetch.clone());
            async move {
                let raw = match next {
                    Next::Start(after) => fetch(after).await?,
                    Next::Pending(handle) => {
                        handle.await.map_err(|e| StoreError::Io(std::io::Error::other(e)))??
                    }
                };
                let Some(last) = raw.last().map(key_of) else { return Ok::<_, StoreError>(None) };
                // Pages are position ranges: a short one may be the end or a hole left by
                // tampering; only an empty page ends the stream, and consumers that need
                // contiguity check it themselves.
                let next = Next::Pending(tokio::spawn(fetch(last)));
                Ok(Some((store.decode_page(tenant, raw).await?, next)))
            }
        })
        .map_ok(|page| stream::iter(page.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    /// The head of the tenant's log, or `None` when it has no events.
    pub async fn head(&self, ctx: &TenantContext) -> Result<Option<Head>, StoreError> {
        Ok(self.backend.head(ctx.tenant_id).await?.filter(|h| h.position > 0))
    }

    /// The version of one stream (0 when it does not exist).
    pub async fn stream_version(&self, ctx: &TenantContext, stream: &StreamId) -> Result<u64, StoreError> {
        self.backend.stream_version(ctx.tenant_id, stream.as_str()).await
    }

    /// Tenants that have events, with their head positions, in id order after `after`.
    /// Platform work (projection, relay) pages through every tenant with it.
    pub async fn tenant_heads(
        &self,
        after: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<(TenantId, u64)>, StoreError> {
        self.backend.tenant_heads(after, limit).await
    }

    /// Every tenant that has events, with its head position, in id order after `after`: a
    /// thousand tenants are read at a time, so memory stays flat however many there are.
    pub fn every_tenant_head(
        &self,
        after: Option<TenantId>,
    ) -> impl Stream<Item = Result<(TenantId, u64), StoreError>> + Send + 'static {
        let backend = self.backend.clone();
        stream::try_unfold(after, move |after| {
            let backend = backend.clone();
            async move {
                let page = backend.tenant_heads(after, 1_000).await?;
                let Some(last) = page.last().map(|(t, _)| *t) else { return Ok::<_, StoreError>(None) };
                Ok(Some((stream::iter(page.into_iter().map(Ok)), Some(last))))
            }
        })
        .try_flatten()
    }

    /// Destroy the tenant's data key: every copy of its events becomes unreadable for good.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id), err)]
    pub async fn destroy_key(&self, ctx: &TenantContext) -> Result<(), StoreError> {
        self.backend.destroy_key(ctx.tenant_id).await?;
        self.vault.forget(ctx.tenant_id);
        Ok(())
    }

    /// Delete the tenant's whole log: events, streams, idempotency keys and head. The data key
    /// is destroyed first if it was not already, and stays destroyed: the tenant's log can
    /// never start again. Returns the events deleted; running it again deletes nothing.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id), err)]
    pub async fn purge_log(&self, ctx: &TenantContext) -> Result<u64, StoreError> {
        self.destroy_key(ctx).await?;
        self.backend.purge_log(ctx.tenant_id).await
    }

    /// Make deleted rows unrecoverable from the database files where the backend allows it
    /// (SQLite: zeroed pages and a truncated WAL). PostgreSQL keeps dead tuples until VACUUM.
    pub async fn scrub(&self) -> Result<(), StoreError> {
        self.backend.scrub().await
    }

    /// Recompute the hash chain over positions `from..=to` (to the head when `to` is `None`).
    /// Works on ciphertext: it needs no key, so it also checks a shredded tenant's log.
    pub async fn verify_chain(
        &self,
        ctx: &TenantContext,
        from: u64,
        to: Option<u64>,
    ) -> Result<ChainReport, StoreError> {
        let tenant = ctx.tenant_id;
        let broken =
            |position, reason: &str| StoreError::ChainBroken { tenant, position, reason: reason.into() };
        let from = from.max(1);
        let mut prev = if from == 1 {
            GENESIS
        } else {
            let before = self.backend.read_log(tenant, from - 2, 1).await?;
            match before.first() {
                Some(e) if e.position == from - 1 => to_hash(&e.hash),
                _ => return Err(broken(from - 1, "event missing")),
            }
        };
        let mut expected = from;
        let mut events = 0;
        let tenant_bytes = *tenant.as_uuid().as_bytes();
        loop {
            let page = self.backend.read_log(tenant, expected - 1, READ_PAGE).await?;
            let len = page.len();
            for e in page {
                if to.is_some_and(|to| e.position > to) {
                    break;
                }
                if e.position != expected {
                    return Err(broken(expected, "event missing"));
                }
                if e.prev_hash != prev {
                    return Err(broken(e.position, "previous hash does not match"));
                }
                let hash = link_hash(
                    &prev,
                    &ChainLink {
                        tenant_id: &tenant_bytes,
                        position: e.position,
                        stream_id: &e.stream_id,
                        stream_version: e.stream_version,
                        event_id: e.event_id.as_uuid().as_bytes(),
                        event_type: &e.event_type,
                        schema_version: e.schema_version,
                        recorded_at: e.recorded_at,
                        payload: &e.payload,
                        metadata: &e.metadata,
                    },
                );
                if hash[..] != e.hash[..] {
                    return Err(broken(e.position, "content does not match its hash"));
                }
                prev = hash;
                expected += 1;
                events += 1;
            }
            if len == 0 || to.is_some_and(|to| expected > to) {
                break;
            }
        }
        if let Some(to) = to {
            if expected <= to {
                return Err(broken(expected, "event missing"));
            }
        } else if let Some(head) = self.backend.head(tenant).await? {
            if head.position >= expected {
                return Err(broken(expected, "event missing"));
            }
            if head.position > 0 && head.last_hash != prev {
                return Err(broken(head.position, "head hash does not match the last event"));
            }
        }
        Ok(ChainReport { first_position: from, last_position: expected - 1, events, last_hash: prev })
    }
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
