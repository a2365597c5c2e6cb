//! Who did what, when, from where, with which outcome: one entry per recorded event, and
//! one per denied attempt.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::AnyConnection;
use tenantry_domain::{Event, TenantContext};
use tenantry_store::RecordedEvent;

use super::{int, opt_text, page_size, text};
use crate::db::{ReadDb, Val, exec, insert_many};
use crate::error::ProjectionError;
use crate::runtime::Projector;

/// Persisted projector name.
pub const NAME: &str = "audit_log";

#[derive(Debug, Clone, Copy, Default)]
pub struct AuditLog;

/// The columns of `audit_entries` an entry fills, in the order its rows are built.
pub(crate) const COLUMNS: [&str; 11] = [
    "tenant_id",
    "position",
    "at",
    "actor",
    "role",
    "action",
    "target",
    "outcome",
    "reason",
    "request_id",
    "source_ip",
];

/// The object an event is about, when it names one.
fn target(event: &Event) -> Option<String> {
    Some(match event {
        Event::AgentCreated(e) => format!("agent:{}", e.agent_id),
        Event::AgentUpdated(e) => format!("agent:{}", e.agent_id),
        Event::AgentArchived(e) => format!("agent:{}", e.agent_id),
        Event::ToolRegistered(e) => format!("tool:{}", e.tool_id),
        Event::ToolUpdated(e) => format!("tool:{}", e.tool_id),
        Event::ToolRemoved(e) => format!("tool:{}", e.tool_id),
        Event::ApiKeyIssued(e) => format!("apikey:{}", e.key_id),
        Event::ApiKeyRevoked(e) => format!("apikey:{}", e.key_id),
        Event::ApiKeyRotated(e) => format!("apikey:{}", e.key_id),
        Event::UserAdded(e) => format!("user:{}", e.user_id),
        Event::UserUpdated(e) => format!("user:{}", e.user_id),
        Event::UserRemoved(e) => format!("user:{}", e.user_id),
        Event::UserErased(e) => format!("user:{}", e.user_id),
        Event::ConversationOpened(e) => format!("conversation:{}", e.conversation_id),
        Event::MessageAppended(e) => format!("conversation:{}", e.conversation_id),
        Event::ConversationRetitled(e) => format!("conversation:{}", e.conversation_id),
        Event::ConversationArchived(e) => format!("conversation:{}", e.conversation_id),
        Event::ConversationDeleted(e) => format!("conversation:{}", e.conversation_id),
        Event::UsageRecorded(e) => format!("model:{}", e.model),
        Event::AccessDenied(e) => return e.target.clone(),
        Event::DataRead(_) => return None,
        Event::CredentialAdded(e) => format!("credential:{}", e.credential_id),
        Event::CredentialRotated(e) => format!("credential:{}", e.credential_id),
        Event::CredentialRemoved(e) => format!("credential:{}", e.credential_id),
        Event::DocumentAdded(e) => format!("document:{}", e.document_id),
        Event::PricesSet(_) => "prices".to_owned(),
        Event::LegalHoldSet(_) => "legal_hold".to_owned(),
        Event::RetentionSet(_) => "retention".to_owned(),
        Event::BudgetSet(_) | Event::BudgetThresholdCrossed(_) => "budget".to_owned(),
        Event::WebhookCreated(e) => format!("webhook:{}", e.webhook_id),
        Event::WebhookUpdated(e) => format!("webhook:{}", e.webhook_id),
        Event::WebhookSecretRotated(e) => format!("webhook:{}", e.webhook_id),
        Event::WebhookRemoved(e) => format!("webhook:{}", e.webhook_id),
        Event::WebhookDisabled(e) => format!("webhook:{}", e.webhook_id),
        Event::DocumentRemoved(e) => format!("document:{}", e.document_id),
        Event::TenantPurged(e) => format!("tenant:{}", e.tenant_id),
        Event::PartnerCreated(e) => format!("partner:{}", e.partner_id),
        Event::PartnerRenamed(e) => format!("partner:{}", e.partner_id),
        Event::PartnerDeleted(e) => format!("partner:{}", e.partner_id),
        Event::PartnerKeyIssued(e) => format!("partner:{}", e.partner_id),
        Event::PartnerKeyRevoked(e) => format!("partner:{}", e.partner_id),
        Event::PartnerKeyRotated(e) => format!("partner:{}", e.partner_id),
        Event::SlugClaimed(e) => format!("tenant:{}", e.tenant_id),
        Event::SlugReleased(e) => format!("tenant:{}", e.tenant_id),
        Event::OperatorCreated(e) => format!("operator:{}", e.operator_id),
        Event::OperatorRemoved(e) => format!("operator:{}", e.operator_id),
        Event::BootstrapKeyRetired(_) => "bootstrap_key".to_owned(),
        Event::TenantCreated(_)
        | Event::TenantUpdated(_)
        | Event::TenantSuspended(_)
        | Event::TenantResumed(_) => "tenant".to_owned(),
    })
}

