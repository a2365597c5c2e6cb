//! `tenantry purge`: the GDPR purge of a whole tenant, step by step, resumable.

use std::io::IsTerminal;

use anyhow::bail;
use clap::Args;
use tenantry_domain::{TenantContext, TenantId};

use crate::compliance::{PurgeError, PurgeReport, PurgeStep, Purger};
use crate::settings::StoreSettings;
use crate::startup::open_read_side;

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The tenant to purge. Run again after an interruption: it carries on where it stopped.
    #[arg(long)]
    pub tenant: TenantId,
    /// Purge without asking for the tenant's slug first (on a terminal it is asked for).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub store: StoreSettings,
}

pub async fn run(args: PurgeArgs) -> anyhow::Result<()> {
    let projections = open_read_side(&args.store).await?;
    let purger = Purger::new(projections, None, crate::compliance::broker(args.store.broker().await?));
    if !args.yes && std::io::stdin().is_terminal() {
        confirm(&purger, args.tenant).await?;
    }
    let report = match purger.request(&TenantContext::system(args.tenant), args.tenant).await {
        Err(PurgeError::UnknownTenant(t)) => bail!("tenant {t} does not exist (no events, never purged)"),
        Err(PurgeError::Platform) => bail!("the platform log cannot be purged"),
        other => other?,
    };
    if report.step == PurgeStep::Done {
        print_done("already purged", &report);
        return Ok(());
    }
    let progress = |r: &PurgeReport| eprintln!("purge {}: at step {}", r.tenant_id, r.step.as_str());
    let report = purger.run(args.tenant, &progress).await?;
    print_done("purged", &report);
    Ok(())
}

/// Ask for the tenant's slug, typed back, before anything is deleted.
async fn confirm(purger: &Purger, tenant: TenantId) -> anyhow::Result<()> {
    let Some(slug) = purger.slug_of(tenant).await? else {
        // Already purged, or unknown: `request` says which, and deletes nothing more.
        return Ok(());
    };
    eprint!(
        "This deletes tenant {tenant} for good: its key, events and read models.\nType its slug to go on: "
    );
    let mut typed = String::new();
    std::io::stdin().read_line(&mut typed)?;
    if typed.trim() != slug {
        bail!("the slug typed is not the tenant's: nothing was purged");
    }
    Ok(())
}

fn print_done(what: &str, r: &PurgeReport) {
    println!(
        "{what}: tenant {}, {} events and {} read-model rows deleted, requested by {} at {}, done at {}",
        r.tenant_id,
        r.events_deleted,
        r.rows_deleted,
        r.requested_by,
        r.requested_at.to_rfc3339(),
        r.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default()
    );
}
