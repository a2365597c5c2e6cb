//! `tenantry status`: how far each projection is behind, and which tenants are stalled.

use crate::settings::StoreSettings;
use crate::startup::open_read_side;

pub async fn run(store: StoreSettings) -> anyhow::Result<()> {
    let projections = open_read_side(&store).await?;
    println!("{:<16} {:>8} {:>8} {:>12} {:>8}", "projection", "tenants", "behind", "lag events", "stalled");
    for s in projections.status().await? {
        println!(
            "{:<16} {:>8} {:>8} {:>12} {:>8}",
            s.projector,
            s.tenants,
            s.tenants_behind,
            s.lag_events,
            s.stalled.len()
        );
        for stall in &s.stalled {
            println!("  stalled: tenant {} at position {}: {}", stall.tenant, stall.position, stall.reason);
        }
    }
    Ok(())
}
