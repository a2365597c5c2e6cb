//! The directory's rows as queries read them: tenants, partners, agents, tools, users and
//! API keys, and the key lookup of authentication.

use serde::Serialize;
use sqlx::any::AnyRow;
use tenantry_domain::event::{Settings, TenantStatus};
use tenantry_domain::{
    AgentId, ApiKeyId, CredentialId, LimitOverrides, OperatorId, PartnerId, Plan, PlanCatalog, Role, Scope,
    TenantContext, TenantId, ToolId, UserId,
};

use crate::db::ReadDb;
use crate::error::ProjectionError;
use crate::models::{Page, id_cursor, int, opt_int, opt_text, page_size, text};

/// A column written from an enum's `as_str`, read back as that enum.
fn parsed<T>(r: &AnyRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T, ProjectionError> {
    let value = text(r, col)?;
    parse(&value).ok_or_else(|| ProjectionError::Malformed(format!("{col}: `{value}`")))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantRow {
    #[serde(rename = "id")]
    pub tenant_id: String,
    pub slug: String,
    pub name: String,
    pub plan: Plan,
    pub status: TenantStatus,
    pub partner_id: Option<String>,
    /// The tenant it was created under, if any.
    pub parent_id: Option<String>,
    /// The tenants above it, the root first.
    #[serde(skip)]
    pub ancestors: Vec<TenantId>,
    #[serde(serialize_with = "settings_view")]
    pub settings: Settings,
    pub limits: LimitOverrides,
    #[serde(with = "crate::models::time")]
    pub created_at: i64,
    #[serde(with = "crate::models::time")]
    pub updated_at: i64,
}

/// Settings as the API shows them: feature flags as a JSON object of name to flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsView<'a> {
    pub agent_name: Option<&'a str>,
    pub system_prompt: Option<&'a str>,
    pub default_model: Option<&'a str>,
    pub allowed_models: &'a [String],
    pub feature_flags: std::collections::BTreeMap<&'a str, bool>,
    /// The platform's own settings, a JSON object (empty when none).
    pub custom: serde_json::Map<String, serde_json::Value>,
}

impl<'a> From<&'a Settings> for SettingsView<'a> {
    fn from(s: &'a Settings) -> Self {
        Self {
            agent_name: s.agent_name.as_deref(),
            system_prompt: s.system_prompt.as_deref(),
            default_model: s.default_model.as_deref(),
            allowed_models: &s.allowed_models,
            feature_flags: s.feature_flags.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
            custom: tenantry_domain::command::custom_object(s.custom.as_deref()),
        }
    }
}

fn settings_view<S: serde::Serializer>(settings: &Settings, s: S) -> Result<S::Ok, S::Error> {
    SettingsView::from(settings).serialize(s)
}

/// The effective settings and limits of a tenant: inherited from the tenants above it
/// unless it sets them itself, each with where it came from. `None` for no such tenant.
pub async fn effective(
    db: &ReadDb,
    tenant: TenantId,
    plans: &PlanCatalog,
) -> Result<Option<tenantry_domain::inherit::Effective>, ProjectionError> {
    let Some(row) = self::tenant(&TenantContext::system(tenant), db).await? else { return Ok(None) };
    effective_of(db, &row, plans).await.map(Some)
}

/// [`effective`] of a tenant whose row is read already: only its ancestors are read (none
/// for a root).
pub async fn effective_of(
    db: &ReadDb,
    row: &TenantRow,
    plans: &PlanCatalog,
) -> Result<tenantry_domain::inherit::Effective, ProjectionError> {
    let id: TenantId = row.tenant_id.parse().map_err(|_| ProjectionError::Malformed("tenant id".into()))?;
    let mut above = Vec::with_capacity(row.ancestors.len());
    for ancestor in &row.ancestors {
        // An ancestor purged meanwhile passes nothing on.
        if let Some(r) = self::tenant(&TenantContext::system(*ancestor), db).await? {
            above.push((*ancestor, r));
        }
    }
    let path: Vec<tenantry_domain::inherit::Level<'_>> = above
        .iter()
        .map(|(a, r)| (*a, r))
        .chain(std::iter::once((id, row)))
        .map(|(tenant, r)| tenantry_domain::inherit::Level {
            tenant,
            settings: &r.settings,
            limits: &r.limits,
        })
        .collect();
    Ok(tenantry_domain::inherit::effective(&path, plans.limits(row.plan)))
}

