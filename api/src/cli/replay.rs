//! `tenantry replay`: rebuild read models from position 0, or rebuild one tenant's read
//! models as they stood at a moment, from an export, into a scratch database.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use sqlx::Row;
use tenantry_domain::{Actor, Metadata, StreamId, TenantContext, TenantId, codec};
use tenantry_store::export::{self, EventLine};
use tenantry_store::{AppendRequest, EventStore, ExpectedVersion, MasterKey, NewEvent};

use crate::cli::progress::CliProgress;
use crate::settings::StoreSettings;
use crate::startup::open_read_side;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Rebuild only this projection (`directory`, `conversations`, `quotas`,
    /// `billing_usage`, `audit_log`); all when absent.
    #[arg(long)]
    pub projection: Option<String>,
    /// Rebuild only this tenant; all when absent. An interrupted rebuild of all tenants
    /// resumes where it stopped when run again.
    #[arg(long)]
    pub tenant: Option<TenantId>,
    /// Audit replay: rebuild the read models of the tenant in this export (verified as it
    /// is read) into a scratch SQLite database in `--into`, instead of the live ones.
    #[arg(long, requires = "into")]
    pub from_export: Option<PathBuf>,
    /// With `--from-export`: stop after this position.
    #[arg(long, requires = "from_export", conflicts_with = "until")]
    pub until_position: Option<u64>,
    /// With `--from-export`: stop after the last event recorded at or before this RFC 3339
    /// time.
    #[arg(long, requires = "from_export")]
    pub until: Option<DateTime<Utc>>,
    /// With `--from-export`: a new or empty directory for the scratch database
    /// (`tenantry.db`, readable with `sqlite3`).
    #[arg(long, requires = "from_export")]
    pub into: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreSettings,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    if let (Some(file), Some(into)) = (&args.from_export, &args.into) {
        let cut = Cut { position: args.until_position, time: args.until };
        let summary = from_export(file, into, cut).await?;
        print!("{summary}");
        return Ok(());
    }
    let projections = open_read_side(&args.store).await?;
    let events =
        projections.rebuild(args.projection.as_deref(), args.tenant, &CliProgress::default()).await?;
    println!("rebuilt from {events} events");
    Ok(())
}

/// Where an audit replay stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cut {
    pub position: Option<u64>,
    pub time: Option<DateTime<Utc>>,
}

impl Cut {
    fn keeps(&self, line: &EventLine) -> bool {
        self.position.is_none_or(|p| line.position <= p)
            && self.time.is_none_or(|t| export::parse_time(&line.recorded_at).is_some_and(|at| at <= t))
    }
}

/// Replay an export into `into/tenantry.db` up to `cut`; returns the printed summary.
pub async fn from_export(file: &Path, into: &Path, cut: Cut) -> anyhow::Result<String> {
    let db = into.join("tenantry.db");
    if db.exists() {
        bail!("{} already holds a database; give a new or empty directory", into.display());
    }
    std::fs::create_dir_all(into).with_context(|| format!("cannot create {}", into.display()))?;
    let (master, _) = MasterKey::load_or_create(&into.join("master.key"))?;
    let store = EventStore::open_sqlite(&db, &master).await?;
    let url = format!("sqlite://{}", db.display());
    let projections = tenantry_projections::open(store.clone(), &url, Default::default()).await?;

    // The file is read and verified on a blocking thread; events come over a bounded
    // channel, so memory stays flat whatever its size.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(TenantId, EventLine)>(4_096);
    let reader = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let verifier = tokio::task::spawn_blocking(move || {
        export::verify(std::io::BufReader::with_capacity(1 << 20, reader), |header, line| {
            if cut.keeps(&line) {
                // A closed channel means the writer failed; its error is reported.
                let _ = tx.blocking_send((header.tenant_id, line));
            }
            Ok(())
        })
    });
    let mut tenant = None;
    let mut group: Vec<EventLine> = Vec::new();
    let mut replayed = 0u64;
    while let Some((t, line)) = rx.recv().await {
        tenant = Some(t);
        // One append per run of events with the same time and metadata (one command).
        if group.first().is_some_and(|g| g.recorded_at != line.recorded_at || g.metadata != line.metadata) {
            replayed += append_group(&store, t, std::mem::take(&mut group)).await?;
        }
        group.push(line);
    }
    if let Some(t) = tenant {
        replayed += append_group(&store, t, group).await?;
    }
    let checked = verifier.await?.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let tenant = checked.tenant_id;
    let ctx = TenantContext::system(tenant);
    projections.catch_up(&ctx).await?;
    Ok(format!(
        "tenant {tenant}: replayed {replayed} of {} verified events into {}\n{}",
        checked.events,
        db.display(),
        summary(&projections, tenant).await?
    ))
}

