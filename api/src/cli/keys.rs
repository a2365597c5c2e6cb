//! `tenantry keys create --tenant ID --role ROLE [--name NAME]`: issue an API key from the
//! command line (the secret is printed once).

use clap::{Args, Subcommand};
use tenantry_domain::command::IssueApiKey;
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{PlanCatalog, Role, TenantContext, TenantId, UserId};
use tenantry_projections::models::directory;

use crate::http::MIN_POSITION_WAIT;
use crate::settings::StoreSettings;
use crate::startup::open_read_side_with_hasher;
use tenantry_app::Commands;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key for a tenant.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub tenant: TenantId,
    /// `admin` or `user`.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    #[arg(long, default_value = "cli")]
    pub name: String,
    /// The user a `user` key acts as (required for `--role user`).
    #[arg(long)]
    pub user: Option<UserId>,
    #[command(flatten)]
    pub store: StoreSettings,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "admin" => Ok(Role::Admin),
        "user" => Ok(Role::User),
        other => Err(format!("`{other}`: a tenant key is `admin` or `user`")),
    }
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Create(args) = command;
    let (projections, hasher) = open_read_side_with_hasher(&args.store).await?;
    let commands = Commands::new(projections.store().clone(), PlanCatalog::default());
    let ctx = TenantContext::system(args.tenant);
    let (key_id, token, secret_hash) = hasher.issue();
    let issued = IssueApiKey { key_id, name: args.name, role: args.role, secret_hash, user_id: args.user };
    let out = commands.tenant(&ctx, &TenantCommand::IssueApiKey(issued)).await?;
    // Project the key now, so it authenticates even before a server catches up.
    projections.catch_up(&ctx).await?;
    projections.wait_for(directory::NAME, args.tenant, out.position, MIN_POSITION_WAIT).await?;
    println!("{token}");
    eprintln!("key {key_id} for tenant {} ({}): shown once, keep it safe", args.tenant, args.role.as_str());
    Ok(())
}