impl TenantRow {
    /// The sealed values of the row opened (the tenant-wide system prompt).
    async fn open(&mut self, db: &ReadDb) -> Result<(), ProjectionError> {
        if let Some(prompt) = self.settings.system_prompt.take() {
            self.settings.system_prompt = Some(db.open_value(&self.tenant_id, &prompt).await?);
        }
        Ok(())
    }
}

impl TryFrom<&AnyRow> for TenantRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        let parse = |e: serde_json::Error| ProjectionError::Malformed(e.to_string());
        Ok(Self {
            tenant_id: text(r, "tenant_id")?,
            slug: text(r, "slug")?,
            name: text(r, "name")?,
            plan: parsed(r, "plan", Plan::parse)?,
            status: parsed(r, "status", TenantStatus::parse)?,
            partner_id: opt_text(r, "partner_id")?,
            parent_id: opt_text(r, "parent_id")?,
            ancestors: text(r, "ancestors")?
                .split_whitespace()
                .map(|a| a.parse().map_err(|_| ProjectionError::Malformed("tenant ancestors".into())))
                .collect::<Result<_, _>>()?,
            settings: serde_json::from_str(&text(r, "settings")?).map_err(parse)?,
            limits: serde_json::from_str(&text(r, "limits")?).map_err(parse)?,
            created_at: int(r, "created_at")?,
            updated_at: int(r, "updated_at")?,
        })
    }
}

pub async fn tenant(ctx: &TenantContext, db: &ReadDb) -> Result<Option<TenantRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let row = sqlx::query("SELECT * FROM dir_tenants WHERE tenant_id = $1")
        .bind(tenant.to_string())
        .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
        .await?;
    let Some(mut row) = row.as_ref().map(TenantRow::try_from).transpose()? else { return Ok(None) };
    row.open(db).await?;
    Ok(Some(row))
}

/// Tenants in id order after `after`, of one partner when given.
/// A partner, from the platform's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartnerRow {
    #[serde(rename = "id")]
    pub partner_id: String,
    pub name: String,
    #[serde(with = "crate::models::time")]
    pub created_at: i64,
}

/// A named operator of the platform; never its key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorRow {
    #[serde(rename = "id")]
    pub operator_id: String,
    pub name: String,
    pub removed: bool,
    #[serde(with = "crate::models::time")]
    pub created_at: i64,
}

impl TryFrom<&AnyRow> for OperatorRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            operator_id: text(r, "operator_id")?,
            name: text(r, "name")?,
            removed: int(r, "removed")? != 0,
            created_at: int(r, "created_at")?,
        })
    }
}

/// The platform's operators in id order after `after`, removed ones included.
pub async fn operators(
    db: &ReadDb,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<OperatorRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT operator_id, name, removed, created_at FROM dir_operators
         WHERE tenant_id = $1 AND operator_id > $2 ORDER BY operator_id LIMIT $3",
    )
    .bind(tenantry_domain::TenantId::PLATFORM.to_string())
    .bind(id_cursor(after)?)
    .bind(page_size(limit))
    .fetch_all(db.platform_readers())
    .await?;
    let rows = rows.iter().map(OperatorRow::try_from).collect::<Result<_, _>>()?;
    Ok(Page::from_rows(rows, limit, |o: &OperatorRow| o.operator_id.clone()))
}

/// One operator.
pub async fn operator(db: &ReadDb, operator: OperatorId) -> Result<Option<OperatorRow>, ProjectionError> {
    let row = sqlx::query(
        "SELECT operator_id, name, removed, created_at FROM dir_operators WHERE tenant_id = $1 AND operator_id = $2",
    )
    .bind(tenantry_domain::TenantId::PLATFORM.to_string())
    .bind(operator.to_string())
    .fetch_optional(db.platform_readers())
    .await?;
    row.as_ref().map(OperatorRow::try_from).transpose()
}

/// Partners in id order after `after`; only `only` when given (a partner admin's own).
pub async fn partners(
    db: &ReadDb,
    only: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<PartnerRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT partner_id, name, created_at FROM dir_partners
         WHERE tenant_id = $1 AND deleted = 0 AND partner_id > $2 AND ($3 = '' OR partner_id = $3)
         ORDER BY partner_id LIMIT $4",
    )
    .bind(tenantry_domain::TenantId::PLATFORM.to_string())
    .bind(id_cursor(after)?)
    .bind(only.unwrap_or(""))
    .bind(page_size(limit))
    .fetch_all(db.platform_readers())
    .await?;
    let rows = rows.iter().map(PartnerRow::try_from).collect::<Result<_, _>>()?;
    Ok(Page::from_rows(rows, limit, |p: &PartnerRow| p.partner_id.clone()))
}

