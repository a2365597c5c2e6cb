//! What a process knows of its tenants' heads and streams from its own last commits, so that
//! a group commit can be decided without first reading them under the head locks.
//!
//! Knowing is mostly assuming: the write that follows checks every assumption as it writes (a
//! head still at the position it was known at, a stream still at its version, no event id or
//! idempotency key taken) and is refused whole when one fails, for the commit to be decided
//! again under the locks. So another process's appends, a purge, or anything else this process
//! did not see costs a round trip, never a wrong outcome.
//!
//! Some of it is certain. Every append moves its tenant's head, so while a head is where this
//! process knows it, none of the tenant's streams has moved since. A head's *epoch* is the
//! span over which this process has written it without anyone else appending (the known path
//! proves that, the locked path starts a new epoch). A stream version learned in the head's
//! current epoch is its version for as long as the head check holds. Such a stream needs no
//! check of its own in the write.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use hashlink::LruCache;
use tenantry_domain::TenantId;

use crate::backend::{Decided, Found, HeadState, SealedBatch};
use crate::model::ExpectedVersion;

/// Heads and stream versions, the most recently written kept (a bounded memory whatever the
/// number of tenants and conversations).
pub(crate) struct Known {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Each head with its epoch.
    heads: LruCache<TenantId, (HeadState, u64)>,
    /// Versions of the streams written, each with the epoch of its tenant's head it was
    /// written in.
    streams: LruCache<(TenantId, String), (u64, u64)>,
    /// The epoch the next head read under its lock starts.
    next_epoch: u64,
}

/// What [`Known::assume`] found: what the locks would have, the streams whose versions in it
/// are certain while the heads hold, and the heads' epochs (for [`Known::learn`]).
pub(crate) struct Assumed {
    pub(crate) found: Found,
    pub(crate) certain: HashSet<(TenantId, String)>,
    pub(crate) epochs: HashMap<TenantId, u64>,
}

impl std::fmt::Debug for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner();
        f.debug_struct("Known")
            .field("heads", &inner.heads.len())
            .field("streams", &inner.streams.len())
            .finish()
    }
}

impl Known {
    /// Kept: `capacity` heads and as many stream versions.
    pub(crate) fn new(capacity: usize) -> Self {
        let inner = Inner { heads: LruCache::new(capacity), streams: LruCache::new(capacity), next_epoch: 0 };
        Self { inner: Mutex::new(inner) }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a group commit would find under its locks, as far as this process knows it: each
    /// tenant's head, and each stream's version before the batch (known in the head's epoch,
    /// else the expectation of the first request naming it, or the version last known when it
    /// expects any); no event id or key taken. `None` when something is not known. The heads
    /// are taken out until [`Known::learn`] puts the commit's back, so that a second commit in
    /// flight does not assume them too.
    pub(crate) fn assume(&self, requests: &[(TenantId, &SealedBatch)]) -> Option<Assumed> {
        let mut inner = self.inner();
        let mut found = Found::default();
        let mut certain = HashSet::new();
        let mut epochs = HashMap::new();
        for (tenant, batch) in requests {
            let epoch = inner.heads.get(tenant)?.1;
            epochs.insert(*tenant, epoch);
            for (stream, expected) in &batch.expectations {
                let key = (*tenant, stream.as_str().to_owned());
                if found.versions.contains_key(&key) {
                    continue;
                }
                let known = inner.streams.get(&key).copied();
                let version = match (known, expected) {
                    (Some((version, at)), _) if at == epoch => {
                        certain.insert(key.clone());
                        version
                    }
                    (_, ExpectedVersion::NoStream) => 0,
                    (_, ExpectedVersion::Exact(v)) => *v,
                    (known, ExpectedVersion::Any) => known?.0,
                };
                found.versions.insert(key, version);
            }
        }
        // Everything is known: the heads are taken out.
        for (tenant, _) in requests {
            if !found.heads.contains_key(tenant) {
                found.heads.insert(*tenant, inner.heads.remove(tenant)?.0);
            }
        }
        Some(Assumed { found, certain, epochs })
    }

    /// A commit is durable: its heads and streams are as it left them. `epochs`: those of the
    /// heads it was decided on as known, each then continued (its head check held); `None`
    /// for a commit decided on heads read under their locks, each of which starts an epoch.
    pub(crate) fn learn(&self, decided: &Decided<'_>, epochs: Option<&HashMap<TenantId, u64>>) {
        let mut inner = self.inner();
        let mut written = HashMap::new();
        for h in &decided.heads {
            let epoch = match epochs.and_then(|e| e.get(&h.tenant)) {
                Some(epoch) => *epoch,
                None => {
                    inner.next_epoch += 1;
                    inner.next_epoch
                }
            };
            written.insert(h.tenant, epoch);
            inner.heads.insert(h.tenant, (h.state.clone(), epoch));
        }
        for s in &decided.streams {
            if let Some(epoch) = written.get(&s.tenant) {
                inner.streams.insert((s.tenant, s.stream.clone()), (s.version, *epoch));
            }
        }
    }

    /// What the requests' tenants are known at may be stale (a commit was refused, or went
    /// around what is known): forget it.
    pub(crate) fn forget(&self, requests: &[(TenantId, &SealedBatch)]) {
        let mut inner = self.inner();
        for (tenant, batch) in requests {
            inner.heads.remove(tenant);
            for (stream, _) in &batch.expectations {
                inner.streams.remove(&(*tenant, stream.as_str().to_owned()));
            }
        }
    }
}
