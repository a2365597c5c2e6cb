//! tenantry's HTTP API and the `tenantry` binary.
//!
//! # Layout
//! - [`settings`]: configuration from flags and `TENANTRY_*` variables.
//! - [`startup`]: [`Application`]: opens the store, binds the listener, serves until shutdown.
//! - [`http`]: the axum routers.
//! - [`cli`]: one file per subcommand of the binary.

pub mod cli;
pub mod http;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use startup::Application;
