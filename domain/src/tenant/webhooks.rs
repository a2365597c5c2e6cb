//! A tenant's webhook endpoints, on the tenant's stream: where its events are delivered,
//! which types, and the signing secret (kept in the log only, like a provider's secret).

use super::{TenantState, WebhookEntry};
use crate::command::{CreateWebhook, DisableWebhook, RemoveWebhook, RotateWebhookSecret, UpdateWebhook};
use crate::context::{Role, TenantContext};
use crate::event::*;
use crate::ids::WebhookId;
use crate::rejection::Rejection;
use crate::validate;

/// Endpoints a tenant keeps at most.
pub const MAX_WEBHOOKS: usize = 20;
/// Event types one endpoint may name at most.
pub const MAX_EVENT_TYPES: usize = 64;
/// The longest an old secret keeps signing after a rotation.
pub const MAX_SECRET_GRACE_SECONDS: u64 = 7 * 24 * 3600;

fn require(cond: bool, rejection: Rejection) -> Result<(), Rejection> {
    if cond { Ok(()) } else { Err(rejection) }
}

/// The tenant exists, is not suspended, and the caller administers it.
fn open(ctx: &TenantContext, state: &TenantState) -> Result<(), Rejection> {
    require(state.exists, Rejection::TenantNotFound)?;
    require(ctx.role.can_administer(), Rejection::Forbidden)?;
    require(!state.suspended, Rejection::TenantSuspended)
}

fn live(state: &TenantState, id: WebhookId) -> Result<&WebhookEntry, Rejection> {
    state.webhooks.get(&id).filter(|w| !w.removed).ok_or(Rejection::WebhookNotFound(id))
}

/// An absolute `http(s)` URL with a host, no credentials in it, at most 2,048 characters.
pub fn check_url(url: &str) -> Result<(), Rejection> {
    validate::text("url", url, 1, 2048)?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| Rejection::invalid("url", "must be an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    require(!authority.is_empty(), Rejection::invalid("url", "must name a host"))?;
    require(!authority.contains('@'), Rejection::invalid("url", "must not carry credentials"))?;
    require(
        !url.chars().any(|c| c.is_whitespace() || c.is_control()),
        Rejection::invalid("url", "must not hold spaces"),
    )
}

fn check_types(types: &[String]) -> Result<(), Rejection> {
    require(
        types.len() <= MAX_EVENT_TYPES,
        Rejection::invalid("event_types", format!("at most {MAX_EVENT_TYPES}")),
    )?;
    for t in types {
        require(
            crate::codec::current_version(t).is_some(),
            Rejection::invalid(
                "event_types",
                format!("`{}` is not an event type", t.chars().take(64).collect::<String>()),
            ),
        )?;
    }
    Ok(())
}

fn check_secret(secret: &str) -> Result<(), Rejection> {
    require(
        secret.starts_with("whsec_") && (30..=120).contains(&secret.len()),
        Rejection::invalid("secret", "must be a `whsec_` secret"),
    )
}

pub(super) fn create(
    ctx: &TenantContext,
    state: &TenantState,
    c: &CreateWebhook,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(!state.webhooks.contains_key(&c.webhook_id), Rejection::invalid("webhook_id", "already used"))?;
    check_url(&c.url)?;
    check_types(&c.event_types)?;
    check_secret(&c.secret)?;
    let live = state.webhooks.values().filter(|w| !w.removed).count();
    require(live < MAX_WEBHOOKS, Rejection::invalid("webhooks", format!("at most {MAX_WEBHOOKS}")))?;
    Ok(vec![Event::WebhookCreated(WebhookCreated {
        webhook_id: c.webhook_id,
        url: c.url.clone(),
        event_types: c.event_types.clone(),
        secret: c.secret.clone(),
    })])
}

/// A change that changes nothing writes nothing.
pub(super) fn update(
    ctx: &TenantContext,
    state: &TenantState,
    c: &UpdateWebhook,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    let now = live(state, c.webhook_id)?;
    if let Some(url) = &c.url {
        check_url(url)?;
    }
    if let Some(types) = &c.event_types {
        check_types(types)?;
    }
    let url = c.url.clone().filter(|u| *u != now.url);
    let event_types = c.event_types.clone().filter(|t| *t != now.event_types);
    let enabled = c.enabled.filter(|e| *e != now.enabled);
    if url.is_none() && event_types.is_none() && enabled.is_none() {
        return Ok(vec![]);
    }
    Ok(vec![Event::WebhookUpdated(WebhookUpdated { webhook_id: c.webhook_id, url, event_types, enabled })])
}

pub(super) fn rotate_secret(
    ctx: &TenantContext,
    state: &TenantState,
    c: &RotateWebhookSecret,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    live(state, c.webhook_id)?;
    check_secret(&c.secret)?;
    require(
        c.grace_seconds <= MAX_SECRET_GRACE_SECONDS,
        Rejection::invalid("grace_seconds", format!("at most {MAX_SECRET_GRACE_SECONDS}")),
    )?;
    Ok(vec![Event::WebhookSecretRotated(WebhookSecretRotated {
        webhook_id: c.webhook_id,
        secret: c.secret.clone(),
        previous_until: c.now + chrono::Duration::seconds(c.grace_seconds as i64),
    })])
}

pub(super) fn remove(
    ctx: &TenantContext,
    state: &TenantState,
    c: &RemoveWebhook,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    live(state, c.webhook_id)?;
    Ok(vec![Event::WebhookRemoved(WebhookRemoved { webhook_id: c.webhook_id })])
}

/// The platform's dispatcher gives up on an endpoint (after failing for a day): disabled
/// until an admin enables it again. Only the platform decides it; one already disabled
/// writes nothing.
pub(super) fn disable(
    ctx: &TenantContext,
    state: &TenantState,
    c: &DisableWebhook,
) -> Result<Vec<Event>, Rejection> {
    require(state.exists, Rejection::TenantNotFound)?;
    require(ctx.role == Role::SuperAdmin, Rejection::Forbidden)?;
    let now = live(state, c.webhook_id)?;
    if !now.enabled {
        return Ok(vec![]);
    }
    Ok(vec![Event::WebhookDisabled(WebhookDisabled { webhook_id: c.webhook_id, reason: c.reason.clone() })])
}

pub(super) fn evolve(state: &mut TenantState, event: &Event) {
    match event {
        Event::WebhookCreated(e) => {
            state.webhooks.insert(
                e.webhook_id,
                WebhookEntry {
                    url: e.url.clone(),
                    event_types: e.event_types.clone(),
                    enabled: true,
                    removed: false,
                    secret: e.secret.clone(),
                    previous: None,
                },
            );
        }
        Event::WebhookUpdated(e) => {
            if let Some(w) = state.webhooks.get_mut(&e.webhook_id) {
                if let Some(url) = &e.url {
                    w.url = url.clone();
                }
                if let Some(types) = &e.event_types {
                    w.event_types = types.clone();
                }
                if let Some(enabled) = e.enabled {
                    w.enabled = enabled;
                }
            }
        }
        Event::WebhookSecretRotated(e) => {
            if let Some(w) = state.webhooks.get_mut(&e.webhook_id) {
                let old = std::mem::replace(&mut w.secret, e.secret.clone());
                w.previous = Some((old, e.previous_until));
            }
        }
        Event::WebhookRemoved(e) => {
            if let Some(w) = state.webhooks.get_mut(&e.webhook_id) {
                w.removed = true;
            }
        }
        Event::WebhookDisabled(e) => {
            if let Some(w) = state.webhooks.get_mut(&e.webhook_id) {
                w.enabled = false;
            }
        }
        _ => {}
    }
}
