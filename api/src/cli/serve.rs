//! `tenantry serve`.

use crate::settings::Settings;
use crate::startup::{Application, shutdown_signal};

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(&settings).await?;
    app.run_until(shutdown_signal()).await
}
