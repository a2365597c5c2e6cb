//! `tenantry keys create|list|revoke --tenant ID …`: a tenant's API keys from the command
//! line. `create` prints the secret once; `list` never shows one.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use tenantry_domain::command::{IssueApiKey, RevokeApiKey};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{ApiKeyId, PlanCatalog, Role, Scope, TenantContext, TenantId, UserId};
use tenantry_projections::models::directory;

use crate::http::MIN_POSITION_WAIT;
use crate::settings::StoreSettings;
use crate::startup::open_read_side_with_hasher;
use tenantry_app::Commands;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key for a tenant.
    Create(CreateArgs),
    /// List a tenant's keys (id, name, role, scopes, state, last use): never a secret.
    List(ListArgs),
    /// Revoke a tenant's key: refused from the moment the command is done.
    Revoke(RevokeArgs),
    /// Wrap every data key with a new master key (resumable: run it again until it reports
    /// nothing left), then start every process with `--master-key-file` the new one.
    RotateMaster(RotateMasterArgs),
}

#[derive(Debug, Args)]
pub struct RotateMasterArgs {
    /// The new master key: 64 hex characters, created (mode 0600) when the file is missing.
    #[arg(long)]
    pub new_key_file: std::path::PathBuf,
    /// The store, with `--master-key-file` the key in use now.
    #[command(flatten)]
    pub store: StoreSettings,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub tenant: TenantId,
    #[command(flatten)]
    pub store: StoreSettings,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[arg(long)]
    pub tenant: TenantId,
    /// The key's id (the part after `tnt_` of the key, or its `id` in the API).
    pub key_id: ApiKeyId,
    #[command(flatten)]
    pub store: StoreSettings,
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
    /// Narrow the key to a scope (repeatable): `conversations:write`, `usage:write`, …
    #[arg(long = "scope", value_parser = parse_scope)]
    pub scopes: Vec<Scope>,
    /// When the key stops working (RFC 3339).
    #[arg(long)]
    pub expires_at: Option<DateTime<Utc>>,
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

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("`{s}` is no scope; scopes are {}", known.join(", "))
    })
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => create(args).await,
        KeysCommand::List(args) => list(args).await,
        KeysCommand::Revoke(args) => revoke(args).await,
        KeysCommand::RotateMaster(args) => rotate_master(args).await,
    }
}

async fn rotate_master(args: RotateMasterArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let store = crate::startup::open_store(&args.store).await?;
    if args.new_key_file == args.store.master_key_path() {
        anyhow::bail!("the new key file is the key in use: give a new file");
    }
    let (new, created) =
        tenantry_store::MasterKey::load_or_create(&args.new_key_file).with_context(|| {
            format!("cannot read or create the new master key at {}", args.new_key_file.display())
        })?;
    if created {
        eprintln!("created a new master key at {} (mode 0600): back it up", args.new_key_file.display());
    }
    let bar = indicatif::ProgressBar::new_spinner().with_message("rewrapping data keys");
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let report =
        store.rewrap_keys(&tenantry_store::LocalKeyWrapper::new(&new), &mut |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    println!(
        "{} keys rewrapped, {} already under the new key, {} changed meanwhile, {} unreadable",
        report.rewrapped, report.already, report.changed_meanwhile, report.unreadable
    );
    if report.changed_meanwhile > 0 || report.unreadable > 0 {
        println!("run it again: some keys were not rewrapped this time");
    } else {
        println!(
            "every key is under the new master key: start every process with --master-key-file {}, then destroy the old key file",
            args.new_key_file.display()
        );
    }
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let (projections, _) = open_read_side_with_hasher(&args.store).await?;
    let ctx = TenantContext::system(args.tenant);
    projections.catch_up(&ctx).await?;
    println!(
        "{:<36}  {:<6}  {:<8}  {:<24}  {:<24}  NAME  SCOPES",
        "ID", "ROLE", "STATE", "EXPIRES", "LAST USED"
    );
    let mut after = None;
    loop {
        let page = directory::api_keys(&ctx, projections.db(), after.as_deref(), 200).await?;
        for key in &page.items {
            let time = |t: Option<i64>| {
                t.map(tenantry_projections::models::time::rfc3339).unwrap_or_else(|| "-".into())
            };
            println!(
                "{:<36}  {:<6}  {:<8}  {:<24}  {:<24}  {}  {}",
                key.key_id,
                key.role.as_str(),
                if key.revoked { "revoked" } else { "active" },
                time(key.expires_at),
                time(key.last_used_at),
                key.name,
                if key.scopes.is_empty() { "*".to_owned() } else { key.scopes.join(",") },
            );
        }
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    Ok(())
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let (projections, _) = open_read_side_with_hasher(&args.store).await?;
    let commands = Commands::new(projections.store().clone(), PlanCatalog::default());
    let ctx = TenantContext::system(args.tenant);
    let out =
        commands.tenant(&ctx, &TenantCommand::RevokeApiKey(RevokeApiKey { key_id: args.key_id })).await?;
    // Servers on PostgreSQL drop what they cached of the tenant's keys when told.
    projections.store().announce_key_change(args.tenant).await?;
    projections.catch_up(&ctx).await?;
    projections.wait_for(directory::NAME, args.tenant, out.position, MIN_POSITION_WAIT).await?;
    eprintln!("key {} of tenant {} revoked", args.key_id, args.tenant);
    Ok(())
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let (projections, hasher) = open_read_side_with_hasher(&args.store).await?;
    let commands = Commands::new(projections.store().clone(), PlanCatalog::default());
    let ctx = TenantContext::system(args.tenant);
    let (key_id, token, secret_hash) = hasher.issue();
    let issued = IssueApiKey {
        key_id,
        name: args.name,
        role: args.role,
        secret_hash,
        user_id: args.user,
        scopes: args.scopes,
        expires_at: args.expires_at,
        now: Utc::now(),
    };
    let out = commands.tenant(&ctx, &TenantCommand::IssueApiKey(issued)).await?;
    // Project the key now, so it authenticates even before a server catches up.
    projections.catch_up(&ctx).await?;
    projections.wait_for(directory::NAME, args.tenant, out.position, MIN_POSITION_WAIT).await?;
    println!("{token}");
    eprintln!("key {key_id} for tenant {} ({}): shown once, keep it safe", args.tenant, args.role.as_str());
    Ok(())
}
