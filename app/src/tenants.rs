//! Use cases that take more than one command: a tenant with its slug, the erasure of a
//! person.

use tenantry_domain::command::{CreateTenant, EraseUser, Parent};
use tenantry_domain::tenant::{self, TenantCommand, TenantState};
use tenantry_domain::{PlanCatalog, Rejection, TenantContext, TenantId, UserId};
use tenantry_store::EventStore;

use crate::commands::{Commands, Written};
use crate::error::AppError;

/// Create a tenant under the slug it names. The slug is claimed on the platform's log
/// before the tenant is created, so of two racing creates one wins; the command is checked
/// for form first, so a refused create claims nothing, and a create that fails after its
/// claim releases it.
pub async fn create_tenant(
    commands: &Commands,
    plans: PlanCatalog,
    ctx: &TenantContext,
    mut command: CreateTenant,
    parent_id: Option<TenantId>,
) -> Result<Written, AppError> {
    // A child is decided on what its parent's own stream says of it.
    if let Some(parent_id) = parent_id {
        let parent = commands.tenant_now(&TenantContext::system(parent_id)).await?;
        command.parent = Some(Parent {
            tenant_id: parent_id,
            exists: parent.exists,
            ancestors: parent.ancestors,
            partner_id: parent.partner_id,
        });
    }
    let slug = command.slug.clone();
    let command = TenantCommand::CreateTenant(command);
    tenant::decide(ctx, &TenantState::new(plans), &command)?;
    commands.claim_slug(&slug, ctx.tenant_id).await?;
    match commands.tenant(ctx, &command).await {
        Ok(out) => Ok(out),
        Err(e) => {
            if let Err(release) = commands.release_slug(&slug, ctx.tenant_id).await {
                tracing::warn!(error = %release, tenant = %ctx.tenant_id, "could not release the slug of a failed create");
            }
            Err(e.into())
        }
    }
}

/// Erase one person: their data key is destroyed first, so what is theirs reads as
/// `[erased]` in every copy of the log from then on; then `user.erased` removes the user.
/// Repeating it is harmless.
pub async fn erase_user(
    commands: &Commands,
    store: &EventStore,
    ctx: &TenantContext,
    user_id: UserId,
) -> Result<Written, AppError> {
    let state = commands.tenant_now(ctx).await?;
    if !state.exists {
        return Err(Rejection::TenantNotFound.into());
    }
    if !ctx.role.can_administer() {
        return Err(Rejection::Forbidden.into());
    }
    if !state.users.contains_key(&user_id) {
        return Err(Rejection::UserNotFound(user_id).into());
    }
    if state.legal_hold {
        return Err(Rejection::LegalHold.into());
    }
    // The key goes first: should the process die before the event is written, the data is
    // already unreadable, and repeating the call writes the event.
    store.erase_subject(ctx, user_id).await?;
    let out = commands.tenant(ctx, &TenantCommand::EraseUser(EraseUser { user_id })).await?;
    // Cached states held the person's email, and kept answers to idempotency keys may.
    commands.forget_tenant(ctx.tenant_id);
    store.idempotency().forget_tenant(ctx.tenant_id).await?;
    Ok(out)
}
