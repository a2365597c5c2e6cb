use clap::Parser;

// Requests allocate and free many small buffers across threads; glibc's allocator spent a
// quarter of the server's time on them under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = std::env::var("TENANTRY_OTLP_ENDPOINT").ok().filter(|e| !e.is_empty());
    let _telemetry = tenantry::telemetry::init(endpoint.as_deref())?;
    tenantry::cli::Cli::parse().run().await
}
