//! Webhook deliveries, driven from the log: for each enabled endpoint, the events after the
//! last one it has, of its types, one at a time and in order, signed as the Standard Webhooks
//! specification says (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256
//! with the endpoint's secret). The position an endpoint has is stored after each delivery
//! it acknowledged (2xx), so a crash or a restart resends at most the one in flight
//! (at-least-once). A failure is retried after an exponential backoff with jitter; an
//! endpoint that kept failing for 24 hours is disabled, and an event (`webhook.disabled`)
//! says so. Outbound requests refuse private, loopback and link-local addresses unless
//! configured otherwise, follow no redirect, and give up after 10 s.
//!
//! One dispatcher runs per deployment: on PostgreSQL the process holding an advisory lock.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tenantry_app::Commands;
use tenantry_domain::command::DisableWebhook;
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{Role, TenantContext, TenantId, WebhookId};
use tenantry_projections::Projections;
use tenantry_projections::models::webhooks::{self, Attempt, Due, Then};
use tenantry_store::RecordedEvent;
use tenantry_store::export::public_event;

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long an endpoint may keep failing before it is disabled.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Deliveries one endpoint gets per pass before the others have their turn.
const PER_PASS: usize = 100;
/// Endpoints served per pass.
const ENDPOINTS_PER_PASS: i64 = 64;
/// How often the dispatcher looks for work when nothing woke it.
const IDLE: Duration = Duration::from_millis(500);
/// The least time between two passes that commits wake: under load commits come thousands
/// a second, and one pass serves all that came before it.
const WAKE_GAP: Duration = Duration::from_millis(10);

/// How deliveries are made.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookSettings {
    /// Deliver to private, loopback and link-local addresses too (tests, private networks).
    #[arg(long = "webhooks-allow-private", env = "TENANTRY_WEBHOOKS_ALLOW_PRIVATE")]
    pub allow_private: bool,
    /// The wait before the first retry, in milliseconds; each next one waits twice as long
    /// (up to an hour), with jitter.
    #[arg(
        long = "webhooks-first-retry-ms",
        env = "TENANTRY_WEBHOOKS_FIRST_RETRY_MS",
        default_value_t = 5_000
    )]
    pub first_retry_ms: u64,
    /// Do not deliver webhooks from this process.
    #[arg(long = "no-webhooks", env = "TENANTRY_NO_WEBHOOKS")]
    pub disabled: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self { allow_private: false, first_retry_ms: 5_000, disabled: false }
    }
}

/// Whether an address is one a webhook may be sent to: not private, loopback, link-local,
/// shared (CGNAT), unspecified, multicast, broadcast or for documentation.
pub fn public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Name resolution that leaves out the addresses a webhook may not reach.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.into_iter().filter(|a| allow_private || public_address(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{} resolves to no public address", name.as_str()).into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The Standard Webhooks signature of a message with `secret` (`whsec_` and base64).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = BASE64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// A new endpoint secret: `whsec_` and 24 random bytes in base64.
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::thread_rng().r#gen();
    format!("whsec_{}", BASE64.encode(bytes))
}

/// A delivery that could not be attempted (the database, the log).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct DispatchError(pub anyhow::Error);

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub delivered: bool,
    pub response_status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// Sends deliveries: the HTTP client with its guard, and what it needs to sign them.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    settings: WebhookSettings,
}

impl Sender {
    pub fn new(settings: WebhookSettings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { allow_private: settings.allow_private }))
            .user_agent(concat!("tenantry-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, settings })
    }

    /// POST one event to `url`, signed with `secrets` (the current one first).
    pub async fn send(&self, url: &str, secrets: &[&str], event: &RecordedEvent) -> Outcome {
        let started = Instant::now();
        let failed = |error: String| Outcome {
            delivered: false,
            response_status: None,
            latency_ms: started.elapsed().as_millis() as i64,
            error: Some(error),
        };
        // An address written in the URL is not resolved: check it here.
        if let Ok(parsed) = url::Url::parse(url) {
            let literal = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(|ip| !self.settings.allow_private && !public_address(ip)) {
                return failed("the address is private, loopback or link-local".into());
            }
        } else {
            return failed("the URL does not parse".into());
        }
        let id = event.event_id.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let body = serde_json::json!({
            "type": event.event_type,
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": public_event(event),
        })
        .to_string();
        let signatures: Vec<String> =
            secrets.iter().filter_map(|s| sign(s, &id, timestamp, body.as_bytes())).collect();
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(body)
            .send()
            .await;
        match sent {
            Ok(res) => {
                let status = res.status();
                Outcome {
                    delivered: status.is_success(),
                    response_status: Some(i64::from(status.as_u16())),
                    latency_ms: started.elapsed().as_millis() as i64,
                    error: (!status.is_success()).then(|| format!("the receiver answered {status}")),
                }
            }
            Err(e) => failed(describe(e)),
        }
    }

    /// The wait before attempt `attempts + 1`: doubling from the first, capped, with jitter
    /// (between 3/4 and 5/4 of it).
    fn backoff(&self, attempts: i64) -> Duration {
        let base = Duration::from_millis(self.settings.first_retry_ms.max(1));
        let doubled = base.saturating_mul(1 << attempts.clamp(0, 20) as u32).min(MAX_BACKOFF);
        doubled.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
    }
}

