//! The end of a tenant's log (key destruction, purge, scrub) and the check of its hash chain.

use super::*;

impl EventStore {
    /// Destroy the tenant's data key: every copy of its events becomes unreadable for good.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id), err)]
    pub async fn destroy_key(&self, ctx: &TenantContext) -> Result<(), StoreError> {
        self.keys.destroy_key(ctx.tenant_id).await?;
        self.vault.forget(ctx.tenant_id);
        self.scrub_destroyed_keys().await
    }

    /// Delete the tenant's whole log: events, streams, idempotency keys and head. The data key
    /// is destroyed first if it was not already, and stays destroyed: the tenant's log can
    /// never start again. Returns the events deleted; running it again deletes nothing.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id), err)]
    pub async fn purge_log(&self, ctx: &TenantContext) -> Result<u64, StoreError> {
        self.destroy_key(ctx).await?;
        let events = self.backend.purge_log(ctx.tenant_id).await?;
        if self.keys_apart {
            // The persons' and conversations' keys go too (the event database's copy of the
            // tenant's row stays, destroyed: it refuses appends to the purged tenant).
            self.keys.delete_subject_keys(ctx.tenant_id).await?;
        }
        Ok(events)
    }

    /// Wrap every data key (tenants' and persons', not destroyed ones) with `to` instead of
    /// this store's wrapper: a master key rotation. Resumable and safe to run again: a key
    /// that already unwraps with `to` is left as it is, and a key is replaced only if it is
    /// still what was read. `progress` is called with the keys looked at so far.
    pub async fn rewrap_keys(
        &self,
        to: &dyn crate::crypto::KeyWrapper,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Rewrapped, StoreError> {
        let mut report = Rewrapped::default();
        let mut after = None;
        loop {
            let page = self.keys.tenant_keys_after(after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.0);
            for (tenant, wrapped) in &page {
                let context = crate::crypto::wrap_aad(TenantId::from_uuid(*tenant));
                report.count(self.rewrap_one(to, *tenant, None, wrapped, &context).await?);
                progress(report.seen());
            }
        }
        let mut after = None;
        loop {
            let page = self.keys.subject_keys_after(after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.0, last.1));
            for (tenant, subject, wrapped) in &page {
                let context = crate::crypto::subject_wrap_aad(TenantId::from_uuid(*tenant), *subject);
                report.count(self.rewrap_one(to, *tenant, Some(*subject), wrapped, &context).await?);
                progress(report.seen());
            }
        }
        Ok(report)
    }

    async fn rewrap_one(
        &self,
        to: &dyn crate::crypto::KeyWrapper,
        tenant: uuid::Uuid,
        subject: Option<uuid::Uuid>,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<Rewrap, StoreError> {
        if to.unwrap(wrapped, context).await?.is_some() {
            return Ok(Rewrap::Already);
        }
        let Some(raw) = self.vault.wrapper().unwrap(wrapped, context).await? else {
            return Ok(Rewrap::Unreadable);
        };
        let new = to.wrap(&raw, context).await?;
        Ok(if self.keys.rewrap(tenant, subject, wrapped, &new).await? {
            Rewrap::Done
        } else {
            Rewrap::Changed
        })
    }

    /// Make deleted rows unrecoverable from the database files where the backend allows it
    /// (SQLite: zeroed pages and a truncated WAL). PostgreSQL keeps dead tuples until VACUUM.
    pub async fn scrub(&self) -> Result<(), StoreError> {
        self.backend.scrub().await?;
        if self.keys_apart {
            self.keys.scrub_keys().await?;
        }
        Ok(())
    }

    /// Recompute the hash chain over positions `from..=to` (to the head when `to` is `None`).
    /// Works on ciphertext: it needs no key, so it also checks a shredded tenant's log.
    pub async fn verify_chain(
        &self,
        ctx: &TenantContext,
        from: u64,
        to: Option<u64>,
    ) -> Result<ChainReport, StoreError> {
        let tenant = ctx.tenant_id;
        let broken =
            |position, reason: &str| StoreError::ChainBroken { tenant, position, reason: reason.into() };
        let from = from.max(1);
        let mut prev = if from == 1 {
            GENESIS
        } else {
            let before = self.backend.read_log(tenant, from - 2, 1).await?;
            match before.first() {
                Some(e) if e.position == from - 1 => to_hash(&e.hash),
                _ => return Err(broken(from - 1, "event missing")),
            }
        };
        let mut expected = from;
        let mut events = 0;
        let tenant_bytes = *tenant.as_uuid().as_bytes();
        loop {
            let page = self.backend.read_log(tenant, expected - 1, READ_PAGE).await?;
            let len = page.len();
            for e in page {
                if to.is_some_and(|to| e.position > to) {
                    break;
                }
                if e.position != expected {
                    return Err(broken(expected, "event missing"));
                }
                if e.prev_hash != prev {
                    return Err(broken(e.position, "previous hash does not match"));
                }
                let hash = link_hash(
                    &prev,
                    &ChainLink {
                        tenant_id: &tenant_bytes,
                        position: e.position,
                        stream_id: &e.stream_id,
                        stream_version: e.stream_version,
                        event_id: e.event_id.as_uuid().as_bytes(),
                        event_type: &e.event_type,
                        schema_version: e.schema_version,
                        recorded_at: e.recorded_at,
                        payload: &e.payload,
                        metadata: &e.metadata,
                    },
                );
                if hash[..] != e.hash[..] {
                    return Err(broken(e.position, "content does not match its hash"));
                }
                prev = hash;
                expected += 1;
                events += 1;
            }
            if len == 0 || to.is_some_and(|to| expected > to) {
                break;
            }
        }
        if let Some(to) = to {
            if expected <= to {
                return Err(broken(expected, "event missing"));
            }
        } else if let Some(head) = self.backend.head(tenant).await? {
            if head.position >= expected {
                return Err(broken(expected, "event missing"));
            }
            if head.position > 0 && head.last_hash != prev {
                return Err(broken(head.position, "head hash does not match the last event"));
            }
        }
        Ok(ChainReport { first_position: from, last_position: expected - 1, events, last_hash: prev })
    }
}

/// What became of one key in a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewrap {
    Done,
    Already,
    /// Neither wrapper opens it: left as it is, and counted.
    Unreadable,
    /// Changed (destroyed, rewrapped) by someone else meanwhile.
    Changed,
}

/// The outcome of [`EventStore::rewrap_keys`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewrapped {
    pub rewrapped: u64,
    pub already: u64,
    /// Keys neither the old nor the new wrapper opens (left as they are).
    pub unreadable: u64,
    pub changed_meanwhile: u64,
}

impl Rewrapped {
    fn count(&mut self, r: Rewrap) {
        match r {
            Rewrap::Done => self.rewrapped += 1,
            Rewrap::Already => self.already += 1,
            Rewrap::Unreadable => self.unreadable += 1,
            Rewrap::Changed => self.changed_meanwhile += 1,
        }
    }

    pub fn seen(&self) -> u64 {
        self.rewrapped + self.already + self.unreadable + self.changed_meanwhile
    }
}