#[async_trait]
impl Projector for AuditLog {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        self.apply_many(conn, &[(tenant, events)]).await
    }

    /// One multi-row insert for every tenant's entries (chunked under the bind limits).
    async fn apply_many(
        &self,
        conn: &mut AnyConnection,
        pages: &[(&str, &[RecordedEvent])],
    ) -> Result<(), ProjectionError> {
        let rows = super::each_event(pages)
            .map(|(tenant, e)| {
                let (action, outcome, reason) = match &e.event {
                    Event::AccessDenied(d) => (d.action.clone(), "denied", Some(d.reason.clone())),
                    Event::DataRead(r) => {
                        let reason =
                            (r.reads > 1).then(|| format!("{} reads folded into this record", r.reads));
                        (r.action.clone(), "read", reason)
                    }
                    other => (other.event_type().to_owned(), "ok", None),
                };
                vec![
                    tenant.into(),
                    e.position.into(),
                    e.recorded_at.timestamp_millis().into(),
                    e.metadata.actor.as_str().into(),
                    e.metadata.role.as_str().into(),
                    action.into(),
                    target(&e.event).into(),
                    outcome.into(),
                    reason.into(),
                    e.metadata.request_id.as_str().into(),
                    e.metadata.source_ip.as_deref().into(),
                ]
            })
            .collect();
        insert_many(conn, "audit_entries", &COLUMNS, rows, "").await
    }

    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError> {
        exec(conn, "DELETE FROM audit_entries WHERE tenant_id = $1", vec![Val::from(tenant)]).await
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub position: i64,
    #[serde(with = "super::time")]
    pub at: i64,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub request_id: String,
    pub source_ip: Option<String>,
}

/// Which entries to list; times are Unix milliseconds, `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Entries newest first; the cursor is the last position seen.
pub async fn entries(
    ctx: &TenantContext,
    db: &ReadDb,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<super::Page<AuditEntry>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let before: i64 = match cursor {
        None => i64::MAX,
        Some(c) => c.parse().map_err(|_| ProjectionError::InvalidCursor)?,
    };
    let rows = sqlx::query(
        "SELECT * FROM audit_entries
         WHERE tenant_id = $1 AND position < $2 AND ($3 = '' OR actor = $3) AND ($4 = '' OR action = $4)
           AND at >= $5 AND at < $6
         ORDER BY position DESC LIMIT $7",
    )
    .bind(tenant.to_string())
    .bind(before)
    .bind(filter.actor.clone().unwrap_or_default())
    .bind(filter.action.clone().unwrap_or_default())
    .bind(filter.from.unwrap_or(i64::MIN))
    .bind(filter.to.unwrap_or(i64::MAX))
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let items: Vec<AuditEntry> = rows
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                position: int(r, "position")?,
                at: int(r, "at")?,
                actor: text(r, "actor")?,
                role: text(r, "role")?,
                action: text(r, "action")?,
                target: opt_text(r, "target")?,
                outcome: text(r, "outcome")?,
                reason: opt_text(r, "reason")?,
                request_id: text(r, "request_id")?,
                source_ip: opt_text(r, "source_ip")?,
            })
        })
        .collect::<Result<_, ProjectionError>>()?;
    Ok(super::Page::from_rows(items, limit, |e| e.position.to_string()))
}
