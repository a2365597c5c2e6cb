//! Settings shared by the subcommands that open the store.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Where the data lives and how to open it.
#[derive(Debug, Clone, Args)]
pub struct StoreSettings {
    /// Directory for the embedded database and the master key.
    #[arg(long, env = "TENANTRY_DATA_DIR", default_value = "./tenantry-data")]
    pub data_dir: PathBuf,

    /// `postgres://…` to use PostgreSQL; the embedded SQLite file in the data directory
    /// when absent.
    #[arg(long, env = "TENANTRY_DATABASE_URL")]
    pub database_url: Option<String>,

    /// File holding the master key (64 hex characters); created with mode 0600 on first
    /// start. Defaults to `master.key` in the data directory.
    #[arg(long, env = "TENANTRY_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Where the data keys are kept, apart from the event database, so a backup of the event
    /// database alone holds no key: `sqlite://PATH` (a file of its own) or the `postgres://`
    /// URL of another database (every process of a deployment must name the same one).
    /// Defaults to `keys.db` in the data directory.
    #[arg(long, env = "TENANTRY_KEY_STORE")]
    pub key_store: Option<String>,

    /// PostgreSQL: the role a tenant's reads and appends work as, under row-level security
    /// (`tenantry_app` when absent; not the tables' owner, no BYPASSRLS). The login role must
    /// be a member of it.
    #[arg(long, env = "TENANTRY_PG_TENANT_ROLE")]
    pub pg_tenant_role: Option<String>,

    /// PostgreSQL: the role platform-wide work runs as (projectors, relay, purge, rebuild,
    /// listings across tenants; `tenantry_platform`, BYPASSRLS, when absent).
    #[arg(long, env = "TENANTRY_PG_PLATFORM_ROLE")]
    pub pg_platform_role: Option<String>,

    /// JSON price table for billing: `{"models": {"NAME": {"prompt_per_1k": "0.01",
    /// "completion_per_1k": "0.03"}}, "default": {…}}`. Built-in defaults when absent.
    #[arg(long, env = "TENANTRY_PRICES_FILE")]
    pub prices_file: Option<PathBuf>,

    /// `nats://HOST:PORT` of NATS with JetStream: `serve` relays committed events there,
    /// `worker` is woken through it, and a purge deletes the tenant's messages there.
    #[arg(long, env = "TENANTRY_NATS_URL")]
    pub nats_url: Option<String>,

    #[command(flatten)]
    pub group_commit: GroupCommitSettings,
}

/// How concurrent appends are grouped into one transaction and one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct GroupCommitSettings {
    /// Microseconds a commit started while others are in flight waits for more appends to
    /// join it (never when the store is idle: a lone append is committed at once). 0: it
    /// takes what is queued and goes.
    #[arg(long, env = "TENANTRY_GROUP_COMMIT_WINDOW_US", default_value_t = 0)]
    pub group_commit_window_us: u64,

    /// Most appends in one commit.
    #[arg(long, env = "TENANTRY_GROUP_COMMIT_MAX_BATCH", default_value_t = 256)]
    pub group_commit_max_batch: usize,

    /// Each append its own transaction, as before group commit.
    #[arg(long, env = "TENANTRY_NO_GROUP_COMMIT")]
    pub no_group_commit: bool,
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self { group_commit_window_us: 0, group_commit_max_batch: 256, no_group_commit: false }
    }
}

impl GroupCommitSettings {
    /// The store's settings, on top of the backend's own (how many commits run at once).
    pub fn apply(&self, backend: tenantry_store::GroupCommit) -> Option<tenantry_store::GroupCommit> {
        (!self.no_group_commit).then_some(tenantry_store::GroupCommit {
            window: std::time::Duration::from_micros(self.group_commit_window_us),
            max_batch: self.group_commit_max_batch.clamp(1, 10_000),
            ..backend
        })
    }
}

impl StoreSettings {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("tenantry.db").display()),
        }
    }

    /// The PostgreSQL roles to work as.
    pub fn pg_roles(&self) -> tenantry_store::PgRoles {
        let default = tenantry_store::PgRoles::default();
        tenantry_store::PgRoles {
            tenant: self.pg_tenant_role.clone().unwrap_or(default.tenant),
            platform: self.pg_platform_role.clone().unwrap_or(default.platform),
        }
    }

    /// The key store's URL; never the event database's own.
    pub fn key_store_url(&self) -> anyhow::Result<String> {
        let url = match &self.key_store {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("keys.db").display()),
        };
        if url == self.database_url() {
            anyhow::bail!("--key-store must name another database than the event store's");
        }
        Ok(url)
    }

    pub fn prices(&self) -> anyhow::Result<tenantry_projections::PriceTable> {
        use anyhow::Context;
        match &self.prices_file {
            None => Ok(Default::default()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a valid price table", path.display()))
            }
        }
    }

    /// The broker, when one is configured.
    pub async fn broker(&self) -> anyhow::Result<Option<crate::relay::Broker>> {
        match &self.nats_url {
            Some(url) => Ok(Some(crate::relay::Broker::connect(url).await?)),
            None => Ok(None),
        }
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file.clone().unwrap_or_else(|| self.data_dir.join("master.key"))
    }
}

/// Settings of `tenantry serve`.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "TENANTRY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub store: StoreSettings,

    /// Serve only; leave projection to `tenantry worker` processes.
    #[arg(long, env = "TENANTRY_NO_PROJECTORS")]
    pub no_projectors: bool,

    /// Which routes to serve: both sides, or commands or queries alone.
    #[arg(long, env = "TENANTRY_ROLE", value_enum, default_value_t = crate::http::ServeRole::All)]
    pub role: crate::http::ServeRole,

    /// The super_admin key itself (32 to 128 characters of `A-Za-z0-9_-`). When absent, a
    /// fresh database gets a generated key, printed once.
    #[arg(long, env = "TENANTRY_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,

    /// JSON file of the identity providers whose tokens (JWTs) are taken as credentials:
    /// `{"issuers": [{"issuer", "audience", "jwks_file" | "jwks_url", "tenant_claim", …}]}`.
    #[arg(long, env = "TENANTRY_OIDC_CONFIG")]
    pub oidc_config: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub connections: ConnectionSettings,

    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookSettings,
}

/// How long the server waits on a client, and how many clients it serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct ConnectionSettings {
    /// Seconds from the first byte of a request to the end of its headers.
    #[arg(long, env = "TENANTRY_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout: u64,
    /// Seconds a connection may wait for its next request (or its first) before it is closed.
    #[arg(long, env = "TENANTRY_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub idle_timeout: u64,
    /// Seconds to receive a request body, once its headers are in: 408 past it.
    #[arg(long, env = "TENANTRY_BODY_READ_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout: u64,
    /// Connections served at once; more wait in the listen backlog. Keep it under the open
    /// files limit (`ulimit -n`) less what the database pools need.
    #[arg(long, env = "TENANTRY_MAX_CONNECTIONS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self { header_read_timeout: 10, idle_timeout: 60, body_read_timeout: 30, max_connections: 1000 }
    }
}
