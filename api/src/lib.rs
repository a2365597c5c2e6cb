//! tenantry's HTTP API and the `tenantry` binary.
//!
//! # Layout
//! - [`settings`]: configuration from flags and `TENANTRY_*` variables.
//! - [`startup`]: [`Application`]: opens the store, binds the listener, serves until shutdown.
//! - [`service`]: commands decided on state from the streams, retried on conflicts.
//! - [`http`]: the axum routers.
//! - [`compliance`]: tenant purge as a resumable state machine.
//! - [`relay`]: committed events published to NATS JetStream.
//! - [`slugs`]: one tenant per slug, claimed on the platform log.
//! - [`cli`]: one file per subcommand of the binary.

pub mod cli;
pub mod compliance;
pub mod http;
pub mod relay;
pub mod service;
pub mod settings;
pub mod slugs;
pub mod startup;

pub use settings::Settings;
pub use startup::Application;
