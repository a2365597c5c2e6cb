//! Conversations (one `conversation-<id>` stream each) and usage (one `usage-YYYY-MM` stream
//! per month, on which the monthly token limit is decided).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::command::{
    AppendMessage, ArchiveConversation, DeleteConversation, OpenConversation, RecordUsage,
    RetitleConversation,
};
use crate::context::{Actor, Role, TenantContext};
use crate::event::*;
use crate::ids::{AgentId, ConversationId, MessageId, UserId};
use crate::limits::LimitName;
use crate::personal::Personal;
use crate::price::PriceTable;
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
    pub archived: bool,
    /// Deleted: its content shredded; nothing reaches it any more.
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationCommand {
    Open(OpenConversation),
    AppendMessage(AppendMessage),
    Retitle(RetitleConversation),
    Archive(ArchiveConversation),
    Delete(DeleteConversation),
}

/// A user may only touch its own conversations; admins every one of their tenant.
fn may_use(ctx: &TenantContext, owner: Option<UserId>) -> bool {
    match (ctx.role, &ctx.actor) {
        (Role::User, Actor::User(me)) => owner == Some(*me),
        (Role::User, _) => owner.is_none(),
        _ => true,
    }
}

/// The tenant exists and takes commands.
fn open_tenant(tenant: &TenantState) -> Result<(), Rejection> {
    if !tenant.exists {
        return Err(Rejection::TenantNotFound);
    }
    if tenant.suspended {
        return Err(Rejection::TenantSuspended);
    }
    Ok(())
}

pub fn decide(
    ctx: &TenantContext,
    tenant: &TenantState,
    state: &ConversationState,
    command: &ConversationCommand,
) -> Result<Vec<Event>, Rejection> {
    match command {
        ConversationCommand::Open(c) => decide_open(ctx, tenant, state, c),
        ConversationCommand::AppendMessage(c) => decide_append(ctx, tenant, state, c),
        ConversationCommand::Retitle(c) => decide_retitle(ctx, tenant, state, c),
        ConversationCommand::Archive(c) => decide_archive(ctx, tenant, state, c),
        ConversationCommand::Delete(c) => {
            reachable(ctx, tenant, state, c.conversation_id)?;
            Ok(vec![Event::ConversationDeleted(ConversationDeleted { conversation_id: c.conversation_id })])
        }
    }
}

/// The conversation exists and the caller may touch it (its owner, or an admin).
fn reachable(
    ctx: &TenantContext,
    tenant: &TenantState,
    state: &ConversationState,
    id: ConversationId,
) -> Result<(), Rejection> {
    open_tenant(tenant)?;
    if state.id != Some(id) || state.deleted || !may_use(ctx, state.user_id) {
        return Err(Rejection::ConversationNotFound(id));
    }
    Ok(())
}

pub fn decide_retitle(
    ctx: &TenantContext,
    tenant: &TenantState,
    state: &ConversationState,
    c: &RetitleConversation,
) -> Result<Vec<Event>, Rejection> {
    reachable(ctx, tenant, state, c.conversation_id)?;
    let title = match &c.title {
        crate::command::Patch::Keep => return Ok(vec![]),
        crate::command::Patch::Clear => None,
        crate::command::Patch::Set(title) => {
            validate::text("title", title, 0, 500)?;
            Some(Personal::Text(title.clone()))
        }
    };
    Ok(vec![Event::ConversationRetitled(ConversationRetitled {
        conversation_id: c.conversation_id,
        user_id: state.user_id,
        title,
    })])
}

/// Archiving an archived conversation (or unarchiving a live one) writes nothing.
pub fn decide_archive(
    ctx: &TenantContext,
    tenant: &TenantState,
    state: &ConversationState,
    c: &ArchiveConversation,
) -> Result<Vec<Event>, Rejection> {
    reachable(ctx, tenant, state, c.conversation_id)?;
    if state.archived == c.archived {
        return Ok(vec![]);
    }
    Ok(vec![Event::ConversationArchived(ConversationArchived {
        conversation_id: c.conversation_id,
        archived: c.archived,
    })])
}