/// How many tenants a partner has (purged ones are gone from the directory).
pub async fn partner_tenant_count(db: &ReadDb, partner: PartnerId) -> Result<u64, ProjectionError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM dir_tenants WHERE partner_id = $1")
        .bind(partner.to_string())
        .fetch_one(db.platform_readers())
        .await?;
    Ok(u64::try_from(int(&row, "n")?).unwrap_or(0))
}

/// One partner, from the platform's log.
pub async fn partner(db: &ReadDb, partner: PartnerId) -> Result<Option<PartnerRow>, ProjectionError> {
    let row = sqlx::query(
        "SELECT partner_id, name, created_at FROM dir_partners WHERE tenant_id = $1 AND partner_id = $2 AND deleted = 0",
    )
    .bind(tenantry_domain::TenantId::PLATFORM.to_string())
    .bind(partner.to_string())
    .fetch_optional(db.platform_readers())
    .await?;
    row.as_ref().map(PartnerRow::try_from).transpose()
}

impl TryFrom<&AnyRow> for PartnerRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            partner_id: text(r, "partner_id")?,
            name: text(r, "name")?,
            created_at: int(r, "created_at")?,
        })
    }
}

/// Every tenant below `tenant` (children, their children …), in id order.
pub async fn descendants(db: &ReadDb, tenant: TenantId) -> Result<Vec<TenantId>, ProjectionError> {
    let rows = sqlx::query("SELECT tenant_id FROM dir_tenants WHERE ancestors LIKE $1 ORDER BY tenant_id")
        .bind(format!("%{tenant}%"))
        .fetch_all(db.platform_readers())
        .await?;
    rows.iter()
        .map(|r| text(r, "tenant_id")?.parse().map_err(|_| ProjectionError::Malformed("tenant id".into())))
        .collect()
}

pub async fn tenants(
    db: &ReadDb,
    partner: Option<&str>,
    text: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<TenantRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT * FROM dir_tenants WHERE tenant_id > $1 AND ($2 = '' OR partner_id = $2)
           AND ($3 = '' OR lower(slug) LIKE $3 ESCAPE '\\' OR lower(name) LIKE $3 ESCAPE '\\')
         ORDER BY tenant_id LIMIT $4",
    )
    .bind(id_cursor(after)?)
    .bind(partner.unwrap_or(""))
    .bind(text.map(contains_pattern).unwrap_or_default())
    .bind(page_size(limit))
    .fetch_all(db.platform_readers())
    .await?;
    let mut rows: Vec<TenantRow> = rows.iter().map(TenantRow::try_from).collect::<Result<_, _>>()?;
    for row in &mut rows {
        row.open(db).await?;
    }
    Ok(Page::from_rows(rows, limit, |t: &TenantRow| t.tenant_id.clone()))
}

/// A `LIKE` pattern matching `text` anywhere, case-insensitively (ASCII): its `%`, `_`
/// and `\\` stand for themselves.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    #[serde(rename = "id")]
    pub agent_id: String,
    pub name: String,
    pub model: String,
    pub system_prompt: String,
    pub tool_ids: Vec<String>,
    pub archived: bool,
    #[serde(with = "crate::models::time")]
    pub created_at: i64,
    #[serde(with = "crate::models::time")]
    pub updated_at: i64,
}

impl TryFrom<&AnyRow> for AgentRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            agent_id: text(r, "agent_id")?,
            name: text(r, "name")?,
            model: text(r, "model")?,
            system_prompt: text(r, "system_prompt")?,
            tool_ids: serde_json::from_str(&text(r, "tool_ids")?)
                .map_err(|e| ProjectionError::Malformed(e.to_string()))?,
            archived: int(r, "archived")? != 0,
            created_at: int(r, "created_at")?,
            updated_at: int(r, "updated_at")?,
        })
    }
}

pub async fn agents(
    ctx: &TenantContext,
    db: &ReadDb,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<AgentRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let rows = sqlx::query(
        "SELECT * FROM dir_agents WHERE tenant_id = $1 AND archived = 0 AND agent_id > $2
         ORDER BY agent_id LIMIT $3",
    )
    .bind(tenant.to_string())
    .bind(id_cursor(after)?)
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let mut rows: Vec<AgentRow> = rows.iter().map(AgentRow::try_from).collect::<Result<_, _>>()?;
    for r in &mut rows {
        r.system_prompt = db.open_value(&ctx.tenant_id.to_string(), &r.system_prompt).await?;
    }
    Ok(Page::from_rows(rows, limit, |r: &AgentRow| r.agent_id.clone()))
}

