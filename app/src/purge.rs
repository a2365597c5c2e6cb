//! Tenant purge: the GDPR erasure of a whole tenant, as a recorded state machine.
//!
//! Steps, each idempotent, each recorded in `tenant_purges` before the next starts:
//! 1. `requested`: the row exists; nothing deleted yet.
//! 2. `key_destroyed`: the tenant's data key is gone (crypto-shredding): every copy of its
//!    events, wherever it lies (backups, replicas, broker), is unreadable from here on.
//! 3. `log_deleted`: events, streams, idempotency keys and the head are deleted; a trigger
//!    refuses to start the log again.
//! 4. `read_models_deleted`: every read-model row, checkpoint and stall of the tenant.
//! 5. `broker_purged`: the tenant's messages in JetStream (where a broker is configured) and
//!    its relay position.
//! 6. `done`: a `tenant.purged` tombstone (ids, who, when, counts; no personal data) is in
//!    the platform log, and the database files are scrubbed where the backend allows.
//!
//! A purge killed at any step resumes from the recorded one ([`Purger::resume_all`] runs at
//! every start); purging a purged tenant reports it as done.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use tenantry_domain::event::TenantPurged;
use tenantry_domain::{Event, EventId, StreamId, TenantContext, TenantId};
use tenantry_projections::Projections;
use tenantry_projections::purges::{self, Recorded};
use tenantry_store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, StoreError};

use crate::Commands;

/// Where a purge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PurgeStep {
    Requested,
    KeyDestroyed,
    LogDeleted,
    ReadModelsDeleted,
    BrokerPurged,
    Done,
}

impl PurgeStep {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::KeyDestroyed => "key_destroyed",
            Self::LogDeleted => "log_deleted",
            Self::ReadModelsDeleted => "read_models_deleted",
            Self::BrokerPurged => "broker_purged",
            Self::Done => "done",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Requested,
            Self::KeyDestroyed,
            Self::LogDeleted,
            Self::ReadModelsDeleted,
            Self::BrokerPurged,
            Self::Done,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The recorded state of one tenant's purge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    pub tenant_id: TenantId,
    #[serde(serialize_with = "step_str")]
    pub step: PurgeStep,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub events_deleted: u64,
    pub rows_deleted: u64,
    pub finished_at: Option<DateTime<Utc>>,
}

fn step_str<S: serde::Serializer>(step: &PurgeStep, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(step.as_str())
}

/// The broker a tenant's messages are published to, as the purge needs it: delete every
/// message of the tenant, answering how many went.
#[async_trait::async_trait]
pub trait BrokerPurge: Send + Sync + std::fmt::Debug {
    async fn purge_tenant(&self, tenant: TenantId) -> Result<u64, String>;
}

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("tenant {0} does not exist")]
    UnknownTenant(TenantId),
    #[error("the platform log cannot be purged")]
    Platform,
    /// The tenant has this many tenants below it, and the purge was not asked to cascade.
    #[error("the tenant has {0} tenants below it")]
    HasChildren(usize),
    /// The tenant is under a legal hold: nothing of it is deleted until it is released.
    #[error("the tenant is under a legal hold")]
    LegalHold,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] tenantry_projections::ProjectionError),
    #[error(transparent)]
    Command(#[from] crate::CommandError),
    /// The broker could not be reached or refused; the purge resumes at this step.
    #[error("broker: {0}")]
    Broker(String),
    #[error("purge record of tenant {0} is unreadable: {1}")]
    Record(TenantId, String),
}

impl From<sqlx::Error> for PurgeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Projection(e.into())
    }
}

/// Runs purges. Cheap to clone; one per process.
#[derive(Debug, Clone)]
pub struct Purger {
    store: EventStore,
    projections: Projections,
    commands: Option<Commands>,
    broker: Option<Arc<dyn BrokerPurge>>,
    // Tenants being purged by this process: a second request does not start a second run.
    running: Arc<Mutex<HashSet<TenantId>>>,
}

fn ms(at: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(at).single().unwrap_or_default()
}

