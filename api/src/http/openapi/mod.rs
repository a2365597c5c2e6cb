//! The OpenAPI 3.1 document: generated from the handlers' annotations, then completed here
//! with what every route shares: a unique `operationId`, the bearer security scheme, the
//! problem schema of every error, the schema of each answer, the query parameters of each
//! list (from the same structs the handlers parse), and enums where a field takes a fixed set
//! of values. `schemathesis` checks a live server against it in CI.

use serde_json::{Map, Value, json};
use utoipa::IntoParams;
use utoipa::openapi::path::ParameterIn;

mod schemas;

use schemas::{MESSAGE_ROLES, PLANS, ROLES, schemas};

use super::queries::PageParams;
use super::queries::conversations::ThreadParams;
use super::queries::reports::{AuditParams, Period};

/// Per operation: its id, the schema of its success answer, and the query parameters.
struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    /// Status and schema of the success answers.
    answers: &'static [(&'static str, &'static str)],
    query: Query,
}

#[derive(Clone, Copy)]
enum Query {
    None,
    Page,
    Threads,
    Audit,
    Period,
    Usage,
    Purge,
    Settings,
    Search,
    Events,
    Analytics,
    Tenants,
}

const CREATED: &str = "201";
const OK: &str = "200";

macro_rules! op {
    ($method:literal, $path:literal, $id:literal, [$(($status:expr, $schema:literal)),*], $query:expr) => {
        Operation { method: $method, path: $path, id: $id, answers: &[$(($status, $schema)),*], query: $query }
    };
}

