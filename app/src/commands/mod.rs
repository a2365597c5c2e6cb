//! The one command path: state folded from the streams, `decide`, append at the versions
//! decided on. A concurrent change to any of those streams is a conflict; the command is
//! decided again on the new state, so limits hold under any concurrency.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Datelike;
use futures::TryStreamExt;
use tenantry_domain::command::{ProvisionUser, RecordUsage};
use tenantry_domain::conversation::{self, ConversationCommand, ConversationState, UsageState};
use tenantry_domain::document::{self, DocumentCommand, DocumentState};
use tenantry_domain::slug::{self, SlugState};
use tenantry_domain::tenant::{self, TenantCommand, TenantState};
use tenantry_domain::{
    ApiKeyId, ConversationId, Event, EventId, PlanCatalog, Rejection, StreamId, TenantContext, TenantId,
    UserId,
};
use tenantry_store::{
    AppendOutcome, AppendQuota, AppendRequest, BlobWrite, EventStore, ExpectedVersion, NewEvent, StoreError,
};

mod operators;
mod partners;
mod prices;

pub use prices::{BudgetStanding, PRICES_FRESH_FOR};

/// The tenant's stored-bytes and daily-calls limits, decided by the store with the append.
fn quota(state: &TenantState) -> AppendQuota {
    let limits = state.limits();
    AppendQuota {
        max_stored_bytes: limits.storage_bytes,
        max_calls_per_day: limits.api_calls_per_day,
        day: chrono::Utc::now().timestamp().div_euclid(86_400),
        counts_as_call: true,
    }
}

/// How often a command is decided again after losing a race for its stream.
const MAX_ATTEMPTS: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stream kept changing under the command.
    #[error("the tenant is too busy to decide this command; retry")]
    Contended,
}

/// What a command wrote: the tenant position of its last event (the head when it wrote
/// nothing, as for a repeated command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub position: u64,
    pub events: usize,
    /// The version of the command's own stream after it (its first stream's).
    pub stream_version: u64,
    /// When the events were recorded (Unix milliseconds); 0 when nothing was written.
    pub recorded_at: i64,
}

/// Folded states by (tenant, stream), with the version they stand at. Events never change,
/// so a cached state is the stream's state at its version, and a command decides on it
/// without a read: its append asserts that version for every stream the decision took in,
/// and a stream moved by another node (or missed) is a conflict, read and decided again.
/// A state is shared (`Arc`) and moved on in place after an append, so a stream that grows
/// all month (the usage stream remembers its request ids) is never copied per command.
#[derive(Debug)]
struct StateCache<S> {
    // Guards only the map; never held across an await.
    map: std::sync::Mutex<HashMap<StreamKey, (u64, Arc<S>)>>,
}

/// A stream of a tenant.
type StreamKey = (TenantId, String);

/// Streams kept per cache before it starts afresh (a bound on memory, not an LRU).
const CACHED_STREAMS: usize = 20_000;

impl<S: Clone> StateCache<S> {
    fn new() -> Self {
        Self { map: std::sync::Mutex::new(HashMap::new()) }
    }

    fn get(&self, tenant: TenantId, stream: &StreamId) -> Option<(u64, Arc<S>)> {
        self.map.lock().ok()?.get(&(tenant, stream.as_str().to_owned())).cloned()
    }

    /// The streams of `tenant` held here.
    fn streams_of(&self, tenant: TenantId) -> Vec<String> {
        self.map
            .lock()
            .map(|map| map.keys().filter(|(t, _)| *t == tenant).map(|(_, s)| s.clone()).collect())
            .unwrap_or_default()
    }

    fn forget(&self, tenant: TenantId) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|(t, _), _| *t != tenant);
        }
    }

    fn put(&self, tenant: TenantId, stream: &StreamId, version: u64, state: Arc<S>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= CACHED_STREAMS {
                map.clear();
            }
            let entry = map.entry((tenant, stream.as_str().to_owned())).or_insert_with(|| (0, state.clone()));
            // Racing commands may fold the same stream; keep the newest.
            if version >= entry.0 {
                *entry = (version, state);
            }
        }
    }

    /// After an append of `events` to a stream that stood at `from`: move the cached state
    /// on, in place when no command holds it. A cache that moved elsewhere is left alone.
    fn advance(
        &self,
        tenant: TenantId,
        stream: &StreamId,
        from: u64,
        events: &[Event],
        evolve: fn(S, &Event) -> S,
    ) {
        let Ok(mut map) = self.map.lock() else { return };
        let key = (tenant, stream.as_str().to_owned());
        let Some((version, state)) = map.remove(&key) else { return };
        if version != from {
            map.insert(key, (version, state));
            return;
        }
        let state = events.iter().fold(Arc::unwrap_or_clone(state), evolve);
        map.insert(key, (from + events.len() as u64, Arc::new(state)));
    }
}

