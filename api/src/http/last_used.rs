//! When each key last opened a request, written at most once a minute per key and process,
//! off the request's path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tenantry_domain::{ApiKeyId, TenantId};
use tenantry_projections::models::directory;

use super::AppState;

/// How often one key's time is written.
const EVERY: Duration = Duration::from_secs(60);
/// Keys remembered before the map starts afresh (a bound on memory).
const REMEMBERED: usize = 100_000;

#[derive(Debug, Default)]
pub struct LastUsed {
    // Guards only the map; never held across an await.
    written: Mutex<HashMap<ApiKeyId, Instant>>,
}

impl LastUsed {
    /// Whether a use of `key` at `now` is to be written.
    fn due(&self, key: ApiKeyId, now: Instant) -> bool {
        let Ok(mut written) = self.written.lock() else { return false };
        if written.get(&key).is_some_and(|at| now.duration_since(*at) < EVERY) {
            return false;
        }
        if written.len() >= REMEMBERED {
            written.clear();
        }
        written.insert(key, now);
        true
    }

    /// Note a use of `key`: written in the background when a minute has passed since the
    /// last write of it here.
    pub fn touch(&self, state: &AppState, tenant: TenantId, key: ApiKeyId) {
        if !self.due(key, Instant::now()) {
            return;
        }
        let state = state.clone();
        let at = chrono::Utc::now().timestamp_millis();
        tokio::spawn(async move {
            if let Err(e) = directory::touch_key(state.projections.db(), tenant, key, at).await {
                tracing::warn!(error = %e, %tenant, "could not note when a key was last used");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_written_once_a_minute_at_most() {
        let uses = LastUsed::default();
        let (key, other, start) = (ApiKeyId::new(), ApiKeyId::new(), Instant::now());
        assert!(uses.due(key, start));
        assert!(!uses.due(key, start + Duration::from_secs(59)));
        assert!(uses.due(other, start + Duration::from_secs(59)));
        assert!(uses.due(key, start + Duration::from_secs(60)));
    }
}
