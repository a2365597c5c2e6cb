//! `tenantry export` and `tenantry verify`: a tenant's log as verifiable JSON Lines, and the
//! offline check of such a file.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use tenantry_domain::{TenantContext, TenantId};
use tenantry_projections::Progress;
use tenantry_store::StoreError;
use tenantry_store::export::{self, ExportProgress, Exporter, Resume};

use crate::cli::progress::CliProgress;
use crate::settings::StoreSettings;
use crate::startup::open_store;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The tenant to export.
    #[arg(long)]
    pub tenant: TenantId,
    /// Write here instead of standard output. The export is written to `FILE.partial` and
    /// renamed when complete; an interrupted export resumes from that file when run again.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreSettings,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The export file to check; no database is needed.
    pub file: PathBuf,
}

/// Feeds export progress to the CLI's bar or plain lines.
struct Bar<'a> {
    progress: &'a CliProgress,
    started: bool,
    done: u64,
}

impl ExportProgress for Bar<'_> {
    fn exported(&mut self, events: u64, head: u64) {
        if !self.started {
            self.started = true;
            self.progress.start("export", head);
            self.progress.advance(events);
        } else {
            self.progress.advance(events.saturating_sub(self.done));
        }
        self.done = events;
        if events == head {
            self.progress.finish();
        }
    }
}

pub async fn run_export(args: ExportArgs) -> anyhow::Result<()> {
    let store = open_store(&args.store).await?;
    let ctx = TenantContext::system(args.tenant);
    let exporter = Exporter::new(&store);
    let progress = CliProgress::default();
    let mut bar = Bar { progress: &progress, started: false, done: 0 };
    let result = match &args.output {
        None => {
            let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout());
            exporter.export(&ctx, &mut out, &mut bar).await
        }
        Some(path) => export_to_file(&exporter, &ctx, path, &mut bar).await?,
    };
    let summary = match result {
        Err(StoreError::UnknownTenant { tenant }) => {
            bail!("tenant {tenant} has no events: it does not exist or was purged")
        }
        other => other.context("export failed")?,
    };
    eprintln!(
        "exported tenant {}: {} events, head hash {}, final hash {}",
        summary.tenant_id, summary.events, summary.head_hash, summary.final_hash
    );
    Ok(())
}

async fn export_to_file(
    exporter: &Exporter<'_>,
    ctx: &TenantContext,
    path: &Path,
    bar: &mut Bar<'_>,
) -> anyhow::Result<Result<export::Summary, StoreError>> {
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    let resume = match File::open(&partial) {
        Ok(file) => export::resume_point(BufReader::new(file))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Resume::Restart,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", partial.display())),
    };
    let result = match resume {
        Resume::At(point) if point.header.tenant_id == ctx.tenant_id => {
            eprintln!("resuming {} after position {}", partial.display(), point.count);
            let file = OpenOptions::new().write(true).open(&partial)?;
            file.set_len(point.valid_len)?;
            let mut out = BufWriter::new(file);
            std::io::Seek::seek(&mut out, std::io::SeekFrom::End(0))?;
            exporter.resume(ctx, point, &mut out, bar).await
        }
        Resume::Complete => {
            // Interrupted between the last write and the rename: check it and finish.
            let summary =
                export::verify(BufReader::new(File::open(&partial)?), |_, _| Ok(())).with_context(|| {
                    format!("{} does not verify; remove it to start again", partial.display())
                })?;
            Ok(summary)
        }
        Resume::At(_) | Resume::Restart => {
            let mut out = BufWriter::with_capacity(
                1 << 20,
                File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?,
            );
            exporter.export(ctx, &mut out, bar).await
        }
    };
    if result.is_ok() {
        File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    }
    Ok(result)
}

pub fn run_verify(args: VerifyArgs) -> anyhow::Result<()> {
    let file = File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    match export::verify(BufReader::with_capacity(1 << 20, file), |_, _| Ok(())) {
        Ok(summary) => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "OK: tenant {}, {} events, positions 1..={}, head hash {}, final hash {}",
                summary.tenant_id,
                summary.events,
                summary.head_position,
                summary.head_hash,
                summary.final_hash
            )?;
            Ok(())
        }
        Err(e) => bail!("FAILED at position {}: {e}", e.position()),
    }
}