pub async fn agent(
    ctx: &TenantContext,
    db: &ReadDb,
    agent: AgentId,
) -> Result<Option<AgentRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let row = sqlx::query("SELECT * FROM dir_agents WHERE tenant_id = $1 AND agent_id = $2")
        .bind(tenant.to_string())
        .bind(agent.to_string())
        .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
        .await?;
    let Some(mut row) = row.as_ref().map(AgentRow::try_from).transpose()? else { return Ok(None) };
    row.system_prompt = db.open_value(&ctx.tenant_id.to_string(), &row.system_prompt).await?;
    Ok(Some(row))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolRow {
    #[serde(rename = "id")]
    pub tool_id: String,
    pub name: String,
    pub description: String,
    pub endpoint: String,
    /// The JSON Schema of the tool's parameters, as registered.
    pub parameters: serde_json::Value,
    pub enabled: bool,
    #[serde(with = "crate::models::time")]
    pub created_at: i64,
}

impl TryFrom<&AnyRow> for ToolRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            tool_id: text(r, "tool_id")?,
            name: text(r, "name")?,
            description: text(r, "description")?,
            endpoint: text(r, "endpoint")?,
            parameters: serde_json::from_str(&text(r, "parameters")?)
                .map_err(|e| ProjectionError::Malformed(e.to_string()))?,
            enabled: int(r, "enabled")? != 0,
            created_at: int(r, "created_at")?,
        })
    }
}

pub async fn tools(
    ctx: &TenantContext,
    db: &ReadDb,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<ToolRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let rows = sqlx::query(
        "SELECT * FROM dir_tools WHERE tenant_id = $1 AND removed = 0 AND tool_id > $2 ORDER BY tool_id LIMIT $3",
    )
    .bind(tenant.to_string())
    .bind(id_cursor(after)?)
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let mut rows: Vec<ToolRow> = rows.iter().map(ToolRow::try_from).collect::<Result<_, _>>()?;
    for r in &mut rows {
        r.description = db.open_value(&ctx.tenant_id.to_string(), &r.description).await?;
    }
    Ok(Page::from_rows(rows, limit, |r: &ToolRow| r.tool_id.clone()))
}

pub async fn tool(
    ctx: &TenantContext,
    db: &ReadDb,
    tool: ToolId,
) -> Result<Option<ToolRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let row = sqlx::query("SELECT * FROM dir_tools WHERE tenant_id = $1 AND tool_id = $2 AND removed = 0")
        .bind(tenant.to_string())
        .bind(tool.to_string())
        .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
        .await?;
    let Some(mut row) = row.as_ref().map(ToolRow::try_from).transpose()? else { return Ok(None) };
    row.description = db.open_value(&ctx.tenant_id.to_string(), &row.description).await?;
    Ok(Some(row))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRow {
    #[serde(rename = "id")]
    pub user_id: String,
    pub email: String,
    pub role: Role,
    /// The identity provider the user was provisioned from, if any.
    pub issuer: Option<String>,
    #[serde(with = "crate::models::time")]
    pub created_at: i64,
}

impl TryFrom<&AnyRow> for UserRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            user_id: text(r, "user_id")?,
            email: text(r, "email")?,
            role: parsed(r, "role", Role::parse)?,
            issuer: opt_text(r, "issuer")?,
            created_at: int(r, "created_at")?,
        })
    }
}

pub async fn users(
    ctx: &TenantContext,
    db: &ReadDb,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<UserRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let rows = sqlx::query(
        "SELECT * FROM dir_users WHERE tenant_id = $1 AND removed = 0 AND user_id > $2 ORDER BY user_id LIMIT $3",
    )
    .bind(tenant.to_string())
    .bind(id_cursor(after)?)
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let mut rows: Vec<UserRow> = rows.iter().map(UserRow::try_from).collect::<Result<_, _>>()?;
    for r in &mut rows {
        r.email = db.open_value(&ctx.tenant_id.to_string(), &r.email).await?;
    }
    Ok(Page::from_rows(rows, limit, |r: &UserRow| r.user_id.clone()))
}

