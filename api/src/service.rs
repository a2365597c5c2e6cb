//! Commands: state rebuilt from the streams, `decide`, append at the version decided on.
//! A concurrent change to the same stream is a conflict; the command is decided again on
//! the new state, so limits hold under any concurrency.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Datelike;
use futures::TryStreamExt;
use tenantry_domain::conversation::{self, ConversationCommand, ConversationState, RecordUsage, UsageState};
use tenantry_domain::event::UsageRecorded;
use tenantry_domain::tenant::{self, TenantCommand, TenantState};
use tenantry_domain::{
    ConversationId, Event, EventId, PlanCatalog, Rejection, StreamId, TenantContext, TenantId,
};
use tenantry_store::{
    AppendOutcome, AppendQuota, AppendRequest, EventStore, ExpectedVersion, NewEvent, StoreError,
};

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
}

/// Folded states by (tenant, stream), with the version they stand at. Events never change,
/// so a cached state plus the events after its version is the state now: a command reads
/// only what was appended since the last command on that stream.
#[derive(Debug)]
struct StateCache<S> {
    // Guards only the map; never held across an await.
    map: std::sync::Mutex<HashMap<(TenantId, String), (u64, S)>>,
}

/// Streams kept per cache before it starts afresh (a bound on memory, not an LRU).
const CACHED_STREAMS: usize = 20_000;

impl<S: Clone> StateCache<S> {
    fn new() -> Self {
        Self { map: std::sync::Mutex::new(HashMap::new()) }
    }

    fn get(&self, tenant: TenantId, stream: &StreamId) -> Option<(u64, S)> {
        self.map.lock().ok()?.get(&(tenant, stream.as_str().to_owned())).cloned()
    }

    fn forget(&self, tenant: TenantId) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|(t, _), _| *t != tenant);
        }
    }

    fn put(&self, tenant: TenantId, stream: &StreamId, version: u64, state: &S) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= CACHED_STREAMS {
                map.clear();
            }
            let entry = map.entry((tenant, stream.as_str().to_owned())).or_insert_with(|| (0, state.clone()));
            // Racing commands may fold the same stream; keep the newest.
            if version >= entry.0 {
                *entry = (version, state.clone());
            }
        }
    }
}

#[derive(Debug)]
struct Caches {
    tenants: StateCache<TenantState>,
    conversations: StateCache<ConversationState>,
    usage: StateCache<UsageState>,
}

#[derive(Debug, Clone)]
pub struct Commands {
    store: EventStore,
    plans: PlanCatalog,
    caches: std::sync::Arc<Caches>,
}

impl Commands {
    pub fn new(store: EventStore, plans: PlanCatalog) -> Self {
        Self {
            store,
            plans,
            caches: std::sync::Arc::new(Caches {
                tenants: StateCache::new(),
                conversations: StateCache::new(),
                usage: StateCache::new(),
            }),
        }
    }

