//! The `tenantry` command line: one file per subcommand.

use clap::{Parser, Subcommand};

pub mod export;
pub mod keys;
pub mod progress;
pub mod purge;
pub mod replay;
pub mod serve;
pub mod status;
pub mod worker;

#[derive(Debug, Parser)]
#[command(name = "tenantry", version, about = "Multi-tenant event-sourced backbone for AI-agent platforms")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (embedded SQLite by default) and project live.
    Serve(crate::settings::Settings),
    /// Rebuild read models from position 0, for one projection or all, one tenant or all.
    Replay(replay::ReplayArgs),
    /// Per projection: tenants behind, lag in events, stalled tenants with the reason.
    Status(crate::settings::StoreSettings),
    /// Run the projectors without serving HTTP (finds work by polling the database).
    Worker(worker::WorkerArgs),
    /// Write a tenant's whole log as verifiable JSON Lines.
    Export(export::ExportArgs),
    /// Check an export offline: OK with counts, or the first position found wrong.
    Verify(export::VerifyArgs),
    /// Purge a tenant for good (GDPR): key, events, read models; leaves a tombstone.
    Purge(purge::PurgeArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(settings) => serve::run(settings).await,
            Command::Replay(args) => replay::run(args).await,
            Command::Status(store) => status::run(store).await,
            Command::Worker(args) => worker::run(args).await,
            Command::Export(args) => export::run_export(args).await,
            Command::Verify(args) => export::run_verify(args),
            Command::Purge(args) => purge::run(args).await,
            Command::Keys(command) => keys::run(command).await,
        }
    }
}