pub async fn user(
    ctx: &TenantContext,
    db: &ReadDb,
    user: UserId,
) -> Result<Option<UserRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let row = sqlx::query("SELECT * FROM dir_users WHERE tenant_id = $1 AND user_id = $2 AND removed = 0")
        .bind(tenant.to_string())
        .bind(user.to_string())
        .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
        .await?;
    let Some(mut row) = row.as_ref().map(UserRow::try_from).transpose()? else { return Ok(None) };
    row.email = db.open_value(&ctx.tenant_id.to_string(), &row.email).await?;
    Ok(Some(row))
}

/// An API key as listed: never its secret or hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyRow {
    #[serde(rename = "id")]
    pub key_id: String,
    pub name: String,
    pub role: Role,
    /// What the key is narrowed to; empty: all its role allows.
    pub scopes: Vec<String>,
    pub revoked: bool,
    #[serde(with = "crate::models::time")]
    pub created_at: i64,
    #[serde(with = "crate::models::time::option")]
    pub expires_at: Option<i64>,
    #[serde(with = "crate::models::time::option")]
    pub rotated_at: Option<i64>,
    /// When the key last opened a request (kept to the minute).
    #[serde(with = "crate::models::time::option")]
    pub last_used_at: Option<i64>,
}

/// The columns of an [`ApiKeyRow`], from `dir_api_keys k` joined with `api_key_last_used l`.
const KEY_COLUMNS: &str =
    "k.key_id, k.name, k.role, k.scopes, k.revoked, k.created_at, k.expires_at, k.rotated_at,
     l.last_used_at
     FROM dir_api_keys k
     LEFT JOIN api_key_last_used l ON l.tenant_id = k.tenant_id AND l.key_id = k.key_id";

pub async fn api_keys(
    ctx: &TenantContext,
    db: &ReadDb,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<ApiKeyRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let rows = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} WHERE k.tenant_id = $1 AND k.key_id > $2 ORDER BY k.key_id LIMIT $3"
    ))
    .bind(tenant.to_string())
    .bind(id_cursor(after)?)
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let rows = rows.iter().map(ApiKeyRow::try_from).collect::<Result<_, _>>()?;
    Ok(Page::from_rows(rows, limit, |k: &ApiKeyRow| k.key_id.clone()))
}

pub async fn api_key(
    ctx: &TenantContext,
    db: &ReadDb,
    key: ApiKeyId,
) -> Result<Option<ApiKeyRow>, ProjectionError> {
    let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} WHERE k.tenant_id = $1 AND k.key_id = $2"))
        .bind(ctx.tenant_id.to_string())
        .bind(key.to_string())
        .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
        .await?;
    row.as_ref().map(ApiKeyRow::try_from).transpose()
}

impl TryFrom<&AnyRow> for ApiKeyRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            key_id: text(r, "key_id")?,
            name: text(r, "name")?,
            role: parsed(r, "role", Role::parse)?,
            scopes: opt_text(r, "scopes")?
                .map(|s| s.split(' ').map(str::to_owned).collect())
                .unwrap_or_default(),
            revoked: int(r, "revoked")? != 0,
            created_at: int(r, "created_at")?,
            expires_at: opt_int(r, "expires_at")?,
            rotated_at: opt_int(r, "rotated_at")?,
            last_used_at: opt_int(r, "last_used_at")?,
        })
    }
}

