//! The projector runtime: each projector consumes each tenant's log in position order and
//! writes its rows and its checkpoint in one transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use sqlx::{AnyConnection, Row};
use tenantry_domain::{TenantContext, TenantId};
use tenantry_store::{EventStore, RecordedEvent, StoreError};
use tokio::sync::broadcast::error::RecvError;

use crate::db::{ReadDb, Val, exec};
use crate::error::ProjectionError;

/// Events applied per transaction.
mod catch_up;
mod rebuild;

pub const BATCH: u32 = 1_000;
/// Tenants caught up in one transaction by [`Projections::catch_up_many`].
const TOGETHER: usize = 256;
/// How often the live runner looks at every tenant even when nothing woke it.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// A read model fed by tenant logs.
///
/// `apply` writes inside the transaction it is handed; the runtime writes the checkpoint in
/// that same transaction, so a page of events takes effect exactly once or not at all.
///
/// ```
/// use async_trait::async_trait;
/// use sqlx::AnyConnection;
/// use tenantry_projections::{ProjectionError, Projector};
/// use tenantry_store::RecordedEvent;
///
/// /// Counts nothing, remembers nothing: the smallest projector.
/// struct Nothing;
///
/// #[async_trait]
/// impl Projector for Nothing {
///     fn name(&self) -> &'static str {
///         "nothing"
///     }
///     async fn apply(&self, _: &mut AnyConnection, _: &str, _: &[RecordedEvent]) -> Result<(), ProjectionError> {
///         Ok(())
///     }
///     async fn clear(&self, _: &mut AnyConnection, _: &str) -> Result<u64, ProjectionError> {
///         Ok(0)
///     }
/// }
/// ```
#[async_trait]
pub trait Projector: Send + Sync + 'static {
    /// The checkpoint key. Persisted: never renamed.
    fn name(&self) -> &'static str;

    /// Apply consecutive events of one tenant (`tenant` is its id as text), in order.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError>;

    /// Apply pages of several tenants (each in position order, past its checkpoint) in the
    /// transaction it is handed. One tenant after another unless a projector writes them in
    /// fewer statements.
    async fn apply_many(
        &self,
        conn: &mut AnyConnection,
        pages: &[(&str, &[RecordedEvent])],
    ) -> Result<(), ProjectionError> {
        for (tenant, events) in pages {
            self.apply(conn, tenant, events).await?;
        }
        Ok(())
    }

    /// Delete every row this projector holds for the tenant; returns the rows deleted.
    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError>;
}

/// One projector's standing, for `tenantry status` and `GET /v1/projections`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectorStatus {
    pub projector: String,
    pub tenants: u64,
    pub tenants_behind: u64,
    pub lag_events: u64,
    pub stalled: Vec<Stall>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stall {
    pub tenant: String,
    pub position: u64,
    pub reason: String,
}

/// How a joint catch-up ended.
enum Together {
    Done(u64),
    /// A checkpoint moved under us; the events applied so far.
    Raced(u64),
}