impl Purger {
    /// `commands`, when given, has its cached states of a purged tenant dropped; `broker`,
    /// when given, has the tenant's messages deleted.
    pub fn new(
        projections: Projections,
        commands: Option<Commands>,
        broker: Option<Arc<dyn BrokerPurge>>,
    ) -> Self {
        Self {
            store: projections.store().clone(),
            projections,
            commands,
            broker,
            running: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The recorded state of the tenant's purge, if one was ever requested.
    pub async fn status(&self, tenant: TenantId) -> Result<Option<PurgeReport>, PurgeError> {
        let Some(r) = purges::find(self.projections.db(), tenant).await? else { return Ok(None) };
        Ok(Some(PurgeReport {
            tenant_id: tenant,
            step: PurgeStep::parse(&r.step).ok_or_else(|| PurgeError::Record(tenant, r.step.clone()))?,
            requested_by: r.requested_by,
            requested_at: ms(r.requested_at),
            events_deleted: r.events_deleted,
            rows_deleted: r.rows_deleted,
            finished_at: r.finished_at.map(ms),
        }))
    }

    /// Record a purge request (once: a second request returns the first record). An
    /// unknown tenant is [`PurgeError::UnknownTenant`].
    pub async fn request(&self, by: &TenantContext, tenant: TenantId) -> Result<PurgeReport, PurgeError> {
        if tenant == TenantId::PLATFORM {
            return Err(PurgeError::Platform);
        }
        if let Some(report) = self.status(tenant).await? {
            return Ok(report);
        }
        if self.store.head(&TenantContext::system(tenant)).await?.is_none() {
            return Err(PurgeError::UnknownTenant(tenant));
        }
        // Decided on the tenant's own stream, as it stands now.
        let state = futures::TryStreamExt::try_fold(
            self.store.read_stream(&TenantContext::system(tenant), &StreamId::tenant(), 0),
            tenantry_domain::tenant::TenantState::new(tenantry_domain::PlanCatalog::default()),
            |state, e| async move { Ok(tenantry_domain::tenant::evolve(state, &e.event)) },
        )
        .await?;
        if state.legal_hold {
            return Err(PurgeError::LegalHold);
        }
        let at = Utc::now().timestamp_millis();
        purges::request(
            self.projections.db(),
            tenant,
            &by.actor.to_string(),
            at,
            PurgeStep::Requested.as_str(),
        )
        .await?;
        self.status(tenant).await?.ok_or_else(|| PurgeError::Record(tenant, "missing".into()))
    }

    async fn advance(
        &self,
        conn: &mut sqlx::AnyConnection,
        tenant: TenantId,
        step: PurgeStep,
        counts: Option<(&str, u64)>,
    ) -> Result<(), PurgeError> {
        let recorded = match counts {
            Some(("events_deleted", n)) => Recorded::EventsDeleted(n),
            Some((_, n)) => Recorded::RowsDeleted(n),
            None if step == PurgeStep::Done => Recorded::FinishedAt(Utc::now().timestamp_millis()),
            None => Recorded::Nothing,
        };
        purges::advance(conn, tenant, step.as_str(), recorded).await?;
        Ok(())
    }

    async fn advance_now(
        &self,
        tenant: TenantId,
        step: PurgeStep,
        counts: Option<(&str, u64)>,
    ) -> Result<(), PurgeError> {
        let mut conn = self.projections.db().pool().acquire().await?;
        self.advance(&mut conn, tenant, step, counts).await
    }

    /// Carry a requested purge through to the end, from whatever step it stands at.
    /// `progress` hears each step as it completes.
    pub async fn run(
        &self,
        tenant: TenantId,
        progress: &(dyn Fn(&PurgeReport) + Send + Sync),
    ) -> Result<PurgeReport, PurgeError> {
        let ctx = TenantContext::system(tenant);
        loop {
            let report = self.status(tenant).await?.ok_or(PurgeError::UnknownTenant(tenant))?;
            progress(&report);
            match report.step {
                PurgeStep::Requested => {
                    // Positions have no gaps: the head is the count of events to delete,
                    // recorded before any is, so a resumed purge still reports it.
                    let events = self.store.head(&ctx).await?.map_or(0, |h| h.position);
                    // The slug is free again; read while the log can still be read.
                    if let Some(slug) = self.slug(&ctx).await? {
                        let commands = self.commands.clone().unwrap_or_else(|| {
                            Commands::new(self.store.clone(), tenantry_domain::PlanCatalog::default())
                        });
                        commands.release_slug(&slug, tenant).await?;
                    }
                    self.store.destroy_key(&ctx).await?;
                    if let Some(commands) = &self.commands {
                        commands.forget_tenant(tenant);
                    }
                    let events = events.max(report.events_deleted);
                    self.advance_now(tenant, PurgeStep::KeyDestroyed, Some(("events_deleted", events)))
                        .await?;
                }
                PurgeStep::KeyDestroyed => {
                    self.store.purge_log(&ctx).await?;
                    self.advance_now(tenant, PurgeStep::LogDeleted, None).await?;
                }
                PurgeStep::LogDeleted => {
                    // The rows and the step move in one transaction: the count is never lost.
                    let (_turn, mut tx) = self.projections.db().begin_write().await?;
                    let deleted = self.projections.purge_tenant(&mut tx, tenant).await?;
                    self.advance(
                        &mut tx,
                        tenant,
                        PurgeStep::ReadModelsDeleted,
                        Some(("rows_deleted", deleted)),
                    )
                    .await?;
                    tx.commit().await?;
                }
                PurgeStep::ReadModelsDeleted => {
                    if let Some(broker) = &self.broker {
                        let purged = broker
                            .purge_tenant(tenant)
                            .await
                            .map_err(|e| PurgeError::Broker(e.to_string()))?;
                        tracing::info!(tenant_id = %tenant, messages = purged, "purged from the broker");
                    }
                    purges::forget_relay_position(self.projections.db(), tenant).await?;
                    tenantry_projections::models::webhooks::forget_tenant(self.projections.db(), tenant)
                        .await?;
                    // Kept answers to idempotency keys may hold the tenant's data.
                    self.store.idempotency().forget_tenant(tenant).await?;
                    self.advance_now(tenant, PurgeStep::BrokerPurged, None).await?;
                }
                PurgeStep::BrokerPurged => {
                    self.tombstone(&report).await?;
                    self.store.scrub().await?;
                    self.advance_now(tenant, PurgeStep::Done, None).await?;
                }
                PurgeStep::Done => return Ok(report),
            }
        }
    }

    /// The tenant's slug, as the command line asks it typed back before a purge (`None`
    /// when there is no readable log: unknown, or purged already).
    pub async fn slug_of(&self, tenant: TenantId) -> Result<Option<String>, PurgeError> {
        self.slug(&TenantContext::system(tenant)).await
    }

    /// The tenant's slug, from its first event (`None` once the log is unreadable).
    async fn slug(&self, ctx: &TenantContext) -> Result<Option<String>, PurgeError> {
        use futures::TryStreamExt;
        let first = self.store.read_stream(ctx, &StreamId::tenant(), 0).try_next().await;
        Ok(match first {
            Ok(Some(e)) => match e.event {
                Event::TenantCreated(c) => Some(c.slug),
                _ => None,
            },
            Ok(None) | Err(StoreError::KeyDestroyed { .. }) => None,
            Err(e) => return Err(e.into()),
        })
    }

    /// The `tenant.purged` event in the platform log; idempotent on the tenant, so a purge
    /// resumed after writing it writes nothing twice.
    async fn tombstone(&self, report: &PurgeReport) -> Result<(), PurgeError> {
        let event = Event::TenantPurged(TenantPurged {
            tenant_id: report.tenant_id,
            requested_by: report.requested_by.clone(),
            requested_at: report.requested_at,
            events_deleted: report.events_deleted,
            rows_deleted: report.rows_deleted,
        });
        let stream: StreamId =
            "purges".parse().map_err(|e| PurgeError::Record(report.tenant_id, format!("{e}")))?;
        let request = AppendRequest::to_stream(
            stream,
            ExpectedVersion::Any,
            vec![NewEvent::new(EventId::new(), &event)?],
        )
        .with_idempotency_key(format!("purge:{}", report.tenant_id));
        self.store.append(&TenantContext::system(TenantId::PLATFORM), request).await?;
        Ok(())
    }

    /// Request and run a purge, unless this process is running it already. Returns the
    /// record as it stood when the call started.
    pub async fn start(&self, by: &TenantContext, tenant: TenantId) -> Result<PurgeReport, PurgeError> {
        let report = self.request(by, tenant).await?;
        if report.step != PurgeStep::Done {
            self.spawn(tenant);
        }
        Ok(report)
    }

    /// Purge a tenant and, with `cascade`, every tenant below it, each on its own (requested,
    /// run in the background, resumed after a restart like any purge). Without `cascade`, a
    /// tenant with tenants below it is refused. Returns the tenant's record and how many
    /// tenants below it were asked to go.
    pub async fn start_tree(
        &self,
        by: &TenantContext,
        tenant: TenantId,
        cascade: bool,
    ) -> Result<(PurgeReport, usize), PurgeError> {
        let below =
            tenantry_projections::models::directory::descendants(self.projections.db(), tenant).await?;
        if !below.is_empty() && !cascade {
            return Err(PurgeError::HasChildren(below.len()));
        }
        for child in &below {
            match self.start(by, *child).await {
                // Gone already (purged on its own meanwhile).
                Ok(_) | Err(PurgeError::UnknownTenant(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((self.start(by, tenant).await?, below.len()))
    }

    fn spawn(&self, tenant: TenantId) {
        let claimed = self.running.lock().map(|mut r| r.insert(tenant)).unwrap_or(false);
        if !claimed {
            return;
        }
        let purger = self.clone();
        tokio::spawn(async move {
            let log =
                |r: &PurgeReport| tracing::info!(tenant_id = %r.tenant_id, step = r.step.as_str(), "purge");
            if let Err(e) = purger.run(tenant, &log).await {
                tracing::error!(tenant_id = %tenant, error = %e, "purge stopped; it resumes on the next start");
            }
            if let Ok(mut running) = purger.running.lock() {
                running.remove(&tenant);
            }
        });
    }

    /// Resume every purge left unfinished by an earlier process, in the background.
    pub async fn resume_all(&self) -> Result<usize, PurgeError> {
        let mut resumed = 0;
        for tenant in purges::unfinished(self.projections.db(), PurgeStep::Done.as_str()).await? {
            tracing::info!(tenant_id = %tenant, "resuming an unfinished purge");
            self.spawn(tenant);
            resumed += 1;
        }
        Ok(resumed)
    }
}
