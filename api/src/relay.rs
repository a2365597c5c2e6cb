//! The broker relay: committed events published to NATS JetStream, for workers and other
//! consumers elsewhere.
//!
//! Subjects are `tenantry.<tenant_id>.<stream kind>` (the stream id up to its first `-`);
//! the message id is the event id, so JetStream drops a message published twice within its
//! duplicate window; headers carry only ids and the position; the payload is the stored
//! ciphertext, never plaintext. What has been acknowledged is recorded per tenant in
//! `relay_positions`, so a crash or an outage of the broker loses nothing: the relay carries
//! on in order from there when it can. Appends never wait for the broker.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, stream};
use futures::{StreamExt, TryStreamExt};
use tenantry_domain::{TenantContext, TenantId};
use tenantry_projections::Projections;
use tenantry_projections::purges;
use tenantry_store::{EventStore, SealedCommit, SealedRecord};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// The JetStream stream every tenant's events go to.
pub const STREAM: &str = "TENANTRY";
/// Events published per round of acknowledgements.
const PAGE: u32 = 1_000;
/// How often the relay looks at every tenant even when nothing woke it.
const POLL: Duration = Duration::from_secs(2);
/// Tenants published at once.
pub const WIDTH: usize = 16;

/// The subject of an event of `stream` in `tenant`'s log.
pub fn subject(tenant: TenantId, stream: &str) -> String {
    let kind = stream.split(['-', ':', '.']).next().filter(|k| !k.is_empty()).unwrap_or("other");
    format!("tenantry.{tenant}.{kind}")
}

/// A connection to NATS with JetStream.
#[derive(Debug, Clone)]
pub struct Broker {
    js: jetstream::Context,
}

impl Broker {
    /// Connect (retrying in the background while the server is down) and make sure the
    /// stream exists.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(5)))
            .connect(url)
            .await
            .with_context(|| format!("cannot reach NATS at {url}"))?;
        let broker = Self { js: jetstream::new(client) };
        if let Err(e) = broker.stream().await {
            tracing::warn!(error = %e, "JetStream not ready yet; the relay retries");
        }
        Ok(broker)
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The stream, created (file storage) when missing, also after someone deleted it.
    pub async fn stream(&self) -> anyhow::Result<stream::Stream> {
        self.js
            .get_or_create_stream(stream::Config {
                name: STREAM.to_owned(),
                subjects: vec!["tenantry.>".to_owned()],
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("JetStream stream {STREAM}: {e}"))
    }

    /// Delete every message of a tenant from the stream. Returns how many.
    pub async fn purge_tenant(&self, tenant: TenantId) -> anyhow::Result<u64> {
        let stream = self.stream().await?;
        let response = stream
            .purge()
            .filter(format!("tenantry.{tenant}.>"))
            .await
            .map_err(|e| anyhow::anyhow!("purging {tenant} from {STREAM}: {e}"))?;
        Ok(response.purged)
    }
}

/// Publishes committed events to the broker.
#[derive(Debug, Clone)]
pub struct Relay {
    store: EventStore,
    projections: Projections,
    broker: Broker,
    // The last position recorded per tenant by this process, so a wake-up reads no
    // `relay_positions` row; a full pass reloads them (another relay may have moved on).
    // Guards only the map; never held across an await.
    known: std::sync::Arc<std::sync::Mutex<HashMap<TenantId, u64>>>,
}

impl Relay {
    pub fn new(projections: Projections, broker: Broker) -> Self {
        Self { store: projections.store().clone(), projections, broker, known: Default::default() }
    }

    /// Record what JetStream acknowledged, for many tenants in one statement; positions only
    /// move forward.
    async fn record(&self, positions: &[(TenantId, u64)]) -> anyhow::Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        purges::record_relay_positions(self.projections.db(), positions).await?;
        if let Ok(mut known) = self.known.lock() {
            for (tenant, position) in positions {
                let entry = known.entry(*tenant).or_insert(0);
                *entry = (*entry).max(*position);
            }
        }
        Ok(())
    }

    async fn published(&self, tenant: Option<TenantId>) -> anyhow::Result<HashMap<String, u64>> {
        Ok(purges::relay_positions(self.projections.db(), tenant).await?)
    }

