//! Group commit: appends made at the same time, of any tenants, written in one transaction
//! with one commit, each answered with its own outcome once that commit is durable.
//!
//! One task takes the queued appends and starts a commit of them; up to
//! [`GroupCommit::max_in_flight`] commits run at once. A lone append is committed at once
//! (there is nothing to wait for); under load the appends that arrive while the commits in
//! flight run make up the next batch, which is what makes batches grow with load. With a
//! [`GroupCommit::window`], a batch started while others are in flight also waits that long
//! for company (never when the store is idle).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tenantry_domain::TenantId;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::backend::{Attempt, Backend, SealedBatch};
use crate::error::StoreError;

/// How appends are grouped into commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// How long a batch started under load waits for more appends (zero: it takes what is
    /// queued and goes).
    pub window: Duration,
    /// Most appends in one transaction.
    pub max_batch: usize,
    /// Most commits running at once (each holds a connection).
    pub max_in_flight: usize,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self { window: Duration::ZERO, max_batch: 256, max_in_flight: 4 }
    }
}

/// An append waiting for its commit.
struct Pending {
    tenant: TenantId,
    batch: Arc<SealedBatch>,
    answer: oneshot::Sender<Result<Attempt, StoreError>>,
}

/// How many commits the group commit made, and how many appends they held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub commits: u64,
    pub appends: u64,
    /// Appends in the largest batch.
    pub largest: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    appends: AtomicU64,
    largest: AtomicU64,
}

/// The queue in front of the committing task.
pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<Pending>,
    counters: Arc<Counters>,
    pub(crate) settings: GroupCommit,
}

impl Committer {
    /// Start the committing task on the current Tokio runtime; `None` outside one.
    pub(crate) fn start(backend: Arc<dyn Backend>, settings: GroupCommit) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, pending) = mpsc::unbounded_channel();
        let settings = GroupCommit {
            max_batch: settings.max_batch.max(1),
            max_in_flight: settings.max_in_flight.max(1),
            ..settings
        };
        let counters = Arc::new(Counters::default());
        runtime.spawn(run(backend, pending, settings, counters.clone()));
        Some(Self { queue, counters, settings })
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            appends: self.counters.appends.load(Ordering::Relaxed),
            largest: self.counters.largest.load(Ordering::Relaxed),
        }
    }

    /// Append through the next commit; `None` when the committing task is gone (its runtime
    /// shut down), so the caller appends on its own: an append the task did commit before it
    /// went is then found stored by its event ids.
    pub(crate) async fn append(
        &self,
        tenant: TenantId,
        batch: Arc<SealedBatch>,
    ) -> Option<Result<Attempt, StoreError>> {
        let (answer, answered) = oneshot::channel();
        self.queue.send(Pending { tenant, batch, answer }).ok()?;
        answered.await.ok()
    }
}

async fn run(
    backend: Arc<dyn Backend>,
    mut queue: mpsc::UnboundedReceiver<Pending>,
    settings: GroupCommit,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_in_flight));
    while let Some(first) = queue.recv().await {
        // Wait for a free slot: what arrives meanwhile joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let loaded = slots.available_permits() + 1 < settings.max_in_flight;
        let deadline = tokio::time::Instant::now() + settings.window;
        let mut group = vec![first];
        while group.len() < settings.max_batch {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) if loaded && !settings.window.is_zero() => {
                    match tokio::time::timeout_at(deadline, queue.recv()).await {
                        Ok(Some(next)) => group.push(next),
                        _ => break,
                    }
                }
                Err(_) => break,
            }
        }
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters.appends.fetch_add(group.len() as u64, Ordering::Relaxed);
        counters.largest.fetch_max(group.len() as u64, Ordering::Relaxed);
        let backend = backend.clone();
        tokio::spawn(async move {
            commit(backend.as_ref(), group).await;
            drop(slot);
        });
    }
}

/// Commit one batch and answer each of its appends.
async fn commit(backend: &dyn Backend, group: Vec<Pending>) {
    let requests: Vec<(TenantId, &SealedBatch)> =
        group.iter().map(|p| (p.tenant, p.batch.as_ref())).collect();
    let outcomes = append_many_or_each(backend, &requests).await;
    tracing::trace!(appends = group.len(), "group committed");
    for (pending, outcome) in group.into_iter().zip(outcomes) {
        let _ = pending.answer.send(outcome);
    }
}

/// The appends in one transaction; when that transaction as a whole fails (a lost
/// connection, a deadlock with another process, an append the batch could not decide), each
/// append alone, so one cannot fail the others. One the failed transaction did store after
/// all is found by its event ids.
pub(crate) async fn append_many_or_each(
    backend: &dyn Backend,
    requests: &[(TenantId, &SealedBatch)],
) -> Vec<Result<Attempt, StoreError>> {
    match backend.append_many(requests).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::warn!(error = %e, appends = requests.len(), "group commit failed; appending one by one");
            let mut outcomes = Vec::with_capacity(requests.len());
            for (tenant, batch) in requests {
                outcomes.push(backend.append(*tenant, batch).await);
            }
            outcomes
        }
    }
}