/// Progress of a long job, reported as it goes.
pub trait Progress: Send + Sync {
    /// A new phase with a known amount of work.
    fn start(&self, label: &str, total: u64);
    fn advance(&self, done: u64);
    fn finish(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// The projectors of one deployment over one store.
#[derive(Clone)]
pub struct Projections {
    store: EventStore,
    db: ReadDb,
    projectors: Arc<Vec<Arc<dyn Projector>>>,
    /// Bumped after every commit of this process, so waiters wake at once.
    applied: Arc<tokio::sync::watch::Sender<u64>>,
    /// Per tenant, the position at which this process last saw every projector standing
    /// together, none stalled: a hint that spares the checkpoint and stall reads of a
    /// catch-up. The conditional checkpoint update stays the judge; a stale hint is a race.
    /// Guards only the map; never held across an await.
    together: Arc<std::sync::Mutex<HashMap<TenantId, u64>>>,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.projectors.iter().map(|p| p.name()).collect();
        f.debug_struct("Projections").field("projectors", &names).finish_non_exhaustive()
    }
}

fn tenant_key(tenant: TenantId) -> String {
    tenant.to_string()
}

/// Errors that stop one tenant for good (until rebuilt), not the runner.
fn is_tenant_fault(err: &StoreError) -> bool {
    matches!(err, StoreError::Codec { .. } | StoreError::KeyDestroyed { .. } | StoreError::Tampered { .. })
}

/// Whether applying a tenant's events failed on what those events hold (a value the
/// database refuses: SQLSTATE class 22, data exceptions such as an invalid byte sequence or
/// a numeric overflow; a constraint the rows break; a stored value that does not parse)
/// rather than on the database being unwell. Such a failure repeats on every attempt, so it
/// stalls that projector for that tenant instead of every pass for everyone.
fn is_data_fault(err: &ProjectionError) -> bool {
    match err {
        ProjectionError::Database(sqlx::Error::Database(db)) => {
            db.code().is_some_and(|c| c.starts_with("22"))
                || !matches!(db.kind(), sqlx::error::ErrorKind::Other)
        }
        ProjectionError::Malformed(_) => true,
        _ => false,
    }
}

impl Projections {
    pub fn new(store: EventStore, db: ReadDb, projectors: Vec<Arc<dyn Projector>>) -> Self {
        Self {
            db: db.with_store(store.clone()),
            store,
            projectors: Arc::new(projectors),
            applied: Arc::new(tokio::sync::watch::channel(0).0),
            together: Default::default(),
        }
    }

    fn hint(&self, tenant: TenantId) -> Option<u64> {
        self.together.lock().ok()?.get(&tenant).copied()
    }

    /// Remember (or, with `None`, forget) where every projector stands for the tenant.
    fn set_hint(&self, tenant: TenantId, at: Option<u64>) {
        if let Ok(mut map) = self.together.lock() {
            match at {
                Some(at) => {
                    // A bound on memory: a cleared map only costs reads.
                    if map.len() >= 100_000 {
                        map.clear();
                    }
                    map.insert(tenant, at);
                }
                None => {
                    map.remove(&tenant);
                }
            }
        }
    }

    pub fn db(&self) -> &ReadDb {
        &self.db
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.projectors.iter().map(|p| p.name()).collect()
    }

    /// The projector named `name`.
    pub fn find(&self, name: &str) -> Result<Arc<dyn Projector>, ProjectionError> {
        self.projectors
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| ProjectionError::UnknownProjection(name.chars().take(64).collect()))
    }

    /// The position a projector has applied for a tenant (0 when none).
    pub async fn checkpoint(&self, projector: &str, tenant: TenantId) -> Result<u64, ProjectionError> {
        let row = sqlx::query(
            "SELECT position FROM projection_checkpoints WHERE tenant_id = $1 AND projector = $2",
        )
        .bind(tenant_key(tenant))
        .bind(projector)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map_or(Ok(0), |r| r.try_get::<i64, _>(0))? as u64)
    }

    async fn stall(&self, projector: &str, tenant: TenantId) -> Result<Option<Stall>, ProjectionError> {
        let row = sqlx::query(
            "SELECT position, reason FROM projection_stalls WHERE tenant_id = $1 AND projector = $2",
        )
        .bind(tenant_key(tenant))
        .bind(projector)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(match row {
            Some(r) => Some(Stall {
                tenant: tenant_key(tenant),
                position: r.try_get::<i64, _>(0)? as u64,
                reason: r.try_get(1)?,
            }),
            None => None,
        })
    }

    async fn record_stall(
        &self,
        projector: &str,
        tenant: TenantId,
        position: u64,
        reason: String,
    ) -> Result<ProjectionError, ProjectionError> {
        tracing::error!(projector, %tenant, position, reason, "projection stalled for this tenant");
        let mut conn = self.db.pool().acquire().await?;
        exec(
            &mut conn,
            "INSERT INTO projection_stalls (tenant_id, projector, position, reason, since) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, projector) DO UPDATE SET position = excluded.position, reason = excluded.reason",
            vec![
                tenant_key(tenant).into(),
                projector.into(),
                position.into(),
                reason.clone().into(),
                chrono::Utc::now().timestamp_millis().into(),
            ],
        )
        .await?;
        Ok(ProjectionError::Stalled { projector: projector.to_owned(), tenant, position, reason })
    }
}
