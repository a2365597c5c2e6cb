//! Coalescing of audit records of requests (refusals, and reads by the platform or a
//! partner) before they reach the tenant's audit trail: the first of a (tenant, credential,
//! action) is recorded at once; repeats within a minute are counted, and the next one
//! recorded after the minute says how many it stands for. A flood writes a line a minute,
//! not a line a request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tenantry_domain::TenantId;

/// How long repeats of one record are folded into the next.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Records kept before the map starts afresh (a bound on memory).
const MAX_KEPT: usize = 100_000;

type Key = (TenantId, String, String);

#[derive(Debug, Default)]
pub struct Coalescer {
    // Guards only the map; never held across an await.
    seen: Mutex<HashMap<Key, (Instant, u64)>>,
}

impl Coalescer {
    /// Whether to record this request now, and how many earlier ones it stands for (`None`:
    /// fold it into a later record).
    pub fn admit(&self, tenant: TenantId, actor: &str, action: &str, now: Instant) -> Option<u64> {
        let Ok(mut seen) = self.seen.lock() else { return Some(0) };
        if seen.len() >= MAX_KEPT {
            seen.clear();
        }
        let entry = seen.entry((tenant, actor.to_owned(), action.to_owned())).or_insert((now, 0));
        if entry.1 == 0 {
            // First of its kind: recorded, and the window opens.
            entry.1 = 1;
            return Some(0);
        }
        if now.duration_since(entry.0) < WINDOW {
            entry.1 += 1;
            return None;
        }
        let folded = entry.1.saturating_sub(1);
        *entry = (now, 1);
        Some(folded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_record_a_window_that_counts_the_rest() {
        let d = Coalescer::default();
        let (t, t0) = (TenantId::new(), Instant::now());
        assert_eq!(d.admit(t, "key:a", "GET /x", t0), Some(0));
        for i in 1..=29 {
            assert_eq!(d.admit(t, "key:a", "GET /x", t0 + Duration::from_millis(i)), None);
        }
        // Another action, credential or tenant is its own.
        assert_eq!(d.admit(t, "key:a", "GET /y", t0), Some(0));
        assert_eq!(d.admit(t, "key:b", "GET /x", t0), Some(0));
        assert_eq!(d.admit(TenantId::new(), "key:a", "GET /x", t0), Some(0));
        // After the window, the next record stands for the 29 folded ones.
        assert_eq!(d.admit(t, "key:a", "GET /x", t0 + WINDOW + Duration::from_millis(30)), Some(29));
        assert_eq!(d.admit(t, "key:a", "GET /x", t0 + WINDOW + Duration::from_millis(31)), None);
    }
}
