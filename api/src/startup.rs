//! Building and running the server.

use std::future::Future;

use anyhow::Context;
use tenantry_store::{EventStore, MasterKey};
use tokio::net::TcpListener;

use crate::http::{self, AppState};
use crate::settings::{Settings, StoreSettings};

/// Open the store the settings describe: create the data directory and master key on first
/// start, run migrations.
pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<EventStore> {
    let url = settings.database_url();
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
    }
    let key_path = settings.master_key_path();
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
    let store = EventStore::open(&url, &master).await.context("cannot open the event store")?;
    match &settings.database_url {
        None => tracing::info!(path = %settings.data_dir.display(), "embedded SQLite store ready"),
        Some(_) => tracing::info!("PostgreSQL store ready"),
    }
    Ok(store)
}

/// A built server: store open, listener bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings.store).await?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        Ok(Self { listener, state: AppState { store } })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn store(&self) -> &EventStore {
        &self.state.store
    }

    /// Serve until `shutdown` completes, then finish in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "listening");
        axum::serve(self.listener, http::router(self.state)).with_graceful_shutdown(shutdown).await?;
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
