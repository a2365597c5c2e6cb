//! The platform's operators: decided on the platform log's `operators` stream, whose folded
//! state also answers authentication (an operator's key, the bootstrap key's retirement)
//! without a read model.

use std::sync::Arc;

use tenantry_domain::operator::{self, OperatorCommand, OperatorsState};
use tenantry_domain::{TenantContext, TenantId};

use super::{CommandError, Commands, Decision, Reading, Written};

impl Commands {
    async fn operators_state(&self, reading: Reading) -> Result<(Arc<OperatorsState>, u64), CommandError> {
        let ctx = &TenantContext::system(TenantId::PLATFORM);
        let cache = &self.caches.operators;
        Ok(self
            .fold(ctx, &operator::stream(), cache, reading, OperatorsState::default, operator::evolve)
            .await?)
    }

    /// A command on the platform's operators, by `ctx` (a super_admin of the platform).
    #[tracing::instrument(skip_all, err)]
    pub async fn operators(
        &self,
        ctx: &TenantContext,
        command: &OperatorCommand,
    ) -> Result<Written, CommandError> {
        let ctx = &TenantContext { tenant_id: TenantId::PLATFORM, ..ctx.clone() };
        self.run(ctx, move |reading| async move {
            let (state, version) = self.operators_state(reading).await?;
            let events = operator::decide(ctx, &state, command)?;
            let stream = operator::stream();
            let Some(request) = Self::request(stream.clone(), version, &events)? else { return Ok(None) };
            Ok(Some(Decision::new(request).then_advance(
                &self.caches.operators,
                TenantId::PLATFORM,
                stream,
                version,
                events,
                operator::evolve,
            )))
        })
        .await
    }

    /// The operators as this process holds them (read once, then moved on by this process's
    /// own commands and by [`Commands::refresh_tenant`] of the platform when another process
    /// changed them).
    pub async fn operators_known(&self) -> Result<Arc<OperatorsState>, CommandError> {
        Ok(self.operators_state(Reading::Cached).await?.0)
    }

    /// Read the operators stream on to its end (another process changed it).
    pub(super) async fn refresh_operators(&self) -> Result<(), CommandError> {
        self.operators_state(Reading::Fresh).await?;
        Ok(())
    }
}
