//! Rebuilds from position 0 (resumable), a tenant's purge from the read side, and status.

use super::*;

impl Projections {
    /// Rebuild projectors for one tenant from position 0 in one transaction, reading the log
    /// once for all of them: queries see the old rows until the new ones are complete, then
    /// all of them at once.
    pub(super) async fn rebuild_tenant(
        &self,
        projectors: &[Arc<dyn Projector>],
        tenant: TenantId,
        progress: &dyn Progress,
    ) -> Result<u64, ProjectionError> {
        self.set_hint(tenant, None);
        let ctx = TenantContext::system(tenant);
        let key = tenant_key(tenant);
        let mut tx = self.db.pool().begin().await?;
        for p in projectors {
            for table in ["projection_checkpoints", "projection_stalls"] {
                exec(
                    &mut tx,
                    &format!("DELETE FROM {table} WHERE tenant_id = $1 AND projector = $2"),
                    vec![key.clone().into(), p.name().into()],
                )
                .await?;
            }
            p.clear(&mut tx, &key).await?;
        }
        let mut position = 0;
        // The log streams with read-ahead: the next page is fetched and decoded while this
        // one is written.
        let mut pages = std::pin::pin!(self.store.read_log(&ctx, 0).try_chunks(BATCH as usize));
        while let Some(page) = pages.try_next().await.map_err(|e| ProjectionError::Store(e.1))? {
            let Some(last) = page.last().map(|e| e.position) else { break };
            if let Some((i, _)) =
                page.iter().enumerate().find(|(i, e)| e.position != position + 1 + *i as u64)
            {
                return Err(ProjectionError::Stalled {
                    projector: "rebuild".to_owned(),
                    tenant,
                    position: position + 1 + i as u64,
                    reason: "hole in the log".into(),
                });
            }
            for p in projectors {
                p.apply(&mut tx, &key, &page).await?;
            }
            progress.advance(page.len() as u64);
            position = last;
        }
        if position > 0 {
            for p in projectors {
                exec(
                    &mut tx,
                    "INSERT INTO projection_checkpoints (tenant_id, projector, position) VALUES ($1, $2, $3)",
                    vec![key.clone().into(), p.name().into(), position.into()],
                )
                .await?;
            }
        }
        tx.commit().await?;
        self.applied.send_modify(|n| *n = n.wrapping_add(1));
        Ok(position)
    }

    /// Rebuild projections from position 0: `projector` or all, `tenant` or all, reading each
    /// tenant's log once. A rebuild of all tenants records how far it got and resumes there
    /// when run again after an interruption. Returns the events read.
    pub async fn rebuild(
        &self,
        projector: Option<&str>,
        tenant: Option<TenantId>,
        progress: &dyn Progress,
    ) -> Result<u64, ProjectionError> {
        let projectors: Vec<Arc<dyn Projector>> = match projector {
            Some(name) => vec![self.find(name)?],
            None => self.projectors.iter().cloned().collect(),
        };
        // The resume point of a rebuild of several projectors is kept under one job name.
        let job = projector.unwrap_or("*");
        if let Some(t) = tenant {
            let total = self.store.head(&TenantContext::system(t)).await?.map_or(0, |h| h.position);
            progress.start(&format!("rebuild {job} for {t}"), total);
            let applied = self.rebuild_tenant(&projectors, t, progress).await?;
            progress.finish();
            return Ok(applied);
        }
        let resume = sqlx::query("SELECT through_tenant FROM projection_rebuilds WHERE projector = $1")
            .bind(job)
            .fetch_optional(self.db.pool())
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .and_then(|t| t.parse::<TenantId>().ok());
        let total = self
            .store
            .every_tenant_head(resume)
            .try_fold(0, |total, (_, head)| async move { Ok(total + head) })
            .await?;
        progress.start(&format!("rebuild {job}"), total);
        let mut applied = 0;
        let mut heads = std::pin::pin!(self.store.every_tenant_head(resume));
        while let Some((t, _)) = heads.try_next().await? {
            applied += self.rebuild_tenant(&projectors, t, progress).await?;
            let mut conn = self.db.pool().acquire().await?;
            exec(
                &mut conn,
                "INSERT INTO projection_rebuilds (projector, through_tenant) VALUES ($1, $2)
                 ON CONFLICT (projector) DO UPDATE SET through_tenant = excluded.through_tenant",
                vec![job.into(), tenant_key(t).into()],
            )
            .await?;
        }
        let mut conn = self.db.pool().acquire().await?;
        exec(&mut conn, "DELETE FROM projection_rebuilds WHERE projector = $1", vec![Val::from(job)]).await?;
        progress.finish();
        Ok(applied)
    }

    /// Delete every read-model row of a tenant, with its checkpoints and stalls, inside the
    /// caller's transaction (so it can record the purge's progress in the same commit).
    /// Deleting the checkpoints first waits for a projector that is applying a page for this
    /// tenant. Call it after the tenant's log is gone, or a projector would build the rows
    /// again. Returns the rows deleted.
    pub async fn purge_tenant(
        &self,
        conn: &mut AnyConnection,
        tenant: TenantId,
    ) -> Result<u64, ProjectionError> {
        self.set_hint(tenant, None);
        let key = tenant_key(tenant);
        let mut deleted = 0;
        // `api_key_last_used` is no read model (a rebuild keeps it) but is the tenant's.
        for table in ["projection_checkpoints", "projection_stalls", "api_key_last_used"] {
            deleted +=
                exec(conn, &format!("DELETE FROM {table} WHERE tenant_id = $1"), vec![key.clone().into()])
                    .await?;
        }
        for p in self.projectors.iter() {
            deleted += p.clear(conn, &key).await?;
        }
        Ok(deleted)
    }

    /// Per projector: tenants behind, lag in events, stalled tenants with their reason.
    pub async fn status(&self) -> Result<Vec<ProjectorStatus>, ProjectionError> {
        let checkpoints = self.all_checkpoints().await?;
        let stalls = sqlx::query(
            "SELECT tenant_id, projector, position, reason FROM projection_stalls ORDER BY tenant_id",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut out: Vec<ProjectorStatus> = self
            .projectors
            .iter()
            .map(|p| ProjectorStatus {
                projector: p.name().to_owned(),
                tenants: 0,
                tenants_behind: 0,
                lag_events: 0,
                stalled: Vec::new(),
            })
            .collect();
        let mut heads = std::pin::pin!(self.store.every_tenant_head(None));
        while let Some((tenant, head)) = heads.try_next().await? {
            let key = tenant_key(tenant);
            for s in out.iter_mut() {
                let at = checkpoints.get(&(key.clone(), s.projector.clone())).copied().unwrap_or(0);
                s.tenants += 1;
                if at < head {
                    s.tenants_behind += 1;
                    s.lag_events += head - at;
                }
            }
        }
        for r in &stalls {
            let projector: String = r.try_get(1)?;
            if let Some(s) = out.iter_mut().find(|s| s.projector == projector) {
                s.stalled.push(Stall {
                    tenant: r.try_get(0)?,
                    position: r.try_get::<i64, _>(2)? as u64,
                    reason: r.try_get(3)?,
                });
            }
        }
        Ok(out)
    }
}
