//! Reading a tenant's log back: pages, streams, heads, decoded and opened.

use super::*;

impl EventStore {
    pub(super) fn decode(
        &self,
        tenant: TenantId,
        key: &DataKey,
        raw: RawEvent,
    ) -> Result<RecordedEvent, StoreError> {
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

    pub(super) async fn decode_page(
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
    pub(super) fn paged<F, Fut>(
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
}
