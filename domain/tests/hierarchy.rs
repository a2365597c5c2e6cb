//! Tenants under tenants: a child names its ancestors, has its parent's partner, and a tree
//! is at most four levels deep.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use tenantry_domain::command::*;
use tenantry_domain::event::*;
use tenantry_domain::limits::LimitOverrides;
use tenantry_domain::tenant::{self, TenantCommand, TenantState};
use tenantry_domain::*;

mod common;
use common::*;

fn parent(ancestors: Vec<TenantId>, partner_id: Option<PartnerId>) -> Parent {
    Parent { tenant_id: TenantId::new(), exists: true, ancestors, partner_id }
}

fn under(parent: Parent) -> CreateTenant {
    CreateTenant { parent: Some(parent), ..create_cmd(LimitOverrides::default()) }
}

fn created_under(c: &CreateTenant, partner_id: Option<PartnerId>, ancestors: Vec<TenantId>) -> Event {
    Event::TenantCreated(TenantCreated {
        slug: c.slug.clone(),
        name: c.name.clone(),
        plan: c.plan,
        partner_id,
        settings: c.settings.clone(),
        limits: c.limits,
        ancestors,
    })
}

#[test]
fn a_child_names_its_ancestors_and_has_its_parents_partner() {
    let ctx = platform(TenantId::new());
    let (root, partner) = (TenantId::new(), PartnerId::new());
    let p = parent(vec![root], Some(partner));
    let c = under(p.clone());
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(c.clone())))
        .then(&[created_under(&c, Some(partner), vec![root, p.tenant_id])]);
    // Its partner's admin may make it; another partner's may not.
    let mine = TenantContext { role: Role::PartnerAdmin, partner_id: Some(partner), ..ctx.clone() };
    assert!(
        tenant::decide(
            &mine,
            &TenantState::new(PlanCatalog::default()),
            &TenantCommand::CreateTenant(c.clone())
        )
        .is_ok()
    );
    let theirs = TenantContext { partner_id: Some(PartnerId::new()), ..mine };
    given(&[])
        .when(|s| tenant::decide(&theirs, s, &TenantCommand::CreateTenant(c.clone())))
        .then_rejected(Rejection::Forbidden);
    // A partner other than the parent's is refused by name.
    let elsewhere = CreateTenant { partner_id: Some(PartnerId::new()), ..c };
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(elsewhere.clone())))
        .then_rejected(Rejection::invalid("partner_id", "a child tenant has its parent's partner"));
}

#[test]
fn a_tree_is_at_most_four_levels_and_a_parent_must_exist() {
    let ctx = platform(TenantId::new());
    let three = vec![TenantId::new(), TenantId::new()];
    // A parent two below the root: its child is the fourth level.
    assert!(
        tenant::decide(
            &ctx,
            &TenantState::new(PlanCatalog::default()),
            &TenantCommand::CreateTenant(under(parent(three.clone(), None)))
        )
        .is_ok()
    );
    let mut deeper = three;
    deeper.push(TenantId::new());
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(under(parent(deeper.clone(), None)))))
        .then_rejected(Rejection::invalid("parent_id", "a tenant tree is at most 4 levels deep"));
    let gone = Parent { exists: false, ..parent(vec![], None) };
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(under(gone.clone()))))
        .then_rejected(Rejection::invalid("parent_id", "no such tenant"));
    // What the child's state knows of its ancestors.
    let c = under(parent(vec![], None));
    let state = state_of(&[created_under(&c, None, vec![c.parent.as_ref().unwrap().tenant_id])]);
    assert_eq!(state.ancestors, vec![c.parent.unwrap().tenant_id]);
}

#[test]
fn an_admin_reaches_down_its_tree_only() {
    let (root, mid) = (TenantId::new(), TenantId::new());
    let leaf = TenantId::new();
    let c = CreateTenant { parent: None, ..create_cmd(LimitOverrides::default()) };
    let state = state_of(&[created_under(&c, None, vec![root, mid])]);
    let admin_of = |own: TenantId| (TenantContext { role: Role::Admin, ..platform(leaf) }, Some(own));
    for own in [root, mid] {
        let (ctx, own) = admin_of(own);
        assert!(tenant::reaches(&ctx, own, &state), "an ancestor's admin reaches down");
    }
    let (ctx, own) = admin_of(TenantId::new());
    assert!(!tenant::reaches(&ctx, own, &state), "a sibling's or a stranger's admin does not");
    let user = TenantContext { role: Role::User, ..platform(leaf) };
    assert!(!tenant::reaches(&user, Some(root), &state), "a user of an ancestor does not");
    // The child's keys do not reach up: the root's state has no ancestors.
    let root_state = state_of(&[created(LimitOverrides::default())]);
    let (ctx, own) = (TenantContext { role: Role::Admin, ..platform(root) }, Some(leaf));
    assert!(!tenant::reaches(&ctx, own, &root_state));
}