#[derive(Debug)]
struct Caches {
    tenants: StateCache<TenantState>,
    conversations: StateCache<ConversationState>,
    usage: StateCache<UsageState>,
    slugs: StateCache<SlugState>,
    operators: StateCache<tenantry_domain::operator::OperatorsState>,
    partners: StateCache<tenantry_domain::partner::PartnerState>,
    documents: StateCache<DocumentState>,
    prices: StateCache<tenantry_domain::price::PriceHistory>,
}

/// How a command reads the streams it decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// The cached state as it is, unread: the append checks it is still current.
    Cached,
    /// The stream read from the cached version to its end.
    Fresh,
    /// As `Cached`, for a stream the command creates: one not cached is taken as new, unread
    /// (its append expects no stream, so one that exists after all is a conflict, read and
    /// decided again).
    CachedOrNew,
}

impl Reading {
    /// How a command reads a stream it creates.
    fn creating(self) -> Self {
        match self {
            Self::Cached => Self::CachedOrNew,
            other => other,
        }
    }
}

/// An append decided on, and the cache moves to make once it is stored.
struct Decision<'a> {
    request: AppendRequest,
    remember: Vec<Box<dyn FnOnce() + Send + 'a>>,
}

impl<'a> Decision<'a> {
    fn new(request: AppendRequest) -> Self {
        Self { request, remember: Vec::new() }
    }

    /// Once stored, move `cache`'s state of `stream` on from `from` by `events`.
    fn then_advance<S: Clone + Send + Sync + 'a>(
        mut self,
        cache: &'a StateCache<S>,
        tenant: TenantId,
        stream: StreamId,
        from: u64,
        events: Vec<Event>,
        evolve: fn(S, &Event) -> S,
    ) -> Self {
        self.remember.push(Box::new(move || cache.advance(tenant, &stream, from, &events, evolve)));
        self
    }
}

