//! One tenant per slug, decided on the platform's log: a claim is an event in a stream named
//! by a hash of the slug (the slug itself is not written there), appended at the version its
//! holder was decided on, so of two racing creates one wins.

use sha2::{Digest, Sha256};

use crate::event::{Event, SlugClaimed, SlugReleased};
use crate::ids::{StreamId, TenantId};
use crate::rejection::Rejection;

/// The platform stream that holds a slug's claims, named by a hash of the slug.
pub fn claim_stream(slug: &str) -> StreamId {
    let digest = Sha256::new().chain_update(b"tenantry/slug/v1/").chain_update(slug.as_bytes()).finalize();
    let name = format!("slug-{}", &hex::encode(digest)[..32]);
    name.parse().unwrap_or_else(|_| unreachable!("hex is a valid stream id"))
}

/// Who holds a slug: folded from its claim stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlugState {
    pub holder: Option<TenantId>,
}

pub fn evolve(mut state: SlugState, event: &Event) -> SlugState {
    match event {
        Event::SlugClaimed(c) => state.holder = Some(c.tenant_id),
        Event::SlugReleased(_) => state.holder = None,
        _ => {}
    }
    state
}

/// Claim `slug` for `tenant`: nothing to write when it already holds it, taken when another
/// tenant does.
pub fn decide_claim(state: &SlugState, slug: &str, tenant: TenantId) -> Result<Vec<Event>, Rejection> {
    match state.holder {
        Some(held) if held == tenant => Ok(vec![]),
        Some(_) => Err(Rejection::SlugTaken(slug.to_owned())),
        None => Ok(vec![Event::SlugClaimed(SlugClaimed { tenant_id: tenant })]),
    }
}

/// Release `slug` if `tenant` holds it (a purge, or a create that failed after its claim).
pub fn decide_release(state: &SlugState, tenant: TenantId) -> Vec<Event> {
    if state.holder == Some(tenant) {
        vec![Event::SlugReleased(SlugReleased { tenant_id: tenant })]
    } else {
        vec![]
    }
}