pub fn decide_open(
    ctx: &TenantContext,
    tenant: &TenantState,
    state: &ConversationState,
    c: &OpenConversation,
) -> Result<Vec<Event>, Rejection> {
    open_tenant(tenant)?;
    if state.id.is_some() {
        return Err(Rejection::ConversationAlreadyExists(c.conversation_id));
    }
    if !tenant.agent_is_active(c.agent_id) {
        return Err(Rejection::AgentNotFound(c.agent_id));
    }
    // A user key that names no user opens the conversation as the user it acts as.
    let user_id = match (c.user_id, ctx.role, &ctx.actor) {
        (None, Role::User, Actor::User(me)) => Some(*me),
        (given, _, _) => given,
    };
    if let Some(user) = user_id
        && tenant.users.get(&user).is_none_or(|u| u.removed)
    {
        return Err(Rejection::UserNotFound(user));
    }
    if !may_use(ctx, user_id) {
        return Err(Rejection::invalid("user_id", "a user key opens conversations of its own user only"));
    }
    if let Some(title) = &c.title {
        validate::text("title", title, 0, 500)?;
    }
    Ok(vec![Event::ConversationOpened(ConversationOpened {
        conversation_id: c.conversation_id,
        agent_id: c.agent_id,
        user_id,
        title: c.title.clone().map(Personal::Text),
    })])
}

pub fn decide_append(
    ctx: &TenantContext,
    tenant: &TenantState,
    state: &ConversationState,
    c: &AppendMessage,
) -> Result<Vec<Event>, Rejection> {
    reachable(ctx, tenant, state, c.conversation_id)?;
    // Retrying the same message id is a no-op, not a second message.
    if state.message_ids.contains(&c.message_id) {
        return Ok(vec![]);
    }
    if state.archived {
        return Err(Rejection::ConversationArchived(c.conversation_id));
    }
    validate::text("content", &c.content, 0, MAX_MESSAGE_CHARS)?;
    if let Some(model) = &c.model {
        validate::model("model", model)?;
        if !tenant.allows_model(model) {
            return Err(Rejection::ModelNotAllowed(model.clone()));
        }
    }
    if let Some(usage) = &c.usage {
        validate::usage(usage)?;
        if c.model.is_none() {
            return Err(Rejection::invalid("model", "required with usage"));
        }
    }
    // What a user writes in their own conversation is theirs: it is sealed with their key
    // and erased with them. Other roles' messages belong to the tenant.
    let author = match c.role {
        MessageRole::User => state.user_id,
        _ => None,
    };
    Ok(vec![Event::MessageAppended(MessageAppended {
        conversation_id: c.conversation_id,
        message_id: c.message_id,
        role: c.role,
        content: Personal::Text(c.content.clone()),
        model: c.model.clone(),
        usage: c.usage,
        author,
    })])
}

/// A message and the usage it bills: the message's events, and the month's usage events
/// (none when the message carries no usage or was appended before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilledMessage {
    pub message: Vec<Event>,
    pub usage: Vec<Event>,
}

/// Append a message and, when it carries token usage, bill it in `month` in the same
/// decision: billed once (the message id is the usage's request id), refused past the
/// monthly limit, and never a message without its bill or a bill without its message.
pub fn decide_billed_message(
    ctx: &TenantContext,
    tenant: &TenantState,
    state: &ConversationState,
    month: &UsageState,
    c: &AppendMessage,
    now: DateTime<Utc>,
    prices: Option<&PriceTable>,
) -> Result<BilledMessage, Rejection> {
    let message = decide_append(ctx, tenant, state, c)?;
    let usage = match (message.first(), c.usage, &c.model) {
        (Some(_), Some(usage), Some(model)) => {
            let record = RecordUsage {
                model: model.clone(),
                kind: "message".into(),
                usage,
                request_id: Some(c.message_id.to_string()),
                occurred_at: now,
            };
            bill(tenant, month, &record, prices)?
        }
        _ => Vec::new(),
    };
    Ok(BilledMessage { message, usage })
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
        Event::ConversationArchived(e) => state.archived = e.archived,
        Event::ConversationDeleted(_) => state.deleted = true,
        _ => {}
    }
    state
}

/// What a request id recorded first, to tell a retry from a reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedUsage {
    pub model: String,
    pub kind: String,
    pub usage: TokenUsage,
}

