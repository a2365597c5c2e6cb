//! Retention: the conversations of a tenant that sets `conversations_days` are deleted
//! (their content shredded, as `DELETE …/conversations/{id}` does) once they have had no
//! activity for that long. A sweep goes over every tenant; it is safe to stop and run again
//! (a conversation deleted already is skipped), and a tenant under a legal hold is left alone.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use tenantry_domain::command::DeleteConversation;
use tenantry_domain::conversation::ConversationCommand;
use tenantry_domain::{Rejection, TenantContext, TenantId};
use tenantry_projections::Projections;
use tenantry_projections::models::conversations;

use crate::{AppError, CommandError, Commands};

/// Conversations listed per read.
const PAGE: u32 = 500;

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Tenants with a retention looked at.
    pub tenants: u64,
    /// Tenants with a retention left alone for a legal hold.
    pub held: u64,
    pub conversations_deleted: u64,
}

/// Delete, for every tenant with a retention, the conversations inactive since before
/// `now` minus its retention. `progress` is called after each tenant.
pub async fn sweep(
    commands: &Commands,
    projections: &Projections,
    now: DateTime<Utc>,
    progress: &mut (dyn FnMut(&Swept) + Send),
) -> Result<Swept, AppError> {
    let mut swept = Swept::default();
    let mut heads = std::pin::pin!(projections.store().every_tenant_head(None));
    while let Some((tenant, _)) = heads.try_next().await? {
        if tenant == TenantId::PLATFORM {
            continue;
        }
        let ctx = TenantContext::system(tenant);
        let state = match commands.tenant_now(&ctx).await {
            Ok(state) => state,
            // A tenant whose log can no longer be read (purged meanwhile) has nothing to keep.
            Err(CommandError::Store(tenantry_store::StoreError::KeyDestroyed { .. })) => continue,
            Err(e) => return Err(e.into()),
        };
        let Some(days) = state.retention_days.filter(|_| state.exists) else { continue };
        swept.tenants += 1;
        if state.legal_hold {
            swept.held += 1;
            progress(&swept);
            continue;
        }
        let cutoff = (now - chrono::Duration::days(i64::from(days))).timestamp_millis();
        loop {
            let old = conversations::inactive_since(&ctx, projections.db(), cutoff, PAGE).await?;
            if old.is_empty() {
                break;
            }
            let (mut deleted_now, mut last) = (0, 0);
            for id in old {
                let command = ConversationCommand::Delete(DeleteConversation { conversation_id: id });
                match commands.conversation(&ctx, id, &command).await {
                    Ok(written) => {
                        deleted_now += 1;
                        last = written.position;
                    }
                    // Gone already (deleted by its owner, or by a sweep before this one).
                    Err(CommandError::Rejected(Rejection::ConversationNotFound(_))) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // The read model drops them once it has the deletions; the next page is read then.
            let waited = std::time::Duration::from_secs(5);
            projections.wait_for(conversations::NAME, tenant, last, waited).await.ok();
            swept.conversations_deleted += deleted_now;
            if deleted_now == 0 {
                break;
            }
        }
        progress(&swept);
    }
    Ok(swept)
}
