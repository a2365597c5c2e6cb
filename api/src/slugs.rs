//! One tenant per slug, decided on the platform's log: a claim is an append at an expected
//! version of a stream named by a hash of the slug, so two racing creates of one slug cannot
//! both win, whatever the read models show. The slug itself is not written there; a purge
//! releases it.

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use tenantry_domain::event::{SlugClaimed, SlugReleased};
use tenantry_domain::{Event, EventId, StreamId, TenantContext, TenantId};
use tenantry_store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, StoreError};

/// The platform stream that holds a slug's claims.
pub fn claim_stream(slug: &str) -> StreamId {
    let digest = Sha256::new().chain_update(b"tenantry/slug/v1/").chain_update(slug.as_bytes()).finalize();
    let name = format!("slug-{}", &hex::encode(digest)[..32]);
    name.parse().unwrap_or_else(|_| unreachable!("hex is a valid stream id"))
}

/// Who holds the slug now, and the stream's version.
async fn holder(store: &EventStore, stream: &StreamId) -> Result<(Option<TenantId>, u64), StoreError> {
    let platform = TenantContext::system(TenantId::PLATFORM);
    let events: Vec<_> = store.read_stream(&platform, stream, 0).try_collect().await?;
    let holder = events.iter().fold(None, |held, e| match &e.event {
        Event::SlugClaimed(c) => Some(c.tenant_id),
        Event::SlugReleased(_) => None,
        _ => held,
    });
    Ok((holder, events.last().map_or(0, |e| e.stream_version)))
}

/// Claim `slug` for `tenant`. `Ok(false)` when another tenant holds it.
pub async fn claim(store: &EventStore, slug: &str, tenant: TenantId) -> Result<bool, StoreError> {
    let stream = claim_stream(slug);
    let platform = TenantContext::system(TenantId::PLATFORM);
    for _ in 0..8 {
        let (held, version) = holder(store, &stream).await?;
        match held {
            Some(t) => return Ok(t == tenant),
            None => {
                let event =
                    NewEvent::new(EventId::new(), &Event::SlugClaimed(SlugClaimed { tenant_id: tenant }))?;
                let request =
                    AppendRequest::to_stream(stream.clone(), ExpectedVersion::after(version), vec![event]);
                match store.append(&platform, request).await {
                    Ok(_) => return Ok(true),
                    // Another create claimed it first: look again.
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(false)
}

/// Free `slug` if `tenant` holds it (a purge, or a create that failed after its claim).
pub async fn release(store: &EventStore, slug: &str, tenant: TenantId) -> Result<(), StoreError> {
    let stream = claim_stream(slug);
    let (held, version) = holder(store, &stream).await?;
    if held != Some(tenant) {
        return Ok(());
    }
    let event = NewEvent::new(EventId::new(), &Event::SlugReleased(SlugReleased { tenant_id: tenant }))?;
    let request = AppendRequest::to_stream(stream, ExpectedVersion::Exact(version), vec![event]);
    match store.append(&TenantContext::system(TenantId::PLATFORM), request).await {
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
