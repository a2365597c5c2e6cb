//! Conversations (one `conversation-<id>` stream each) and usage (one `usage-YYYY-MM` stream
//! per month, on which the monthly token limit is decided).

use std::collections::BTreeSet;

use crate::context::{Actor, Role, TenantContext};
use crate::event::*;
use crate::ids::{AgentId, ConversationId, MessageId, UserId};
use crate::limits::LimitName;
use crate::rejection::Rejection;
use crate::tenant::TenantState;
use crate::validate;

/// Largest message a conversation accepts, in characters.
pub const MAX_MESSAGE_CHARS: usize = 200_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationState {
    pub id: Option<ConversationId>,
    pub agent_id: Option<AgentId>,
    pub user_id: Option<UserId>,
    pub messages: u64,
    pub message_ids: BTreeSet<MessageId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationCommand {
    Open(ConversationOpened),
    AppendMessage(MessageAppended),
}

/// A user may only touch its own conversations; admins every one of their tenant.
fn may_use(ctx: &TenantContext, owner: Option<UserId>) -> bool {
    match (ctx.role, &ctx.actor) {
        (Role::User, Actor::User(me)) => owner == Some(*me),
        (Role::User, _) => owner.is_none(),
        _ => true,
    }
}

pub fn decide(
    ctx: &TenantContext,
    tenant: &TenantState,
    state: &ConversationState,
    command: &ConversationCommand,
) -> Result<Vec<Event>, Rejection> {
    if !tenant.exists {
        return Err(Rejection::TenantNotFound);
    }
    if tenant.suspended {
        return Err(Rejection::TenantSuspended);
    }
    match command {
        ConversationCommand::Open(c) => {
            if state.id.is_some() {
                return Err(Rejection::ConversationAlreadyExists(c.conversation_id));
            }
            if !tenant.agent_is_active(c.agent_id) {
                return Err(Rejection::AgentNotFound(c.agent_id));
            }
            if let Some(user) = c.user_id
                && tenant.users.get(&user).is_none_or(|u| u.removed)
            {
                return Err(Rejection::UserNotFound(user));
            }
            if !may_use(ctx, c.user_id) {
                return Err(Rejection::Forbidden);
            }
            if let Some(title) = &c.title {
                validate::text("title", title.as_str(), 0, 500)?;
            }
            Ok(vec![Event::ConversationOpened(c.clone())])
        }
        ConversationCommand::AppendMessage(c) => {
            if state.id != Some(c.conversation_id) {
                return Err(Rejection::ConversationNotFound(c.conversation_id));
            }
            if !may_use(ctx, state.user_id) {
                return Err(Rejection::ConversationNotFound(c.conversation_id));
            }
            // Retrying the same message id is a no-op, not a second message.
            if state.message_ids.contains(&c.message_id) {
                return Ok(vec![]);
            }
            validate::text("content", c.content.as_str(), 0, MAX_MESSAGE_CHARS)?;
            if let Some(model) = &c.model {
                validate::text("model", model, 1, 200)?;
            }
            // What a user writes in their own conversation is theirs: it is sealed with their
            // key and erased with them. Other roles' messages belong to the tenant.
            let author = match c.role {
                MessageRole::User => state.user_id,
                _ => None,
            };
            Ok(vec![Event::MessageAppended(MessageAppended { author, ..c.clone() })])
        }
    }
}

pub fn evolve(mut state: ConversationState, event: &Event) -> ConversationState {
    match event {
        Event::ConversationOpened(e) => {
            state.id = Some(e.conversation_id);
            state.agent_id = Some(e.agent_id);
            state.user_id = e.user_id;
        }
        Event::MessageAppended(e) => {
            state.messages += 1;
            state.message_ids.insert(e.message_id);
        }
        _ => {}
    }
    state
}

/// Token usage of one month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageState {
    pub tokens: u64,
    pub request_ids: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordUsage(pub UsageRecorded);

pub fn decide_usage(
    _ctx: &TenantContext,
    tenant: &TenantState,
    month: &UsageState,
    command: &RecordUsage,
) -> Result<Vec<Event>, Rejection> {
    let c = &command.0;
    if !tenant.exists {
        return Err(Rejection::TenantNotFound);
    }
    if tenant.suspended {
        return Err(Rejection::TenantSuspended);
    }
    validate::text("model", &c.model, 1, 200)?;
    validate::text("kind", &c.kind, 1, 64)?;
    if let Some(id) = &c.request_id {
        validate::text("request_id", id, 1, 200)?;
        if month.request_ids.contains(id) {
            return Ok(vec![]);
        }
    }
    let max = tenant.limits().tokens_per_month;
    let after = month.tokens.saturating_add(c.usage.total());
    if after > max {
        return Err(Rejection::LimitReached { limit: LimitName::TokensPerMonth, max });
    }
    Ok(vec![Event::UsageRecorded(c.clone())])
}

pub fn evolve_usage(mut state: UsageState, event: &Event) -> UsageState {
    if let Event::UsageRecorded(e) = event {
        state.tokens = state.tokens.saturating_add(e.usage.total());
        if let Some(id) = &e.request_id {
            state.request_ids.insert(id.clone());
        }
    }
    state
}
