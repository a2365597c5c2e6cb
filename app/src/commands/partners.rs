//! Partners on the platform's log, one stream each: their lifecycle and their keys, whose
//! folded state also answers authentication of a partner's key.

use std::sync::Arc;

use tenantry_domain::partner::{self, PartnerState};
use tenantry_domain::{Event, PartnerId, Rejection, TenantContext, TenantId};

use super::{CommandError, Commands, Decision, Reading, Written};

impl Commands {
    async fn partner_state(
        &self,
        partner: PartnerId,
        reading: Reading,
    ) -> Result<(Arc<PartnerState>, u64), CommandError> {
        let ctx = &TenantContext::system(TenantId::PLATFORM);
        let cache = &self.caches.partners;
        let stream = &partner::stream(partner);
        Ok(self.fold(ctx, stream, cache, reading, PartnerState::default, partner::evolve).await?)
    }

    /// A decision on `partner`'s stream, by `ctx`: `decide` is given the partner's state
    /// (empty for a partner not yet created).
    #[tracing::instrument(skip_all, fields(%partner), err)]
    pub async fn partner(
        &self,
        ctx: &TenantContext,
        partner: PartnerId,
        decide: impl Fn(&PartnerState) -> Result<Vec<Event>, Rejection> + Sync,
    ) -> Result<Written, CommandError> {
        let ctx = &TenantContext { tenant_id: TenantId::PLATFORM, ..ctx.clone() };
        let decide = &decide;
        self.run(ctx, move |reading| async move {
            let (state, version) = self.partner_state(partner, reading).await?;
            let events = decide(&state)?;
            let stream = partner::stream(partner);
            let Some(request) = Self::request(stream.clone(), version, &events)? else { return Ok(None) };
            Ok(Some(Decision::new(request).then_advance(
                &self.caches.partners,
                TenantId::PLATFORM,
                stream,
                version,
                events,
                partner::evolve,
            )))
        })
        .await
    }

    /// The partner as this process holds it (read once, then moved on by its own commands
    /// and by [`Commands::refresh_tenant`] of the platform).
    pub async fn partner_known(&self, partner: PartnerId) -> Result<Arc<PartnerState>, CommandError> {
        Ok(self.partner_state(partner, Reading::Cached).await?.0)
    }

    /// Read every partner stream held here on to its end (another process changed one).
    pub(super) async fn refresh_partners(&self) -> Result<(), CommandError> {
        for stream in self.caches.partners.streams_of(TenantId::PLATFORM) {
            let Some(id) = stream.strip_prefix("partner-").and_then(|id| id.parse().ok()) else { continue };
            self.partner_state(id, Reading::Fresh).await?;
        }
        Ok(())
    }
}