/// What went wrong, without the request (its URL may hold a token of the receiver's).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(500).collect()
}

/// The secrets that sign now: the current one, and the one before a rotation during its
/// grace.
pub fn signing_secrets(entry: &tenantry_domain::tenant::WebhookEntry) -> Vec<&str> {
    let mut secrets = vec![entry.secret.as_str()];
    if let Some((old, until)) = &entry.previous
        && *until > chrono::Utc::now()
    {
        secrets.push(old.as_str());
    }
    secrets
}

/// Whether an endpoint asked for events of this type (none named: every type).
fn wanted(types: &[String], event_type: &str) -> bool {
    types.is_empty() || types.iter().any(|t| t == event_type)
}

/// What a pass found: the endpoints due, and the deliveries it attempted.
#[derive(Debug, Clone, Copy)]
struct Pass {
    due: usize,
    delivered: usize,
}

/// Wait for the dispatcher's next pass: after [`IDLE`], or on a commit while an endpoint is
/// due (at least [`WAKE_GAP`] after the pass that began at `last_pass`).
async fn next_wake(
    commits: &mut tokio::sync::broadcast::Receiver<tenantry_store::Committed>,
    none_due: bool,
    last_pass: tokio::time::Instant,
) {
    let idle = tokio::time::sleep(IDLE);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            msg = commits.recv() => {
                if none_due && !matches!(msg, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    continue;
                }
                tokio::time::sleep_until(last_pass + WAKE_GAP).await;
                // The next pass sees every commit so far: wait for newer ones only.
                *commits = commits.resubscribe();
                return;
            }
            () = &mut idle => return,
        }
    }
}

/// The dispatcher of a deployment.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    projections: Projections,
    commands: Commands,
    sender: Sender,
}

impl Dispatcher {
    pub fn new(projections: Projections, commands: Commands, sender: Sender) -> Self {
        Self { projections, commands, sender }
    }

