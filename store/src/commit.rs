//! Group commit: appends made at the same time, of any tenants, written in one transaction
//! with one commit, each answered with its own outcome once that commit is durable.
//!
//! Up to [`GroupCommit::max_in_flight`] commits run at once. An append that finds a slot free
//! and nobody waiting commits itself at once, on its own task, through the backend's single
//! append (a lone append waits for nothing and hops to no other task). One that finds every
//! slot taken waits in the queue; a
//! commit that ends with appends queued hands its slot to a task that commits them all (up to
//! [`GroupCommit::max_batch`]) in one transaction, and again while any are queued. So batches
//! are what arrived while the commits in flight ran: they grow with load and never wait at low
//! load. With a [`GroupCommit::window`], a queued batch also waits that long for company.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenantry_domain::TenantId;
use tokio::sync::oneshot;

use crate::backend::{Attempt, Backend, SealedBatch};
use crate::error::StoreError;

/// How appends are grouped into commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// How long a queued batch waits for more appends (zero: it takes what is queued and
    /// goes). Never waited by an append that finds a free slot.
    pub window: Duration,
    /// Most appends in one transaction.
    pub max_batch: usize,
    /// Most commits running at once (each holds a connection).
    pub max_in_flight: usize,
}

impl Default for GroupCommit {
    /// PostgreSQL's: 2 commits at once, so that while one waits on its round trips and its
    /// flush the next batch gathers. More in flight made smaller batches, each costing the
    /// server its fixed statements: the store bench measured 64 appenders at 1.2-1.5x raw
    /// PostgreSQL's commit rate with 2, 1.1x with 4 and 0.75x with 8.
    fn default() -> Self {
        Self { window: Duration::ZERO, max_batch: 256, max_in_flight: 2 }
    }
}

/// How many commits the group commit made, and how many appends they held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub commits: u64,
    pub appends: u64,
    /// Appends in the largest batch.
    pub largest: u64,
}

/// An append waiting in the queue for its commit.
struct Pending {
    tenant: TenantId,
    batch: Arc<SealedBatch>,
    answer: oneshot::Sender<Result<Attempt, StoreError>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Pending>,
    in_flight: usize,
}

/// The slots and the queue in front of the database.
pub(crate) struct Committer {
    backend: Arc<dyn Backend>,
    queue: Mutex<Queue>,
    pub(crate) settings: GroupCommit,
    commits: AtomicU64,
    appends: AtomicU64,
    largest: AtomicU64,
}

impl Committer {
    /// A committer in front of `backend`. It runs no task of its own: appends commit on their
    /// callers' tasks, and queued ones on tasks started for them.
    pub(crate) fn new(backend: Arc<dyn Backend>, settings: GroupCommit) -> Self {
        let settings = GroupCommit {
            max_batch: settings.max_batch.max(1),
            max_in_flight: settings.max_in_flight.max(1),
            ..settings
        };
        Self {
            backend,
            queue: Mutex::default(),
            settings,
            commits: AtomicU64::new(0),
            appends: AtomicU64::new(0),
            largest: AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
        }
    }

    fn counted(&self, appends: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.appends.fetch_add(appends as u64, Ordering::Relaxed);
        self.largest.fetch_max(appends as u64, Ordering::Relaxed);
    }

    /// Append through the group commit. `None` when the task that took it went away without
    /// an answer (its runtime shut down): the caller appends on its own, and an append that
    /// was committed after all is then found stored by its event ids.
    pub(crate) async fn append(
        self: &Arc<Self>,
        tenant: TenantId,
        batch: Arc<SealedBatch>,
    ) -> Option<Result<Attempt, StoreError>> {
        // Queued: the answer to wait for; `None`: a free slot, taken.
        let queued = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let free = queue.in_flight < self.settings.max_in_flight;
            if free && queue.waiting.is_empty() {
                queue.in_flight += 1;
                None
            } else {
                let (answer, answered) = oneshot::channel();
                queue.waiting.push(Pending { tenant, batch: batch.clone(), answer });
                if free {
                    // Appends queued with a slot free (their drainer went away): this slot
                    // commits them, this one with them.
                    queue.in_flight += 1;
                    drop(queue);
                    tokio::spawn(self.clone().drain());
                }
                Some(answered)
            }
        };
        match queued {
            Some(answered) => answered.await.ok(),
            None => {
                // A free slot: commit this one now, on this task, as a batch of one (each
                // backend's single append is its group commit of one). The slot is handed on
                // when this is done, or dropped (a caller that gave up).
                let _slot = Slot(self.clone());
                self.counted(1);
                Some(self.backend.append(tenant, &batch).await)
            }
        }
    }

    /// A commit is done: its slot goes to a task committing what queued meanwhile, or is free.
    fn release(self: &Arc<Self>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !queue.waiting.is_empty() => {
                drop(queue);
                runtime.spawn(self.clone().drain());
            }
            // Nothing queued (or the runtime is going away with everything queued).
            _ => queue.in_flight -= 1,
        }
    }

    /// Commit the queued appends, a batch at a time, until none are queued; then hand the slot
    /// on or free it (also when this task is dropped half-way).
    async fn drain(self: Arc<Self>) {
        let _slot = Slot(self.clone());
        loop {
            if !self.settings.window.is_zero() {
                tokio::time::sleep(self.settings.window).await;
            }
            let group: Vec<Pending> = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if queue.waiting.is_empty() {
                    return;
                }
                let take = queue.waiting.len().min(self.settings.max_batch);
                queue.waiting.drain(..take).collect()
            };
            self.counted(group.len());
            let requests: Vec<(TenantId, Arc<SealedBatch>)> =
                group.iter().map(|p| (p.tenant, p.batch.clone())).collect();
            let outcomes = append_many_or_each(self.backend.as_ref(), &requests).await;
            for (pending, outcome) in group.into_iter().zip(outcomes) {
                let _ = pending.answer.send(outcome);
            }
        }
    }
}

/// A commit slot, held by an append committing itself or by a task committing queued ones.
struct Slot(Arc<Committer>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The appends in one transaction; when that transaction as a whole fails (a lost
/// connection, a deadlock with another process, an append the batch could not decide), each
/// append alone, so one cannot fail the others. One the failed transaction did store after
/// all is found by its event ids.
pub(crate) async fn append_many_or_each(
    backend: &dyn Backend,
    requests: &[(TenantId, Arc<SealedBatch>)],
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
