//! tenantry's HTTP adapter and the `tenantry` binary: handlers parse, call the application
//! layer (`tenantry-app`), and map its results; the command line calls it too.
//!
//! # Layout
//! - [`settings`]: configuration from flags and `TENANTRY_*` variables.
//! - [`startup`]: [`Application`]: opens the store, binds the listener, serves until shutdown.
//! - [`http`]: the axum routers.
//! - [`console`]: the web console at `/console`, pages drawn from the JSON API's answers.
//! - [`compliance`]: tenant purge as a resumable state machine.
//! - [`relay`]: committed events published to NATS JetStream.
//! - [`telemetry`]: logs, and traces over OTLP.
//! - [`webhooks`]: deliveries to tenants' webhook endpoints, driven from the log.
//! - [`cli`]: one file per subcommand of the binary.

pub mod cli;
pub mod compliance;
pub mod console;
pub mod http;
pub mod relay;
pub mod server;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod webhooks;

pub use settings::Settings;
pub use startup::Application;
