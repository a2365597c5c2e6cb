//! Tenant API keys as authentication last read them, so a request needs no read of its own.
//!
//! The cache is used only while this process hears of every change to keys and users: with
//! PostgreSQL, a trigger on `dir_api_keys` and `dir_users` notifies channel `tenantry_auth`
//! with the tenant, and [`listen`] holds a `LISTEN` connection. Until that connection is up,
//! and again from the moment it drops until it is back (the cache then starts empty),
//! every request reads the database as if there were no cache. With SQLite there is no
//! listener, so no cache. A handler that revokes a key or removes a user also forgets the
//! tenant itself once its read model has the change, so the next request through this
//! process fails without waiting for the notification.
//!
//! Only live keys are kept: a revoked or unknown key is read again on each attempt. The
//! secret is checked against the stored hash on every request, cached or not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenantry_domain::{Role, Scope, TenantId, UserId};
use uuid::Uuid;

/// The channel the PostgreSQL trigger notifies (migration 0012).
pub const CHANNEL: &str = "tenantry_auth";

/// Keys kept before the cache starts afresh (a bound on memory, not an LRU).
const CACHED_KEYS: usize = 100_000;

/// What authentication read of a live tenant key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedKey {
    pub tenant: TenantId,
    pub secret_hash: Vec<u8>,
    pub role: Role,
    pub user: Option<UserId>,
    pub scopes: Vec<Scope>,
    /// Unix ms.
    pub expires_at: Option<i64>,
    /// The secret before the last rotation and until when it works (Unix ms).
    pub previous: Option<(Vec<u8>, i64)>,
}

#[derive(Debug, Default)]
struct Inner {
    live: AtomicBool,
    /// Bumped by every forget: a read that began before it may not fill the cache.
    generation: AtomicU64,
    // Guards only the map; never held across an await.
    keys: Mutex<HashMap<Uuid, CachedKey>>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

/// A read of the database begun while the cache was at some generation.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

impl KeyCache {
    /// The key as cached, when the cache is in use.
    pub fn get(&self, key_id: Uuid) -> Option<CachedKey> {
        if !self.inner.live.load(Ordering::Acquire) {
            return None;
        }
        self.inner.keys.lock().ok()?.get(&key_id).cloned()
    }

    /// Taken before reading a key from the database, to [`KeyCache::fill`] with after.
    pub fn ticket(&self) -> Ticket {
        let live = self.inner.live.load(Ordering::Acquire);
        Ticket(live.then(|| self.inner.generation.load(Ordering::Acquire)))
    }

    /// Keep what was read, unless something was forgotten since the ticket was taken.
    pub fn fill(&self, ticket: Ticket, key_id: Uuid, key: CachedKey) {
        let Some(generation) = ticket.0 else { return };
        let Ok(mut keys) = self.inner.keys.lock() else { return };
        // Checked under the lock that forgetting takes too.
        if !self.inner.live.load(Ordering::Acquire)
            || self.inner.generation.load(Ordering::Acquire) != generation
        {
            return;
        }
        if keys.len() >= CACHED_KEYS {
            keys.clear();
        }
        keys.insert(key_id, key);
    }

    /// Drop the tenant's keys: one of its keys or users changed.
    pub fn forget_tenant(&self, tenant: TenantId) {
        if let Ok(mut keys) = self.inner.keys.lock() {
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
            keys.retain(|_, k| k.tenant != tenant);
        }
    }

    fn forget_all(&self) {
        if let Ok(mut keys) = self.inner.keys.lock() {
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
            keys.clear();
        }
    }

    /// In use (`true`) only while every change is heard; turning it off forgets all.
    fn set_live(&self, live: bool) {
        if let Ok(mut keys) = self.inner.keys.lock() {
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
            keys.clear();
            self.inner.live.store(live, Ordering::Release);
        }
    }

    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }
}

/// Hear changes to keys and users on PostgreSQL at `url` for as long as `stop` is pending,
/// reconnecting after a second when the connection drops. The cache is in use only while
/// the `LISTEN` stands.
pub async fn listen(
    cache: KeyCache,
    commands: tenantry_app::Commands,
    url: String,
    stop: impl Future<Output = ()> + Send,
) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let heard = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            cache.set_live(true);
            // `try_recv` answers `None` when the connection was lost.
            while let Some(note) = listener.try_recv().await? {
                match note.payload().parse::<TenantId>() {
                    Ok(tenant) => {
                        cache.forget_tenant(tenant);
                        // What authentication asks the command side is read on at once.
                        let commands = commands.clone();
                        tokio::spawn(async move {
                            if let Err(e) = commands.refresh_tenant(tenant).await {
                                tracing::warn!(error = %e, %tenant, "could not read a tenant's key changes");
                            }
                        });
                    }
                    Err(_) => cache.forget_all(),
                }
            }
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            () = &mut stop => break,
            result = heard => {
                cache.set_live(false);
                if let Err(e) = result {
                    tracing::warn!(error = %e, "key cache off: cannot listen for key changes; retrying");
                }
            }
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    cache.set_live(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: TenantId) -> CachedKey {
        CachedKey {
            tenant,
            secret_hash: vec![1; 32],
            role: Role::Admin,
            user: None,
            scopes: vec![],
            expires_at: None,
            previous: None,
        }
    }

    #[test]
    fn nothing_is_kept_or_served_while_changes_are_not_heard() {
        let cache = KeyCache::default();
        let (id, tenant) = (Uuid::new_v4(), TenantId::new());
        cache.fill(cache.ticket(), id, key(tenant));
        assert_eq!(cache.get(id), None);
        cache.set_live(true);
        cache.fill(cache.ticket(), id, key(tenant));
        assert_eq!(cache.get(id), Some(key(tenant)));
        cache.set_live(false);
        assert_eq!(cache.get(id), None);
        cache.set_live(true);
        assert_eq!(cache.get(id), None, "a cache turned back on starts empty");
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = KeyCache::default();
        cache.set_live(true);
        let (a, b, tenant, other) = (Uuid::new_v4(), Uuid::new_v4(), TenantId::new(), TenantId::new());
        cache.fill(cache.ticket(), a, key(tenant));
        cache.fill(cache.ticket(), b, key(other));
        let before = cache.ticket();
        cache.forget_tenant(tenant);
        assert_eq!(cache.get(a), None);
        assert_eq!(cache.get(b), Some(key(other)), "other tenants' keys stay");
        // Read before the change, so possibly the old row.
        cache.fill(before, a, key(tenant));
        assert_eq!(cache.get(a), None);
    }
}
