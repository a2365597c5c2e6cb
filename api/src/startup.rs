//! Building and running the server.

use std::future::Future;

use anyhow::Context;
use tenantry_projections::Projections;
use tenantry_store::{EventStore, MasterKey};
use tokio::net::TcpListener;

use tenantry_domain::PlanCatalog;

use crate::compliance::Purger;
use tenantry_app::keys::KeyHasher;

use crate::http::auth::ensure_bootstrap_key;
use crate::http::{self, AppState, ServeRole};
use crate::settings::{Settings, StoreSettings};
use tenantry_app::Commands;

/// Whether opening a store may create it: only `serve` makes a data directory or a master
/// key; every other command meets a missing one with an error naming the path, so a typo in
/// `--data-dir` is not a fresh, empty store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    CreateIfMissing,
    Existing,
}

/// Open an existing store the settings describe and run migrations.
pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<EventStore> {
    Ok(open_store_with_key(settings, Opening::Existing).await?.0)
}

async fn open_store_with_key(
    settings: &StoreSettings,
    opening: Opening,
) -> anyhow::Result<(EventStore, MasterKey)> {
    let url = settings.database_url();
    let key_path = settings.master_key_path();
    if opening == Opening::Existing {
        let database = settings.data_dir.join("tenantry.db");
        if settings.database_url.is_none() && !database.exists() {
            anyhow::bail!(
                "no store at {}: no such database (check --data-dir; only `tenantry serve` creates one)",
                database.display()
            );
        }
        if !key_path.exists() {
            anyhow::bail!(
                "no master key at {} (check --data-dir or --master-key-file; only `tenantry serve` creates one)",
                key_path.display()
            );
        }
    }
    let key_store = settings.key_store_url()?;
    if settings.database_url.is_none() || settings.key_store.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
    }
    if let Some(parent) = key_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let (master, created) = MasterKey::load_or_create(&key_path)
        .with_context(|| format!("cannot read or create the master key at {}", key_path.display()))?;
    if created {
        tracing::warn!(path = %key_path.display(), "created a new master key (mode 0600); back it up: without it no event can be read");
    } else {
        tracing::info!(path = %key_path.display(), "master key loaded");
    }
    let store = if url.starts_with("postgres") {
        EventStore::open_postgres_as(&url, &master, 32, &settings.pg_roles()).await
    } else {
        EventStore::open(&url, &master).await
    }
    .context("cannot open the event store")?
    .with_key_store(&key_store)
    .await
    .context("cannot open the key store")?;
    let store = match store.group_commit() {
        Some(backend) => store.with_group_commit(settings.group_commit.apply(backend)),
        None => store,
    };
    match &settings.database_url {
        None => tracing::info!(path = %settings.data_dir.display(), "embedded SQLite store ready"),
        Some(_) => tracing::info!("PostgreSQL store ready"),
    }
    Ok((store, master))
}

/// Open the store and the read side over it.
pub async fn open_read_side(settings: &StoreSettings) -> anyhow::Result<Projections> {
    Ok(open_all(settings, Opening::Existing).await?.0)
}

/// The read side and the hasher of API key secrets (for the CLI).
pub async fn open_read_side_with_hasher(
    settings: &StoreSettings,
) -> anyhow::Result<(Projections, KeyHasher)> {
    let (projections, master) = open_all(settings, Opening::Existing).await?;
    Ok((projections, KeyHasher::new(&master)))
}

async fn open_all(settings: &StoreSettings, opening: Opening) -> anyhow::Result<(Projections, MasterKey)> {
    let (store, master) = open_store_with_key(settings, opening).await?;
    let prices = settings.prices()?;
    let roles = settings.pg_roles();
    Ok((tenantry_projections::open_as(store, &settings.database_url(), prices, &roles).await?, master))
}