/// Token usage of one month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageState {
    pub tokens: u64,
    pub request_ids: BTreeMap<String, RecordedUsage>,
    /// The month's recorded cost, in 1e-9 units.
    pub cost_nanos: i64,
    /// Budget thresholds (thousandths) already crossed this month.
    pub crossed: BTreeSet<u16>,
}

/// Record usage: an admin's (or the platform's) act; a user key records none.
pub fn decide_usage(
    ctx: &TenantContext,
    tenant: &TenantState,
    month: &UsageState,
    c: &RecordUsage,
    prices: Option<&PriceTable>,
) -> Result<Vec<Event>, Rejection> {
    open_tenant(tenant)?;
    if !ctx.role.can_administer() {
        return Err(Rejection::Forbidden);
    }
    bill(tenant, month, c, prices)
}

/// The usage events of one record: none for a request id already recorded with the same
/// content, a rejection for one recorded with other content or past the monthly limit.
/// `prices` is the table in force when the usage happened (`None`: no table on the platform's
/// log yet): the record carries its cost, and the month's budget is decided on it.
fn bill(
    tenant: &TenantState,
    month: &UsageState,
    c: &RecordUsage,
    prices: Option<&PriceTable>,
) -> Result<Vec<Event>, Rejection> {
    validate::model("model", &c.model)?;
    validate::text("kind", &c.kind, 1, 64)?;
    validate::usage(&c.usage)?;
    if let Some(id) = &c.request_id {
        validate::text("request_id", id, 1, 200)?;
        if let Some(first) = month.request_ids.get(id) {
            let same = first.model == c.model && first.kind == c.kind && first.usage == c.usage;
            return if same { Ok(vec![]) } else { Err(Rejection::RequestIdReused(id.clone())) };
        }
    }
    let max = tenant.limits().tokens_per_month;
    let after = month.tokens.saturating_add(c.usage.total());
    if after > max {
        return Err(Rejection::LimitReached { limit: LimitName::TokensPerMonth, max });
    }
    let cost = prices.map(|p| {
        let (nanos, unpriced) = p.cost_nanos(&c.model, c.usage.prompt_tokens, c.usage.completion_tokens);
        RecordedCost { nanos, currency: p.currency.clone(), unpriced }
    });
    let mut events = Vec::new();
    if let (Some(budget), Some(cost)) = (&tenant.budget, &cost)
        && budget.currency == cost.currency
    {
        let spent = month.cost_nanos.saturating_add(cost.nanos);
        if budget.hard_stop && cost.nanos > 0 && spent > budget.monthly_nanos {
            return Err(Rejection::BudgetExceeded {
                budget: crate::price::money(budget.monthly_nanos),
                currency: budget.currency.clone(),
            });
        }
        for threshold in &budget.alert_at_permille {
            let line = i128::from(budget.monthly_nanos) * i128::from(*threshold) / 1000;
            if i128::from(spent) >= line && !month.crossed.contains(threshold) {
                events.push(Event::BudgetThresholdCrossed(BudgetThresholdCrossed {
                    month: c.occurred_at.format("%Y-%m").to_string(),
                    threshold_permille: *threshold,
                    spent_nanos: spent,
                    budget_nanos: budget.monthly_nanos,
                    currency: budget.currency.clone(),
                }));
            }
        }
    }
    events.insert(
        0,
        Event::UsageRecorded(UsageRecorded {
            model: c.model.clone(),
            kind: c.kind.clone(),
            usage: c.usage,
            request_id: c.request_id.clone(),
            occurred_at: c.occurred_at,
            cost,
        }),
    );
    Ok(events)
}

pub fn evolve_usage(mut state: UsageState, event: &Event) -> UsageState {
    if let Event::BudgetThresholdCrossed(e) = event {
        state.crossed.insert(e.threshold_permille);
    }
    if let Event::UsageRecorded(e) = event {
        state.tokens = state.tokens.saturating_add(e.usage.total());
        if let Some(cost) = &e.cost {
            state.cost_nanos = state.cost_nanos.saturating_add(cost.nanos);
        }
        if let Some(id) = &e.request_id {
            state.request_ids.entry(id.clone()).or_insert_with(|| RecordedUsage {
                model: e.model.clone(),
                kind: e.kind.clone(),
                usage: e.usage,
            });
        }
    }
    state
}
