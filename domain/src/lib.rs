//! The pure core of tenantry: identifiers, the tenant context, events and their encoding,
//! commands with their `decide`/`evolve`, and limits. No IO, no async, no clock: time, new
//! ids and configuration come in through commands and initial states.
//!
//! # Layout
//! - [`ids`]: identifiers that parse instead of validate (`TenantId`, `StreamId`, …).
//! - [`context`]: `TenantContext`, `Role`, `Actor`.
//! - [`event`]: every event payload and the `Event` sum.
//! - [`codec`]: the persisted type strings, postcard encoding, upcasting of old versions.
//! - [`command`]: one type per command, apart from the events.
//! - [`limits`]: plans, limits and overrides.
//! - [`inherit`]: what a tenant below others inherits of their settings and limits.
//! - [`personal`]: personal data of one person, sealed with that person's key.
//! - [`tenant`]: the tenant aggregate (lifecycle and directory) and its limits.
//! - [`conversation`]: conversations, messages and monthly usage, and a message that bills
//!   its usage (a combined decision).
//! - [`document`]: the knowledge base: documents' metadata events and how bodies are
//!   chunked for search.
//! - [`partner`]: partners on the platform's log.
//! - [`operator`]: the platform's named operators and the bootstrap key's retirement.
//! - [`slug`]: one tenant per slug, decided on the platform log.
//! - [`price`]: price tables on the platform log, the cost a usage record carries, money.
//! - [`rejection`]: why a command is refused.
//! - [`runtime`]: what an agent runtime is handed (prompt variables filled in, the provider).
//! - [`scope`]: what a tenant key may be narrowed to.
//! - [`testing`]: a given/when/then harness for deciders.

pub mod codec;
pub mod command;
pub mod context;
pub mod conversation;
pub mod document;
pub mod event;
pub mod ids;
pub mod inherit;
pub mod limits;
pub mod operator;
pub mod partner;
pub mod personal;
pub mod price;
pub mod rejection;
pub mod runtime;
pub mod scope;
pub mod slug;
pub mod tenant;
pub mod testing;
pub mod validate;

pub use codec::CodecError;
pub use context::{Actor, Role, TenantContext};
pub use event::{Event, Metadata};
pub use ids::*;
pub use limits::{LimitName, LimitOverrides, Limits, Plan, PlanCatalog};
pub use personal::Personal;
pub use rejection::Rejection;
pub use scope::Scope;
