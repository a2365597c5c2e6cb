//! What a process knows of its tenants' heads and streams from its own last commits, so that
//! a group commit can be decided without first reading them under the head locks.
//!
//! Knowing is only assuming: the write that follows checks every assumption as it writes (a
//! head still at the position it was known at, a stream still at its version, no event id or
//! idempotency key taken) and is refused whole when one fails, for the commit to be decided
//! again under the locks. So another process's appends, a purge, or anything else this process
//! did not see costs a round trip, never a wrong outcome.

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
    heads: LruCache<TenantId, HeadState>,
    /// Versions of streams appended to without an expected version ([`ExpectedVersion::Any`]);
    /// for the others, the append's expectation is the version assumed.
    streams: LruCache<(TenantId, String), u64>,
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
        let inner = Inner { heads: LruCache::new(capacity), streams: LruCache::new(capacity) };
        Self { inner: Mutex::new(inner) }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a group commit would find under its locks, as far as this process knows it: each
    /// tenant's head, and each stream's version before the batch (the expectation of the first
    /// request naming it, or the known version when it expects any); no event id or key
    /// taken. `None` when something is not known. The heads are taken out until
    /// [`Known::learn`] puts the commit's back, so that a second commit in flight does not
    /// assume them too.
    pub(crate) fn assume(&self, requests: &[(TenantId, &SealedBatch)]) -> Option<Found> {
        let mut inner = self.inner();
        let mut found = Found::default();
        for (tenant, batch) in requests {
            if !inner.heads.contains_key(tenant) {
                return None;
            }
            for (stream, expected) in &batch.expectations {
                let key = (*tenant, stream.as_str().to_owned());
                if found.versions.contains_key(&key) {
                    continue;
                }
                let version = match expected {
                    ExpectedVersion::NoStream => 0,
                    ExpectedVersion::Exact(v) => *v,
                    ExpectedVersion::Any => *inner.streams.get(&key)?,
                };
                found.versions.insert(key, version);
            }
        }
        // Everything is known: the heads are taken out.
        for (tenant, _) in requests {
            if !found.heads.contains_key(tenant) {
                found.heads.insert(*tenant, inner.heads.remove(tenant)?);
            }
        }
        Some(found)
    }

    /// A commit is durable: its heads and streams are as it left them.
    pub(crate) fn learn(&self, decided: &Decided<'_>) {
        let mut inner = self.inner();
        for h in &decided.heads {
            inner.heads.insert(h.tenant, h.state.clone());
        }
        for s in &decided.streams {
            inner.streams.insert((s.tenant, s.stream.clone()), s.version);
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
