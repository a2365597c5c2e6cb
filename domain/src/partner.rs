//! Partners (resellers) on the platform's log: created by the platform operator only.

use crate::context::{Role, TenantContext};
use crate::event::{Event, PartnerCreated};
use crate::ids::{PartnerId, StreamId};
use crate::rejection::Rejection;
use crate::validate;

/// The platform stream of one partner.
pub fn stream(partner: PartnerId) -> StreamId {
    format!("partner-{partner}").parse().unwrap_or_else(|_| unreachable!("a uuid makes a valid stream id"))
}

pub fn decide_create(ctx: &TenantContext, partner: PartnerId, name: &str) -> Result<Vec<Event>, Rejection> {
    if ctx.role != Role::SuperAdmin {
        return Err(Rejection::Forbidden);
    }
    let name = name.trim();
    validate::text("name", name, 1, 200)?;
    Ok(vec![Event::PartnerCreated(PartnerCreated { partner_id: partner, name: name.to_owned() })])
}
