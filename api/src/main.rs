use clap::Parser;
use tracing_subscriber::EnvFilter;

// Requests allocate and free many small buffers across threads; glibc's allocator spent a
// quarter of the server's time on them under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("TENANTRY_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them.
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("TENANTRY_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    tenantry::cli::Cli::parse().run().await
}