async fn append_group(store: &EventStore, tenant: TenantId, group: Vec<EventLine>) -> anyhow::Result<u64> {
    let Some(first) = group.first() else { return Ok(0) };
    let at = export::parse_time(&first.recorded_at)
        .with_context(|| format!("position {}: bad recorded_at", first.position))?;
    let metadata: Metadata = first.metadata.clone();
    let mut ctx = TenantContext::system(tenant);
    ctx.actor = metadata.actor.parse::<Actor>().unwrap_or(Actor::System);
    let mut request: Option<AppendRequest> = None;
    let count = group.len() as u64;
    for line in group {
        let version = codec::current_version(&line.event_type)
            .with_context(|| format!("position {}: unknown event type {}", line.position, line.event_type))?;
        // Exports hold the current shape of every event (older versions were upcast).
        let payload = codec::transcode(&line.event_type, version, &line.data)
            .with_context(|| format!("position {}", line.position))?;
        let event = NewEvent::encoded(line.event_id.parse()?, &line.event_type, version, payload)?;
        let stream: StreamId = line.stream.parse()?;
        request = Some(match request {
            None => AppendRequest::to_stream(stream, ExpectedVersion::Any, vec![event]),
            Some(r) => r.and(stream, ExpectedVersion::Any, vec![event]),
        });
    }
    if let Some(request) = request {
        store.append(&ctx, request.recorded_at(at).with_metadata(metadata)).await?;
    }
    Ok(count)
}

/// What a tenant's read models hold: agents, users, conversations, audit entries, usage per
/// model.
pub async fn summary(
    projections: &tenantry_projections::Projections,
    tenant: TenantId,
) -> anyhow::Result<String> {
    use std::fmt::Write;
    let pool = projections.db().pool();
    let t = tenant.to_string();
    let count = |sql: &'static str| {
        let t = t.clone();
        async move { sqlx::query(sql).bind(t).fetch_one(pool).await.and_then(|r| r.try_get::<i64, _>(0)) }
    };
    let mut out = String::new();
    writeln!(
        out,
        "agents:        {}",
        count("SELECT count(*) FROM dir_agents WHERE tenant_id = $1 AND archived = 0").await?
    )?;
    writeln!(
        out,
        "users:         {}",
        count("SELECT count(*) FROM dir_users WHERE tenant_id = $1 AND removed = 0").await?
    )?;
    writeln!(
        out,
        "conversations: {}",
        count("SELECT count(*) FROM conv_threads WHERE tenant_id = $1").await?
    )?;
    writeln!(
        out,
        "audit entries: {}",
        count("SELECT count(*) FROM audit_entries WHERE tenant_id = $1").await?
    )?;
    let usage = sqlx::query(
        "SELECT model, CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT),
                CAST(SUM(requests) AS BIGINT) FROM usage_daily
         WHERE tenant_id = $1 GROUP BY model ORDER BY model",
    )
    .bind(&t)
    .fetch_all(pool)
    .await?;
    writeln!(out, "usage per model:")?;
    for row in usage {
        writeln!(
            out,
            "  {}: {} prompt + {} completion tokens in {} requests",
            row.try_get::<String, _>(0)?,
            row.try_get::<i64, _>(1)?,
            row.try_get::<i64, _>(2)?,
            row.try_get::<i64, _>(3)?
        )?;
    }
    Ok(out)
}