/// How often the retention sweep runs.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// A built server: store and read side open, listener bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    project: bool,
    role: ServeRole,
    broker: Option<crate::relay::Broker>,
    /// The PostgreSQL database whose key changes this process listens to.
    database_url: Option<String>,
    connections: crate::settings::ConnectionSettings,
    /// Whether this process delivers webhooks (one process of a deployment does at a time).
    dispatch: bool,
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let (projections, master) = open_all(&settings.store, Opening::CreateIfMissing).await?;
        let plans = PlanCatalog::default();
        let store = projections.store().clone();
        let commands = Commands::new(store.clone(), plans);
        let broker = settings.store.broker().await?;
        let idempotency = http::idempotency::Idempotency::new(store.idempotency());
        let oidc = match &settings.oidc_config {
            Some(path) => Some(http::oidc::Oidc::load(path).await?),
            None => None,
        };
        let webhooks = crate::webhooks::Dispatcher::new(
            projections.clone(),
            commands.clone(),
            crate::webhooks::Sender::new(settings.webhooks.clone())?,
        );
        let prices = settings.store.prices()?;
        let currency = prices.currency.clone();
        let state = AppState::new(http::Shared {
            currency,
            cookie_key: console_key(&master),
            webhooks,
            purger: Purger::new(
                projections.clone(),
                Some(commands.clone()),
                crate::compliance::broker(broker.clone()),
            ),
            commands,
            keys: KeyHasher::new(&master),
            store,
            projections,
            plans,
            gates: Default::default(),
            key_cache: Default::default(),
            idempotency,
            denials: Default::default(),
            reads: Default::default(),
            oidc,
            last_used: Default::default(),
            runtime: Default::default(),
        });
        // A prices file is put on the platform's log when it differs from the table in force:
        // from then on usage is priced from the log, whichever process records it.
        if settings.store.prices_file.is_some() {
            let now = chrono::Utc::now();
            if state.commands.prices_at(now).await?.as_ref() != Some(&prices) {
                let mut ctx = tenantry_domain::TenantContext::system(tenantry_domain::TenantId::PLATFORM);
                ctx.role = tenantry_domain::Role::SuperAdmin;
                state.commands.set_prices(&ctx, &prices, now).await?;
                tracing::info!("the prices file is in force from now on");
            }
        }
        if let Some(key) = ensure_bootstrap_key(&state, settings.bootstrap_key.as_deref()).await? {
            // Shown once: only its keyed hash is kept.
            println!("super_admin key (shown once, keep it safe): {key}");
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        Ok(Self {
            listener,
            state,
            project: !settings.no_projectors,
            role: settings.role,
            broker,
            database_url: settings.store.database_url.clone(),
            connections: settings.connections,
            dispatch: !settings.webhooks.disabled,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn store(&self) -> &EventStore {
        &self.state.store
    }

    pub fn projections(&self) -> &Projections {
        &self.state.projections
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` completes, then finish in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "listening");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let projector = self.project.then(|| {
            let projections = self.state.projections.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(projections.run(async move {
                let _ = stop.wait_for(|s| *s).await;
            }))
        });
        // Committed events go to the broker, from whichever process appends them.
        let relay = match (&self.broker, self.role) {
            (Some(broker), role) if role != ServeRole::Queries => {
                let relay = crate::relay::Relay::new(self.state.projections.clone(), broker.clone());
                let mut stop = stop_rx.clone();
                Some(tokio::spawn(relay.run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })))
            }
            _ => None,
        };
        // Keys are cached for authentication only while their changes are heard.
        let key_changes = self.database_url.clone().map(|url| {
            let mut stop = stop_rx.clone();
            let commands = self.state.commands.clone();
            tokio::spawn(http::key_cache::listen(self.state.key_cache.clone(), commands, url, async move {
                let _ = stop.wait_for(|s| *s).await;
            }))
        });
        // Webhook deliveries, from one process of the deployment at a time.
        let webhooks = (self.dispatch && self.role != ServeRole::Queries).then(|| {
            let dispatcher = self.state.webhooks.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(dispatcher.run(async move {
                let _ = stop.wait_for(|s| *s).await;
            }))
        });
        // The retention sweep: every hour, deletes conversations past their tenant's retention.
        let retention = (self.role != ServeRole::Queries).then(|| {
            let (commands, projections) = (self.state.commands.clone(), self.state.projections.clone());
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        () = tokio::time::sleep(RETENTION_EVERY) => {}
                    }
                    let done = tenantry_app::retention::sweep(
                        &commands,
                        &projections,
                        chrono::Utc::now(),
                        &mut |_| {},
                    )
                    .await;
                    match done {
                        Ok(s) if s.conversations_deleted > 0 || s.held > 0 => tracing::info!(
                            tenants = s.tenants,
                            held = s.held,
                            deleted = s.conversations_deleted,
                            "retention sweep"
                        ),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "retention sweep stopped; the next one carries on")
                        }
                    }
                }
            })
        });
        // Purges a killed process left unfinished carry on in the background.
        if self.role != ServeRole::Queries {
            self.state.purger.resume_all().await?;
        }
        let app = http::router(self.state, self.role, self.connections);
        crate::server::serve(self.listener, app, self.connections, shutdown).await?;
        // Let the projector finish its transaction, then stop it.
        let _ = stop_tx.send(true);
        for handle in [projector, relay, key_changes, webhooks, retention].into_iter().flatten() {
            let _ = handle.await;
        }
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// The console's cookie key: 64 bytes derived from the master key under labels of its own.
fn console_key(master: &MasterKey) -> axum_extra::extract::cookie::Key {
    let mut bytes = zeroize::Zeroizing::new([0u8; 64]);
    bytes[..32].copy_from_slice(master.derive("tenantry console cookie signing").as_slice());
    bytes[32..].copy_from_slice(master.derive("tenantry console cookie encryption").as_slice());
    axum_extra::extract::cookie::Key::from(bytes.as_slice())
}
