//! `tenantry worker`: project in a process of its own, beside API nodes started with
//! `--no-projectors`. Several workers share tenants safely: checkpoints decide who applies.

use crate::settings::StoreSettings;
use crate::startup::{open_read_side, shutdown_signal};

pub async fn run(store: StoreSettings) -> anyhow::Result<()> {
    let projections = open_read_side(&store).await?;
    tracing::info!(projectors = ?projections.names(), "worker projecting");
    projections.run(shutdown_signal()).await;
    Ok(())
}