fn operations() -> Vec<Operation> {
    vec![
        op!("get", "/v1/me", "getMe", [(OK, "Me")], Query::None),
        op!("get", "/v1/partners", "listPartners", [(OK, "PartnerPage")], Query::Page),
        op!(
            "post",
            "/v1/partners",
            "createPartner",
            [(CREATED, "PartnerWithKey"), ("202", "Accepted")],
            Query::None
        ),
        op!("get", "/v1/partners/{partner_id}", "getPartner", [(OK, "Partner")], Query::None),
        op!(
            "patch",
            "/v1/partners/{partner_id}",
            "updatePartner",
            [(OK, "Partner"), ("202", "Accepted")],
            Query::None
        ),
        op!("delete", "/v1/partners/{partner_id}", "deletePartner", [(OK, "Written")], Query::None),
        op!(
            "get",
            "/v1/partners/{partner_id}/usage",
            "getPartnerUsage",
            [(OK, "PartnerUsage")],
            Query::Period
        ),
        op!(
            "post",
            "/v1/partners/{partner_id}/keys/{key_id}/rotate",
            "rotatePartnerKey",
            [(OK, "RotatedKey")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/partners/{partner_id}/keys/{key_id}",
            "revokePartnerKey",
            [(OK, "Written")],
            Query::None
        ),
        op!("get", "/v1/operators", "listOperators", [(OK, "OperatorPage")], Query::Page),
        op!(
            "post",
            "/v1/operators",
            "createOperator",
            [(CREATED, "OperatorWithKey"), ("202", "Accepted")],
            Query::None
        ),
        op!("get", "/v1/operators/{operator_id}", "getOperator", [(OK, "Operator")], Query::None),
        op!("delete", "/v1/operators/{operator_id}", "removeOperator", [(OK, "Written")], Query::None),
        op!("delete", "/v1/bootstrap-key", "retireBootstrapKey", [(OK, "Position")], Query::None),
        op!("get", "/v1/tenants", "listTenants", [(OK, "TenantPage")], Query::Tenants),
        op!("post", "/v1/tenants", "createTenant", [(CREATED, "Tenant"), ("202", "Accepted")], Query::None),
        op!("get", "/v1/tenants/{tenant_id}", "getTenant", [(OK, "Tenant")], Query::None),
        op!(
            "patch",
            "/v1/tenants/{tenant_id}",
            "updateTenant",
            [(OK, "Tenant"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}",
            "purgeTenant",
            [(OK, "Purge"), ("202", "Purge")],
            Query::Purge
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/suspend",
            "suspendTenant",
            [(OK, "Tenant"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/resume",
            "resumeTenant",
            [(OK, "Tenant"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/settings",
            "getSettings",
            [(OK, "SettingsAnswer")],
            Query::Settings
        ),
        op!(
            "patch",
            "/v1/tenants/{tenant_id}/settings",
            "updateSettings",
            [(OK, "Settings"), ("202", "Accepted")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/agents", "listAgents", [(OK, "AgentPage")], Query::Page),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/agents",
            "createAgent",
            [(CREATED, "Agent"), ("202", "Accepted")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/agents/{agent_id}", "getAgent", [(OK, "Agent")], Query::None),
        op!(
            "patch",
            "/v1/tenants/{tenant_id}/agents/{agent_id}",
            "updateAgent",
            [(OK, "Agent"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}/agents/{agent_id}",
            "archiveAgent",
            [(OK, "Written")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/api-keys", "listApiKeys", [(OK, "ApiKeyPage")], Query::Page),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/api-keys",
            "createApiKey",
            [(CREATED, "ApiKeyWithKey"), ("202", "Accepted")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/api-keys/{key_id}", "getApiKey", [(OK, "ApiKey")], Query::None),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/api-keys/{key_id}/rotate",
            "rotateApiKey",
            [(OK, "ApiKeyWithKey"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}/api-keys/{key_id}",
            "revokeApiKey",
            [(OK, "Written")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/agents/{agent_id}/runtime",
            "getAgentRuntime",
            [(OK, "AgentRuntime")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/credentials",
            "listCredentials",
            [(OK, "CredentialPage")],
            Query::Page
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/credentials",
            "createCredential",
            [(CREATED, "Credential"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/credentials/{credential_id}",
            "getCredential",
            [(OK, "Credential")],
            Query::None
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/credentials/{credential_id}/rotate",
            "rotateCredential",
            [(OK, "Credential"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}/credentials/{credential_id}",
            "removeCredential",
            [(OK, "Written")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/documents", "listDocuments", [(OK, "DocumentPage")], Query::Page),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/documents",
            "createDocument",
            [(CREATED, "Document"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/documents/search",
            "searchDocuments",
            [(OK, "SearchResults")],
            Query::Search
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/documents/{document_id}",
            "getDocument",
            [(OK, "Document")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/documents/{document_id}/content",
            "getDocumentContent",
            [],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}/documents/{document_id}",
            "removeDocument",
            [(OK, "Written")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/users", "listUsers", [(OK, "UserPage")], Query::Page),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/users",
            "createUser",
            [(CREATED, "User"), ("202", "Accepted")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/users/{user_id}", "getUser", [(OK, "User")], Query::None),
        op!(
            "patch",
            "/v1/tenants/{tenant_id}/users/{user_id}",
            "updateUser",
            [(OK, "User"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}/users/{user_id}",
            "removeUser",
            [(OK, "Written")],
            Query::None
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/users/{user_id}/erase",
            "eraseUser",
            [(OK, "Written")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/tools", "listTools", [(OK, "ToolPage")], Query::Page),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/tools",
            "createTool",
            [(CREATED, "Tool"), ("202", "Accepted")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/tools/{tool_id}", "getTool", [(OK, "Tool")], Query::None),
        op!(
            "patch",
            "/v1/tenants/{tenant_id}/tools/{tool_id}",
            "updateTool",
            [(OK, "Tool"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}/tools/{tool_id}",
            "removeTool",
            [(OK, "Written")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/conversations",
            "listConversations",
            [(OK, "ConversationPage")],
            Query::Threads
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/conversations",
            "openConversation",
            [(CREATED, "Conversation"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/conversations/{conversation_id}",
            "getConversation",
            [(OK, "Conversation")],
            Query::None
        ),
        op!(
            "patch",
            "/v1/tenants/{tenant_id}/conversations/{conversation_id}",
            "updateConversation",
            [(OK, "Conversation"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}/conversations/{conversation_id}",
            "deleteConversation",
            [(OK, "Written")],
            Query::None
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/conversations/{conversation_id}/archive",
            "archiveConversation",
            [(OK, "Conversation"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/conversations/{conversation_id}/unarchive",
            "unarchiveConversation",
            [(OK, "Conversation"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/conversations/{conversation_id}/messages",
            "listMessages",
            [(OK, "MessagePage")],
            Query::Page
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/conversations/{conversation_id}/messages",
            "appendMessage",
            [(CREATED, "Message"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/conversations/{conversation_id}/messages/{message_id}",
            "getMessage",
            [(OK, "Message")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/usage", "getUsage", [(OK, "UsageReport")], Query::Usage),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/usage",
            "recordUsage",
            [(CREATED, "Recorded"), (OK, "Recorded")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/quotas", "getQuotas", [(OK, "QuotaPage")], Query::None),
        op!("get", "/v1/tenants/{tenant_id}/audit", "listAudit", [(OK, "AuditPage")], Query::Audit),
        op!("get", "/v1/tenants/{tenant_id}/export", "exportTenant", [], Query::None),
        op!("get", "/v1/tenants/{tenant_id}/users/{user_id}/export", "exportUser", [], Query::None),
        op!("get", "/v1/tenants/{tenant_id}/events", "listEvents", [(OK, "EventPage")], Query::Events),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/analytics",
            "getAnalytics",
            [(OK, "Analytics")],
            Query::Analytics
        ),
        op!(
            "get",
            "/v1/partners/{partner_id}/analytics",
            "getPartnerAnalytics",
            [(OK, "Analytics")],
            Query::Analytics
        ),
        op!("get", "/v1/analytics", "getPlatformAnalytics", [(OK, "Analytics")], Query::Analytics),
        op!("get", "/v1/prices", "listPrices", [(OK, "PriceHistory")], Query::None),
        op!("put", "/v1/prices", "setPrices", [(OK, "PriceTable")], Query::None),
        op!("get", "/v1/tenants/{tenant_id}/budget", "getBudget", [(OK, "BudgetStanding")], Query::None),
        op!("post", "/v1/tenants/{tenant_id}/legal-hold", "placeLegalHold", [(OK, "LegalHold")], Query::None),
        op!("get", "/v1/tenants/{tenant_id}/retention", "getRetention", [(OK, "Retention")], Query::None),
        op!(
            "patch",
            "/v1/tenants/{tenant_id}/retention",
            "setRetention",
            [(OK, "RetentionWritten")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}/legal-hold",
            "releaseLegalHold",
            [(OK, "LegalHold")],
            Query::None
        ),
        op!("patch", "/v1/tenants/{tenant_id}/budget", "setBudget", [(OK, "BudgetStanding")], Query::None),
        op!("get", "/v1/tenants/{tenant_id}/webhooks", "listWebhooks", [(OK, "WebhookPage")], Query::Page),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/webhooks",
            "createWebhook",
            [(CREATED, "WebhookWithSecret"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/webhooks/{webhook_id}",
            "getWebhook",
            [(OK, "Webhook")],
            Query::None
        ),
        op!(
            "patch",
            "/v1/tenants/{tenant_id}/webhooks/{webhook_id}",
            "updateWebhook",
            [(OK, "Webhook"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "delete",
            "/v1/tenants/{tenant_id}/webhooks/{webhook_id}",
            "removeWebhook",
            [(OK, "Written")],
            Query::None
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/rotate-secret",
            "rotateWebhookSecret",
            [(OK, "WebhookWithSecret"), ("202", "Accepted")],
            Query::None
        ),
        op!(
            "get",
            "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries",
            "listWebhookDeliveries",
            [(OK, "DeliveryPage")],
            Query::Page
        ),
        op!(
            "post",
            "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries/{position}/redeliver",
            "redeliverWebhook",
            [(OK, "Delivery")],
            Query::None
        ),
        op!("get", "/v1/tenants/{tenant_id}/events/stream", "streamEvents", [], Query::Events),
        op!("get", "/v1/projections", "getProjectionStatus", [(OK, "ProjectionStatus")], Query::None),
        op!("post", "/v1/projections/rebuild", "rebuildProjections", [(OK, "Rebuilt")], Query::None),
    ]
}

fn query_parameters(query: Query) -> Vec<Value> {
    let params = match query {
        Query::None => return Vec::new(),
        Query::Page => PageParams::into_params(|| Some(ParameterIn::Query)),
        Query::Tenants => {
            crate::http::queries::directory::TenantListParams::into_params(|| Some(ParameterIn::Query))
        }
        Query::Threads => ThreadParams::into_params(|| Some(ParameterIn::Query)),
        Query::Audit => AuditParams::into_params(|| Some(ParameterIn::Query)),
        Query::Period => Period::into_params(|| Some(ParameterIn::Query)),
        Query::Usage => crate::http::queries::reports::UsageParams::into_params(|| Some(ParameterIn::Query)),
        Query::Purge => crate::http::commands::tenants::PurgeParams::into_params(|| Some(ParameterIn::Query)),
        Query::Analytics => crate::http::analytics::AnalyticsParams::into_params(|| Some(ParameterIn::Query)),
        Query::Events => crate::http::events::EventParams::into_params(|| Some(ParameterIn::Query)),
        Query::Search => crate::http::documents::SearchParams::into_params(|| Some(ParameterIn::Query)),
        Query::Settings => {
            crate::http::queries::directory::SettingsParams::into_params(|| Some(ParameterIn::Query))
        }
    };
    params.into_iter().filter_map(|p| serde_json::to_value(p).ok()).collect()
}

/// Request-body fields that take a fixed set of values, as enums.
const BODY_ENUMS: [(&str, &str, &[&str]); 9] = [
    ("CreateDocument", "content_type", &tenantry_domain::document::CONTENT_TYPES),
    ("CreateCredential", "provider", &tenantry_domain::tenant::PROVIDERS),
    ("CreateUser", "role", &ROLES),
    ("PatchUser", "role", &ROLES),
    ("CreateKey", "role", &ROLES),
    ("CreateTenant", "plan", &PLANS),
    ("PatchTenant", "plan", &PLANS),
    ("AppendMessage", "role", &MESSAGE_ROLES),
    ("RecordBody", "kind", &["completion", "embedding"]),
];

/// Bounds the domain enforces on request fields, stated so clients (and schemathesis) send
/// what is accepted: (schema, field, constraints merged into the field's schema).
fn body_constraints() -> Vec<(&'static str, &'static str, Value)> {
    let name = json!({ "minLength": 1, "maxLength": 200 });
    let tokens = json!({ "minimum": 0, "maximum": tenantry_domain::validate::MAX_TOKENS_PER_RECORD });
    vec![
        (
            "CreateTenant",
            "slug",
            json!({ "minLength": 2, "maxLength": 63, "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$" }),
        ),
        ("CreateTenant", "name", name.clone()),
        ("CreatePartner", "name", name.clone()),
        ("CreateOperator", "name", name.clone()),
        ("PatchPartner", "name", name.clone()),
        ("CreateCredential", "name", name.clone()),
        ("PlaceLegalHold", "reason", json!({ "minLength": 1, "maxLength": 500 })),
        ("Rebuild", "tenant_id", json!({ "format": "uuid" })),
        ("Rebuild", "projection", json!({ "minLength": 1, "maxLength": 64 })),
        (
            "PatchRetention",
            "conversations_days",
            json!({ "minimum": 1, "maximum": tenantry_domain::tenant::MAX_RETENTION_DAYS }),
        ),
        ("PatchBudget", "monthly", json!({ "pattern": "^[0-9]{1,9}(\\.[0-9]{1,9})?$" })),
        ("PatchBudget", "currency", json!({ "pattern": "^[A-Z]{3}$" })),
        (
            "PatchBudget",
            "alert_at",
            json!({ "maxItems": 10, "items": { "type": "number", "exclusiveMinimum": 0, "maximum": 10 } }),
        ),
        ("SetPrices", "currency", json!({ "pattern": "^[A-Z]{3}$" })),
        ("PriceBody", "prompt_per_1k", json!({ "pattern": "^[0-9]{1,6}(\\.[0-9]{1,12})?$" })),
        ("PriceBody", "completion_per_1k", json!({ "pattern": "^[0-9]{1,6}(\\.[0-9]{1,12})?$" })),
        (
            "CreateWebhookBody",
            "url",
            json!({ "minLength": 8, "maxLength": 2048, "pattern": "^https?://[^\\s@/?#]+([/?#]\\S*)?$" }),
        ),
        (
            "PatchWebhook",
            "url",
            json!({ "minLength": 8, "maxLength": 2048, "pattern": "^https?://[^\\s@/?#]+([/?#]\\S*)?$" }),
        ),
        (
            "RotateWebhookBody",
            "grace_seconds",
            json!({ "minimum": 0, "maximum": tenantry_domain::tenant::webhooks::MAX_SECRET_GRACE_SECONDS }),
        ),
        (
            "CreateDocument",
            "title",
            json!({ "minLength": 1, "maxLength": tenantry_domain::document::MAX_TITLE_CHARS, "pattern": "\\S" }),
        ),
        (
            "CreateDocument",
            "body",
            json!({ "minLength": 1, "maxLength": tenantry_domain::document::MAX_BODY_BYTES, "pattern": "\\S" }),
        ),
        ("CreateCredential", "secret", json!({ "minLength": 1, "maxLength": 4096, "pattern": "^\\S+$" })),
        ("RotateCredentialBody", "secret", json!({ "minLength": 1, "maxLength": 4096, "pattern": "^\\S+$" })),
        ("CreateAgent", "name", name.clone()),
        ("CreateAgent", "model", name.clone()),
        ("CreateKey", "name", name.clone()),
        (
            "CreateKey",
            "scopes",
            json!({ "items": { "type": "string", "enum": tenantry_domain::Scope::ALL.map(|s| s.as_str()) } }),
        ),
        (
            "Rotate",
            "grace_seconds",
            json!({ "minimum": 0, "maximum": tenantry_domain::tenant::MAX_ROTATION_GRACE_SECONDS }),
        ),
        ("CreateTool", "name", name.clone()),
        (
            "CreateUser",
            "email",
            json!({ "minLength": 3, "maxLength": 320, "pattern": "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$" }),
        ),
        ("RecordBody", "model", name),
        ("RecordBody", "prompt_tokens", tokens.clone()),
        ("RecordBody", "completion_tokens", tokens.clone()),
        ("UsageBody", "prompt_tokens", tokens.clone()),
        ("UsageBody", "completion_tokens", tokens),
    ]
}

/// The names of a path template's parameters, in order.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

/// OpenAPI links from each create to the operations on what it created: the new object's
/// `id` fills the new path parameter, the create's own path parameters the others. Clients
/// (and schemathesis's stateful phase) follow them.
fn links(ops: &[Operation]) -> Vec<(usize, String, Value)> {
    let mut out = Vec::new();
    for (i, create) in ops.iter().enumerate() {
        if create.method != "post" || !create.answers.iter().any(|(s, _)| *s == CREATED) {
            continue;
        }
        let own = path_params(create.path);
        let mut found = Map::new();
        for target in ops {
            let Some(rest) = target.path.strip_prefix(create.path).and_then(|r| r.strip_prefix("/{")) else {
                continue;
            };
            let Some((new, _)) = rest.split_once('}') else { continue };
            let params = path_params(target.path);
            if params.iter().any(|p| *p != new && !own.contains(p)) {
                continue;
            }
            let mut parameters = Map::new();
            for p in params {
                let from =
                    if p == new { "$response.body#/id".to_owned() } else { format!("$request.path.{p}") };
                parameters.insert(p.to_owned(), json!(from));
            }
            found.insert(target.id.to_owned(), json!({ "operationId": target.id, "parameters": parameters }));
        }
        if !found.is_empty() {
            out.push((i, CREATED.to_owned(), Value::Object(found)));
        }
    }
    out
}

/// The finished document.
/// The bearer scheme: the credentials taken, and the scopes a tenant key may be narrowed to.
fn security_description() -> String {
    let mut text = String::from(
        "An API key (`tnt_<id>_<secret>`), the operator key, or a token (JWT) of an identity \
         provider the server trusts (`--oidc-config`).\n\nScopes a tenant key may be narrowed to \
         (a key without scopes may do all its role allows; each tenant operation names the scope \
         it needs in `x-scope`):\n",
    );
    for scope in tenantry_domain::Scope::ALL {
        text.push_str(&format!("\n- `{scope}`: {}", scope.describe()));
    }
    text
}

pub fn document(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|_| json!({}));
    let mut components = doc["components"]["schemas"].as_object().cloned().unwrap_or_default();
    for (name, field, values) in BODY_ENUMS {
        if let Some(property) = components.get_mut(name).and_then(|s| s["properties"].get_mut(field)) {
            let nullable = property["type"].as_array().is_some_and(|t| t.iter().any(|t| t == "null"));
            *property = if nullable {
                json!({ "type": ["string", "null"], "enum": values.iter().map(|v| json!(v)).chain([Value::Null]).collect::<Vec<_>>() })
            } else {
                json!({ "type": "string", "enum": values })
            };
        }
    }
    for (name, field, bounds) in body_constraints() {
        if let (Some(property), Value::Object(bounds)) =
            (components.get_mut(name).and_then(|s| s["properties"].get_mut(field)), bounds)
            && let Some(property) = property.as_object_mut()
        {
            property.extend(bounds);
        }
    }
    components.extend(schemas());
    doc["components"]["schemas"] = Value::Object(components);
    doc["components"]["securitySchemes"] = json!({ "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": security_description(),
    } });
    let problem = json!({
        "description": "Problem (RFC 9457)",
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
    });
    let ops = operations();
    let links = links(&ops);
    for (i, op) in ops.iter().enumerate() {
        let Some(entry) = doc["paths"].get_mut(op.path).and_then(|p| p.get_mut(op.method)) else { continue };
        entry["operationId"] = json!(op.id);
        entry["security"] = json!([{ "bearer": [] }]);
        if let Some(Ok(scope)) =
            super::scopes::needed(&op.method.to_ascii_uppercase().parse().unwrap_or_default(), op.path)
        {
            let said = entry["description"].as_str().unwrap_or_default().to_owned();
            let line = format!("Scope a scoped key needs: `{scope}`.");
            entry["description"] = json!(if said.is_empty() { line } else { format!("{said}\n\n{line}") });
            entry["x-scope"] = json!(scope.as_str());
        }
        let mut responses = Map::new();
        for (status, schema) in op.answers {
            let description = entry["responses"][*status]["description"].as_str().unwrap_or("OK").to_owned();
            responses.insert(
                (*status).to_owned(),
                json!({
                    "description": description,
                    "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
                }),
            );
        }
        if op.answers.is_empty() {
            // Not JSON (the export's JSON Lines, a document's text, an event stream): the
            // handler's own description of its content, with a string schema.
            let mut answer = entry["responses"][OK].clone();
            if let Some(content) = answer["content"].as_object_mut() {
                for media in content.values_mut() {
                    *media = json!({ "schema": { "type": "string" } });
                }
            }
            responses.insert(OK.into(), answer);
        }
        for (_, status, found) in links.iter().filter(|(from, _, _)| *from == i) {
            if let Some(answer) = responses.get_mut(status) {
                answer["links"] = found.clone();
            }
        }
        responses.insert("default".into(), problem.clone());
        entry["responses"] = Value::Object(responses);
        let mut parameters = entry["parameters"].as_array().cloned().unwrap_or_default();
        parameters.retain(|p| p["in"] != "query");
        parameters.extend(query_parameters(op.query));
        for p in &mut parameters {
            if p["in"] == "path" {
                p["schema"] = json!({ "type": "string", "format": "uuid" });
            }
        }
        entry["parameters"] = Value::Array(parameters);
    }
    doc
}
