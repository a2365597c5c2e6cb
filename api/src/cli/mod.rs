//! The `tenantry` command line: one file per subcommand.

use clap::{Parser, Subcommand};

pub mod serve;

#[derive(Debug, Parser)]
#[command(name = "tenantry", version, about = "Multi-tenant event-sourced backbone for AI-agent platforms")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (embedded SQLite by default).
    Serve(crate::settings::Settings),
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(settings) => serve::run(settings).await,
        }
    }
}