    /// Publish events that follow `done` without a gap, every message first, then every
    /// acknowledgement awaited. Returns the last position acknowledged (`done` for none).
    async fn publish_page(
        &self,
        tenant: TenantId,
        mut done: u64,
        page: Vec<SealedRecord>,
    ) -> anyhow::Result<u64> {
        let mut acks = Vec::new();
        for e in page {
            if e.position != done + 1 {
                // A hole (the log is being purged, or was tampered with): stop before it.
                anyhow::bail!("tenant {tenant}: position {} missing in the log", done + 1);
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", e.event_id.to_string().as_str());
            headers.insert("Tenantry-Tenant", tenant.to_string().as_str());
            headers.insert("Tenantry-Position", e.position.to_string().as_str());
            let ack = self
                .broker
                .js
                .publish_with_headers(subject(tenant, &e.stream_id), headers, e.payload.into())
                .await
                .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
            acks.push(ack);
            done = e.position;
        }
        for ack in acks {
            ack.await.map_err(|e| anyhow::anyhow!("acknowledgement: {e}"))?;
        }
        Ok(done)
    }

    /// Publish the tenant's events after `from` in order, read from the log a page at a
    /// time. Returns the last position acknowledged (`from` when there was nothing); the
    /// caller records it.
    pub async fn publish_tenant(&self, tenant: TenantId, from: u64) -> anyhow::Result<u64> {
        let ctx = TenantContext::system(tenant);
        let mut done = from;
        loop {
            let page = self.store.read_sealed_page(&ctx, done, PAGE).await?;
            let full = page.len() == PAGE as usize;
            done = self.publish_page(tenant, done, page).await?;
            if !full {
                // A short page is the head as it stood: no need to ask again.
                break;
            }
        }
        Ok(done)
    }

    /// Publish and record one tenant's events after `from`; returns how many.
    pub async fn relay_tenant(&self, tenant: TenantId, from: u64) -> anyhow::Result<u64> {
        let last = self.publish_tenant(tenant, from).await?;
        if last > from {
            self.record(&[(tenant, last)]).await?;
        }
        Ok(last - from)
    }

    /// One pass over every tenant whose log is ahead of what was published.
    pub async fn run_once(&self) -> anyhow::Result<u64> {
        // Re-created here if it was deleted: the positions then say what is published, and a
        // consumer that needs the history reads it from the database.
        self.broker.stream().await?;
        let published = self.published(None).await?;
        let mut total = 0;
        let mut heads = std::pin::pin!(self.store.every_tenant_head(None));
        while let Some((tenant, head)) = heads.try_next().await? {
            let done = published.get(&tenant.to_string()).copied().unwrap_or(0);
            if let Ok(mut known) = self.known.lock() {
                known.insert(tenant, done);
            }
            if head > done {
                total += self.relay_tenant(tenant, done).await?;
            }
        }
        Ok(total)
    }

    /// Publish one tenant's news; returns (tenant, from, last acknowledged). `fresh` are the
    /// events this process committed for it since the last pass, in position order: when
    /// they follow what was published, they go out as they are; otherwise (another node
    /// appended too, a commit was missed) the log is read from what was published.
    async fn publish_one(
        &self,
        tenant: TenantId,
        fresh: Vec<SealedRecord>,
    ) -> anyhow::Result<(TenantId, u64, u64)> {
        let known = self.known.lock().ok().and_then(|k| k.get(&tenant).copied());
        let from = match known {
            Some(done) => done,
            None => self.published(Some(tenant)).await?.values().next().copied().unwrap_or(0),
        };
        let fresh: Vec<SealedRecord> = fresh.into_iter().filter(|e| e.position > from).collect();
        if fresh.is_empty() {
            // An earlier read of the log already published them (racing commits announced
            // out of order); what other nodes append is found by the poll.
            return Ok((tenant, from, from));
        }
        let follows = fresh.iter().zip(from + 1..).all(|(e, position)| e.position == position);
        let last = if follows {
            self.publish_page(tenant, from, fresh).await?
        } else {
            self.publish_tenant(tenant, from).await?
        };
        Ok((tenant, from, last))
    }

    /// Publish what these commits wrote, [`WIDTH`] tenants at once, then record every
    /// position in one statement. Returns the events published.
    async fn relay_commits(&self, commits: &[Arc<SealedCommit>]) -> anyhow::Result<u64> {
        let mut fresh: BTreeMap<TenantId, Vec<SealedRecord>> = BTreeMap::new();
        for commit in commits {
            fresh.entry(commit.tenant_id).or_default().extend(commit.events.iter().cloned());
        }
        for events in fresh.values_mut() {
            // Racing appends of one tenant may be announced out of order.
            events.sort_by_key(|e| e.position);
            events.dedup_by_key(|e| e.position);
        }
        let results: Vec<_> = futures::stream::iter(fresh)
            .map(|(t, events)| self.publish_one(t, events))
            .buffer_unordered(WIDTH)
            .collect()
            .await;
        let mut moved = Vec::new();
        let mut events = 0;
        let mut first_error = None;
        for r in results {
            match r {
                Ok((tenant, from, last)) if last > from => {
                    events += last - from;
                    moved.push((tenant, last));
                }
                Ok(_) => {}
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        // What was acknowledged is recorded even when another tenant failed.
        self.record(&moved).await?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(events),
        }
    }

    /// Relay until `shutdown`: woken by this process's appends, whose sealed events it
    /// publishes without reading them back, and every two seconds for appends made
    /// elsewhere and to retry after a broker outage.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let mut sealed = self.store.subscribe_sealed();
        tokio::pin!(shutdown);
        let mut everything = true;
        loop {
            let mut commits = Vec::new();
            if !everything {
                tokio::select! {
                    () = &mut shutdown => return,
                    msg = sealed.recv() => match msg {
                        Ok(commit) => commits.push(commit),
                        Err(RecvError::Lagged(_)) => everything = true,
                        Err(RecvError::Closed) => return,
                    },
                    () = tokio::time::sleep(POLL) => everything = true,
                }
                loop {
                    match sealed.try_recv() {
                        Ok(commit) => commits.push(commit),
                        Err(TryRecvError::Lagged(_)) => everything = true,
                        Err(_) => break,
                    }
                }
            }
            let result = if everything { self.run_once().await } else { self.relay_commits(&commits).await };
            everything = false;
            if let Err(e) = result {
                tracing::warn!(error = %e, "relay to NATS failed; retrying");
                everything = true;
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}