    /// Drop every state cached for the tenant (after a purge or an erasure).
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.caches.tenants.forget(tenant);
        self.caches.conversations.forget(tenant);
        self.caches.usage.forget(tenant);
    }

    async fn fold<S: Clone + Send>(
        &self,
        ctx: &TenantContext,
        stream: &StreamId,
        cache: &StateCache<S>,
        initial: impl FnOnce() -> S,
        evolve: fn(S, &Event) -> S,
    ) -> Result<(S, u64), StoreError> {
        let start = cache.get(ctx.tenant_id, stream).unwrap_or_else(|| (0, initial()));
        let (state, version) = self
            .store
            .read_stream(ctx, stream, start.0)
            .try_fold((start.1, start.0), |(state, _), e| async move {
                Ok((evolve(state, &e.event), e.stream_version))
            })
            .await?;
        cache.put(ctx.tenant_id, stream, version, &state);
        Ok((state, version))
    }

    async fn tenant_state(&self, ctx: &TenantContext) -> Result<(TenantState, u64), StoreError> {
        let plans = self.plans;
        self.fold(ctx, &StreamId::tenant(), &self.caches.tenants, || TenantState::new(plans), tenant::evolve)
            .await
    }

    async fn head(&self, ctx: &TenantContext) -> Result<u64, StoreError> {
        Ok(self.store.head(ctx).await?.map_or(0, |h| h.position))
    }

    /// Decide and append, again on fresh state after each lost race.
    async fn run<F, Fut>(&self, ctx: &TenantContext, attempt: F) -> Result<Written, CommandError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<AppendRequest>, CommandError>> + Send,
    {
        for n in 0..MAX_ATTEMPTS {
            let Some(request) = attempt().await? else {
                return Ok(Written { position: self.head(ctx).await?, events: 0 });
            };
            let events = request.event_count();
            match self.store.append(ctx, request).await {
                Ok(AppendOutcome { last_position, deduplicated, .. }) => {
                    if !deduplicated {
                        metrics::counter!("tenantry_events_appended_total").increment(events as u64);
                    }
                    return Ok(Written { position: last_position, events });
                }
                Err(StoreError::Conflict { .. }) => {
                    metrics::counter!("tenantry_command_conflicts_total").increment(1);
                    // Spread the retries of a crowd of writers.
                    let jitter = u64::from(ctx.request_id.as_uuid().as_bytes()[15] % 4);
                    tokio::time::sleep(Duration::from_millis(u64::from(n.min(8)) + jitter)).await;
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
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id), err)]
    pub async fn tenant(
        &self,
        ctx: &TenantContext,
        command: &TenantCommand,
    ) -> Result<Written, CommandError> {
        self.run(ctx, move || async move {
            let (state, version) = self.tenant_state(ctx).await?;
            let events = tenant::decide(ctx, &state, command)?;
            let request = Self::request(StreamId::tenant(), version, &events)?;
            // The platform's own commands, and an erasure the law requires, are never refused
            // for the tenant's usage.
            let exempt = matches!(
                command,
                TenantCommand::CreateTenant(_)
                    | TenantCommand::SuspendTenant { .. }
                    | TenantCommand::ResumeTenant
                    | TenantCommand::EraseUser { .. }
            );
            Ok(request.map(|r| if exempt { r } else { r.with_quota(quota(&state)) }))
        })
        .await
    }

    /// A command on one conversation, decided against the tenant's directory too.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id), err)]
    pub async fn conversation(
        &self,
        ctx: &TenantContext,
        id: ConversationId,
        command: &ConversationCommand,
    ) -> Result<Written, CommandError> {
        let stream = &StreamId::conversation(id);
        self.run(ctx, move || async move {
            let (tenant, _) = self.tenant_state(ctx).await?;
            let (state, version) = self
                .fold(
                    ctx,
                    stream,
                    &self.caches.conversations,
                    ConversationState::default,
                    conversation::evolve,
                )
                .await?;
            let events = conversation::decide(ctx, &tenant, &state, command)?;
            let Some(mut request) = Self::request(stream.clone(), version, &events)? else { return Ok(None) };
            request = request.with_quota(quota(&tenant));
            // A message that carries token usage records it in the month's usage stream in
            // the same append: billed once, and refused past the monthly limit.
            if let Some(Event::MessageAppended(m)) = events.first()
                && let (Some(usage), Some(model)) = (m.usage, m.model.clone())
            {
                let now = chrono::Utc::now();
                let usage_stream = StreamId::usage(now.year(), now.month());
                let (month, usage_version) = self
                    .fold(
                        ctx,
                        &usage_stream,
                        &self.caches.usage,
                        UsageState::default,
                        conversation::evolve_usage,
                    )
                    .await?;
                let record = RecordUsage(UsageRecorded {
                    model,
                    kind: "message".into(),
                    usage,
                    request_id: Some(m.message_id.to_string()),
                    occurred_at: now,
                });
                let usage_events = conversation::decide_usage(ctx, &tenant, &month, &record)?;
                if let Some(extra) = Self::request(usage_stream, usage_version, &usage_events)? {
                    for w in extra.writes {
                        request = request.and(w.stream, w.expected, w.events);
                    }
                }
            }
            Ok(Some(request))
        })
        .await
    }

    /// Usage of the current month, decided against the monthly token limit.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id), err)]
    pub async fn usage(&self, ctx: &TenantContext, command: &RecordUsage) -> Result<Written, CommandError> {
        let at = command.0.occurred_at;
        let stream = &StreamId::usage(at.year(), at.month());
        self.run(ctx, move || async move {
            let (tenant, _) = self.tenant_state(ctx).await?;
            let (month, version) = self
                .fold(ctx, stream, &self.caches.usage, UsageState::default, conversation::evolve_usage)
                .await?;
            let events = conversation::decide_usage(ctx, &tenant, &month, command)?;
            Ok(Self::request(stream.clone(), version, &events)?.map(|r| r.with_quota(quota(&tenant))))
        })
        .await
    }

    /// The tenant as `decide` sees it now.
    pub async fn tenant_now(&self, ctx: &TenantContext) -> Result<TenantState, CommandError> {
        Ok(self.tenant_state(ctx).await?.0)
    }
}
