//! `tenantry replay`: rebuild read models from position 0.

use clap::Args;
use tenantry_domain::TenantId;

use crate::cli::progress::CliProgress;
use crate::settings::StoreSettings;
use crate::startup::open_read_side;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Rebuild only this projection (`directory`, `conversations`, `quotas`,
    /// `billing_usage`, `audit_log`); all when absent.
    #[arg(long)]
    pub projection: Option<String>,
    /// Rebuild only this tenant; all when absent. An interrupted rebuild of all tenants
    /// resumes where it stopped when run again.
    #[arg(long)]
    pub tenant: Option<TenantId>,
    #[command(flatten)]
    pub store: StoreSettings,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let projections = open_read_side(&args.store).await?;
    let events =
        projections.rebuild(args.projection.as_deref(), args.tenant, &CliProgress::default()).await?;
    println!("rebuilt from {events} events");
    Ok(())
}
