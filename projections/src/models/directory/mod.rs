//! Tenants, agents, tools, users and API keys as they stand now.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::AnyConnection;
use tenantry_domain::event::TenantStatus;
use tenantry_domain::{Event, LimitOverrides};
use tenantry_store::RecordedEvent;

use super::text;
use crate::db::{Val, exec};
use crate::error::ProjectionError;
use crate::runtime::Projector;

mod queries;
pub use queries::*;

/// Persisted projector name.
pub const NAME: &str = "directory";

/// Tenants, agents, tools, users and keys as they stand. System prompts, tool descriptions
/// and emails are kept sealed (see [`EventStore::seal_value`]).
#[derive(Debug, Clone)]
pub struct Directory {
    pub store: tenantry_store::EventStore,
}

impl Directory {
    /// Settings as `dir_tenants.settings` holds them: JSON, the system prompt sealed.
    async fn sealed_settings(
        &self,
        tenant: &str,
        settings: &tenantry_domain::event::Settings,
    ) -> Result<String, ProjectionError> {
        let mut settings = settings.clone();
        if let Some(prompt) = settings.system_prompt.take() {
            settings.system_prompt = Some(self.sealed(tenant, None, &prompt).await?);
        }
        Ok(json(&settings))
    }

    /// `text` as a sealed column holds it: under `person`'s key when it is theirs, then the
    /// tenant's.
    async fn sealed(
        &self,
        tenant: &str,
        person: Option<tenantry_domain::UserId>,
        text: &str,
    ) -> Result<String, ProjectionError> {
        let tenant =
            tenant.parse().map_err(|_| ProjectionError::Malformed(format!("tenant id {tenant:?}")))?;
        let layers: Vec<uuid::Uuid> = person.map(|p| *p.as_uuid()).into_iter().collect();
        Ok(self.store.seal_value(tenant, &layers, text).await?)
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[async_trait]
impl Projector for Directory {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for e in events {
            let at = e.recorded_at.timestamp_millis();
            let t = || Val::from(tenant);
            match &e.event {
                Event::TenantCreated(c) => {
                    exec(
                        conn,
                        "INSERT INTO dir_tenants (tenant_id, slug, name, plan, status, partner_id, settings, limits,
                                                  created_at, updated_at, parent_id, ancestors)
                         VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $8, $9, $10)",
                        vec![
                            t(),
                            c.slug.as_str().into(),
                            c.name.as_str().into(),
                            c.plan.as_str().into(),
                            c.partner_id.map(|p| p.to_string()).into(),
                            self.sealed_settings(tenant, &c.settings).await?.into(),
                            json(&c.limits).into(),
                            at.into(),
                            c.ancestors.last().map(|p| p.to_string()).into(),
                            c.ancestors.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ").into(),
                        ],
                    )
                    .await?;
                }
                Event::TenantUpdated(u) => {
                    let settings = match &u.settings {
                        Some(new) => Some(self.sealed_settings(tenant, new).await?),
                        None => None,
                    };
                    let limits = match u.limits {
                        Some(new) => {
                            let row = sqlx::query("SELECT limits FROM dir_tenants WHERE tenant_id = $1")
                                .bind(tenant)
                                .fetch_optional(&mut *conn)
                                .await?;
                            let old: LimitOverrides = match row {
                                Some(r) => serde_json::from_str(&text(&r, "limits")?)
                                    .map_err(|e| ProjectionError::Malformed(e.to_string()))?,
                                None => LimitOverrides::default(),
                            };
                            Some(json(&old.merge(new)))
                        }
                        None => None,
                    };
                    exec(
                        conn,
                        "UPDATE dir_tenants SET name = COALESCE($1, name), plan = COALESCE($2, plan),
                                settings = COALESCE($3, settings), limits = COALESCE($4, limits), updated_at = $5
                         WHERE tenant_id = $6",
                        vec![
                            u.name.as_deref().into(),
                            u.plan.map(|p| p.as_str()).into(),
                            settings.into(),
                            limits.into(),
                            at.into(),
                            t(),
                        ],
                    )
                    .await?;
                }
                Event::TenantSuspended(_) | Event::TenantResumed(_) => {
                    let status = if matches!(e.event, Event::TenantSuspended(_)) {
                        TenantStatus::Suspended
                    } else {
                        TenantStatus::Active
                    }
                    .as_str();
                    exec(
                        conn,
                        "UPDATE dir_tenants SET status = $1, updated_at = $2 WHERE tenant_id = $3",
                        vec![status.into(), at.into(), t()],
                    )
                    .await?;
                }
                Event::AgentCreated(a) => {
                    exec(
                        conn,
                        "INSERT INTO dir_agents (tenant_id, agent_id, name, model, system_prompt, tool_ids, archived,
                                                 created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
                        vec![
                            t(),
                            a.agent_id.to_string().into(),
                            a.name.as_str().into(),
                            a.model.as_str().into(),
                            self.sealed(tenant, None, &a.system_prompt).await?.into(),
                            json(&a.tool_ids).into(),
                            at.into(),
                        ],
                    )
                    .await?;
                }
                Event::AgentUpdated(a) => {
                    let prompt = match a.system_prompt.as_deref() {
                        Some(p) => Some(self.sealed(tenant, None, p).await?),
                        None => None,
                    };
                    exec(
                        conn,
                        "UPDATE dir_agents SET name = COALESCE($1, name), model = COALESCE($2, model),
                                system_prompt = COALESCE($3, system_prompt), tool_ids = COALESCE($4, tool_ids),
                                updated_at = $5
                         WHERE tenant_id = $6 AND agent_id = $7",
                        vec![
                            a.name.as_deref().into(),
                            a.model.as_deref().into(),
                            prompt.into(),
                            a.tool_ids.as_ref().map(json).into(),
                            at.into(),
                            t(),
                            a.agent_id.to_string().into(),
                        ],
                    )
                    .await?;
                }
                Event::AgentArchived(a) => {
                    exec(
                        conn,
                        "UPDATE dir_agents SET archived = 1, updated_at = $1 WHERE tenant_id = $2 AND agent_id = $3",
                        vec![at.into(), t(), a.agent_id.to_string().into()],
                    )
                    .await?;
                }
                Event::ToolRegistered(x) => {
                    exec(
                        conn,
                        "INSERT INTO dir_tools (tenant_id, tool_id, name, description, endpoint, parameters, enabled,
                                                removed, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
                        vec![
                            t(),
                            x.tool_id.to_string().into(),
                            x.name.as_str().into(),
                            self.sealed(tenant, None, &x.description).await?.into(),
                            x.endpoint.as_str().into(),
                            x.parameters.as_str().into(),
                            x.enabled.into(),
                            at.into(),
                        ],
                    )
                    .await?;
                }
                Event::ToolUpdated(x) => {
                    let description = match x.description.as_deref() {
                        Some(d) => Some(self.sealed(tenant, None, d).await?),
                        None => None,
                    };
                    exec(
                        conn,
                        "UPDATE dir_tools SET description = COALESCE($1, description), endpoint = COALESCE($2, endpoint),
                                parameters = COALESCE($3, parameters), enabled = COALESCE($4, enabled)
                         WHERE tenant_id = $5 AND tool_id = $6",
                        vec![
                            description.into(),
                            x.endpoint.as_deref().into(),
                            x.parameters.as_deref().into(),
                            x.enabled.into(),
                            t(),
                            x.tool_id.to_string().into(),
                        ],
                    )
                    .await?;
                }
                Event::ToolRemoved(x) => {
                    exec(
                        conn,
                        "UPDATE dir_tools SET removed = 1 WHERE tenant_id = $1 AND tool_id = $2",
                        vec![t(), x.tool_id.to_string().into()],
                    )
                    .await?;
                }
                Event::UserAdded(u) => {
                    exec(
                        conn,
                        "INSERT INTO dir_users (tenant_id, user_id, email, role, removed, created_at, issuer)
                         VALUES ($1, $2, $3, $4, 0, $5, $6)",
                        vec![
                            t(),
                            u.user_id.to_string().into(),
                            self.sealed(tenant, Some(u.user_id), u.email.as_str()).await?.into(),
                            u.role.as_str().into(),
                            at.into(),
                            u.identity.as_ref().map(|i| i.issuer.as_str()).into(),
                        ],
                    )
                    .await?;
                }
                Event::UserUpdated(u) => {
                    let email = match u.email.as_ref() {
                        Some(e) => Some(self.sealed(tenant, Some(u.user_id), e.as_str()).await?),
                        None => None,
                    };
                    exec(
                        conn,
                        "UPDATE dir_users SET email = COALESCE($1, email), role = COALESCE($2, role)
                         WHERE tenant_id = $3 AND user_id = $4",
                        vec![
                            email.into(),
                            u.role.map(|r| r.as_str()).into(),
                            t(),
                            u.user_id.to_string().into(),
                        ],
                    )
                    .await?;
                }
                Event::UserRemoved(u) => {
                    exec(
                        conn,
                        "UPDATE dir_users SET removed = 1 WHERE tenant_id = $1 AND user_id = $2",
                        vec![t(), u.user_id.to_string().into()],
                    )
                    .await?;
                }
                Event::UserErased(u) => {
                    exec(
                        conn,
                        "UPDATE dir_users SET removed = 1, email = $1 WHERE tenant_id = $2 AND user_id = $3",
                        vec![tenantry_domain::personal::ERASED.into(), t(), u.user_id.to_string().into()],
                    )
                    .await?;
                }
                Event::ApiKeyIssued(k) => {
                    exec(
                        conn,
                        "INSERT INTO dir_api_keys (tenant_id, key_id, name, role, secret_hash, revoked, created_at,
                                                   user_id, scopes, expires_at)
                         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9)",
                        vec![
                            t(),
                            k.key_id.to_string().into(),
                            k.name.as_str().into(),
                            k.role.as_str().into(),
                            hex::encode(&k.secret_hash).into(),
                            at.into(),
                            k.user_id.map(|u| u.to_string()).into(),
                            (!k.scopes.is_empty()).then(|| k.scopes.join(" ")).into(),
                            k.expires_at.map(|t| t.timestamp_millis()).into(),
                        ],
                    )
                    .await?;
                }
                Event::ApiKeyRotated(k) => {
                    exec(
                        conn,
                        "UPDATE dir_api_keys SET previous_hash = CASE WHEN $1 IS NULL THEN NULL ELSE secret_hash END,
                                                 previous_until = $1, secret_hash = $2, rotated_at = $3
                         WHERE tenant_id = $4 AND key_id = $5",
                        vec![
                            k.grace_until.map(|t| t.timestamp_millis()).into(),
                            hex::encode(&k.secret_hash).into(),
                            at.into(),
                            t(),
                            k.key_id.to_string().into(),
                        ],
                    )
                    .await?;
                }
                Event::ApiKeyRevoked(k) => {
                    exec(
                        conn,
                        "UPDATE dir_api_keys SET revoked = 1 WHERE tenant_id = $1 AND key_id = $2",
                        vec![t(), k.key_id.to_string().into()],
                    )
                    .await?;
                }
                Event::ConversationOpened(_)
                | Event::MessageAppended(_)
                | Event::UsageRecorded(_)
                | Event::AccessDenied(_)
                | Event::DataRead(_)
                | Event::ConversationRetitled(_)
                | Event::ConversationArchived(_)
                | Event::DocumentAdded(_)
                | Event::DocumentRemoved(_)
                | Event::ConversationDeleted(_)
                | Event::WebhookCreated(_)
                | Event::WebhookUpdated(_)
                | Event::WebhookSecretRotated(_)
                | Event::WebhookRemoved(_)
                | Event::WebhookDisabled(_)
                | Event::PricesSet(_)
                | Event::BudgetSet(_)
                | Event::BudgetThresholdCrossed(_)
                | Event::LegalHoldSet(_)
                | Event::RetentionSet(_)
                | Event::TenantPurged(_)
                | Event::SlugClaimed(_)
                | Event::SlugReleased(_) => {}
                Event::OperatorCreated(o) => {
                    exec(
                        conn,
                        "INSERT INTO dir_operators (tenant_id, operator_id, name, removed, created_at)
                         VALUES ($1, $2, $3, 0, $4)",
                        vec![t(), o.operator_id.to_string().into(), o.name.as_str().into(), at.into()],
                    )
                    .await?;
                }
                Event::OperatorRemoved(o) => {
                    exec(
                        conn,
                        "UPDATE dir_operators SET removed = 1 WHERE tenant_id = $1 AND operator_id = $2",
                        vec![t(), o.operator_id.to_string().into()],
                    )
                    .await?;
                }
                Event::BootstrapKeyRetired(_) | Event::PartnerKeyRotated(_) => {}
                Event::CredentialAdded(c) => {
                    exec(
                        conn,
                        "INSERT INTO dir_credentials (tenant_id, credential_id, provider, name, last4, fingerprint,
                                                      base_url, removed, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
                        vec![
                            t(),
                            c.credential_id.to_string().into(),
                            c.provider.as_str().into(),
                            c.name.as_str().into(),
                            last4(&c.secret).into(),
                            fingerprint(&c.secret).into(),
                            c.base_url.as_deref().into(),
                            at.into(),
                        ],
                    )
                    .await?;
                }
                Event::CredentialRotated(c) => {
                    exec(
                        conn,
                        "UPDATE dir_credentials SET last4 = $1, fingerprint = $2, rotated_at = $3
                         WHERE tenant_id = $4 AND credential_id = $5",
                        vec![
                            last4(&c.secret).into(),
                            fingerprint(&c.secret).into(),
                            at.into(),
                            t(),
                            c.credential_id.to_string().into(),
                        ],
                    )
                    .await?;
                }
                Event::CredentialRemoved(c) => {
                    exec(
                        conn,
                        "UPDATE dir_credentials SET removed = 1 WHERE tenant_id = $1 AND credential_id = $2",
                        vec![t(), c.credential_id.to_string().into()],
                    )
                    .await?;
                }
                Event::PartnerRenamed(p) => {
                    exec(
                        conn,
                        "UPDATE dir_partners SET name = $1 WHERE tenant_id = $2 AND partner_id = $3",
                        vec![p.name.as_str().into(), t(), p.partner_id.to_string().into()],
                    )
                    .await?;
                }
                Event::PartnerDeleted(p) => {
                    exec(
                        conn,
                        "UPDATE dir_partners SET deleted = 1 WHERE tenant_id = $1 AND partner_id = $2",
                        vec![t(), p.partner_id.to_string().into()],
                    )
                    .await?;
                    crate::platform::forget_partner_keys(conn, p.partner_id).await?;
                }
                // The platform's key table finds a partner key by its id; the partner's stream
                // decides whether its secret opens it. Idempotent, so a rebuild may run it again.
                Event::PartnerKeyIssued(k) => {
                    crate::platform::keep_partner_key(conn, k.key_id, k.partner_id, &k.secret_hash).await?;
                }
                Event::PartnerKeyRevoked(k) => {
                    crate::platform::forget_partner_key(conn, k.key_id).await?;
                }
                Event::PartnerCreated(p) => {
                    exec(
                        conn,
                        "INSERT INTO dir_partners (tenant_id, partner_id, name, created_at) VALUES ($1, $2, $3, $4)",
                        vec![t(), p.partner_id.to_string().into(), p.name.as_str().into(), at.into()],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError> {
        let mut deleted = 0;
        for table in [
            "dir_tenants",
            "dir_agents",
            "dir_tools",
            "dir_users",
            "dir_api_keys",
            "dir_partners",
            "dir_operators",
        ] {
            deleted +=
                exec(conn, &format!("DELETE FROM {table} WHERE tenant_id = $1"), vec![tenant.into()]).await?;
        }
        Ok(deleted)
    }
}

/// The last four characters of a secret, as shown to tell credentials apart.
fn last4(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// The first 16 hex digits of a secret's SHA-256: tells whether two secrets are the same
/// without holding either.
fn fingerprint(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..8])
}