    /// Deliver until `shutdown`: a pass over the endpoints due, again at once when a pass
    /// found work, else when a commit woke it (at most one such pass each 10 ms) or
    /// after a short idle. While no endpoint is due (none enabled, or all waiting for a
    /// retry) a commit cannot make one due, so commits wake no pass then: a new endpoint is
    /// found by the next idle pass.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut commits = self.projections.store().subscribe();
        let mut lock = None;
        let mut none_due = false;
        let mut last_pass = tokio::time::Instant::now();
        loop {
            if lock.is_none() {
                lock = match self.lead().await {
                    Ok(held) => held,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhooks: could not ask for the dispatcher lock");
                        None
                    }
                };
            }
            let busy = match &lock {
                Some(_) => {
                    last_pass = tokio::time::Instant::now();
                    match self.pass().await {
                        Ok(Pass { due, delivered }) => {
                            none_due = due == 0;
                            delivered > 0
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "webhooks: a pass failed");
                            // The lock's connection may be gone with the database: ask again.
                            lock = None;
                            false
                        }
                    }
                }
                None => false,
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = next_wake(&mut commits, none_due, last_pass) => {}
            }
        }
    }

    /// On PostgreSQL, a session advisory lock held on a connection of its own: the process
    /// that holds it dispatches, the others wait. SQLite serves one process.
    async fn lead(&self) -> anyhow::Result<Option<Lead>> {
        match self.projections.store().database() {
            tenantry_store::Database::Postgres(pool) => {
                // Out of the pool: the lock goes with the connection when it is dropped, and is
                // never left held by a connection handed to other work.
                let mut conn = pool.acquire().await?.detach();
                let (held,): (bool,) =
                    sqlx::query_as("SELECT pg_try_advisory_lock(hashtext('tenantry.webhooks'))")
                        .fetch_one(&mut conn)
                        .await?;
                Ok(held.then_some(Lead::Postgres(Box::new(conn))))
            }
            tenantry_store::Database::Sqlite { .. } => Ok(Some(Lead::Sqlite)),
        }
    }

    /// Serve every endpoint due now.
    async fn pass(&self) -> anyhow::Result<Pass> {
        let now = chrono::Utc::now().timestamp_millis();
        let due = webhooks::due(self.projections.db(), now, ENDPOINTS_PER_PASS).await?;
        let count = due.len();
        let served = futures::future::join_all(due.into_iter().map(|d| self.serve(d))).await;
        let mut delivered = 0;
        for n in served {
            delivered += n?;
        }
        Ok(Pass { due: count, delivered })
    }

    /// Deliver an endpoint's next events in order, stopping at the first failure.
    async fn serve(&self, due: Due) -> anyhow::Result<usize> {
        let ctx = TenantContext::system(due.tenant);
        // Nothing new since the endpoint's position: nothing to read.
        let head = self.projections.store().head(&ctx).await?.map_or(0, |h| h.position);
        if head <= due.position {
            return Ok(0);
        }
        // The secret is read from the log, where it lives.
        let state = self.commands.tenant_now(&ctx).await?;
        let Some(entry) = state.webhooks.get(&due.webhook).filter(|w| w.enabled && !w.removed) else {
            return Ok(0);
        };
        let mut position = due.position;
        let mut attempts = due.attempts;
        let mut failing_since = due.failing_since;
        let mut sent = 0;
        while sent < PER_PASS {
            let page = self.projections.store().read_log_page(&ctx, position, 200).await?;
            let Some(last) = page.last().map(|e| e.position) else { break };
            let Some(event) = page.iter().find(|e| wanted(&entry.event_types, &e.event_type)) else {
                webhooks::passed(self.projections.db(), due.tenant, due.webhook, last).await?;
                position = last;
                continue;
            };
            let outcome = self.sender.send(&entry.url, &signing_secrets(entry), event).await;
            sent += 1;
            let at = chrono::Utc::now().timestamp_millis();
            let mut attempt = Attempt {
                position: event.position,
                message_id: event.event_id.to_string(),
                event_type: event.event_type.clone(),
                status: "delivered",
                response_status: outcome.response_status,
                latency_ms: Some(outcome.latency_ms),
                error: outcome.error.clone(),
                at,
            };
            if outcome.delivered {
                webhooks::record(self.projections.db(), due.tenant, due.webhook, &attempt, Then::Advance)
                    .await?;
                position = event.position;
                attempts = 0;
                failing_since = None;
                continue;
            }
            attempts += 1;
            let since = *failing_since.get_or_insert(at);
            if Duration::from_millis((at - since).max(0) as u64) >= GIVE_UP_AFTER {
                attempt.status = "failed";
                webhooks::record(self.projections.db(), due.tenant, due.webhook, &attempt, Then::Stay)
                    .await?;
                self.give_up(due.tenant, due.webhook, attempts).await?;
            } else {
                attempt.status = "retrying";
                let retry_at = at + self.sender.backoff(attempts - 1).as_millis() as i64;
                webhooks::record(
                    self.projections.db(),
                    due.tenant,
                    due.webhook,
                    &attempt,
                    Then::Retry { attempts, since, retry_at },
                )
                .await?;
            }
            break;
        }
        Ok(sent)
    }

    /// Disable an endpoint that kept failing, as the platform.
    async fn give_up(&self, tenant: TenantId, webhook: WebhookId, attempts: i64) -> anyhow::Result<()> {
        let mut ctx = TenantContext::system(tenant);
        ctx.role = Role::SuperAdmin;
        let reason = format!("deliveries kept failing for 24 hours ({attempts} attempts)");
        let command = TenantCommand::DisableWebhook(DisableWebhook { webhook_id: webhook, reason });
        self.commands.tenant(&ctx, &command).await?;
        tracing::warn!(tenant_id = %tenant, webhook_id = %webhook, "webhooks: endpoint disabled");
        Ok(())
    }

    /// Send the event at `position` to the endpoint again, now (a manual redelivery): the
    /// attempt goes in the delivery log; where the endpoint stands does not move.
    pub async fn redeliver(
        &self,
        ctx: &TenantContext,
        webhook: WebhookId,
        position: u64,
    ) -> anyhow::Result<Option<Outcome>> {
        let state = self.commands.tenant_now(&TenantContext::system(ctx.tenant_id)).await?;
        let Some(entry) = state.webhooks.get(&webhook).filter(|w| !w.removed) else { return Ok(None) };
        let page = self.projections.store().read_log_page(ctx, position.saturating_sub(1), 1).await?;
        let Some(event) = page.into_iter().find(|e| e.position == position) else { return Ok(None) };
        let outcome = self.sender.send(&entry.url, &signing_secrets(entry), &event).await;
        let attempt = Attempt {
            position,
            message_id: event.event_id.to_string(),
            event_type: event.event_type.clone(),
            status: if outcome.delivered { "delivered" } else { "failed" },
            response_status: outcome.response_status,
            latency_ms: Some(outcome.latency_ms),
            error: outcome.error.clone(),
            at: chrono::Utc::now().timestamp_millis(),
        };
        // A redelivery never moves the endpoint's cursor: recorded without a retry plan.
        webhooks::record(self.projections.db(), ctx.tenant_id, webhook, &attempt, Then::Stay).await?;
        Ok(Some(outcome))
    }
}

/// The dispatcher's right to run.
#[derive(Debug)]
enum Lead {
    Postgres(#[allow(dead_code)] Box<sqlx::PgConnection>),
    Sqlite,
}