/// A tenant key as authentication needs it: `None` when no tenant key has this id (it may
/// be a partner's), `Some(None)` when it no longer works (revoked, or its user removed).
pub async fn auth_key(
    db: &ReadDb,
    key_id: &str,
) -> Result<Option<Option<crate::platform::KeyRecord>>, ProjectionError> {
    let row = sqlx::query(
        // A user key stops working with its user: removed or erased.
        "SELECT k.tenant_id, k.secret_hash, k.role,
                CASE WHEN k.revoked <> 0 OR COALESCE(u.removed, 0) <> 0 THEN 1 ELSE 0 END AS revoked,
                k.user_id, k.scopes, k.expires_at, k.previous_hash, k.previous_until
         FROM dir_api_keys k
         LEFT JOIN dir_users u ON u.tenant_id = k.tenant_id AND u.user_id = k.user_id
         WHERE k.key_id = $1",
    )
    .bind(key_id)
    .fetch_optional(db.platform_readers())
    .await?;
    let Some(r) = row else { return Ok(None) };
    if int(&r, "revoked")? != 0 {
        return Ok(Some(None));
    }
    let malformed = |what: &str| ProjectionError::Malformed(format!("api key: {what}"));
    let secret_hash = hex::decode(text(&r, "secret_hash")?).map_err(|_| malformed("secret hash"))?;
    let tenant = text(&r, "tenant_id")?.parse().map_err(|_| malformed("tenant id"))?;
    let role = match text(&r, "role")?.as_str() {
        "admin" => Role::Admin,
        "user" => Role::User,
        _ => return Err(malformed("role")),
    };
    let user = opt_text(&r, "user_id")?.and_then(|u| u.parse().ok());
    let scopes = match opt_text(&r, "scopes")? {
        Some(names) => names
            .split(' ')
            .map(Scope::parse)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("scope"))?,
        None => Vec::new(),
    };
    let previous = match (opt_text(&r, "previous_hash")?, opt_int(&r, "previous_until")?) {
        (Some(hash), Some(until)) => {
            Some((hex::decode(hash).map_err(|_| malformed("previous hash"))?, until))
        }
        _ => None,
    };
    Ok(Some(Some(crate::platform::KeyRecord {
        secret_hash,
        role,
        tenant: Some(tenant),
        user,
        partner: None,
        scopes,
        expires_at: opt_int(&r, "expires_at")?,
        previous,
    })))
}

/// Note that a key opened a request at `at` (Unix ms). Callers write at most once a minute
/// per key; the row keeps the latest time.
pub async fn touch_key(db: &ReadDb, tenant: TenantId, key: ApiKeyId, at: i64) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO api_key_last_used (tenant_id, key_id, last_used_at) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, key_id) DO UPDATE SET last_used_at = excluded.last_used_at
         WHERE api_key_last_used.last_used_at < excluded.last_used_at",
    )
    .bind(tenant.to_string())
    .bind(key.to_string())
    .bind(at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A model provider credential as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CredentialRow {
    #[serde(rename = "id")]
    pub credential_id: String,
    pub provider: String,
    pub name: String,
    /// The secret's last four characters.
    pub last4: String,
    /// The first 16 hex digits of the secret's SHA-256.
    pub fingerprint: String,
    pub base_url: Option<String>,
    #[serde(with = "crate::models::time")]
    pub created_at: i64,
    #[serde(with = "crate::models::time::option")]
    pub rotated_at: Option<i64>,
}

impl TryFrom<&AnyRow> for CredentialRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            credential_id: text(r, "credential_id")?,
            provider: text(r, "provider")?,
            name: text(r, "name")?,
            last4: text(r, "last4")?,
            fingerprint: text(r, "fingerprint")?,
            base_url: opt_text(r, "base_url")?,
            created_at: int(r, "created_at")?,
            rotated_at: opt_int(r, "rotated_at")?,
        })
    }
}

/// The tenant's credentials (not removed) in id order after `after`.
pub async fn credentials(
    ctx: &TenantContext,
    db: &ReadDb,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<CredentialRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT * FROM dir_credentials WHERE tenant_id = $1 AND removed = 0 AND credential_id > $2
         ORDER BY credential_id LIMIT $3",
    )
    .bind(ctx.tenant_id.to_string())
    .bind(id_cursor(after)?)
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let rows = rows.iter().map(CredentialRow::try_from).collect::<Result<_, _>>()?;
    Ok(Page::from_rows(rows, limit, |c: &CredentialRow| c.credential_id.clone()))
}

pub async fn credential(
    ctx: &TenantContext,
    db: &ReadDb,
    credential: CredentialId,
) -> Result<Option<CredentialRow>, ProjectionError> {
    let row = sqlx::query(
        "SELECT * FROM dir_credentials WHERE tenant_id = $1 AND credential_id = $2 AND removed = 0",
    )
    .bind(ctx.tenant_id.to_string())
    .bind(credential.to_string())
    .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    row.as_ref().map(CredentialRow::try_from).transpose()
}

/// The tenant's credential for `provider`: the first by name (not removed).
pub async fn credential_for(
    ctx: &TenantContext,
    db: &ReadDb,
    provider: &str,
) -> Result<Option<CredentialRow>, ProjectionError> {
    let row = sqlx::query(
        "SELECT * FROM dir_credentials WHERE tenant_id = $1 AND provider = $2 AND removed = 0
         ORDER BY name, credential_id LIMIT 1",
    )
    .bind(ctx.tenant_id.to_string())
    .bind(provider)
    .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    row.as_ref().map(CredentialRow::try_from).transpose()
}
