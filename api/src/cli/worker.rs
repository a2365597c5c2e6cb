//! `tenantry worker`: project in a process of its own, beside API nodes started with
//! `--no-projectors`. Several workers share tenants safely: checkpoints decide who applies.
//!
//! With `--nats-url`, a worker is woken by a durable JetStream consumer shared by every
//! worker (each message goes to one of them): the message names the tenant, the worker reads
//! the authoritative events from the database. It still looks at every tenant every two
//! seconds, so a broker outage, or a deleted stream, only slows it down.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use async_nats::jetstream::consumer::{self, pull};
use clap::Args;
use futures::StreamExt;
use tenantry_domain::TenantId;
use tenantry_projections::{Projections, Projector};
use tenantry_store::Committed;

use crate::relay::Broker;
use crate::settings::StoreSettings;
use crate::startup::{open_read_side, shutdown_signal};

/// The durable consumer all workers share.
pub const CONSUMER: &str = "tenantry-projectors";

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Run only this projector (repeatable): `directory`, `conversations`, `quotas`,
    /// `billing_usage`, `audit_log`. All when absent.
    #[arg(long = "projection")]
    pub projections: Vec<String>,
    #[command(flatten)]
    pub store: StoreSettings,
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let all = open_read_side(&args.store).await?;
    let projections = if args.projections.is_empty() {
        all
    } else {
        let mut chosen: Vec<Arc<dyn Projector>> = Vec::new();
        for name in &args.projections {
            if !all.names().contains(&name.as_str()) {
                bail!("unknown projection `{name}`; known: {}", all.names().join(", "));
            }
            chosen.push(all.find(name)?);
        }
        Projections::new(all.store().clone(), all.db().clone(), chosen)
    };
    tracing::info!(projectors = ?projections.names(), "worker projecting");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wakeups = match args.store.broker().await? {
        Some(broker) => {
            let store = projections.store().clone();
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(async move {
                tokio::select! {
                    () = wake_from_broker(broker, store) => {},
                    _ = stop.wait_for(|s| *s) => {},
                }
            }))
        }
        None => None,
    };
    let mut stop = stop_rx.clone();
    let projector = tokio::spawn(projections.run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    shutdown_signal().await;
    // The runner finishes the transaction it is in; the consumer stops taking messages.
    let _ = stop_tx.send(true);
    let _ = projector.await;
    if let Some(w) = wakeups {
        let _ = w.await;
    }
    Ok(())
}

/// Turn JetStream messages into wake-ups of the local runner, for as long as the process
/// lives; reconnects (and re-creates the stream and consumer) after failures.
async fn wake_from_broker(broker: Broker, store: tenantry_store::EventStore) {
    loop {
        if let Err(e) = consume(&broker, &store).await {
            tracing::warn!(error = %e, "JetStream consumer stopped; retrying (the poll keeps projecting)");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn consume(broker: &Broker, store: &tenantry_store::EventStore) -> anyhow::Result<()> {
    let stream = broker.stream().await?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                // A new consumer starts at new messages: the history is in the database.
                deliver_policy: consumer::DeliverPolicy::New,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("consumer {CONSUMER}: {e}"))?;
    let mut messages = consumer.messages().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
        let header =
            |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        let tenant = header("Tenantry-Tenant").and_then(|t| t.parse::<TenantId>().ok());
        let position = header("Tenantry-Position").and_then(|p| p.parse::<u64>().ok());
        if let (Some(tenant_id), Some(position)) = (tenant, position) {
            store.announce(Committed { tenant_id, position });
        }
        // The checkpoints, not the acknowledgement, say what is projected: acknowledging
        // once the runner is woken is enough, and a lost wake-up is caught by the poll.
        message.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
    }
    Ok(())
}