#[derive(Debug, Clone)]
pub struct Commands {
    store: EventStore,
    plans: PlanCatalog,
    caches: Arc<Caches>,
    /// When this process last read the price tables. Guards only the time.
    prices_read: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Commands {
    pub fn new(store: EventStore, plans: PlanCatalog) -> Self {
        Self {
            store,
            plans,
            caches: Arc::new(Caches {
                tenants: StateCache::new(),
                conversations: StateCache::new(),
                usage: StateCache::new(),
                slugs: StateCache::new(),
                operators: StateCache::new(),
                partners: StateCache::new(),
                documents: StateCache::new(),
                prices: StateCache::new(),
            }),
            prices_read: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// Drop every state cached for the tenant (after a purge or an erasure).
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.caches.tenants.forget(tenant);
        self.caches.conversations.forget(tenant);
        self.caches.usage.forget(tenant);
        self.caches.documents.forget(tenant);
    }

    /// The state of `stream` and its version: cached as it is, or read on from the cache.
    async fn fold<S: Clone + Send + Sync>(
        &self,
        ctx: &TenantContext,
        stream: &StreamId,
        cache: &StateCache<S>,
        reading: Reading,
        initial: impl FnOnce() -> S,
        evolve: fn(S, &Event) -> S,
    ) -> Result<(Arc<S>, u64), StoreError> {
        let cached = match (reading, cache.get(ctx.tenant_id, stream)) {
            (Reading::Cached | Reading::CachedOrNew, Some((version, state))) => return Ok((state, version)),
            (Reading::CachedOrNew, None) => {
                let state = Arc::new(initial());
                cache.put(ctx.tenant_id, stream, 0, state.clone());
                return Ok((state, 0));
            }
            (_, cached) => cached,
        };
        let (from, start) = cached.unwrap_or_else(|| (0, Arc::new(initial())));
        // Copied only when there is something to apply.
        let (moved, version) = self
            .store
            .read_stream(ctx, stream, from)
            .try_fold((None::<S>, from), |(state, _), e| {
                let state = state.unwrap_or_else(|| start.as_ref().clone());
                async move { Ok((Some(evolve(state, &e.event)), e.stream_version)) }
            })
            .await?;
        let state = moved.map_or(start, Arc::new);
        cache.put(ctx.tenant_id, stream, version, state.clone());
        Ok((state, version))
    }

    /// The tenant's state for a decision: as folded from its stream, with the limit
    /// overrides it inherits from the tenants above it (their states as this process holds
    /// them, read anew when the decision is read anew).
    async fn tenant_state(
        &self,
        ctx: &TenantContext,
        reading: Reading,
    ) -> Result<(Arc<TenantState>, u64), StoreError> {
        let (state, version) = self.tenant_folded(ctx, reading).await?;
        if state.ancestors.is_empty() {
            return Ok((state, version));
        }
        let mut above = Vec::with_capacity(state.ancestors.len());
        let mut settings = tenantry_domain::event::Settings::default();
        // Root first, so each level's settings win over those above it.
        for ancestor in &state.ancestors {
            let (a, _) = self.tenant_folded(&TenantContext::system(*ancestor), reading).await?;
            settings = tenantry_domain::inherit::merge_settings(&settings, &a.settings);
            above.push(a.overrides);
        }
        above.reverse();
        let mut state = Arc::unwrap_or_clone(state);
        state.inherited = tenantry_domain::inherit::inherited_limits(&above);
        state.inherited_settings = settings;
        Ok((Arc::new(state), version))
    }

    async fn tenant_folded(
        &self,
        ctx: &TenantContext,
        reading: Reading,
    ) -> Result<(Arc<TenantState>, u64), StoreError> {
        let plans = self.plans;
        self.fold(
            ctx,
            &StreamId::tenant(),
            &self.caches.tenants,
            reading,
            || TenantState::new(plans),
            tenant::evolve,
        )
        .await
    }

    /// A month's usage (its `usage-YYYY-MM` stream) and the version it stands at.
    async fn usage_month(
        &self,
        ctx: &TenantContext,
        stream: &StreamId,
        reading: Reading,
    ) -> Result<(Arc<UsageState>, u64), StoreError> {
        self.fold(ctx, stream, &self.caches.usage, reading, UsageState::default, conversation::evolve_usage)
            .await
    }

    async fn head(&self, ctx: &TenantContext) -> Result<u64, StoreError> {
        Ok(self.store.head(ctx).await?.map_or(0, |h| h.position))
    }

    /// Decide and append. The first decision is taken on cached states; a refusal or a
    /// no-op taken on them is confirmed on fresh ones, and a lost race is decided again on
    /// fresh states (after a short pause from the second loss on).
    async fn run<'a, F, Fut>(&'a self, ctx: &TenantContext, attempt: F) -> Result<Written, CommandError>
    where
        F: Fn(Reading) -> Fut,
        Fut: Future<Output = Result<Option<Decision<'a>>, CommandError>> + Send,
    {
        let mut reading = Reading::Cached;
        for n in 0..MAX_ATTEMPTS {
            let decided = match attempt(reading).await {
                Ok(None) | Err(CommandError::Rejected(_)) if reading == Reading::Cached => {
                    reading = Reading::Fresh;
                    continue;
                }
                decided => decided?,
            };
            let Some(Decision { request, remember }) = decided else {
                return Ok(Written {
                    position: self.head(ctx).await?,
                    events: 0,
                    stream_version: 0,
                    recorded_at: 0,
                });
            };
            let events = request.event_count();
            let stream_version = request.writes.first().map_or(0, |w| {
                let before = match w.expected {
                    ExpectedVersion::Exact(v) => v,
                    _ => 0,
                };
                before + w.events.len() as u64
            });
            match self.store.append(ctx, request).await {
                Ok(AppendOutcome { last_position, deduplicated, recorded_at, .. }) => {
                    if !deduplicated {
                        metrics::counter!("tenantry_events_appended_total").increment(events as u64);
                        remember.into_iter().for_each(|f| f());
                    }
                    return Ok(Written { position: last_position, events, stream_version, recorded_at });
                }
                // A lost race: for a stream's version, or to store a new person's or
                // conversation's key (sealed again, the request uses the stored one).
                Err(StoreError::Conflict { .. } | StoreError::KeyRace { .. }) => {
                    metrics::counter!("tenantry_command_conflicts_total").increment(1);
                    if reading == Reading::Fresh {
                        // Spread the retries of a crowd of writers.
                        let jitter = u64::from(ctx.request_id.as_uuid().as_bytes()[15] % 4);
                        tokio::time::sleep(Duration::from_millis(u64::from(n.min(8)) + jitter)).await;
                    }
                    reading = Reading::Fresh;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CommandError::Contended)
    }

    fn request(
        stream: StreamId,
        version: u64,
        events: &[Event],
    ) -> Result<Option<AppendRequest>, CommandError> {
        if events.is_empty() {
            return Ok(None);
        }
        let events =
            events.iter().map(|e| NewEvent::new(EventId::new(), e)).collect::<Result<Vec<_>, _>>()?;
        Ok(Some(AppendRequest::to_stream(stream, ExpectedVersion::after(version), events)))
    }

    /// A command on the tenant and its directory (the `tenant` stream).
    #[tracing::instrument(name = "decide", skip_all, fields(tenant_id = %ctx.tenant_id, command = "tenant"), err)]
    pub async fn tenant(
        &self,
        ctx: &TenantContext,
        command: &TenantCommand,
    ) -> Result<Written, CommandError> {
        self.run(ctx, move |reading| async move {
            let (state, version) = self.tenant_state(ctx, reading).await?;
            let events = tenant::decide(ctx, &state, command)?;
            let Some(request) = Self::request(StreamId::tenant(), version, &events)? else { return Ok(None) };
            let request =
                if command.exempt_from_quota() { request } else { request.with_quota(quota(&state)) };
            Ok(Some(Decision::new(request).then_advance(
                &self.caches.tenants,
                ctx.tenant_id,
                StreamId::tenant(),
                version,
                events,
                tenant::evolve,
            )))
        })
        .await
    }

    /// A command on one conversation, decided against the tenant's directory too.
    #[tracing::instrument(name = "decide", skip_all, fields(tenant_id = %ctx.tenant_id, command = "conversation"), err)]
    pub async fn conversation(
        &self,
        ctx: &TenantContext,
        id: ConversationId,
        command: &ConversationCommand,
    ) -> Result<Written, CommandError> {
        let stream = &StreamId::conversation(id);
        self.run(ctx, move |reading| async move {
            let (tenant, tenant_version) = self.tenant_state(ctx, reading).await?;
            let opening = matches!(command, ConversationCommand::Open(_));
            let (state, version) = self
                .fold(
                    ctx,
                    stream,
                    &self.caches.conversations,
                    if opening { reading.creating() } else { reading },
                    ConversationState::default,
                    conversation::evolve,
                )
                .await?;
            let (events, billed) = match command {
                ConversationCommand::AppendMessage(message) if message.usage.is_some() => {
                    // A message that carries token usage records it in the month's usage
                    // stream in the same append: billed once, refused past the monthly limit.
                    let now = chrono::Utc::now();
                    let usage_stream = StreamId::usage(now.year(), now.month());
                    let (month, usage_version) = self.usage_month(ctx, &usage_stream, reading).await?;
                    let prices = self.prices_at(now).await?;
                    let decided = conversation::decide_billed_message(
                        ctx,
                        &tenant,
                        &state,
                        &month,
                        message,
                        now,
                        prices.as_ref(),
                    )?;
                    (decided.message, Some((usage_stream, usage_version, decided.usage)))
                }
                ConversationCommand::Delete(_) => {
                    let events = conversation::decide(ctx, &tenant, &state, command)?;
                    // Shredded once decided, before the event: a delete whose append is lost
                    // (a crash, a race decided again) has still destroyed the content, and a
                    // retry writes the event.
                    self.store.shred_conversation(ctx, id).await?;
                    (events, None)
                }
                _ => (conversation::decide(ctx, &tenant, &state, command)?, None),
            };
            let Some(mut request) = Self::request(stream.clone(), version, &events)? else { return Ok(None) };
            request = request
                .with_quota(quota(&tenant))
                .checking(StreamId::tenant(), ExpectedVersion::after(tenant_version));
            let billed = match billed {
                Some((usage_stream, usage_version, usage_events)) => {
                    if let Some(extra) = Self::request(usage_stream.clone(), usage_version, &usage_events)? {
                        for w in extra.writes {
                            request = request.and(w.stream, w.expected, w.events);
                        }
                    }
                    Some((usage_stream, usage_version, usage_events))
                }
                None => None,
            };
            let mut decision = Decision::new(request);
            if let Some((usage_stream, from, usage_events)) = billed {
                decision = decision.then_advance(
                    &self.caches.usage,
                    ctx.tenant_id,
                    usage_stream,
                    from,
                    usage_events,
                    conversation::evolve_usage,
                );
            }
            Ok(Some(decision.then_advance(
                &self.caches.conversations,
                ctx.tenant_id,
                stream.clone(),
                version,
                events,
                conversation::evolve,
            )))
        })
        .await
    }

    /// A command on one knowledge-base document. The body of a document added is written
    /// beside the log in the same transaction as its event, and counted toward the tenant's
    /// stored bytes with it (exact however many uploads race); a removal deletes it.
    #[tracing::instrument(name = "decide", skip_all, fields(tenant_id = %ctx.tenant_id, command = "document"), err)]
    pub async fn document(
        &self,
        ctx: &TenantContext,
        command: &DocumentCommand,
    ) -> Result<Written, CommandError> {
        let id = match command {
            DocumentCommand::Add(c) => c.document_id,
            DocumentCommand::Remove(id) => *id,
        };
        let stream = &StreamId::document(id);
        self.run(ctx, move |reading| async move {
            let (tenant, tenant_version) = self.tenant_state(ctx, reading).await?;
            let (state, version) = self
                .fold(ctx, stream, &self.caches.documents, reading, DocumentState::default, document::evolve)
                .await?;
            let events = document::decide(ctx, &tenant, &state, command)?;
            let Some(request) = Self::request(stream.clone(), version, &events)? else { return Ok(None) };
            let blob = match command {
                DocumentCommand::Add(c) => {
                    BlobWrite::Put { id: *id.as_uuid(), body: c.body.as_bytes().to_vec() }
                }
                DocumentCommand::Remove(_) => BlobWrite::Delete { id: *id.as_uuid() },
            };
            let request = request
                .with_blob(blob)
                .with_quota(quota(&tenant))
                .checking(StreamId::tenant(), ExpectedVersion::after(tenant_version));
            Ok(Some(Decision::new(request).then_advance(
                &self.caches.documents,
                ctx.tenant_id,
                stream.clone(),
                version,
                events,
                document::evolve,
            )))
        })
        .await
    }

    /// Usage of the current month, decided against the monthly token limit.
    #[tracing::instrument(name = "decide", skip_all, fields(tenant_id = %ctx.tenant_id, command = "usage"), err)]
    pub async fn usage(&self, ctx: &TenantContext, command: &RecordUsage) -> Result<Written, CommandError> {
        let at = command.occurred_at;
        let stream = &StreamId::usage(at.year(), at.month());
        self.run(ctx, move |reading| async move {
            let (tenant, tenant_version) = self.tenant_state(ctx, reading).await?;
            let (month, version) = self.usage_month(ctx, stream, reading).await?;
            let prices = self.prices_at(command.occurred_at).await?;
            let events = conversation::decide_usage(ctx, &tenant, &month, command, prices.as_ref())?;
            let Some(request) = Self::request(stream.clone(), version, &events)? else { return Ok(None) };
            let request = request
                .with_quota(quota(&tenant))
                .checking(StreamId::tenant(), ExpectedVersion::after(tenant_version));
            Ok(Some(Decision::new(request).then_advance(
                &self.caches.usage,
                ctx.tenant_id,
                stream.clone(),
                version,
                events,
                conversation::evolve_usage,
            )))
        })
        .await
    }

    /// Claim `slug` for `tenant` on the platform's log; `SlugTaken` when another holds it.
    #[tracing::instrument(skip_all, err)]
    pub async fn claim_slug(&self, slug: &str, tenant: TenantId) -> Result<Written, CommandError> {
        self.slug(slug, |state| slug::decide_claim(state, slug, tenant)).await
    }

    /// Free `slug` if `tenant` holds it (a purge, or a create that failed after its claim).
    #[tracing::instrument(skip_all, err)]
    pub async fn release_slug(&self, slug: &str, tenant: TenantId) -> Result<Written, CommandError> {
        self.slug(slug, |state| Ok(slug::decide_release(state, tenant))).await
    }

    /// The tenant holding `slug`, from this process's state of its claim stream (read anew
    /// when that shows no holder). A slug freed and claimed again elsewhere may show its old
    /// holder here until read anew: that tenant is purged, so nothing opens through it.
    pub async fn slug_holder(&self, slug: &str) -> Result<Option<TenantId>, CommandError> {
        let ctx = &TenantContext::system(TenantId::PLATFORM);
        let stream = &slug::claim_stream(slug);
        for reading in [Reading::Cached, Reading::Fresh] {
            let (state, _) =
                self.fold(ctx, stream, &self.caches.slugs, reading, SlugState::default, slug::evolve).await?;
            if state.holder.is_some() {
                return Ok(state.holder);
            }
        }
        Ok(None)
    }

    /// A decision on the claim stream of `slug`, in the platform's log.
    async fn slug(
        &self,
        slug: &str,
        decide: impl Fn(&SlugState) -> Result<Vec<Event>, Rejection> + Sync,
    ) -> Result<Written, CommandError> {
        let ctx = &TenantContext::system(TenantId::PLATFORM);
        let stream = &slug::claim_stream(slug);
        let decide = &decide;
        self.run(ctx, move |reading| async move {
            let (state, version) =
                self.fold(ctx, stream, &self.caches.slugs, reading, SlugState::default, slug::evolve).await?;
            let events = decide(&state)?;
            let Some(request) = Self::request(stream.clone(), version, &events)? else { return Ok(None) };
            Ok(Some(Decision::new(request).then_advance(
                &self.caches.slugs,
                ctx.tenant_id,
                stream.clone(),
                version,
                events,
                slug::evolve,
            )))
        })
        .await
    }

    /// Append `event` to a new stream of the platform's log (a partner's first event).
    #[tracing::instrument(skip_all, err)]
    pub async fn platform_first(
        &self,
        ctx: &TenantContext,
        stream: StreamId,
        event: Event,
    ) -> Result<Written, CommandError> {
        let request = AppendRequest::to_stream(
            stream,
            ExpectedVersion::NoStream,
            vec![NewEvent::new(EventId::new(), &event)?],
        );
        let out = self
            .store
            .append(&TenantContext { tenant_id: TenantId::PLATFORM, ..ctx.clone() }, request)
            .await?;
        Ok(Written {
            position: out.last_position,
            events: 1,
            stream_version: 0,
            recorded_at: out.recorded_at,
        })
    }

    /// The audit record of a request refused on the tenant of `ctx` (another tenant's key, a
    /// role that may not act there): an `access.denied` event on the tenant's `audit` stream,
    /// stored **uncharged** (a refusal spends none of its target's limits). A tenant without a
    /// log gets none: `None`.
    pub async fn record_refusal(
        &self,
        ctx: &TenantContext,
        action: &str,
        reason: String,
    ) -> Result<Option<Written>, CommandError> {
        let event = Event::AccessDenied(tenantry_domain::event::AccessDenied {
            action: action.chars().take(300).collect(),
            target: None,
            reason,
        });
        self.audit_uncharged(ctx, event).await
    }

    /// The audit record of a read of the tenant's data from outside it (the platform's
    /// operator, a partner's admin), standing for `reads` requests: a `data.read` event on the
    /// tenant's `audit` stream, uncharged like a refusal. A tenant without a log gets none.
    pub async fn record_read(
        &self,
        ctx: &TenantContext,
        action: &str,
        reads: u64,
    ) -> Result<Option<Written>, CommandError> {
        let event = Event::DataRead(tenantry_domain::event::DataRead {
            action: action.chars().take(300).collect(),
            reads: reads.max(1),
        });
        self.audit_uncharged(ctx, event).await
    }

    async fn audit_uncharged(
        &self,
        ctx: &TenantContext,
        event: Event,
    ) -> Result<Option<Written>, CommandError> {
        if self.store.head(ctx).await?.is_none() {
            return Ok(None);
        }
        let request = AppendRequest::to_stream(
            StreamId::audit(),
            ExpectedVersion::Any,
            vec![NewEvent::new(EventId::new(), &event)?],
        )
        .uncharged();
        let out = self.store.append(ctx, request).await?;
        Ok(Some(Written {
            position: out.last_position,
            events: 1,
            stream_version: 0,
            recorded_at: out.recorded_at,
        }))
    }

    /// Whether this process knows `key` (or the user it acts as) to be retired: revoked,
    /// removed or erased, or the presented secret (checked by `opens` against a stored
    /// hash) replaced by a rotation and past its grace. Read from the states this process holds,
    /// never the read models, so a retirement answered here holds from that moment on,
    /// whatever a projector does. `false` when the tenant is not held here.
    pub fn retired(
        &self,
        tenant: TenantId,
        key: ApiKeyId,
        user: Option<UserId>,
        opens: impl Fn(&[u8]) -> bool,
    ) -> bool {
        let Some((_, state)) = self.caches.tenants.get(tenant, &StreamId::tenant()) else { return false };
        if user.and_then(|u| state.users.get(&u)).is_some_and(|u| u.removed) {
            return true;
        }
        state
            .api_keys
            .get(&key)
            .is_some_and(|k| k.revoked || !k.hashes_at(chrono::Utc::now()).into_iter().any(&opens))
    }

    /// The user an identity provider's subject is in the tenant of `ctx`: found in the
    /// tenant's state, or provisioned (one `user.added`) on the subject's first token, with
    /// the position of that write. A subject whose user was removed or erased is refused
    /// with [`Rejection::IdentityRetired`].
    pub async fn identity_user(
        &self,
        ctx: &TenantContext,
        command: ProvisionUser,
    ) -> Result<(UserId, Option<u64>), CommandError> {
        let known = |state: &TenantState| match state.identity_user(&command.digest) {
            Some((user, entry)) if entry.removed => Some(Err(Rejection::IdentityRetired(user).into())),
            Some((user, _)) => Some(Ok(user)),
            None => None,
        };
        let (state, _) = self.tenant_state(ctx, Reading::Cached).await?;
        if let Some(found) = known(&state) {
            return found.map(|user| (user, None));
        }
        let written = self.tenant(ctx, &TenantCommand::ProvisionUser(command.clone())).await?;
        let (state, _) = self.tenant_state(ctx, Reading::Fresh).await?;
        let user = known(&state).unwrap_or(Err(CommandError::Contended))?;
        Ok((user, (written.events > 0).then_some(written.position)))
    }

    /// Read the tenant's stream on from what this process holds, so [`Commands::retired`]
    /// knows of a change another process made. A tenant not held here is left alone.
    pub async fn refresh_tenant(&self, tenant: TenantId) -> Result<(), CommandError> {
        if tenant == TenantId::PLATFORM {
            self.refresh_operators().await?;
            return self.refresh_partners().await;
        }
        if self.caches.tenants.get(tenant, &StreamId::tenant()).is_none() {
            return Ok(());
        }
        self.tenant_state(&TenantContext::system(tenant), Reading::Fresh).await?;
        Ok(())
    }

    /// The tenant as this process holds it (read once when not held). What never changes
    /// after creation (its ancestors, its partner) is right in it whatever other processes do.
    pub async fn tenant_known(&self, tenant: TenantId) -> Result<Arc<TenantState>, CommandError> {
        Ok(self.tenant_state(&TenantContext::system(tenant), Reading::Cached).await?.0)
    }

    /// The tenant as `decide` sees it now, read to the end of its stream.
    /// The version of the tenant's own stream (its lifecycle and directory) as this process
    /// last saw it, without reading: `None` when it holds none. It moves with every change
    /// this process makes to the directory.
    pub fn tenant_version_seen(&self, tenant: TenantId) -> Option<u64> {
        self.caches.tenants.get(tenant, &StreamId::tenant()).map(|(version, _)| version)
    }

    pub async fn tenant_now(&self, ctx: &TenantContext) -> Result<TenantState, CommandError> {
        Ok(self.tenant_state(ctx, Reading::Fresh).await?.0.as_ref().clone())
    }
}
